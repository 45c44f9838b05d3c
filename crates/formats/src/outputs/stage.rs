//! Output files written to a temporary name beside their final one and
//! renamed together when every one is complete.

use slipway_contract::errors::io_reason;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::FormatError;
pub(crate) use crate::error::io_at;

/// A file written.
#[derive(Clone, Debug)]
pub struct OutputFile {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Scratch names beside the outputs (see `slipway_scratch`): an output
/// being written, and the previous output kept until all are renamed.
const STAGED: &str = ".slipway-";
const BACKUP: &str = ".slipway-previous-";

/// An output written in full to a temporary file beside its final name,
/// not yet renamed.
pub(crate) struct Staged {
    pub(crate) tmp: tempfile::NamedTempFile,
    pub(crate) path: PathBuf,
    bytes: u64,
}

/// Writes `path`'s contents to a temporary file in the same directory:
/// through a buffer with [`stage`], or to the file itself (empty, to seek
/// in) with [`stage_file`]. Dropped without [`commit`], the temporary
/// file is removed.
pub(crate) fn stage(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<(), FormatError>,
) -> Result<Staged, FormatError> {
    stage_file(path, |file| {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        f(&mut w)?;
        w.flush().map_err(io_at("writing", path))
    })
}

/// How much of an output is written between two pushes to the disk.
const SYNC_STEP: u64 = 16 << 20;

/// [`stage`] for a large output made over a long time (an initrd written
/// as its units are encoded): every [`SYNC_STEP`] bytes a second thread
/// pushes what is written to the disk, so the disk works while the
/// output is still being made and the sync before the rename waits for
/// the last step alone.
pub(crate) fn stage_synced_ahead(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<(), FormatError>,
) -> Result<Staged, FormatError> {
    stage_file(path, |file| {
        let syncer = file.try_clone().map_err(io_at("writing", path))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for () in rx {
                    // Only a head start: the sync before the rename reports.
                    let _ = syncer.sync_data();
                }
            });
            let mut w = BufWriter::with_capacity(1 << 20, SyncAhead { file, since: 0, tx });
            let written = f(&mut w);
            let flushed = w.flush().map_err(io_at("writing", path));
            // Dropping the writer ends the syncing thread.
            drop(w);
            written.and(flushed)
        })
    })
}

/// Writes to a file and asks for a sync every [`SYNC_STEP`] bytes (none
/// when one is still running: they coalesce).
struct SyncAhead<'f> {
    file: &'f mut File,
    since: u64,
    tx: std::sync::mpsc::SyncSender<()>,
}

impl Write for SyncAhead<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.since >= SYNC_STEP {
            self.since = 0;
            let _ = self.tx.try_send(());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

pub(crate) fn stage_file(
    path: &Path,
    f: impl FnOnce(&mut File) -> Result<(), FormatError>,
) -> Result<Staged, FormatError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if path.is_dir() {
        return Err(FormatError::Io {
            what: "writing",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::IsADirectory, "a directory is in the way"),
        });
    }
    // What a killed build left here: its backups (its staged outputs go
    // as the new one is made).
    slipway_scratch::reap(dir, BACKUP);
    // An output is an ordinary file: 0666 less the umask, as any tool
    // writing a file makes it (a temporary file would be 0600).
    let mut tmp = slipway_scratch::file_in(dir, STAGED, Some(0o666))
        // tempfile's error names the temporary file, which means nothing
        // to the user; the directory and the reason are what matter.
        .map_err(|e| io::Error::new(e.kind(), io_reason(&e)))
        .map_err(io_at("cannot write in", dir))?;
    f(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(io_at("syncing", path))?;
    let bytes = tmp
        .as_file()
        .metadata()
        .map_err(io_at("reading", path))?
        .len();
    Ok(Staged {
        tmp,
        path: path.to_path_buf(),
        bytes,
    })
}

/// Renames every staged file into place, all or none: each file it replaces
/// is first hard-linked to a backup name, and a failed rename puts the
/// earlier ones back.
pub(crate) fn commit(staged: Vec<Staged>) -> Result<Vec<OutputFile>, FormatError> {
    let mut backups: Vec<(PathBuf, Option<tempfile::TempPath>)> = Vec::new();
    for s in &staged {
        let backup = if s.path.is_file() {
            let dir = s.tmp.path().parent().unwrap_or(Path::new("."));
            let name = tempfile::Builder::new()
                .prefix(&slipway_scratch::prefix(BACKUP))
                .make_in(dir, |p| fs::hard_link(&s.path, p))
                .map_err(io_at("keeping the previous", &s.path))?;
            Some(name.into_temp_path())
        } else {
            None
        };
        backups.push((s.path.clone(), backup));
    }
    let mut done = Vec::new();
    for (i, s) in staged.into_iter().enumerate() {
        let (path, bytes) = (s.path.clone(), s.bytes);
        if let Err(e) = s.tmp.persist(&path) {
            // Put back what this build replaced (the first `i`), newest first.
            for (target, backup) in backups[..i].iter().rev() {
                match backup {
                    Some(b) => {
                        let _ = fs::rename(b, target);
                    }
                    None => {
                        let _ = fs::remove_file(target);
                    }
                }
            }
            return Err(FormatError::Io {
                what: "renaming to",
                path,
                source: e.error,
            });
        }
        done.push(OutputFile { path, bytes });
    }
    // The backups are removed as they drop.
    Ok(done)
}

/// Writes `path` through a temporary file in the same directory, renamed
/// into place when `f` has written it all.
pub fn write_file(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<(), FormatError>,
) -> Result<OutputFile, FormatError> {
    let mut files = commit(vec![stage(path, f)?])?;
    files.pop().ok_or_else(|| FormatError::Io {
        what: "writing",
        path: path.to_path_buf(),
        source: io::Error::other("nothing was written"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn put(bytes: &'static [u8]) -> impl FnOnce(&mut dyn Write) -> Result<(), FormatError> {
        move |w| {
            w.write_all(bytes)
                .map_err(io_at("writing", Path::new("test")))
        }
    }

    #[test]
    fn a_failed_rename_puts_back_the_files_already_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        fs::write(&a, "old a").unwrap();
        let staged = vec![
            stage(&a, put(b"new a")).unwrap(),
            stage(&c, put(b"new c")).unwrap(),
            stage(&b, put(b"new b")).unwrap(),
        ];
        // Something takes b's place between writing and renaming.
        fs::create_dir(&b).unwrap();
        fs::write(b.join("inside"), "x").unwrap();
        let err = commit(staged).unwrap_err();
        assert!(err.to_string().contains("renaming"), "{err}");
        assert_eq!(fs::read(&a).unwrap(), b"old a");
        assert!(!c.exists(), "a new file stayed after a failed build");
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a", "b"]);
    }

    #[test]
    fn outputs_are_renamed_together() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, "old").unwrap();
        let staged = vec![stage(&a, put(b"new")).unwrap()];
        // Written but not renamed: the old file is still there.
        assert_eq!(fs::read(&a).unwrap(), b"old");
        let files = commit(staged).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].bytes, 3);
        assert_eq!(fs::read(&a).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
