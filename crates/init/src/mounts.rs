//! Leaving the initramfs root, and the base mounts LinuxKit's `rc.init` makes.

use std::path::{Path, PathBuf};

use crate::sys::{MountSpec, MsFlags, Sys};
use crate::{Error, Result};

/// How PID 1 leaves the initramfs so the OCI runtime can `pivot_root`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootStrategy {
    /// Bind-mount `/` on a directory, move that mount onto `/` and chroot
    /// into it: the root is then a mount with a parent, which is all
    /// `pivot_root` asks for. Costs a few system calls.
    Bind,
    /// LinuxKit's way: copy the whole root into a new tmpfs, move it onto
    /// `/` and chroot. Costs time and memory proportional to the image.
    Copy,
    /// Stay on the initramfs (the runtimes then need `--no-pivot`).
    Stay,
}

impl RootStrategy {
    /// From the kernel command line's `slipway.root=` (given to init as an
    /// environment variable); the default is [`RootStrategy::Bind`].
    pub fn from_param(value: Option<&str>) -> RootStrategy {
        match value {
            Some("copy") => RootStrategy::Copy,
            Some("stay") | Some("none") => RootStrategy::Stay,
            _ => RootStrategy::Bind,
        }
    }
}

/// Where the new root is prepared before it is moved onto `/`.
const NEW_ROOT: &str = "/mnt";

/// Leave the initramfs root if `/` is one. Returns what was done, for the timeline.
pub fn leave_initramfs(sys: &dyn Sys, strategy: RootStrategy) -> Result<String> {
    let fstype = sys.root_fstype().map_err(|e| Error::io("statfs /", e))?;
    if fstype != "ramfs" && fstype != "tmpfs" {
        return Ok(format!("root is {fstype}: stayed"));
    }
    let new_root = Path::new(NEW_ROOT);
    match strategy {
        RootStrategy::Stay => return Ok("stayed on the initramfs".into()),
        RootStrategy::Bind => {
            sys.mkdir_all(new_root, 0o755)
                .map_err(|e| Error::io("mkdir /mnt", e))?;
            let bind = MountSpec {
                source: Some("/".into()),
                target: new_root.to_path_buf(),
                fstype: None,
                flags: MsFlags::MS_BIND,
                data: None,
            };
            sys.mount(&bind).map_err(|e| Error::mount(&bind, e))?;
        }
        RootStrategy::Copy => {
            sys.mkdir_all(new_root, 0o755)
                .map_err(|e| Error::io("mkdir /mnt", e))?;
            let tmpfs = MountSpec::fs("tmpfs", "rootfs", NEW_ROOT, MsFlags::empty(), "mode=0755");
            sys.mount(&tmpfs).map_err(|e| Error::mount(&tmpfs, e))?;
            sys.copy_tree(Path::new("/"), new_root)
                .map_err(|e| Error::io("copying the root into a tmpfs", e))?;
        }
    }
    // As switch_root: from inside the new root, move it onto `/`, chroot there.
    sys.chdir(new_root)
        .map_err(|e| Error::io("chdir /mnt", e))?;
    let moved = MountSpec {
        source: Some(".".into()),
        target: PathBuf::from("/"),
        fstype: None,
        flags: MsFlags::MS_MOVE,
        data: None,
    };
    sys.mount(&moved).map_err(|e| Error::mount(&moved, e))?;
    sys.chroot(Path::new("."))
        .map_err(|e| Error::io("chroot into the new root", e))?;
    Ok(match strategy {
        RootStrategy::Copy => "copied to tmpfs".into(),
        _ => "bind".into(),
    })
}

/// One step of the base mount plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create the target directory, then mount. Optional steps may fail.
    Mount {
        /// The mount.
        spec: MountSpec,
        /// Failure is ignored (filesystems the kernel may lack).
        optional: bool,
    },
    /// Create a directory.
    Mkdir(&'static str, u32),
    /// Create a character device node (`path`, `mode`, `major`, `minor`).
    CharDev(&'static str, u32, u64, u64),
    /// Create a symlink (`link`, `target`).
    Symlink(&'static str, &'static str),
}

fn mount(fstype: &str, source: &str, target: &str, flags: MsFlags, data: &str) -> Step {
    Step::Mount {
        spec: MountSpec::fs(fstype, source, target, flags, data),
        optional: false,
    }
}

fn optional(fstype: &str, target: &str) -> Step {
    Step::Mount {
        spec: MountSpec::fs(
            fstype,
            fstype,
            target,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            "",
        ),
        optional: true,
    }
}

/// The base mounts, in order, as LinuxKit's `rc.init` makes them (cgroup v2).
pub fn base_plan() -> Vec<Step> {
    let nsne = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut plan = vec![
        mount("proc", "proc", "/proc", nsne, ""),
        mount(
            "devtmpfs",
            "dev",
            "/dev",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "mode=0755,size=10m",
        ),
        Step::CharDev("/dev/console", 0o600, 5, 1),
        Step::CharDev("/dev/tty1", 0o620, 4, 1),
        Step::CharDev("/dev/tty", 0o666, 5, 0),
        Step::CharDev("/dev/null", 0o666, 1, 3),
        Step::CharDev("/dev/kmsg", 0o660, 1, 11),
        Step::Symlink("/dev/fd", "/proc/self/fd"),
        Step::Symlink("/dev/stdin", "/proc/self/fd/0"),
        Step::Symlink("/dev/stdout", "/proc/self/fd/1"),
        Step::Symlink("/dev/stderr", "/proc/self/fd/2"),
        mount("mqueue", "mqueue", "/dev/mqueue", nsne, ""),
        mount(
            "tmpfs",
            "shm",
            "/dev/shm",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=1777",
        ),
        mount(
            "devpts",
            "devpts",
            "/dev/pts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "gid=5,mode=0620,ptmxmode=0666",
        ),
        mount("sysfs", "sysfs", "/sys", nsne, ""),
        optional("securityfs", "/sys/kernel/security"),
        optional("debugfs", "/sys/kernel/debug"),
        optional("configfs", "/sys/kernel/config"),
        optional("fusectl", "/sys/fs/fuse/connections"),
        optional("pstore", "/sys/fs/pstore"),
        optional("bpf", "/sys/fs/bpf"),
        mount("cgroup2", "cgroup2", "/sys/fs/cgroup", nsne, "nsdelegate"),
        mount(
            "tmpfs",
            "tmpfs",
            "/run",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=0755,size=10%",
        ),
        mount(
            "tmpfs",
            "tmpfs",
            "/tmp",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=1777,size=10%",
        ),
        mount(
            "tmpfs",
            "tmpfs",
            "/var",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=0755,size=50%",
        ),
    ];
    for dir in [
        "/var/cache",
        "/var/empty",
        "/var/lib",
        "/var/local",
        "/var/lock",
        "/var/log",
        "/var/opt",
        "/var/spool",
        "/var/tmp",
    ] {
        plan.push(Step::Mkdir(
            dir,
            if dir == "/var/tmp" { 0o1777 } else { 0o755 },
        ));
    }
    plan.push(Step::Symlink("/var/run", "/run"));
    plan.push(Step::Mkdir("/run/slipway", 0o755));
    plan.push(Step::Mkdir("/run/log/onboot", 0o755));
    plan.push(Step::Symlink("/var/log/onboot", "/run/log/onboot"));
    // The image is immutable: its root goes read-only, as in LinuxKit.
    plan.push(Step::Mount {
        spec: MountSpec::flags_only(
            "/",
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        ),
        optional: true,
    });
    plan.push(Step::Mount {
        spec: MountSpec::flags_only("/", MsFlags::MS_REC | MsFlags::MS_SHARED),
        optional: false,
    });
    plan
}

/// Carry out a plan. Required steps that fail stop it with an error.
pub fn apply(sys: &dyn Sys, plan: &[Step]) -> Result<()> {
    for step in plan {
        match step {
            Step::Mount { spec, optional } => {
                if spec.fstype.is_some()
                    && !sys.exists(&spec.target)
                    && let Err(e) = sys.mkdir_all(&spec.target, 0o755)
                {
                    if *optional {
                        continue;
                    }
                    return Err(Error::io(format!("mkdir {}", spec.target.display()), e));
                }
                match sys.mount(spec) {
                    Ok(()) => {}
                    Err(_) if *optional => {}
                    Err(e) => return Err(Error::mount(spec, e)),
                }
            }
            Step::Mkdir(path, mode) => sys
                .mkdir_all(Path::new(path), *mode)
                .map_err(|e| Error::io(format!("mkdir {path}"), e))?,
            Step::CharDev(path, mode, major, minor) => sys
                .mknod_char(Path::new(path), *mode, *major, *minor)
                .map_err(|e| Error::io(format!("mknod {path}"), e))?,
            Step::Symlink(link, target) => sys
                .symlink(Path::new(target), Path::new(link))
                .map_err(|e| Error::io(format!("symlink {link}"), e))?,
        }
    }
    Ok(())
}

/// fstab-style options split into `MS_*` flags and filesystem data, as
/// LinuxKit's `runtime.json` mounts and `mount(8)` read them.
pub fn parse_options(options: &[String]) -> (MsFlags, Option<String>) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for option in options {
        let (set, clear) = match option.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "private" => (MsFlags::MS_PRIVATE, MsFlags::empty()),
            "rprivate" => (MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::empty()),
            "shared" => (MsFlags::MS_SHARED, MsFlags::empty()),
            "rshared" => (MsFlags::MS_SHARED | MsFlags::MS_REC, MsFlags::empty()),
            "slave" => (MsFlags::MS_SLAVE, MsFlags::empty()),
            "rslave" => (MsFlags::MS_SLAVE | MsFlags::MS_REC, MsFlags::empty()),
            "unbindable" => (MsFlags::MS_UNBINDABLE, MsFlags::empty()),
            "runbindable" => (MsFlags::MS_UNBINDABLE | MsFlags::MS_REC, MsFlags::empty()),
            "defaults" | "auto" | "noauto" | "nofail" | "_netdev" => {
                (MsFlags::empty(), MsFlags::empty())
            }
            other => {
                data.push(other.to_owned());
                (MsFlags::empty(), MsFlags::empty())
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    let data = (!data.is_empty()).then(|| data.join(","));
    (flags, data)
}

/// The propagation flags, which `mount(2)` wants in a call of their own.
pub fn propagation(flags: MsFlags) -> MsFlags {
    flags
        & (MsFlags::MS_PRIVATE
            | MsFlags::MS_SHARED
            | MsFlags::MS_SLAVE
            | MsFlags::MS_UNBINDABLE
            | MsFlags::MS_REC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn bind_strategy_moves_a_bind_of_root() {
        let sys = FakeSys::new();
        assert_eq!(leave_initramfs(&sys, RootStrategy::Bind).unwrap(), "bind");
        assert_eq!(
            sys.calls(),
            [
                "mkdir /mnt 755",
                "mount / on /mnt type none flags 0x1000",
                "chdir /mnt",
                "mount . on / type none flags 0x2000",
                "chroot .",
            ]
        );
    }

    #[test]
    fn copy_strategy_copies_into_tmpfs() {
        let sys = FakeSys::new();
        sys.set_root_fstype("tmpfs");
        leave_initramfs(&sys, RootStrategy::Copy).unwrap();
        assert_eq!(
            sys.calls()[1..3],
            [
                "mount rootfs on /mnt type tmpfs flags 0x0 (mode=0755)",
                "copy / -> /mnt"
            ]
        );
    }

    #[test]
    fn a_disk_root_is_kept() {
        let sys = FakeSys::new();
        sys.set_root_fstype("0xef53");
        assert!(
            leave_initramfs(&sys, RootStrategy::Bind)
                .unwrap()
                .contains("stayed")
        );
        assert!(sys.calls().is_empty());
        sys.set_root_fstype("ramfs");
        leave_initramfs(&sys, RootStrategy::Stay).unwrap();
        assert!(sys.calls().is_empty());
    }

    #[test]
    fn base_mounts_in_rc_init_order() {
        let sys = FakeSys::new();
        apply(&sys, &base_plan()).unwrap();
        let targets: Vec<String> = sys
            .calls_starting("mount ")
            .iter()
            .map(|c| {
                c.split(" on ")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            targets,
            [
                "/proc",
                "/dev",
                "/dev/mqueue",
                "/dev/shm",
                "/dev/pts",
                "/sys",
                "/sys/kernel/security",
                "/sys/kernel/debug",
                "/sys/kernel/config",
                "/sys/fs/fuse/connections",
                "/sys/fs/pstore",
                "/sys/fs/bpf",
                "/sys/fs/cgroup",
                "/run",
                "/tmp",
                "/var",
                "/",
                "/"
            ]
        );
        let calls = sys.calls();
        let pos = |text: &str| calls.iter().position(|c| c.contains(text)).unwrap();
        assert!(pos("mknod /dev/null") > pos("on /dev type devtmpfs"));
        assert!(pos("mkdir /var/log 755") > pos("on /var type tmpfs"));
        assert!(calls.contains(&"symlink /var/run -> /run".to_owned()));
        assert!(
            calls.last().unwrap().ends_with("flags 0x104000"),
            "{calls:?}"
        );
    }

    #[test]
    fn optional_mounts_may_fail_required_may_not() {
        let sys = FakeSys::new();
        sys.fail_mount("/sys/kernel/debug");
        apply(&sys, &base_plan()).unwrap();
        let sys = FakeSys::new();
        sys.fail_mount("/sys");
        let err = apply(&sys, &base_plan()).unwrap_err().to_string();
        assert!(err.contains("on /sys type sysfs"), "{err}");
    }

    #[test]
    fn options() {
        let opts = |o: &[&str]| parse_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(opts(&["bind"]), (MsFlags::MS_BIND, None));
        assert_eq!(
            opts(&["remount", "private"]),
            (MsFlags::MS_REMOUNT | MsFlags::MS_PRIVATE, None)
        );
        assert_eq!(
            opts(&["lowerdir=/a", "upperdir=/b", "workdir=/c"]),
            (
                MsFlags::empty(),
                Some("lowerdir=/a,upperdir=/b,workdir=/c".into())
            )
        );
        assert_eq!(
            opts(&["rbind", "ro", "size=1m", "rw"]),
            (MsFlags::MS_BIND | MsFlags::MS_REC, Some("size=1m".into()))
        );
        assert_eq!(
            propagation(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_SHARED),
            MsFlags::MS_REC | MsFlags::MS_SHARED
        );
    }
}
