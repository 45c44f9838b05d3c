//! The declarative steps: what maintainer scripts would have done, and
//! files. Each is a pure function of the tree and the step.

use std::path::{Path, PathBuf};

use crate::def::{FileEntry, FileKind, Group, PackageDef, Symlink, User};
use crate::error::PkgError;
use crate::tree::{Content, Entry, Kind, Tree, copy_host_dir};

/// Resolves a path written in `build.yml` against the extra sources (by
/// their `dst`), else the package directory. Refuses paths outside both.
pub fn context_path(def: &PackageDef, written: &str) -> Result<PathBuf, PkgError> {
    let clean = written.trim_start_matches("./");
    for (src, dst) in &def.extra_sources {
        let dst = dst.trim_end_matches('/');
        if clean == dst {
            return Ok(src.clone());
        }
        if let Some(rest) = clean.strip_prefix(&format!("{dst}/")) {
            return Ok(src.join(rest));
        }
    }
    if Path::new(clean).is_absolute() || clean.split('/').any(|c| c == "..") {
        return Err(PkgError::step(
            "build.yml",
            format!("{written:?} must be a path inside the package directory or an extra source"),
        ));
    }
    Ok(def.dir.join(clean))
}

pub fn root(tree: &mut Tree, def: &PackageDef, dir: &Path) -> Result<(), PkgError> {
    let src = context_path(def, &dir.to_string_lossy())?;
    if !src.is_dir() {
        return Err(PkgError::step(
            "root",
            format!("{} is not a directory", src.display()),
        ));
    }
    copy_host_dir(tree, &src, "")
}

pub fn files(tree: &mut Tree, def: &PackageDef, files: &[FileEntry]) -> Result<(), PkgError> {
    for f in files {
        let kind = match &f.kind {
            FileKind::Contents(text) => Kind::File(Content::Bytes(std::sync::Arc::new(
                text.as_bytes().to_vec(),
            ))),
            FileKind::Source(src) => {
                let path = context_path(def, src)?;
                let meta = std::fs::metadata(&path).map_err(PkgError::io("reading", &path))?;
                if !meta.is_file() {
                    return Err(PkgError::step(
                        "files",
                        format!("{}: not a regular file", path.display()),
                    ));
                }
                let file = std::fs::File::open(&path).map_err(PkgError::io("opening", &path))?;
                Kind::File(tree.stage(&mut std::io::BufReader::new(file))?)
            }
            FileKind::Directory => Kind::Dir,
            FileKind::Symlink(target) => Kind::Symlink(target.clone()),
        };
        let mode = f.mode.unwrap_or(match kind {
            Kind::Dir => 0o755,
            Kind::Symlink(_) => 0o777,
            Kind::File(_) => 0o644,
        });
        tree.insert(
            &f.path,
            Entry {
                kind,
                mode,
                uid: f.uid,
                gid: f.gid,
            },
        )?;
    }
    Ok(())
}

pub fn symlinks(tree: &mut Tree, links: &[Symlink]) -> Result<(), PkgError> {
    for l in links {
        tree.add_symlink(&l.path, &l.target)?;
    }
    Ok(())
}

/// Lines of a colon-separated database file (`/etc/passwd`), if present.
fn read_db(tree: &Tree, path: &str) -> Result<Vec<String>, PkgError> {
    match tree.resolve(path) {
        Some((
            _,
            Entry {
                kind: Kind::File(c),
                ..
            },
        )) => {
            let bytes = c
                .read_all(16 << 20)
                .map_err(PkgError::read("users", format!("/{path}")))?;
            Ok(String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect())
        }
        _ => Ok(Vec::new()),
    }
}

/// Replaces the line for `name` (first field), or appends it.
fn upsert(lines: &mut Vec<String>, name: &str, line: String) {
    match lines.iter_mut().find(|l| l.split(':').next() == Some(name)) {
        Some(existing) => *existing = line,
        None => lines.push(line),
    }
}

fn write_db(tree: &mut Tree, path: &str, lines: &[String], mode: u32) -> Result<(), PkgError> {
    let mut text = lines.join("\n");
    text.push('\n');
    tree.add_bytes(path, text.into_bytes(), mode)
}

fn check_name(step: &'static str, name: &str) -> Result<(), PkgError> {
    if name.is_empty() || name.contains([':', '\n', ',']) {
        return Err(PkgError::step(
            step,
            format!("{name:?} is not a valid name"),
        ));
    }
    Ok(())
}

pub fn users(tree: &mut Tree, users: &[User]) -> Result<(), PkgError> {
    let mut passwd = read_db(tree, "etc/passwd")?;
    let mut shadow = read_db(tree, "etc/shadow")?;
    let mut group = read_db(tree, "etc/group")?;
    for u in users {
        check_name("users", &u.name)?;
        upsert(
            &mut passwd,
            &u.name,
            format!(
                "{}:x:{}:{}:{}:{}:{}",
                u.name, u.uid, u.gid, u.name, u.home, u.shell
            ),
        );
        upsert(
            &mut shadow,
            &u.name,
            format!("{}:{}:0:0:99999:7:::", u.name, u.password),
        );
        // A user's primary group is created when no group has its gid.
        let has_gid = group
            .iter()
            .any(|l| l.split(':').nth(2) == Some(u.gid.to_string().as_str()));
        if !has_gid {
            upsert(&mut group, &u.name, format!("{}:x:{}:", u.name, u.gid));
        }
    }
    write_db(tree, "etc/passwd", &passwd, 0o644)?;
    write_db(tree, "etc/shadow", &shadow, 0o640)?;
    write_db(tree, "etc/group", &group, 0o644)
}

pub fn groups(tree: &mut Tree, groups: &[Group]) -> Result<(), PkgError> {
    let mut group = read_db(tree, "etc/group")?;
    for g in groups {
        check_name("groups", &g.name)?;
        for m in &g.members {
            check_name("groups", m)?;
        }
        upsert(
            &mut group,
            &g.name,
            format!("{}:x:{}:{}", g.name, g.gid, g.members.join(",")),
        );
    }
    write_db(tree, "etc/group", &group, 0o644)
}

/// The CA bundle: every `*.crt` below `usr/share/ca-certificates` (as
/// Debian's `ca-certificates` ships them), sorted by path, concatenated,
/// as `update-ca-certificates` would with every certificate enabled.
pub fn ca_certificates(tree: &mut Tree, dest: &str) -> Result<(), PkgError> {
    let certs: Vec<(String, Content)> = tree
        .entries()
        .iter()
        .filter(|(p, _)| p.starts_with("usr/share/ca-certificates/") && p.ends_with(".crt"))
        .filter_map(|(p, e)| match &e.kind {
            Kind::File(c) => Some((p.clone(), c.clone())),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(PkgError::step(
            "ca-certificates",
            "no certificates under /usr/share/ca-certificates: install the `ca-certificates` package first",
        ));
    }
    let mut bundle = Vec::new();
    for (path, c) in &certs {
        let mut bytes = c
            .read_all(1 << 20)
            .map_err(PkgError::read("ca-certificates", format!("/{path}")))?;
        if !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
        bundle.extend_from_slice(&bytes);
    }
    tree.add_bytes(dest, bundle, 0o644)
}

pub fn remove(tree: &mut Tree, paths: &[String]) {
    for p in paths {
        if !tree.remove(p) {
            tracing::debug!("remove: /{p} was not in the image");
        }
    }
}
