//! The output a build replaced, kept beside it as a spare for the next
//! build to write over.
//!
//! A rebuild's output mostly repeats the one before the last: writing it
//! over that file's blocks ([`PatchFile`](super::patch::PatchFile)) leaves
//! the disk only the pages that differ to write and sync, where a new file
//! would make it write and sync all of them. The spare is an inode nobody
//! else may be using, or the rewrite would change a file under a reader
//! (a VM still booted from it, a copy being written to a USB stick): it is
//! taken only when it has one name and no other process has it open.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempPath};

/// The spare's name beside the output: `.slipway-spare-<output name>`.
/// Not a scratch name (no pid): it outlives the build by design.
const SPARE: &str = ".slipway-spare-";

/// Outputs smaller than this are rewritten whole; no spare is kept.
const SMALLEST: u64 = 1 << 20;

fn spare_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some(dir.join(format!("{SPARE}{name}")))
}

/// A scratch file of `kind` in `dir` to write `path`'s next version in,
/// and the length of what it holds: `path`'s spare when one can be used,
/// else a new file (`slipway_scratch::file_in`, `mode` as there). Either
/// way, what killed writers of `kind` left in `dir` is removed first.
pub(crate) fn take(
    path: &Path,
    dir: &Path,
    kind: &str,
    mode: Option<u32>,
) -> io::Result<(NamedTempFile, u64)> {
    match claim(path, dir, kind, mode) {
        Some(spare) => {
            // `file_in` reaps for a new file.
            slipway_scratch::reap(dir, kind);
            Ok(spare)
        }
        None => slipway_scratch::file_in(dir, kind, mode).map(|t| (t, 0)),
    }
}

/// Takes `path`'s spare to write the new output over: renamed to a scratch
/// name of `kind` (so a concurrent build cannot take it too, and a killed
/// build's is reaped), with a new file's mode. Returns it and the length
/// of what it holds, or `None` (and removes it) when it cannot be used.
fn claim(path: &Path, dir: &Path, kind: &str, mode: Option<u32>) -> Option<(NamedTempFile, u64)> {
    let spare = spare_of(path)?;
    fs::symlink_metadata(&spare).ok()?;
    let name = tempfile::Builder::new()
        .prefix(&slipway_scratch::prefix(kind))
        .make_in(dir, |p| {
            use nix::fcntl::{RenameFlags, renameat2};
            renameat2(
                nix::fcntl::AT_FDCWD,
                spare.as_path(),
                nix::fcntl::AT_FDCWD,
                p,
                RenameFlags::RENAME_NOREPLACE,
            )
            .map_err(io::Error::from)
        })
        .ok()?
        .into_temp_path();
    let file = usable(&name, mode)?;
    slipway_scratch::hold(&file);
    let len = file.metadata().ok()?.len();
    Some((NamedTempFile::from_parts(file, name), len))
}

/// The spare at `path` opened for writing, if it is a plain file with no
/// other name, that no other process has open, and that takes a new
/// file's mode (`mode`, or a temporary file's 0600, less the umask).
/// (Dropping the name on `None` removes it.)
fn usable(path: &TempPath, mode: Option<u32>) -> Option<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() || meta.nlink() != 1 || !alone(&file) {
        return None;
    }
    let mode = mode.unwrap_or(0o600) & !umask()?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .ok()?;
    Some(file)
}

/// Whether no other open file description refers to `file`: the kernel
/// grants a write lease only then (fcntl(2), F_SETLEASE). The lease is
/// given back at once; the check is all that is wanted. Any refusal
/// (another opener, a file system without leases, a file of another
/// owner) counts as not alone.
#[allow(unsafe_code)]
fn alone(file: &File) -> bool {
    use nix::libc::{F_SETLEASE, F_UNLCK, F_WRLCK, fcntl};
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl with F_SETLEASE takes an integer argument and no
    // memory; `fd` is open for as long as `file` is borrowed. No crate
    // wraps F_SETLEASE (nix and rustix do not).
    unsafe {
        if fcntl(fd, F_SETLEASE, F_WRLCK) != 0 {
            return false;
        }
        fcntl(fd, F_SETLEASE, F_UNLCK);
    }
    true
}

/// The process's umask, as procfs shows it (reading it with umask(2)
/// would change it for every thread meanwhile).
fn umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// Keeps what `held` names (the output `path` had before this build) as
/// `path`'s spare, if it is worth keeping; removes it otherwise.
pub(crate) fn keep(held: TempPath, path: &Path) {
    let worth = fs::symlink_metadata(&held)
        .is_ok_and(|m| m.file_type().is_file() && m.nlink() == 1 && m.len() >= SMALLEST);
    if let (true, Some(spare)) = (worth, spare_of(path))
        && fs::rename(&held, &spare).is_ok()
    {
        // Renamed away: nothing left for the drop to remove.
        let _ = held.keep();
    }
}

/// Removes `path`'s spare, if there is one.
pub(crate) fn drop_spare(path: &Path) {
    if let Some(spare) = spare_of(path) {
        let _ = fs::remove_file(spare);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KIND: &str = ".slipway-";

    fn spare_with(dir: &Path, bytes: &[u8]) -> PathBuf {
        let out = dir.join("img.iso");
        fs::write(spare_of(&out).unwrap(), bytes).unwrap();
        out
    }

    #[test]
    fn a_spare_nobody_uses_is_taken_under_a_scratch_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = spare_with(dir.path(), b"older");
        let (file, len) = claim(&out, dir.path(), KIND, Some(0o666)).unwrap();
        assert_eq!(len, 5);
        assert!(!spare_of(&out).unwrap().exists());
        let name = file
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(name.starts_with(&slipway_scratch::prefix(KIND)), "{name}");
        let mode = file.as_file().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask().unwrap());
    }

    #[test]
    fn a_spare_open_elsewhere_or_linked_elsewhere_is_removed_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let out = spare_with(dir.path(), b"older");
        // Held open by a reader (another open file description).
        let reader = File::open(spare_of(&out).unwrap()).unwrap();
        assert!(claim(&out, dir.path(), KIND, None).is_none());
        drop(reader);
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none());

        let out = spare_with(dir.path(), b"older");
        fs::hard_link(spare_of(&out).unwrap(), dir.path().join("copy")).unwrap();
        assert!(claim(&out, dir.path(), KIND, None).is_none());
        assert_eq!(fs::read(dir.path().join("copy")).unwrap(), b"older");
        assert!(!spare_of(&out).unwrap().exists());
    }

    #[test]
    fn only_outputs_of_a_mebibyte_or_more_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x-initrd.img");
        for (len, kept) in [(10, false), (SMALLEST, true)] {
            let held = dir.path().join("held");
            fs::write(&held, vec![1; len as usize]).unwrap();
            keep(TempPath::try_from_path(&held).unwrap(), &out);
            assert_eq!(spare_of(&out).unwrap().exists(), kept, "{len}");
            assert!(!held.exists());
        }
    }
}
