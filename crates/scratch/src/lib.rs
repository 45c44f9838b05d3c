//! Scratch files and directories named for the process that made them.
//!
//! Outputs, segments and package staging trees are written under a
//! temporary name and renamed (or dropped) when done. A process killed
//! midway leaves that name behind; nothing would ever remove it. So every
//! such name is `<kind><pid>-<rest>`, and a later run reaps, in the same
//! directory, the names of its kind whose process is gone and whose file
//! no live process holds locked ([`hold`]). The lock covers the case the
//! pid cannot: a writer in another pid namespace sharing the directory.
//!
//! A reused pid only delays a removal; a live writer is never touched.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The name prefix for this process's scratch entries of `kind`
/// (e.g. `.slipway-` gives `.slipway-4242-`).
pub fn prefix(kind: &str) -> String {
    format!("{kind}{}-", std::process::id())
}

/// Takes an exclusive lock on `file` for as long as it stays open, so a
/// reaper elsewhere sees it in use. Best effort: a file system without
/// locks leaves the pid alone to decide.
pub fn hold(file: &File) {
    let _ = file.try_lock();
}

/// A scratch file of `kind` in `dir`, removed on drop unless persisted,
/// locked while it is open; what killed writers of that kind left in
/// `dir` is removed first. `mode` (less the umask) is what an ordinary
/// file gets (0666) when the file becomes an output; tempfile's 0600
/// otherwise.
pub fn file_in(dir: &Path, kind: &str, mode: Option<u32>) -> io::Result<tempfile::NamedTempFile> {
    reap(dir, kind);
    let name = prefix(kind);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&name);
    if let Some(mode) = mode {
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(mode));
    }
    let file = builder.tempfile_in(dir)?;
    hold(file.as_file());
    Ok(file)
}

/// A scratch directory in `dir`, removed on drop, locked while it lives.
pub fn dir_in(dir: &Path, kind: &str) -> io::Result<ScratchDir> {
    let dir = tempfile::Builder::new()
        .prefix(&prefix(kind))
        .tempdir_in(dir)?;
    let lock = File::open(dir.path())?;
    hold(&lock);
    Ok(ScratchDir { dir, _lock: lock })
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The pid a scratch name of `kind` carries, if `name` is one.
fn owner(name: &str, kind: &str) -> Option<u32> {
    let (pid, _) = name.strip_prefix(kind)?.split_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` exists, as procfs shows; `None` without procfs.
fn alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

/// Whether some open file description holds a lock on `path`.
fn locked(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        // Gone already, or unreadable: not ours to remove either way.
        Err(_) => true,
    }
}

/// Removes the scratch entries of `kind` in `dir` that a process now gone
/// left behind, and returns them. Best effort: an entry that cannot be
/// read or removed is left, and a missing `dir` is nothing to do.
pub fn reap(dir: &Path, kind: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| owner(n, kind)) else {
            continue;
        };
        if pid == me || alive(pid) != Some(false) {
            continue;
        }
        let path = entry.path();
        if locked(&path) {
            continue;
        }
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) => Err(e),
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::process::Command;

    /// A pid that has just exited (and, on an idle system, not been reused).
    fn dead_pid() -> u32 {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn names_carry_their_pid_and_other_kinds_are_not_matched() {
        assert_eq!(owner(".slipway-12-abc", ".slipway-"), Some(12));
        assert_eq!(owner(".slipway-previous-12-abc", ".slipway-"), None);
        assert_eq!(
            owner(".slipway-previous-12-abc", ".slipway-previous-"),
            Some(12)
        );
        assert_eq!(owner(".slipway--abc", ".slipway-"), None);
        assert_eq!(owner(".slipway-12", ".slipway-"), None);
        assert_eq!(owner("initrd.img", ".slipway-"), None);
        assert!(prefix(".k-").starts_with(&format!(".k-{}-", std::process::id())));
    }

    #[test]
    fn a_dead_process_s_entries_are_reaped_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        let stale_file = dir.path().join(format!(".s-{dead}-file"));
        let stale_dir = dir.path().join(format!(".s-{dead}-dir"));
        std::fs::write(&stale_file, b"half").unwrap();
        std::fs::create_dir_all(stale_dir.join("a/b")).unwrap();
        std::fs::write(stale_dir.join("a/b/c"), b"x").unwrap();
        // Ours, a live process's (pid 1), a locked one, another kind, an output.
        let mine = dir.path().join(format!("{}x", prefix(".s-")));
        let init = dir.path().join(".s-1-file");
        let held = dir.path().join(format!(".s-{dead}-held"));
        let other = dir.path().join(format!(".t-{dead}-file"));
        let output = dir.path().join("initrd.img");
        for p in [&mine, &init, &held, &other, &output] {
            std::fs::write(p, b"keep").unwrap();
        }
        let lock = File::open(&held).unwrap();
        hold(&lock);

        let removed = reap(dir.path(), ".s-");
        assert_eq!(removed, vec![stale_dir.clone(), stale_file.clone()]);
        assert!(!stale_file.exists() && !stale_dir.exists());
        for p in [&mine, &init, &held, &other, &output] {
            assert!(p.exists(), "{} was removed", p.display());
        }
        drop(lock);
        assert_eq!(reap(dir.path(), ".s-"), vec![held]);
    }

    #[test]
    fn a_scratch_file_reaps_its_kind_first_and_is_locked_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(format!(".f-{}-old", dead_pid()));
        std::fs::write(&stale, b"half").unwrap();
        let file = file_in(dir.path(), ".f-", Some(0o640)).unwrap();
        assert!(!stale.exists());
        assert!(locked(file.path()));
        let mode = file.as_file().metadata().unwrap().permissions().mode();
        // 0640 less the umask: the owner's bits are kept, others get none.
        assert_eq!(mode & 0o707, 0o600);
    }

    #[test]
    fn a_scratch_dir_is_locked_while_it_lives_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let scratch = dir_in(parent.path(), ".d-").unwrap();
        assert!(locked(scratch.path()));
        let path = scratch.path().to_path_buf();
        drop(scratch);
        assert!(!path.exists());
        assert!(reap(Path::new("/nonexistent/dir"), ".d-").is_empty());
    }
}
