//! Unpacking a `.deb` into the image: the `ar` archive's `data.tar.*`
//! member, streamed through its decompressor, into the tree. Maintainer
//! scripts (in `control.tar.*`) are never run.
//!
//! The `ar` reader is hand-written: the format is a magic and 60-byte
//! headers, and reading it as a stream needs nothing more.

use std::io::{BufReader, Read};
use std::path::Path;

use super::DebError;
use crate::tree::{Entry, Kind, Tree, normalize};

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

fn bad(path: &Path, message: impl Into<String>) -> DebError {
    DebError::BadDeb {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Unpacks the data of the `.deb` at `path` into `tree`; returns the paths added.
pub fn unpack_deb(path: &Path, tree: &mut Tree) -> Result<Vec<String>, DebError> {
    let file = std::fs::File::open(path).map_err(DebError::io("opening", path))?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|_| bad(path, "not a Debian package (too short)"))?;
    if &magic != AR_MAGIC {
        return Err(bad(path, "not a Debian package (no ar magic)"));
    }
    loop {
        let mut header = [0u8; 60];
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(bad(path, "has no data.tar member"));
            }
            Err(e) => return Err(DebError::io("reading", path)(e)),
        }
        if &header[58..60] != b"`\n" {
            return Err(bad(path, "corrupt ar member header"));
        }
        let name = String::from_utf8_lossy(&header[0..16])
            .trim()
            .trim_end_matches('/')
            .to_string();
        let size: u64 = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| bad(path, format!("ar member {name:?} has a bad size")))?;
        if let Some(ext) = name.strip_prefix("data.tar") {
            let member = (&mut reader).take(size);
            let decoded: Box<dyn Read> = match ext {
                ".xz" => Box::new(liblzma::read::XzDecoder::new(member)),
                ".zst" => Box::new(
                    zstd::stream::read::Decoder::new(member)
                        .map_err(|e| bad(path, format!("data.tar.zst: {e}")))?,
                ),
                ".gz" => Box::new(flate2::read::GzDecoder::new(member)),
                "" => Box::new(member),
                other => {
                    return Err(bad(
                        path,
                        format!("unsupported data.tar{other} compression"),
                    ));
                }
            };
            return unpack_tar(decoded, path, tree);
        }
        // Skip the member (and its padding byte).
        let skip = size + (size % 2);
        let copied = std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink())
            .map_err(DebError::io("reading", path))?;
        if copied != skip {
            return Err(bad(path, format!("truncated in member {name:?}")));
        }
    }
}

/// Adds the entries of a tar stream to `tree`; hard links become copies.
pub fn unpack_tar(
    reader: impl Read,
    path: &Path,
    tree: &mut Tree,
) -> Result<Vec<String>, DebError> {
    let mut archive = tar::Archive::new(reader);
    let mut added = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(path, format!("data.tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(path, format!("data.tar: {e}")))?;
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).to_string();
        let Some(rel) = normalize(&name) else {
            return Err(bad(path, format!("entry {name:?} escapes the root")));
        };
        if rel.is_empty() {
            continue;
        }
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let kind = match header.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).to_string())
                    .unwrap_or_default();
                Kind::Symlink(target)
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).to_string())
                    .unwrap_or_default();
                let target = normalize(&target).unwrap_or_default();
                match tree.get(&target) {
                    Some(Entry {
                        kind: Kind::File(c),
                        ..
                    }) => Kind::File(c.clone()),
                    _ => {
                        return Err(bad(
                            path,
                            format!("hard link {name:?} to missing {target:?}"),
                        ));
                    }
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let content = tree
                    .stage(&mut entry)
                    .map_err(|e| bad(path, format!("{name}: {e}")))?;
                Kind::File(content)
            }
            other => {
                tracing::warn!(
                    "{}: skipping {name:?} ({other:?} entries are not unpacked)",
                    path.display()
                );
                continue;
            }
        };
        tree.insert(
            &rel,
            Entry {
                kind,
                mode,
                uid,
                gid,
            },
        )
        .map_err(|e| bad(path, e.to_string()))?;
        added.push(rel);
    }
    Ok(added)
}
