//! The `files:` unit: entries made from the config (contents, host files,
//! the config itself as metadata), their key, and writing them.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use slipway_config::model::Config;
use slipway_config::validate::parse_mode;
use slipway_config::{Id, Sp};

use crate::bundle_json::{IdMap, numeric_id};
use crate::entry::{EntrySink, Header, Kind};
use crate::error::{AssembleError, Result};

use super::{FORMAT_VERSION, Inputs};

#[derive(Debug, Clone)]
pub(super) struct FileEntry {
    pub(super) header: Header,
    pub(super) content: FileContent,
}

#[derive(Debug, Clone)]
pub(super) enum FileContent {
    None,
    Bytes(Vec<u8>),
    /// A host file, streamed at write time; its size and digest were taken
    /// when the unit was made, and are checked again.
    Host(PathBuf),
}

/// The key of the `files:` unit: every entry's header and content (host
/// files read whole, so a changed file changes the key).
pub(super) fn files_key(entries: &[FileEntry]) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(FORMAT_VERSION.to_le_bytes());
    h.update(b"files");
    for e in entries {
        h.update(format!("{:?}", e.header).as_bytes());
        match &e.content {
            FileContent::None => h.update(b"none"),
            FileContent::Bytes(b) => {
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            FileContent::Host(p) => {
                let mut f = std::fs::File::open(p).map_err(|source| AssembleError::Source {
                    location: "files".into(),
                    path: p.clone(),
                    source,
                })?;
                let mut hw = HashWriter(&mut h);
                io::copy(&mut f, &mut hw).map_err(|source| AssembleError::Source {
                    location: "files".into(),
                    path: p.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(h.finalize().into())
}

/// Streams the entries; a host file must still have the size it had when
/// the unit was planned.
pub(super) fn write_files(
    entries: &[FileEntry],
    location: &str,
    sink: &mut dyn EntrySink,
) -> Result<()> {
    for e in entries {
        match &e.content {
            FileContent::None => sink.entry(&e.header, &[], &mut io::empty()),
            FileContent::Bytes(b) => sink.entry(&e.header, &[], &mut &b[..]),
            FileContent::Host(p) => {
                let f = std::fs::File::open(p).map_err(|source| AssembleError::Source {
                    location: location.to_string(),
                    path: p.clone(),
                    source,
                })?;
                let mut exact = Exact {
                    inner: f,
                    left: e.header.kind.size(),
                    what: p.display().to_string(),
                };
                sink.entry(&e.header, &[], &mut exact)
            }
        }
        .map_err(AssembleError::Sink)?;
    }
    Ok(())
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) fn file_entries(
    config: &Config,
    inputs: &Inputs,
    ids: &IdMap,
) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    let mut added: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (n, f) in config.files().iter().enumerate() {
        let f = &f.value;
        let location = format!("files[{n}]");
        let cerr = |message: String| AssembleError::Config {
            location: location.clone(),
            message,
        };
        let get = |v: &Option<Sp<String>>| v.as_ref().map(|v| v.value.clone());
        let path = get(&f.path).unwrap_or_default();
        let path = path.trim_start_matches('/').to_string();
        if path.is_empty() {
            return Err(cerr("did not specify path for file".into()));
        }
        let directory = f.directory.as_ref().is_some_and(|d| d.value);
        let mode = match get(&f.mode) {
            Some(m) => parse_mode(&m).map_err(|e| cerr(e.to_string()))?,
            None if directory => 0o700,
            None => 0o600,
        };
        let mut dir_mode = mode;
        for (any, x) in [(0o700, 0o100), (0o070, 0o010), (0o007, 0o001)] {
            if dir_mode & any != 0 {
                dir_mode |= x;
            }
        }
        let id = |v: &Option<Sp<Id>>| -> Result<u32> {
            match v {
                None => Ok(0),
                Some(v) => numeric_id(&v.value, ids).map_err(|e| cerr(e.0)),
            }
        };
        let uid = u64::from(id(&f.uid)?);
        let gid = u64::from(id(&f.gid)?);
        let symlink = get(&f.symlink).filter(|s| !s.is_empty());
        let contents = get(&f.contents);
        let (kind, content) = if directory {
            (Kind::Dir, FileContent::None)
        } else if let Some(target) = symlink {
            (Kind::Symlink { target }, FileContent::None)
        } else if let Some(c) = contents {
            (
                Kind::File {
                    size: c.len() as u64,
                },
                FileContent::Bytes(c.into_bytes()),
            )
        } else if let Some(source) = get(&f.source) {
            let expanded = source_path(&source, &inputs.source_dir);
            match std::fs::metadata(&expanded) {
                Ok(meta) => (Kind::File { size: meta.len() }, FileContent::Host(expanded)),
                Err(_) if f.optional.as_ref().is_some_and(|o| o.value) => continue,
                Err(source) => {
                    return Err(AssembleError::Source {
                        location,
                        path: expanded,
                        source,
                    });
                }
            }
        } else if let Some(md) = get(&f.metadata) {
            let text = match md.as_str() {
                "yaml" => &inputs.metadata_yaml,
                "json" => &inputs.metadata_json,
                other => return Err(cerr(format!("unsupported metadata type: {other}"))),
            };
            (
                Kind::File {
                    size: text.len() as u64,
                },
                FileContent::Bytes(text.clone().into_bytes()),
            )
        } else {
            return Err(cerr(format!("contents of file ({path}) not specified")));
        };
        let origin = |h: Header| h.with_origin("linuxkit.files", &location);
        let mut parent = String::new();
        if let Some((dirs, _)) = path.rsplit_once('/') {
            for part in dirs.split('/').filter(|p| !p.is_empty() && *p != ".") {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(part);
                if added.insert(parent.clone()) {
                    let mut h = Header::new(parent.clone(), Kind::Dir, dir_mode);
                    h.uid = uid;
                    h.gid = gid;
                    out.push(FileEntry {
                        header: origin(h),
                        content: FileContent::None,
                    });
                }
            }
        }
        added.insert(path.clone());
        let mut h = Header::new(path, kind, mode);
        h.uid = uid;
        h.gid = gid;
        out.push(FileEntry {
            header: origin(h),
            content,
        });
    }
    Ok(out)
}

/// A reader that fails unless it yields exactly `expected` bytes.
struct Exact<R> {
    inner: R,
    left: u64,
    what: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} changed size during the build", self.what),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Where `files[].source` is read from: `~/` is the home directory, other
/// relative paths are relative to `source_dir` (LinuxKit: the working
/// directory).
pub fn source_path(source: &str, source_dir: &Path) -> PathBuf {
    match source.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(rest))
            .unwrap_or_else(|| PathBuf::from(source)),
        None => source_dir.join(source),
    }
}
