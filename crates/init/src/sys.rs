//! Every side effect of the init goes through [`Sys`], so the logic above it
//! is unit-tested without root or a VM (`fake::FakeSys` in tests). The real
//! implementation is `real::RealSys`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use nix::mount::MsFlags;

pub mod real;

#[cfg(test)]
pub mod fake;

/// One `mount(2)` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    /// The source (device, directory or a name like `proc`).
    pub source: Option<String>,
    /// The mountpoint.
    pub target: PathBuf,
    /// The filesystem type, `None` for bind mounts, moves and propagation changes.
    pub fstype: Option<String>,
    /// `MS_*` flags.
    pub flags: MsFlags,
    /// Filesystem options (`mode=0755,size=10%`).
    pub data: Option<String>,
}

impl MountSpec {
    /// A plain filesystem mount.
    pub fn fs(fstype: &str, source: &str, target: &str, flags: MsFlags, data: &str) -> MountSpec {
        MountSpec {
            source: Some(source.to_owned()),
            target: PathBuf::from(target),
            fstype: Some(fstype.to_owned()),
            flags,
            data: (!data.is_empty()).then(|| data.to_owned()),
        }
    }

    /// A flags-only call on an existing mountpoint (propagation, remount).
    pub fn flags_only(target: &str, flags: MsFlags) -> MountSpec {
        MountSpec {
            source: None,
            target: PathBuf::from(target),
            fstype: None,
            flags,
            data: None,
        }
    }
}

impl fmt::Display for MountSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mount {} on {} type {} flags {:#x}",
            self.source.as_deref().unwrap_or("none"),
            self.target.display(),
            self.fstype.as_deref().unwrap_or("none"),
            self.flags.bits()
        )?;
        if let Some(data) = &self.data {
            write!(f, " ({data})")?;
        }
        Ok(())
    }
}

/// Largest size of one log file before it is rotated to `<file>.0`: the
/// cap of the logs of services and onboot/onshutdown bundles.
pub const LOG_CAP: u64 = 1 << 20;

/// Where a child's stdout or stderr goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The init's own (the console).
    Inherit,
    /// `/dev/null`.
    Null,
    /// A size-capped log file, optionally mirrored to the console with a prefix.
    Log {
        /// The log file (created, appended to).
        path: PathBuf,
        /// Mirror each line to the console, prefixed by this.
        console: Option<String>,
        /// Rotate (to `<path>.0`) when the file would grow beyond this many bytes.
        cap: u64,
    },
}

/// A process to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    /// The program (absolute path).
    pub program: PathBuf,
    /// Its arguments, without `argv[0]`.
    pub args: Vec<String>,
    /// Where its stdout goes.
    pub stdout: Output,
    /// Where its stderr goes.
    pub stderr: Output,
}

impl Cmd {
    /// A command with the init's stdio.
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Cmd {
        Cmd {
            program: program.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            stdout: Output::Inherit,
            stderr: Output::Inherit,
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.display())?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Exit {
    /// Exit status 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status {code}"),
            Exit::Signal(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The file name.
    pub name: String,
    /// A directory (not following symlinks).
    pub is_dir: bool,
    /// The target when the entry is a symlink.
    pub link: Option<PathBuf>,
}

/// What to do to the machine at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    /// Power off.
    Poweroff,
    /// Reboot.
    Reboot,
    /// Halt.
    Halt,
}

impl PowerAction {
    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::Poweroff => "poweroff",
            PowerAction::Reboot => "reboot",
            PowerAction::Halt => "halt",
        }
    }
}

/// A network link operation, done over rtnetlink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkOp {
    /// Bring a link up by name.
    Up(String),
    /// Create a link of `kind` named `name` (with a `peer` for veth).
    Create {
        /// The new link's name.
        name: String,
        /// The link type (`veth`, `dummy`, `bridge`, ...).
        kind: String,
        /// The veth peer's name.
        peer: Option<String>,
    },
    /// Move a link into the network namespace of process `pid`.
    MoveToPid {
        /// The link's name.
        name: String,
        /// A process in the target namespace.
        pid: i32,
    },
}

/// The init's system calls.
pub trait Sys: Send + Sync {
    /// `mount(2)`.
    fn mount(&self, spec: &MountSpec) -> io::Result<()>;
    /// `umount2(2)`, detaching lazily when asked.
    fn umount(&self, target: &Path, lazy: bool) -> io::Result<()>;
    /// `mkdir -p` with `mode` for the directories it creates.
    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// `mknod(2)` for a character device.
    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> io::Result<()>;
    /// `symlink(2)`; an existing link is left alone.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// `chdir(2)`.
    fn chdir(&self, dir: &Path) -> io::Result<()>;
    /// `chroot(2)` then `chdir("/")`.
    fn chroot(&self, dir: &Path) -> io::Result<()>;
    /// Read a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Up to `len` bytes of a file or block device from `offset`; fewer at
    /// its end. (Superblocks: the whole device is never read.)
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Remove everything below `dir` that is on `dir`'s filesystem, without
    /// crossing into other mounts (what `switch_root` frees of the
    /// initramfs); returns how many entries went.
    fn remove_tree(&self, dir: &Path) -> io::Result<u64>;
    /// Write a whole file (created or truncated), by temp file and rename when `atomic`.
    fn write(&self, path: &Path, data: &[u8], atomic: bool) -> io::Result<()>;
    /// List a directory (unsorted).
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// The names in a directory (unsorted), without [`Sys::read_dir`]'s
    /// look at each entry (a `readlink` per symlink, as in `/sys/bus`).
    fn names(&self, path: &Path) -> io::Result<Vec<String>> {
        Ok(self.read_dir(path)?.into_iter().map(|e| e.name).collect())
    }
    /// How many CPUs this process may run on.
    fn cpus(&self) -> usize {
        1
    }
    /// Whether a path exists (without following a final symlink).
    fn exists(&self, path: &Path) -> bool;
    /// The filesystem type of the mount holding `/` (`rootfs`, `tmpfs`, `ext4`, ...).
    fn root_fstype(&self) -> io::Result<String>;
    /// Copy the whole tree at `from` into `to`, keeping modes, owners and
    /// times, without crossing into other mounts.
    fn copy_tree(&self, from: &Path, to: &Path) -> io::Result<u64>;
    /// `finit_module(2)`; `compressed` passes `MODULE_INIT_COMPRESSED_FILE`.
    fn load_module(&self, path: &Path, compressed: bool) -> io::Result<()>;
    /// Give the calling thread the lowest scheduling priority (nice 19):
    /// what it does waits for everything else.
    fn lower_priority(&self);
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// `setrlimit(2)` for `RLIMIT_NOFILE` and `RLIMIT_NPROC` (`None` = unlimited).
    fn set_rlimits(&self, nofile: u64, nproc: Option<u64>) -> io::Result<()>;
    /// A network link operation.
    fn link(&self, op: &LinkOp) -> io::Result<()>;
    /// Start a process; returns its pid.
    fn spawn(&self, cmd: &Cmd) -> io::Result<i32>;
    /// Wait for a process to end: a child of the init, or any process
    /// reparented to it (container processes after `runtime create`).
    fn wait(&self, pid: i32) -> io::Result<Exit>;
    /// [`Sys::wait`] for at most `timeout`: `None` when it is still running.
    fn wait_timeout(&self, pid: i32, timeout: Duration) -> io::Result<Option<Exit>>;
    /// Whether a process is still running (not yet reaped).
    fn alive(&self, pid: i32) -> bool;
    /// `kill(2)`; pid -1 signals every process but the init.
    fn kill(&self, pid: i32, signal: i32) -> io::Result<()>;
    /// Milliseconds since the kernel started (`CLOCK_BOOTTIME`).
    fn now_ms(&self) -> u64;
    /// Sleep (the fake advances its clock).
    fn sleep(&self, duration: Duration);
    /// `sync(2)`.
    fn sync(&self);
    /// `reboot(2)`; only returns on failure.
    fn power(&self, action: PowerAction) -> io::Error;
    /// Write a line to the console.
    fn console(&self, line: &str);
}
