//! A root on a device: `root=` on the kernel command line names a disk or
//! CD holding the image's root filesystem (squashfs, erofs, ISO 9660). The
//! init, started from a small initrd, loads the drivers the machine's
//! storage needs, waits for the device, loads its filesystem, mounts it
//! read-only and moves into it as `switch_root` does (the initramfs's files
//! freed, the new root moved onto `/`, `chroot`). The boot then goes on
//! from the new root as from an initramfs: its own `/lib/modules`,
//! `/etc/init.d`, `/containers`, tmpfs on `/run`, `/tmp` and `/var`.
//!
//! Parameters (the kernel's names; the kernel itself ignores them when an
//! initramfs has `/init`):
//!
//! * `root=/dev/NAME`, `root=LABEL=...`, `root=UUID=...` (also
//!   `/dev/disk/by-label/...` and `/dev/disk/by-uuid/...`, which name the
//!   same without udev); labels and UUIDs are read from the superblocks
//!   ([`probe`]);
//! * `rootfstype=TYPE[,TYPE...]`: tried in order; otherwise the type the
//!   superblock shows;
//! * `rootwait` (no time limit), `rootwait=SECONDS` or `rootdelay=SECONDS`:
//!   how long to wait for the device to appear (the last one given
//!   decides), [`DEFAULT_TIMEOUT`] otherwise. Unlike the kernel's
//!   `rootdelay`, which sleeps that long first, the device is used as soon
//!   as it is there;
//! * `rootflags=...`: the mount's filesystem options. The root is always
//!   mounted read-only (`ro`; `rw` is ignored): the image is immutable.

pub mod probe;

use slipway_contract::errors::chain;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_contract::root_device::{BLOCK_DRIVERS, SCSI_DRIVERS, fs_alias};
use slipway_contract::timeline::Event;

use crate::modules::{self, Index, Loaded};
use crate::sys::{MountSpec, MsFlags, Sys};
use crate::timeline::Timeline;
use crate::{Error, Result};
use probe::{HEAD_LEN, ISO_PVD_LEN, ISO_PVD_OFFSET, Superblock};

/// How long the init waits for the root device without `rootwait` or
/// `rootdelay`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Where the root device is mounted before it is moved onto `/`.
pub const NEW_ROOT: &str = "/newroot";
/// How often the init looks for the device while waiting.
const POLL: Duration = Duration::from_millis(20);
/// Directories the boot mounts on, which a read-only root must have.
const MOUNTPOINTS: &[&str] = &["dev", "proc", "sys", "run", "tmp", "var"];

/// How `root=` names the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// A device node (`/dev/vda`, `/dev/sr0`).
    Path(PathBuf),
    /// The filesystem's label.
    Label(String),
    /// The filesystem's UUID.
    Uuid(String),
    /// Anything else (`PARTUUID=`, `major:minor`): refused with a message.
    Unsupported(String),
}

impl Device {
    fn parse(value: &str) -> Device {
        if let Some(label) = value
            .strip_prefix("LABEL=")
            .or_else(|| value.strip_prefix("/dev/disk/by-label/"))
        {
            Device::Label(label.to_owned())
        } else if let Some(uuid) = value
            .strip_prefix("UUID=")
            .or_else(|| value.strip_prefix("/dev/disk/by-uuid/"))
        {
            Device::Uuid(uuid.to_owned())
        } else if value.starts_with("/dev/") && !value.contains("/../") {
            Device::Path(PathBuf::from(value))
        } else {
            Device::Unsupported(value.to_owned())
        }
    }

    /// The drivers this device needs among the `controllers` the machine
    /// has a driver for: a `vdX` its virtio disks', an `sdX` or `srN` the
    /// ATA controllers' and the SCSI disk or CD driver, anything else all.
    fn drivers(&self, controllers: &[String]) -> Vec<String> {
        const VIRTIO_BLK: &str = "virtio_blk";
        let name = match self {
            Device::Path(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            _ => String::new(),
        };
        let ata = || controllers.iter().filter(|c| *c != VIRTIO_BLK).cloned();
        let scsi = |which: &'static str| {
            SCSI_DRIVERS
                .iter()
                .filter(move |d| d.starts_with(which))
                .map(|d| (*d).to_owned())
        };
        let mut out: Vec<String> = if name.starts_with("vd") {
            controllers
                .iter()
                .filter(|c| *c == VIRTIO_BLK)
                .cloned()
                .collect()
        } else if name.starts_with("sd") {
            ata().chain(scsi("sd")).collect()
        } else if name.starts_with("sr") {
            ata().chain(scsi("sr")).collect()
        } else {
            let mut all: Vec<String> = controllers.to_vec();
            if ata().next().is_some() {
                all.extend(SCSI_DRIVERS.iter().map(|d| (*d).to_owned()));
            }
            all
        };
        out.dedup();
        out
    }
}

/// The `root*` parameters of the kernel command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootParams {
    /// `root=` as given, for messages.
    pub spec: String,
    /// The device it names.
    pub device: Device,
    /// `rootfstype=`, in order; empty: the superblock's.
    pub fstypes: Vec<String>,
    /// How long to wait for the device; `None`: as long as it takes.
    pub timeout: Option<Duration>,
    /// `rootflags=`: the mount's filesystem options.
    pub flags: Option<String>,
}

/// The kernel command line's parameters, quotes handled as the kernel
/// does (`root="LABEL=my root"`, `"root=LABEL=my root"`).
pub fn kernel_params(cmdline: &str) -> Vec<(String, Option<String>)> {
    let mut params = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut push = |word: &mut String| {
        if word.is_empty() {
            return;
        }
        let text = std::mem::take(word);
        match text.split_once('=') {
            Some((key, value)) => params.push((key.to_owned(), Some(value.to_owned()))),
            None => params.push((text, None)),
        }
    };
    for c in cmdline.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => push(&mut word),
            c => word.push(c),
        }
    }
    push(&mut word);
    params
}

impl RootParams {
    /// From the kernel command line; `None` without a `root=`.
    pub fn from_cmdline(cmdline: &str) -> Option<RootParams> {
        let mut root = None;
        let mut fstypes = Vec::new();
        let mut timeout = Some(DEFAULT_TIMEOUT);
        let mut flags = None;
        let seconds = |v: &str| v.trim().parse::<u64>().ok().map(Duration::from_secs);
        for (key, value) in kernel_params(cmdline) {
            match (key.as_str(), value.as_deref()) {
                ("root", Some(v)) => root = (!v.is_empty()).then(|| v.to_owned()),
                ("rootfstype", Some(v)) => {
                    fstypes = v
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                ("rootwait", None) => timeout = None,
                ("rootwait" | "rootdelay", Some(v)) => {
                    if let Some(t) = seconds(v) {
                        timeout = Some(t);
                    }
                }
                ("rootflags", Some(v)) => flags = (!v.is_empty()).then(|| v.to_owned()),
                _ => {}
            }
        }
        let spec = root?;
        Some(RootParams {
            device: Device::parse(&spec),
            spec,
            fstypes,
            timeout,
            flags,
        })
    }

    fn waiting(&self) -> String {
        match self.timeout {
            Some(t) => format!("up to {} s", t.as_secs()),
            None => "with no time limit (rootwait)".to_owned(),
        }
    }
}

/// Whether `/` is the initramfs (which a root device replaces).
pub fn on_initramfs(sys: &dyn Sys) -> Result<bool> {
    let fstype = sys.root_fstype().map_err(|e| Error::io("statfs /", e))?;
    Ok(fstype == "ramfs" || fstype == "tmpfs")
}

fn fail(params: &RootParams, kind: io::ErrorKind, message: String) -> Error {
    Error::io(
        format!("root={}", params.spec),
        io::Error::new(kind, message),
    )
}

/// The `modalias` of the machine's PCI and virtio devices: what decides
/// the block drivers (the disks behind them are not there yet).
fn controller_modaliases(sys: &dyn Sys) -> Vec<String> {
    let mut out = Vec::new();
    for bus in ["pci", "virtio"] {
        let devices = Path::new("/sys/bus").join(bus).join("devices");
        let mut names = sys.names(&devices).unwrap_or_default();
        names.sort();
        for device in names {
            if let Ok(alias) = sys.read(&devices.join(device).join("modalias")) {
                let alias = String::from_utf8_lossy(&alias).trim().to_owned();
                if !alias.is_empty() {
                    out.push(alias);
                }
            }
        }
    }
    out
}

/// The modules to load before looking for the device: its drivers (by the
/// controllers present) and, when `rootfstype=` names them, the
/// filesystems'.
pub fn driver_modules(index: &Index, params: &RootParams, modaliases: &[String]) -> Vec<String> {
    let controllers: Vec<String> = index
        .modules_for(modaliases)
        .into_iter()
        .filter(|m| BLOCK_DRIVERS.contains(&m.as_str()))
        .collect();
    params
        .device
        .drivers(&controllers)
        .into_iter()
        .chain(params.fstypes.iter().map(|t| fs_alias(t)))
        .collect()
}

/// Block devices, sorted (`/sys/class/block`), without the RAM and loop
/// devices a root is never on.
fn block_devices(sys: &dyn Sys) -> Vec<String> {
    let mut names: Vec<String> = sys
        .names(Path::new("/sys/class/block"))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !["loop", "ram", "zram"].iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    names
}

/// The superblock of a device node: `Err` when it cannot be read (not
/// there yet, a CD drive without a disc).
fn read_superblock(sys: &dyn Sys, dev: &Path) -> io::Result<Option<Superblock>> {
    let head = sys.read_at(dev, 0, HEAD_LEN)?;
    let pvd = sys.read_at(dev, ISO_PVD_OFFSET, ISO_PVD_LEN)?;
    Ok(probe::probe(&head, &pvd))
}

/// What the search has read so far: the superblock of each device read
/// (devices do not change while the init waits).
#[derive(Default)]
struct Seen {
    devices: BTreeMap<String, Option<Superblock>>,
}

impl Seen {
    /// Look once: the device node and its superblock (read here for a
    /// label or UUID, later for a path), if it is there.
    fn look(&mut self, sys: &dyn Sys, device: &Device) -> Option<(PathBuf, Option<Superblock>)> {
        let wanted: &dyn Fn(&Superblock) -> bool = match device {
            Device::Path(path) => return sys.exists(path).then(|| (path.clone(), None)),
            Device::Label(label) => &|sb: &Superblock| sb.has_label(label),
            Device::Uuid(uuid) => &|sb: &Superblock| sb.has_uuid(uuid),
            Device::Unsupported(_) => return None,
        };
        for name in block_devices(sys) {
            let node = Path::new("/dev").join(&name);
            if !self.devices.contains_key(&name) {
                match read_superblock(sys, &node) {
                    Ok(sb) => {
                        self.devices.insert(name.clone(), sb);
                    }
                    Err(_) => continue,
                }
            }
            if let Some(Some(sb)) = self.devices.get(&name)
                && wanted(sb)
            {
                return Some((node, Some(sb.clone())));
            }
        }
        None
    }

    /// The block devices and what they hold, for the error message.
    fn describe(&mut self, sys: &dyn Sys) -> String {
        let names = block_devices(sys);
        if names.is_empty() {
            return "none".to_owned();
        }
        names
            .iter()
            .map(|name| {
                let node = Path::new("/dev").join(name);
                let sb = match self.devices.get(name) {
                    Some(sb) => Ok(sb.clone()),
                    None => read_superblock(sys, &node),
                };
                match sb {
                    Ok(Some(sb)) => format!("{name} ({sb})"),
                    Ok(None) => format!("{name} (no known filesystem)"),
                    Err(e) => format!("{name} (unreadable: {})", chain(&e)),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn report_modules(sys: &dyn Sys, timeline: &Timeline, name: &str, loaded: &Loaded) {
    for (module, error) in &loaded.failed {
        sys.console(&format!("slipway-init: module {module}: {error}"));
    }
    timeline.event(
        sys,
        Event::ModulesDone,
        Some(name),
        Some(&format!(
            "{} loaded, {} failed, {} threads; index and devices {} ms, loading {} ms",
            loaded.loaded,
            loaded.failed.len(),
            loaded.workers,
            loaded.prepare_ms,
            loaded.load_ms
        )),
    );
}

/// Mount the root device on `/` and move into it. Call on the initramfs
/// ([`on_initramfs`]), with `/proc` mounted. Returns what was done, for
/// `root-done`; an error (no such device in time, no filesystem the init
/// knows, a root without the directories the boot mounts on) is fatal.
pub fn switch(
    sys: &dyn Sys,
    timeline: &Timeline,
    params: &RootParams,
    threads: usize,
) -> Result<String> {
    if let Device::Unsupported(what) = &params.device {
        return Err(fail(
            params,
            io::ErrorKind::InvalidInput,
            format!("{what:?} is not a device the init can find: use /dev/NAME, LABEL= or UUID="),
        ));
    }
    let start = sys.now_ms();
    for spec in [
        MountSpec::fs(
            "devtmpfs",
            "dev",
            "/dev",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "mode=0755",
        ),
        MountSpec::fs(
            "sysfs",
            "sysfs",
            "/sys",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            "",
        ),
    ] {
        sys.mkdir_all(&spec.target, 0o755)
            .map_err(|e| Error::io(format!("mkdir {}", spec.target.display()), e))?;
        sys.mount(&spec).map_err(|e| Error::mount(&spec, e))?;
    }

    let release = sys
        .read(Path::new("/proc/sys/kernel/osrelease"))
        .map(|r| String::from_utf8_lossy(&r).trim().to_owned())
        .unwrap_or_default();
    let dir = modules::modules_dir(&release);
    let index = modules::read_index(sys, &dir);
    let wanted = driver_modules(&index, params, &controller_modaliases(sys));
    let mut loaded_now = modules::loaded(sys);
    let drivers = modules::load_wanted(sys, &dir, &index, &wanted, &loaded_now, threads, start);
    report_modules(sys, timeline, "root", &drivers);

    let waited_from = sys.now_ms();
    let mut seen = Seen::default();
    let mut announced = false;
    let (node, superblock) = loop {
        if let Some(found) = seen.look(sys, &params.device) {
            break found;
        }
        let waited = sys.now_ms().saturating_sub(waited_from);
        if params
            .timeout
            .is_some_and(|t| u128::from(waited) >= t.as_millis())
        {
            let devices = seen.describe(sys);
            timeline.event(
                sys,
                Event::RootMissing,
                Some(&params.spec),
                Some(&format!("after {waited} ms; block devices: {devices}")),
            );
            sys.console(&format!(
                "slipway-init: the root device {} did not appear within {} s; block devices: {devices}. \
                 Check root= (LABEL= and UUID= are read from squashfs, erofs, ext4 and ISO 9660 superblocks; \
                 squashfs has neither), or wait longer with rootwait=SECONDS.",
                params.spec,
                waited / 1000
            ));
            return Err(fail(
                params,
                io::ErrorKind::NotFound,
                format!("no such device after {waited} ms (block devices: {devices})"),
            ));
        }
        if !announced {
            sys.console(&format!(
                "slipway-init: waiting {} for the root device {}",
                params.waiting(),
                params.spec
            ));
            announced = true;
        }
        sys.sleep(POLL);
    };
    let superblock = match superblock {
        Some(sb) => Some(sb),
        // A path: read now. A CD drive may answer only once its disc is in.
        None => read_superblock(sys, &node).ok().flatten(),
    };
    let fstypes: Vec<String> = if params.fstypes.is_empty() {
        match &superblock {
            Some(sb) => vec![sb.fstype.to_owned()],
            None => {
                return Err(fail(
                    params,
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} holds no squashfs, erofs, ext4 or ISO 9660 filesystem; name its type with rootfstype=",
                        node.display()
                    ),
                ));
            }
        }
    } else {
        params.fstypes.clone()
    };
    timeline.event(
        sys,
        Event::RootFound,
        Some(&node.to_string_lossy()),
        Some(&format!(
            "{} after {} ms",
            superblock
                .as_ref()
                .map_or_else(|| fstypes.join(","), ToString::to_string),
            sys.now_ms().saturating_sub(waited_from)
        )),
    );
    if params.fstypes.is_empty() {
        let fs_start = sys.now_ms();
        loaded_now.extend(modules::loaded(sys));
        let wanted: Vec<String> = fstypes.iter().map(|t| fs_alias(t)).collect();
        let fs = modules::load_wanted(sys, &dir, &index, &wanted, &loaded_now, 1, fs_start);
        report_modules(sys, timeline, "rootfs", &fs);
    }

    let new_root = Path::new(NEW_ROOT);
    sys.mkdir_all(new_root, 0o755)
        .map_err(|e| Error::io(format!("mkdir {NEW_ROOT}"), e))?;
    let mut failures = Vec::new();
    let mut mounted = None;
    for fstype in &fstypes {
        let spec = MountSpec {
            source: Some(node.to_string_lossy().into_owned()),
            target: new_root.to_path_buf(),
            fstype: Some(fstype.clone()),
            flags: MsFlags::MS_RDONLY,
            data: params.flags.clone(),
        };
        match sys.mount(&spec) {
            Ok(()) => {
                mounted = Some(fstype.clone());
                break;
            }
            Err(e) => failures.push(format!("as {fstype}: {}", chain(&e))),
        }
    }
    let Some(fstype) = mounted else {
        return Err(fail(
            params,
            io::ErrorKind::InvalidData,
            format!(
                "mounting {} read-only failed ({})",
                node.display(),
                failures.join("; ")
            ),
        ));
    };
    let missing: Vec<&str> = MOUNTPOINTS
        .iter()
        .copied()
        .filter(|d| !sys.exists(&new_root.join(d)))
        .collect();
    if !missing.is_empty() {
        let _ = sys.umount(new_root, false);
        return Err(fail(
            params,
            io::ErrorKind::NotFound,
            format!(
                "the {fstype} root on {} has no /{}: the boot mounts on them and the root is read-only \
                 (slipway's init package has them)",
                node.display(),
                missing.join(", /")
            ),
        ));
    }

    // As switch_root: from inside the new root, free the initramfs's files
    // (it would hold its memory for good; mountpoints are kept, the new
    // root among them), move the new root onto `/`, chroot there.
    sys.chdir(new_root)
        .map_err(|e| Error::io(format!("chdir {NEW_ROOT}"), e))?;
    let freed = match sys.remove_tree(Path::new("/")) {
        Ok(n) => n,
        Err(e) => {
            sys.console(&format!(
                "slipway-init: freeing the initramfs: {}",
                chain(&e)
            ));
            0
        }
    };
    let moved = MountSpec {
        source: Some(".".into()),
        target: PathBuf::from("/"),
        fstype: None,
        flags: MsFlags::MS_MOVE,
        data: None,
    };
    sys.mount(&moved).map_err(|e| Error::mount(&moved, e))?;
    sys.chroot(Path::new("."))
        .map_err(|e| Error::io("chroot into the root device", e))?;
    Ok(format!(
        "moved to {} ({fstype}, read-only); {freed} initramfs entries freed",
        node.display()
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::sys::fake::FakeSys;

    /// The module names of a load order.
    fn names(order: &[String]) -> HashSet<String> {
        order
            .iter()
            .filter_map(|p| modules::module_name(p))
            .collect()
    }

    fn params(cmdline: &str) -> RootParams {
        RootParams::from_cmdline(cmdline).unwrap()
    }

    #[test]
    fn command_line() {
        assert_eq!(RootParams::from_cmdline("console=ttyS0 quiet"), None);
        assert_eq!(RootParams::from_cmdline("root= console=ttyS0"), None);
        let p = params("console=ttyS0 root=/dev/vda ro");
        assert_eq!(p.device, Device::Path("/dev/vda".into()));
        assert_eq!(
            (p.fstypes.is_empty(), p.timeout, p.flags),
            (true, Some(DEFAULT_TIMEOUT), None)
        );
        let p =
            params("root=LABEL=slipway rootfstype=erofs,squashfs rootdelay=5 rootflags=noatime");
        assert_eq!(p.device, Device::Label("slipway".into()));
        assert_eq!(p.fstypes, ["erofs", "squashfs"]);
        assert_eq!(p.timeout, Some(Duration::from_secs(5)));
        assert_eq!(p.flags.as_deref(), Some("noatime"));
        // The last root= wins; rootwait waits for ever, rootwait=N for N s.
        let p = params("root=/dev/sda root=UUID=0B9F-AB rootwait");
        assert_eq!(
            (p.device, p.spec.as_str(), p.timeout),
            (Device::Uuid("0B9F-AB".into()), "UUID=0B9F-AB", None)
        );
        assert_eq!(
            params("root=/dev/sr0 rootwait=7").timeout,
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            params("root=/dev/sr0 rootwait rootdelay=2").timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            params("root=/dev/sr0 rootdelay=x").timeout,
            Some(DEFAULT_TIMEOUT)
        );
        // udev's names, without udev; a label with a space, quoted.
        assert_eq!(
            params("root=/dev/disk/by-label/ROOT").device,
            Device::Label("ROOT".into())
        );
        assert_eq!(
            params("root=/dev/disk/by-uuid/2024-01-02-03-04-05-00").device,
            Device::Uuid("2024-01-02-03-04-05-00".into())
        );
        assert_eq!(
            params("quiet root=\"LABEL=my root\" console=ttyS0").device,
            Device::Label("my root".into())
        );
        assert_eq!(
            params("\"root=LABEL=my root\"").device,
            Device::Label("my root".into())
        );
        assert_eq!(
            params("root=PARTUUID=1234-01").device,
            Device::Unsupported("PARTUUID=1234-01".into())
        );
        assert_eq!(
            params("root=/dev/../proc/x").device,
            Device::Unsupported("/dev/../proc/x".into())
        );
    }

    const DEP: &str = "\
kernel/crypto/crc32c_generic.ko.xz:
kernel/lib/libcrc32c.ko.xz:
kernel/fs/erofs/erofs.ko.xz: kernel/lib/libcrc32c.ko.xz
kernel/fs/squashfs/squashfs.ko.xz:
kernel/drivers/cdrom/cdrom.ko.xz:
kernel/fs/isofs/isofs.ko.xz: kernel/drivers/cdrom/cdrom.ko.xz
kernel/drivers/scsi/scsi_common.ko.xz:
kernel/drivers/scsi/scsi_mod.ko.xz: kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/ata/libata.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/ata/libahci.ko.xz: kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/ata/ahci.ko.xz: kernel/drivers/ata/libahci.ko.xz kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/ata/ata_piix.ko.xz: kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/scsi/sr_mod.ko.xz: kernel/drivers/cdrom/cdrom.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/block/virtio_blk.ko.xz:
kernel/drivers/net/virtio_net.ko.xz:
";
    const ALIAS: &str = "\
alias crc32c crc32c_generic
alias fs-erofs erofs
alias fs-squashfs squashfs
alias iso9660 isofs
alias fs-iso9660 isofs
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias pci:v00008086d00007010sv*sd*bc*sc*i* ata_piix
alias scsi:t-0x00* sd_mod
alias scsi:t-0x05* sr_mod
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
";
    const SOFTDEP: &str = "softdep libcrc32c pre: crc32c\n";
    const Q35_AHCI: &str = "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01";
    const PIIX_IDE: &str = "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80";
    const VIRTIO_BLK: &str = "virtio:d00000002v00001AF4";
    const VIRTIO_NET: &str = "virtio:d00000001v00001AF4";

    fn index() -> Index {
        Index::parse(DEP, ALIAS, SOFTDEP, "")
    }

    fn chosen(cmdline: &str, modaliases: &[&str]) -> Vec<String> {
        let aliases: Vec<String> = modaliases.iter().map(|a| (*a).to_owned()).collect();
        let wanted = driver_modules(&index(), &params(cmdline), &aliases);
        let mut names: Vec<String> = names(&index().load_order(&wanted, &HashSet::new()))
            .into_iter()
            .collect();
        names.sort();
        names
    }

    #[test]
    fn drivers_for_the_device_and_the_machine() {
        // A virtio disk on q35: virtio_blk alone, not the AHCI controller's.
        assert_eq!(
            chosen("root=/dev/vda", &[Q35_AHCI, VIRTIO_BLK, VIRTIO_NET]),
            ["virtio_blk"]
        );
        // q35's SATA disk: ahci and the SCSI disk driver.
        assert_eq!(
            chosen("root=/dev/sda", &[Q35_AHCI, VIRTIO_NET]),
            [
                "ahci",
                "libahci",
                "libata",
                "scsi_common",
                "scsi_mod",
                "sd_mod"
            ]
        );
        // -machine pc's CD: PIIX IDE and the CD driver.
        assert_eq!(
            chosen("root=/dev/sr0", &[PIIX_IDE]),
            [
                "ata_piix",
                "cdrom",
                "libata",
                "scsi_common",
                "scsi_mod",
                "sr_mod"
            ]
        );
        // A label may be on any of them; the type given loads up front.
        assert_eq!(
            chosen("root=LABEL=x rootfstype=erofs", &[Q35_AHCI, VIRTIO_BLK]),
            [
                "ahci",
                "cdrom",
                "crc32c_generic",
                "erofs",
                "libahci",
                "libata",
                "libcrc32c",
                "scsi_common",
                "scsi_mod",
                "sd_mod",
                "sr_mod",
                "virtio_blk"
            ]
        );
        // Only virtio devices: no SCSI drivers for a label.
        assert_eq!(chosen("root=UUID=x", &[VIRTIO_BLK]), ["virtio_blk"]);
        assert!(chosen("root=/dev/vda", &[Q35_AHCI]).is_empty());
    }

    fn squashfs() -> Vec<u8> {
        let mut data = vec![0u8; 8192];
        data[..4].copy_from_slice(b"hsqs");
        data
    }

    fn erofs(label: &str) -> Vec<u8> {
        let mut data = vec![0u8; 8192];
        data[1024..1028].copy_from_slice(&0xE0F5_E1E2u32.to_le_bytes());
        data[1024 + 48..1024 + 64].copy_from_slice(&[0x11; 16]);
        data[1088..1088 + label.len()].copy_from_slice(label.as_bytes());
        data
    }

    /// An initramfs with the kernel's modules and the machine's devices;
    /// the new root has every mountpoint.
    fn machine(modaliases: &[(&str, &str)]) -> FakeSys {
        let sys = FakeSys::new();
        sys.add_file("/proc/sys/kernel/osrelease", "6.12.0\n");
        let dir = "/lib/modules/6.12.0";
        sys.add_file(&format!("{dir}/modules.dep"), DEP);
        sys.add_file(&format!("{dir}/modules.alias"), ALIAS);
        sys.add_file(&format!("{dir}/modules.softdep"), SOFTDEP);
        for (device, alias) in modaliases {
            sys.add_file(&format!("{device}/modalias"), &format!("{alias}\n"));
        }
        for dir in MOUNTPOINTS {
            sys.add_dir(&format!("{NEW_ROOT}/{dir}"));
        }
        sys
    }

    fn events(timeline: &Timeline) -> Vec<String> {
        timeline
            .entries()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e.event,
                    e.name.clone().unwrap_or_default(),
                    e.detail.clone().unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn a_virtio_squashfs_root() {
        let sys = machine(&[("/sys/bus/virtio/devices/virtio1", VIRTIO_BLK)]);
        sys.add_bytes("/dev/vda", &squashfs());
        let timeline = Timeline::default();
        let how = switch(&sys, &timeline, &params("root=/dev/vda"), 1).unwrap();
        assert_eq!(
            how,
            "moved to /dev/vda (squashfs, read-only); 1 initramfs entries freed"
        );
        let calls = sys.calls();
        let from = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix)).unwrap();
        assert_eq!(
            calls[from("mount dev on /dev")..from("mount dev on /dev") + 4],
            [
                "mount dev on /dev type devtmpfs flags 0xa (mode=0755)",
                "mkdir /sys 755",
                "mount sysfs on /sys type sysfs flags 0xe",
                "finit_module /lib/modules/6.12.0/kernel/drivers/block/virtio_blk.ko.xz flags 4",
            ]
        );
        assert_eq!(
            calls[from("finit_module /lib/modules/6.12.0/kernel/fs")..],
            [
                "finit_module /lib/modules/6.12.0/kernel/fs/squashfs/squashfs.ko.xz flags 4",
                "mkdir /newroot 755",
                "mount /dev/vda on /newroot type squashfs flags 0x1",
                "chdir /newroot",
                "remove-tree /",
                "mount . on / type none flags 0x2000",
                "chroot .",
            ]
        );
        let events = events(&timeline);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(events[0].starts_with("modules-done root 1 loaded, 0 failed"));
        assert_eq!(events[1], "root-found /dev/vda squashfs after 0 ms");
        assert!(events[2].starts_with("modules-done rootfs 1 loaded"));
    }

    #[test]
    fn an_erofs_root_by_label_that_appears_late() {
        let sys = machine(&[
            ("/sys/bus/pci/devices/0000:00:1f.2", Q35_AHCI),
            ("/sys/bus/virtio/devices/virtio0", VIRTIO_NET),
        ]);
        // A CD drive without a disc, and a disk with another label.
        sys.add_dir("/sys/class/block/sr0");
        sys.add_dir("/sys/class/block/vda");
        sys.add_bytes("/dev/vda", &erofs("OTHER"));
        sys.add_dir("/sys/class/block/loop0");
        // The SATA disk shows up 300 ms after its driver loaded.
        sys.add_file_at("/sys/class/block/sda/dev", b"8:0\n", 1300);
        sys.add_file_at("/dev/sda", &erofs("slipway-root"), 1300);
        let timeline = Timeline::default();
        let how = switch(
            &sys,
            &timeline,
            &params("root=LABEL=slipway-root rootflags=noatime"),
            2,
        )
        .unwrap();
        assert!(
            how.starts_with("moved to /dev/sda (erofs, read-only)"),
            "{how}"
        );
        assert!(
            sys.calls()
                .contains(&"mount /dev/sda on /newroot type erofs flags 0x1 (noatime)".to_owned())
        );
        let loaded: Vec<String> = sys.calls_starting("finit_module");
        // The AHCI controller's drivers, both SCSI drivers, then erofs.
        assert_eq!(loaded.len(), 11, "{loaded:?}");
        assert!(loaded.last().unwrap().ends_with("erofs.ko.xz flags 4"));
        assert!(loaded.iter().all(|c| !c.contains("virtio")));
        assert_eq!(
            events(&timeline)[1],
            format!(
                "root-found /dev/sda erofs LABEL=slipway-root UUID={} after 300 ms",
                "11111111-1111-1111-1111-111111111111"
            )
        );
        assert_eq!(
            sys.console_lines()
                .iter()
                .filter(|l| l.contains("waiting up to 30 s for the root device LABEL=slipway-root"))
                .count(),
            1
        );
    }

    #[test]
    fn a_missing_root_times_out_with_what_was_there() {
        let sys = machine(&[("/sys/bus/virtio/devices/virtio1", VIRTIO_BLK)]);
        sys.add_dir("/sys/class/block/vda");
        sys.add_bytes("/dev/vda", &squashfs());
        let timeline = Timeline::default();
        let err = switch(&sys, &timeline, &params("root=UUID=abcd rootdelay=2"), 1).unwrap_err();
        let err = chain(&err);
        assert!(
            err.starts_with("root=UUID=abcd: no such device after 2000 ms"),
            "{err}"
        );
        assert!(err.contains("vda (squashfs)"), "{err}");
        let last = timeline.entries().pop().unwrap();
        assert_eq!(last.event, Event::RootMissing);
        assert_eq!(last.name.as_deref(), Some("UUID=abcd"));
        assert_eq!(
            last.detail.as_deref(),
            Some("after 2000 ms; block devices: vda (squashfs)")
        );
        assert!(sys.console_lines().iter().any(|l| l.contains(
            "the root device UUID=abcd did not appear within 2 s; block devices: vda (squashfs)"
        )));
        // Nothing was mounted or moved.
        assert!(sys.calls_starting("mount /dev").is_empty());
        assert!(sys.calls_starting("chroot").is_empty());
        assert_eq!(sys.now(), 1000 + 2000);
    }

    #[test]
    fn refusals() {
        let sys = machine(&[]);
        let timeline = Timeline::default();
        let err = switch(&sys, &timeline, &params("root=PARTUUID=1-2"), 1).unwrap_err();
        assert!(
            chain(&err).contains("use /dev/NAME, LABEL= or UUID="),
            "{err}"
        );
        assert!(sys.calls().is_empty());

        // A device with no filesystem the init knows, and no rootfstype=.
        let sys = machine(&[]);
        sys.add_bytes("/dev/vdb", &[0u8; 40000]);
        let err = switch(&sys, &timeline, &params("root=/dev/vdb"), 1).unwrap_err();
        assert!(
            chain(&err).contains("name its type with rootfstype="),
            "{err}"
        );

        // A root without /run, /tmp and /var.
        let sys = FakeSys::new();
        sys.add_bytes("/dev/vda", &squashfs());
        for dir in ["dev", "proc", "sys"] {
            sys.add_dir(&format!("{NEW_ROOT}/{dir}"));
        }
        let err = switch(&sys, &timeline, &params("root=/dev/vda"), 1).unwrap_err();
        let err = chain(&err);
        assert!(err.contains("has no /run, /tmp, /var"), "{err}");
        assert!(sys.calls().contains(&"umount /newroot".to_owned()));
        assert!(sys.calls_starting("chroot").is_empty());

        // A rootfstype= the kernel refuses, then one it takes.
        let sys = machine(&[]);
        sys.add_bytes("/dev/vda", &squashfs());
        sys.fail_mount(NEW_ROOT);
        let err = switch(
            &sys,
            &timeline,
            &params("root=/dev/vda rootfstype=erofs,squashfs"),
            1,
        )
        .unwrap_err();
        let err = chain(&err);
        assert!(
            err.contains("as erofs: Operation not permitted (os error 1); as squashfs"),
            "{err}"
        );
    }
}
