//! The default tag: a digest of everything that decides the image's bytes.
//!
//! sha256 over, in order: a format version; every file of the package
//! directory (path, kind, executable bit, content) but `debs.lock`; the
//! lock as the architecture sees it (every step's request, that
//! architecture's pins); every extra source (under its `dst`); for packages
//! with `cargo:` steps, the workspace's `Cargo.toml`, `Cargo.lock`, every
//! file below `crates/` and `rustc -V`; and `SOURCE_DATE_EPOCH` when set.
//! The tag is the first 40 hex digits (as long as LinuxKit's git tree
//! hashes).
//!
//! A tag is per architecture so that pinning one architecture's Debian
//! packages leaves every other architecture's tag (and the image the cache
//! holds under it) alone; a package without `debs:` pins has one tag for all.

use std::io::BufReader;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use slipway_reference::Arch;

use crate::cargo_step::{rustc_version, workspace_root};
use crate::deb::debian_arch;
use crate::deb::lock::{LOCK_FILE, Lock};
use crate::def::{PackageDef, Step};
use crate::error::PkgError;
use crate::tree::sha256_reader;

/// Bumped when slipway's output for the same inputs changes, so a cache
/// never serves an image an older slipway built under the same tag.
/// 2: the kernel step resolves soft dependencies written as aliases.
/// 3: layers are written by slipway-tar (ustar headers, PAX records for
/// long names) instead of the tar crate's GNU headers.
/// 4: the tag is per architecture (`debs.lock` is hashed as that
/// architecture's pins, not as the file), and each image's index holds its
/// SPDX SBOM as an attestation manifest.
pub const FORMAT: &str = "slipway-pkg/4";

fn hash_tree(
    h: &mut Sha256,
    root: &Path,
    prefix: &str,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(), PkgError> {
    // A package directory reached through a symlink hashes as the directory
    // it names: the tag is about content, not about how it was reached.
    let root = &std::fs::canonicalize(root).map_err(PkgError::io("reading", root))?;
    let mut stack = vec![(root.to_path_buf(), prefix.to_string())];
    let mut files = Vec::new();
    while let Some((dir, at)) = stack.pop() {
        let meta = std::fs::symlink_metadata(&dir).map_err(PkgError::io("reading", &dir))?;
        if !meta.is_dir() {
            files.push((at, dir, meta));
            continue;
        }
        for e in std::fs::read_dir(&dir).map_err(PkgError::io("reading", &dir))? {
            let e = e.map_err(PkgError::io("reading", &dir))?;
            let path = e.path();
            if skip(&path) {
                continue;
            }
            let name = e.file_name().to_string_lossy().to_string();
            let rel = if at.is_empty() {
                name
            } else {
                format!("{at}/{name}")
            };
            let meta = std::fs::symlink_metadata(&path).map_err(PkgError::io("reading", &path))?;
            if meta.is_dir() {
                files.push((format!("{rel}/"), path.clone(), meta));
                stack.push((path, rel));
            } else {
                files.push((rel, path, meta));
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (rel, path, meta) in files {
        h.update(rel.as_bytes());
        h.update([0]);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(PkgError::io("reading", &path))?;
            h.update(b"l");
            h.update(target.to_string_lossy().as_bytes());
        } else if meta.is_dir() {
            h.update(b"d");
        } else {
            let exec = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
            h.update(if exec { b"x" } else { b"f" });
            let file = std::fs::File::open(&path).map_err(PkgError::io("opening", &path))?;
            let (digest, _) =
                sha256_reader(&mut BufReader::new(file)).map_err(PkgError::io("reading", &path))?;
            h.update(digest);
        }
        h.update([0]);
    }
    Ok(())
}

/// The content hash of the package's inputs for `arch`, 64 hex digits.
pub fn input_hash(def: &PackageDef, arch: Arch) -> Result<String, PkgError> {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update([0]);
    // Editor backups and VCS metadata do not decide the image.
    let skip = |p: &Path| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n == ".git" || n == "target" || n.ends_with('~') || n.starts_with(".debs.lock.")
        })
    };
    // The package's own lock is hashed below, as `arch` sees it.
    let dir = std::fs::canonicalize(&def.dir).map_err(PkgError::io("reading", &def.dir))?;
    let lock_file = Lock::path(&dir);
    let skip_in_dir = |p: &Path| p == lock_file || skip(p);
    hash_tree(&mut h, &dir, "", &skip_in_dir)?;
    if let Some(lock) = Lock::read(&dir)? {
        h.update(LOCK_FILE.as_bytes());
        h.update([0]);
        h.update(lock.for_arch(debian_arch(arch)).to_text().as_bytes());
        h.update([0]);
    }
    for (src, dst) in &def.extra_sources {
        h.update(b"extra:");
        hash_tree(&mut h, src, dst, &skip)?;
    }
    if def.steps.iter().any(|s| matches!(s, Step::Cargo(_))) {
        let ws = workspace_root(&def.dir).ok_or_else(|| {
            PkgError::step(
                "cargo",
                format!("{} is not inside a Cargo workspace", def.dir.display()),
            )
        })?;
        h.update(b"workspace:");
        for f in ["Cargo.toml", "Cargo.lock"] {
            let p = ws.join(f);
            if p.exists() {
                hash_tree(&mut h, &p, f, &skip)?;
            }
        }
        let crates = ws.join("crates");
        if crates.is_dir() {
            hash_tree(&mut h, &crates, "crates", &skip)?;
        }
        h.update(rustc_version()?.as_bytes());
    }
    if let Some(epoch) = epoch_in_tags() {
        h.update(b"epoch:");
        h.update(epoch.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// `SOURCE_DATE_EPOCH` as the tags hash it: its value whenever it is set.
pub fn epoch_in_tags() -> Option<String> {
    std::env::var_os("SOURCE_DATE_EPOCH").map(|v| v.to_string_lossy().into_owned())
}

/// Why a tag may differ from the one images were built under: appended to
/// every message about a package missing from the cache, since a
/// `SOURCE_DATE_EPOCH` set (or changed) since the build changes every tag.
/// Empty when it is not set.
pub fn epoch_note(epoch: Option<&str>) -> String {
    match epoch {
        Some(value) => format!(
            " (SOURCE_DATE_EPOCH={value:?} is set and is part of every package's tag: \
             packages built without it, or with another value, have other tags)"
        ),
        None => String::new(),
    }
}

/// The tag for `arch`: `build.yml`'s template with `{{.Hash}}` expanded.
pub fn tag(def: &PackageDef, arch: Arch) -> Result<String, PkgError> {
    let hash = input_hash(def, arch)?;
    Ok(def.tag.replace("{{.Hash}}", &hash[..40]))
}
