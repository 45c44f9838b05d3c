//! Output files written to a temporary name beside their final one and
//! renamed together when every one is complete.

use slipway_contract::errors::io_reason;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use super::patch::PatchFile;
use super::spare;
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
    reuse: Reuse,
}

/// Writes `path`'s contents to a temporary file in the same directory:
/// through a buffer with [`stage`], or to the file itself (as if empty,
/// to seek in) with [`stage_file`]. Dropped without [`commit`], the
/// temporary file is removed.
pub(crate) fn stage(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<(), FormatError>,
) -> Result<Staged, FormatError> {
    buffered(path, Reuse::Spare, f)
}

fn buffered(
    path: &Path,
    reuse: Reuse,
    f: impl FnOnce(&mut dyn Write) -> Result<(), FormatError>,
) -> Result<Staged, FormatError> {
    staged(path, reuse, |file| {
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
        let syncer = file.file().try_clone().map_err(io_at("writing", path))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::scope(|scope| {
            let background = &syncer;
            scope.spawn(move || {
                for () in rx {
                    // Only a head start: the sync before the rename reports.
                    let _ = background.sync_data();
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
struct SyncAhead<'p, 'f> {
    file: &'p mut PatchFile<'f>,
    since: u64,
    tx: std::sync::mpsc::SyncSender<()>,
}

impl Write for SyncAhead<'_, '_> {
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
    f: impl FnOnce(&mut PatchFile<'_>) -> Result<(), FormatError>,
) -> Result<Staged, FormatError> {
    staged(path, Reuse::Spare, f)
}

/// Whether an output is written over the spare of its previous version
/// and leaves its own previous version as the next spare: build outputs
/// do; small files and files in the cache have no use for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reuse {
    Spare,
    New,
}

fn staged(
    path: &Path,
    reuse: Reuse,
    f: impl FnOnce(&mut PatchFile<'_>) -> Result<(), FormatError>,
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
    // What a killed build left here: its backups and staged outputs.
    slipway_scratch::reap(dir, BACKUP);
    // An output is an ordinary file: 0666 less the umask, as any tool
    // writing a file makes it (a temporary file would be 0600).
    let taken = match reuse {
        Reuse::Spare => spare::take(path, dir, STAGED, Some(0o666)),
        Reuse::New => slipway_scratch::file_in(dir, STAGED, Some(0o666)).map(|t| (t, 0)),
    };
    let (tmp, old) = taken
        // tempfile's error names the temporary file, which means nothing
        // to the user; the directory and the reason are what matter.
        .map_err(|e| io::Error::new(e.kind(), io_reason(&e)))
        .map_err(io_at("cannot write in", dir))?;
    let mut file = PatchFile::over(tmp.as_file(), old);
    f(&mut file)?;
    file.finish().map_err(io_at("writing", path))?;
    if old > 0 {
        // Written over a spare, the file may not have changed at all: it
        // is new all the same to whatever compares times (make).
        use nix::sys::time::TimeSpec;
        nix::sys::stat::futimens(tmp.as_file(), &TimeSpec::UTIME_NOW, &TimeSpec::UTIME_NOW)
            .map_err(io::Error::from)
            .map_err(io_at("writing", path))?;
    }
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
        reuse,
    })
}

/// How a committed output can be taken back, and what becomes of the
/// file it replaced once every output is in place.
enum Replaced {
    /// Nothing was there.
    Nothing,
    /// Exchanged with the previous output, which the scratch name now
    /// holds: kept as the spare.
    Exchanged(TempPath),
    /// Renamed over the previous output, hard-linked to a backup first
    /// (a file system that cannot exchange names).
    Backup(TempPath),
}

/// Renames every staged file into place, all or none: each file it
/// replaces is exchanged with it (or, where the file system cannot, first
/// hard-linked to a backup name), and a failed rename puts the earlier
/// ones back. The replaced files are kept as spares for the next build.
pub(crate) fn commit(staged: Vec<Staged>) -> Result<Vec<OutputFile>, FormatError> {
    let mut replaced: Vec<(PathBuf, Replaced, Reuse)> = Vec::new();
    let mut done = Vec::new();
    for s in staged {
        let (path, bytes, reuse) = (s.path.clone(), s.bytes, s.reuse);
        match put_in_place(s) {
            Ok(r) => replaced.push((path.clone(), r, reuse)),
            Err(source) => {
                // Put back what this build replaced, newest first.
                for (target, r, _) in replaced.into_iter().rev() {
                    undo(&target, r);
                }
                return Err(FormatError::Io {
                    what: "renaming to",
                    path,
                    source,
                });
            }
        }
        done.push(OutputFile { path, bytes });
    }
    for (path, r, reuse) in replaced {
        match (r, reuse) {
            (Replaced::Exchanged(held), Reuse::Spare) => spare::keep(held, &path),
            // The previous file goes as its name drops.
            (_, Reuse::New) => {}
            // The previous file is gone with its backup's drop; a spare
            // from before would now be two builds old.
            (Replaced::Backup(_) | Replaced::Nothing, Reuse::Spare) => spare::drop_spare(&path),
        }
    }
    Ok(done)
}

fn put_in_place(s: Staged) -> io::Result<Replaced> {
    use nix::errno::Errno;
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    let (file, tmp) = s.tmp.into_parts();
    drop(file);
    let there = fs::symlink_metadata(&s.path);
    if there.as_ref().is_ok_and(|m| m.is_dir()) {
        // An exchange would move the directory aside; a rename refuses.
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory is in the way",
        ));
    }
    if there.is_err() {
        fs::rename(&tmp, &s.path)?;
        // Renamed away: nothing left for the drop to remove.
        let _ = tmp.keep();
        return Ok(Replaced::Nothing);
    }
    let exchanged = renameat2(
        AT_FDCWD,
        &*tmp,
        AT_FDCWD,
        s.path.as_path(),
        RenameFlags::RENAME_EXCHANGE,
    );
    match exchanged {
        Ok(()) => Ok(Replaced::Exchanged(tmp)),
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
            let dir = tmp.parent().unwrap_or(Path::new("."));
            let backup = tempfile::Builder::new()
                .prefix(&slipway_scratch::prefix(BACKUP))
                .make_in(dir, |p| fs::hard_link(&s.path, p))?
                .into_temp_path();
            fs::rename(&tmp, &s.path)?;
            let _ = tmp.keep();
            Ok(Replaced::Backup(backup))
        }
        Err(e) => Err(e.into()),
    }
}

/// Takes back one committed output: the previous file returns to `path`,
/// or `path` goes if there was none. Best effort: this runs on a failure
/// path already reporting one error.
fn undo(path: &Path, r: Replaced) {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    match r {
        Replaced::Nothing => {
            let _ = fs::remove_file(path);
        }
        // Exchanged back, the new output is under the scratch name and
        // goes with it.
        Replaced::Exchanged(held) => {
            let _ = renameat2(
                AT_FDCWD,
                &*held,
                AT_FDCWD,
                path,
                RenameFlags::RENAME_EXCHANGE,
            );
        }
        Replaced::Backup(backup) => {
            if fs::rename(&backup, path).is_ok() {
                let _ = backup.keep();
            }
        }
    }
}

/// Writes `path` through a temporary file in the same directory, renamed
/// into place when `f` has written it all.
pub fn write_file(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<(), FormatError>,
) -> Result<OutputFile, FormatError> {
    let mut files = commit(vec![buffered(path, Reuse::New, f)?])?;
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

    /// Three mebibytes of one byte, with a marker in the middle.
    fn version(n: u8) -> Vec<u8> {
        let mut d = vec![7u8; 3 << 20];
        d[1 << 20] = n;
        d
    }

    fn build(path: &Path, n: u8) {
        let staged = stage(path, |w| {
            w.write_all(&version(n))
                .map_err(io_at("writing", Path::new("test")))
        })
        .unwrap();
        commit(vec![staged]).unwrap();
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn a_rebuild_writes_over_the_spare_and_never_under_a_reader() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.img");
        let spare = dir.path().join(".slipway-spare-x.img");
        build(&out, 1);
        assert!(!spare.exists(), "a first build has nothing to keep");
        build(&out, 2);
        assert_eq!(fs::read(&spare).unwrap(), version(1));
        // The third build is written over the first one's file.
        let first = inode(&spare);
        build(&out, 3);
        assert_eq!(inode(&out), first);
        assert_eq!(fs::read(&out).unwrap(), version(3));
        assert_eq!(fs::read(&spare).unwrap(), version(2));

        // A reader keeps build 3 open through two more builds: its file
        // becomes the spare, which the next build must not write over.
        let mut reader = fs::File::open(&out).unwrap();
        build(&out, 4);
        build(&out, 5);
        assert_eq!(fs::read(&out).unwrap(), version(5));
        assert_ne!(inode(&out), inode(&spare));
        let mut seen = Vec::new();
        reader.read_to_end(&mut seen).unwrap();
        assert!(seen == version(3), "a reader's file was changed under it");
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".slipway-spare-x.img", "x.img"]);
    }

    #[test]
    fn an_output_written_over_an_identical_spare_is_new_all_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.img");
        let spare = dir.path().join(".slipway-spare-x.img");
        build(&out, 1);
        build(&out, 2);
        let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let old = fs::File::options().write(true).open(&spare).unwrap();
        old.set_modified(long_ago).unwrap();
        drop(old);
        // Not a byte to write: the spare holds version 1 already.
        build(&out, 1);
        assert_eq!(fs::read(&out).unwrap(), version(1));
        let when = fs::metadata(&out).unwrap().modified().unwrap();
        assert!(when > long_ago, "{when:?}");
    }

    #[test]
    fn a_file_written_alone_keeps_no_spare() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export.tar");
        for n in 1..=3 {
            write_file(&out, |w| {
                w.write_all(&version(n))
                    .map_err(io_at("writing", Path::new("test")))
            })
            .unwrap();
        }
        assert_eq!(fs::read(&out).unwrap(), version(3));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
