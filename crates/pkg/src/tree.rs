//! The image being built: an in-memory tree of entries whose file contents
//! live in a staging directory (never held whole in memory), written out at
//! the end as one deterministic tar layer.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::error::PkgError;

/// The staging directory's scratch name in the temporary directory.
const STAGING: &str = "slipway-pkg-";

/// Where a regular file's bytes are.
#[derive(Clone, Debug)]
pub enum Content {
    Bytes(Arc<Vec<u8>>),
    /// A file in the staging directory (or a host file, for `root:` steps).
    Path {
        path: PathBuf,
        size: u64,
    },
}

impl Content {
    pub fn size(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Path { size, .. } => *size,
        }
    }

    pub fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        match self {
            Content::Bytes(b) => Ok(Box::new(io::Cursor::new(b.as_slice()))),
            Content::Path { path, .. } => Ok(Box::new(File::open(path)?)),
        }
    }

    /// The whole content, for small files the build reads (passwd, modinfo).
    pub fn read_all(&self, limit: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open()?.take(limit).read_to_end(&mut out)?;
        Ok(out)
    }
}

#[derive(Clone, Debug)]
pub enum Kind {
    Dir,
    File(Content),
    Symlink(String),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits, including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The image's filesystem. Paths are relative (`usr/bin/runc`), normalised.
#[derive(Debug)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
    staging: slipway_scratch::ScratchDir,
    staged: u64,
    /// Image labels a step found in the tree (the kernel step's), added to
    /// those of `build.yml`.
    labels: BTreeMap<String, String>,
}

/// `./a//b/../c/` -> `a/c`; `None` if it escapes the root.
pub fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

impl Tree {
    /// Labels the steps set on the image.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    pub fn set_label(&mut self, key: &str, value: String) {
        self.labels.insert(key.to_string(), value);
    }

    pub fn new() -> Result<Tree, PkgError> {
        // A killed build's staging tree stays until a later build reaps it.
        let tmp = std::env::temp_dir();
        slipway_scratch::reap(&tmp, STAGING);
        let staging = slipway_scratch::dir_in(&tmp, STAGING)
            .map_err(PkgError::io("creating a staging directory in", tmp))?;
        Ok(Tree {
            entries: BTreeMap::new(),
            staging,
            staged: 0,
            labels: BTreeMap::new(),
        })
    }

    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Copies `reader` into the staging directory.
    pub fn stage(&mut self, reader: &mut dyn Read) -> Result<Content, PkgError> {
        self.staged += 1;
        let path = self.staging.path().join(format!("{:08}", self.staged));
        let mut file = File::create(&path).map_err(PkgError::io("creating", &path))?;
        let size = io::copy(reader, &mut file).map_err(PkgError::io("writing", &path))?;
        file.flush().map_err(PkgError::io("writing", &path))?;
        Ok(Content::Path { path, size })
    }

    /// Creates the missing parent directories of `path` (0755, root).
    fn make_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let dir = &path[..end + i];
            match self.entries.get(dir) {
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => {}
                // A symlink or file in the way: replaced by a directory, as
                // a later layer would do.
                _ => {
                    self.entries.insert(
                        dir.to_string(),
                        Entry {
                            kind: Kind::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                        },
                    );
                }
            }
            end += i + 1;
        }
    }

    /// Adds or replaces `path`. A directory over a directory keeps the
    /// children; anything over a directory removes them.
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<(), PkgError> {
        let Some(path) = normalize(path).filter(|p| !p.is_empty()) else {
            if matches!(entry.kind, Kind::Dir) {
                return Ok(());
            }
            return Err(PkgError::step(
                "tree",
                format!("{path:?} is not a path inside the image"),
            ));
        };
        self.make_parents(&path);
        if !matches!(entry.kind, Kind::Dir)
            && matches!(
                self.entries.get(&path),
                Some(Entry {
                    kind: Kind::Dir,
                    ..
                })
            )
        {
            self.remove(&path);
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    pub fn add_file(&mut self, path: &str, content: Content, mode: u32) -> Result<(), PkgError> {
        self.insert(
            path,
            Entry {
                kind: Kind::File(content),
                mode,
                uid: 0,
                gid: 0,
            },
        )
    }

    pub fn add_bytes(&mut self, path: &str, bytes: Vec<u8>, mode: u32) -> Result<(), PkgError> {
        self.add_file(path, Content::Bytes(Arc::new(bytes)), mode)
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), PkgError> {
        self.insert(
            path,
            Entry {
                kind: Kind::Symlink(target.to_string()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        )
    }

    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<(), PkgError> {
        self.insert(
            path,
            Entry {
                kind: Kind::Dir,
                mode,
                uid: 0,
                gid: 0,
            },
        )
    }

    /// Removes `path` and everything below it; whether anything was there.
    pub fn remove(&mut self, path: &str) -> bool {
        let Some(path) = normalize(path) else {
            return false;
        };
        if path.is_empty() {
            let any = !self.entries.is_empty();
            self.entries.clear();
            return any;
        }
        let prefix = format!("{path}/");
        let below: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &below {
            self.entries.remove(k);
        }
        self.entries.remove(&path).is_some() || !below.is_empty()
    }

    /// Keeps only what `keep` accepts (directories with kept children stay).
    pub fn retain(&mut self, keep: impl Fn(&str, &Entry) -> bool) {
        let kept: Vec<String> = self
            .entries
            .iter()
            .filter(|(k, e)| keep(k, e))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = BTreeMap::new();
        for k in kept {
            let mut p = k.as_str();
            while let Some(dir) = parent(p) {
                if let Some(e) = self.entries.get(dir) {
                    out.insert(dir.to_string(), e.clone());
                }
                p = dir;
            }
            if let Some(e) = self.entries.get(&k) {
                out.insert(k, e.clone());
            }
        }
        self.entries = out;
    }

    /// Follows symlinks (inside the image) to the entry `path` names.
    pub fn resolve(&self, path: &str) -> Option<(String, &Entry)> {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(c);
            let joined = current.join("/");
            let entry = self.entries.get(&joined)?;
            if let Kind::Symlink(target) = &entry.kind {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                current.pop();
                if target.starts_with('/') {
                    current.clear();
                }
                for part in target.split('/').filter(|p| !p.is_empty()).rev() {
                    pending.push(part.to_string());
                }
            }
        }
        let joined = current.join("/");
        self.entries.get(&joined).map(|e| (joined, e))
    }

    /// Writes the tree as an uncompressed tar stream: entries sorted by
    /// path, every parent directory explicit, headers fixed but for what the
    /// entry says, `mtime` for every entry.
    pub fn write_tar<W: Write>(&self, out: W, mtime: u64) -> Result<W, PkgError> {
        write_tar(
            self.entries.iter().map(|(k, v)| (k.as_str(), v)),
            out,
            mtime,
        )
    }
}

/// Writes `entries` (sorted, parents first) as a tar stream through
/// slipway-tar's writer: every entry at `mtime`, directories named with a
/// trailing `/`.
pub fn write_tar<'a, W: Write>(
    entries: impl Iterator<Item = (&'a str, &'a Entry)>,
    out: W,
    mtime: u64,
) -> Result<W, PkgError> {
    let mut tar = slipway_tar::TarWriter::new(out);
    let tar_err = |path: &str| {
        let path = path.to_string();
        move |source: io::Error| PkgError::Layer {
            what: format!("writing {path}"),
            source,
        }
    };
    for (path, entry) in entries {
        let dir_name;
        let (name, kind) = match &entry.kind {
            Kind::Dir => {
                dir_name = format!("{path}/");
                (dir_name.as_str(), slipway_tar::Kind::Dir)
            }
            Kind::Symlink(target) => (path, slipway_tar::Kind::Symlink { target }),
            Kind::File(content) => (
                path,
                slipway_tar::Kind::File {
                    size: content.size(),
                },
            ),
        };
        let header = slipway_tar::Entry {
            uid: u64::from(entry.uid),
            gid: u64::from(entry.gid),
            ..slipway_tar::Entry::new(name, kind, entry.mode, mtime)
        };
        match &entry.kind {
            // A file that changed size since it was staged is an error.
            Kind::File(content) => {
                let mut reader = content.open().map_err(tar_err(path))?;
                tar.append(&header, &mut reader).map_err(tar_err(path))?;
            }
            _ => tar
                .append(&header, &mut io::empty())
                .map_err(tar_err(path))?,
        }
    }
    tar.finish().map_err(|source| PkgError::Layer {
        what: "finishing the archive".into(),
        source,
    })
}

/// A writer that hashes (sha256) and counts what passes through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    pub inner: W,
    hasher: Sha256,
    pub written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    pub fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 of a reader, streamed.
pub fn sha256_reader(reader: &mut dyn Read) -> io::Result<([u8; 32], u64)> {
    let mut w = HashingWriter::new(io::sink());
    io::copy(reader, &mut w)?;
    let (_, hash, n) = w.finish();
    Ok((hash, n))
}

/// Copies a host directory into the tree (files, directories, symlinks);
/// owners become root, permission bits are kept.
pub fn copy_host_dir(tree: &mut Tree, src: &Path, dest: &str) -> Result<(), PkgError> {
    let mut stack = vec![(src.to_path_buf(), dest.to_string())];
    while let Some((dir, at)) = stack.pop() {
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(PkgError::io("reading", &dir))?
            .collect::<Result<_, _>>()
            .map_err(PkgError::io("reading", &dir))?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let path = child.path();
            let name = child.file_name();
            let name = name.to_str().ok_or_else(|| {
                PkgError::step(
                    "root",
                    format!("{}: file names must be UTF-8", path.display()),
                )
            })?;
            let target = if at.is_empty() {
                name.to_string()
            } else {
                format!("{at}/{name}")
            };
            let meta = std::fs::symlink_metadata(&path).map_err(PkgError::io("reading", &path))?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
            if meta.file_type().is_symlink() {
                let link = std::fs::read_link(&path).map_err(PkgError::io("reading", &path))?;
                tree.add_symlink(&target, &link.to_string_lossy())?;
            } else if meta.is_dir() {
                tree.add_dir(&target, mode)?;
                stack.push((path, target));
            } else if meta.is_file() {
                tree.add_file(
                    &target,
                    Content::Path {
                        path: path.clone(),
                        size: meta.len(),
                    },
                    mode,
                )?;
            } else {
                return Err(PkgError::step(
                    "root",
                    format!(
                        "{}: only files, directories and symlinks can be copied",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}
