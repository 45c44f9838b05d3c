//! How to run the machine: [`Options`] and the command-line values it is
//! made of (`--accel`, `--disk`, `--publish`, `--networking`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_reference::Arch;

use crate::RunError;
use crate::boot::Boot;

/// The firmware `--uefi` uses unless `--fw` names another: Debian's
/// single-file OVMF (package `ovmf`). LinuxKit's default,
/// `/usr/share/ovmf/bios.bin`, does not exist on Debian.
pub const DEFAULT_FIRMWARE: &str = "/usr/share/ovmf/OVMF.fd";

/// The accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// KVM.
    Kvm,
    /// TCG, qemu's emulator.
    Tcg,
}

impl Accel {
    /// KVM only where the CPU advertises virtualisation (`vmx`/`svm` in
    /// `/proc/cpuinfo`) and `/dev/kvm` opens: a KVM that opens without them
    /// is a nested hypervisor that hangs guests.
    pub fn detect() -> Accel {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags = cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        let opens = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if flags && opens {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// From `--accel`: `kvm`, `tcg` or `auto`.
    pub fn parse(value: &str) -> Result<Accel, RunError> {
        match value {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            "auto" => Ok(Accel::detect()),
            _ => Err(RunError::Invalid {
                what: "--accel",
                value: value.to_owned(),
                reason: "expected kvm, tcg or auto".into(),
            }),
        }
    }
}

/// `--disk [file=]PATH[,size=N][,format=F]`, as LinuxKit's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// The image file; `None` puts it in the state directory
    /// (`disk.img`, `disk1.img`, ...).
    pub path: Option<PathBuf>,
    /// Size in bytes of a new image (`N`M, `N`G, or a bare number of GiB);
    /// default 1 GiB.
    pub size: u64,
    /// qemu's format; `None`: the image's own (from its bytes), or qcow2
    /// for a new one.
    pub format: Option<String>,
}

impl Disk {
    /// Parse the `--disk` syntax.
    pub fn parse(value: &str) -> Result<Disk, RunError> {
        let bad = |reason: String| RunError::Invalid {
            what: "--disk",
            value: value.to_owned(),
            reason,
        };
        let mut disk = Disk {
            path: None,
            size: slipway_formats::disk::size::DEFAULT_SIZE,
            format: None,
        };
        for (i, part) in value.split(',').enumerate() {
            match part.split_once('=') {
                Some(("file", p)) if !p.is_empty() => disk.path = Some(PathBuf::from(p)),
                Some(("size", s)) => {
                    disk.size = slipway_formats::disk::size::parse_size(s)
                        .map_err(|e| bad(e.to_string()))?;
                }
                Some(("format", f)) if !f.is_empty() => disk.format = Some(f.to_owned()),
                None if i == 0 && !part.is_empty() => disk.path = Some(PathBuf::from(part)),
                _ => {
                    return Err(bad(format!(
                        "unknown part {part:?}; expected [file=]PATH[,size=N][,format=F]"
                    )));
                }
            }
        }
        if disk.path.is_none() && !value.contains("size=") {
            return Err(bad(
                "no path and no size: give a file, or a size for a new disk in the state directory"
                    .into(),
            ));
        }
        Ok(disk)
    }

    /// The file: its own path, or `disk[N].img` in `state` for the
    /// `index`th `--disk`, as LinuxKit names them.
    pub fn file(&self, state: &Path, index: usize) -> PathBuf {
        match &self.path {
            Some(path) => path.clone(),
            None if index == 0 => state.join("disk.img"),
            None => state.join(format!("disk{index}.img")),
        }
    }
}

/// `--publish HOST:GUEST[/tcp|udp]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// Host port.
    pub host: u16,
    /// Guest port.
    pub guest: u16,
    /// `tcp` or `udp`.
    pub proto: String,
}

impl Publish {
    /// Parse the `--publish` syntax.
    pub fn parse(value: &str) -> Result<Publish, RunError> {
        let bad = |reason: &str| RunError::Invalid {
            what: "--publish",
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let (ports, proto) = value.split_once('/').unwrap_or((value, "tcp"));
        if proto != "tcp" && proto != "udp" {
            return Err(bad("the protocol must be tcp or udp"));
        }
        let (host, guest) = ports
            .split_once(':')
            .ok_or_else(|| bad("expected HOST:GUEST"))?;
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
        Ok(Publish {
            host: port(host).ok_or_else(|| bad("bad host port"))?,
            guest: port(guest).ok_or_else(|| bad("bad guest port"))?,
            proto: proto.to_owned(),
        })
    }
}

/// `--networking`: how the guest's network card is connected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Networking {
    /// qemu's user-mode network (`default` too): NAT, `--publish` works.
    #[default]
    User,
    /// No network card.
    None,
    /// An existing tap interface (`tap,IF`).
    Tap(String),
    /// An existing bridge, through qemu's bridge helper (`bridge,BR`).
    Bridge(String),
}

impl Networking {
    /// Parse `user`, `default`, `none`, `tap,IF` or `bridge,BR`.
    pub fn parse(value: &str) -> Result<Networking, RunError> {
        let bad = |reason: &str| RunError::Invalid {
            what: "--networking",
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let (mode, name) = match value.split_once(',') {
            Some((mode, name)) => (mode, Some(name)),
            None => (value, None),
        };
        let name = |kind: &str| match name {
            Some(n) if !n.is_empty() && !n.contains(',') => Ok(n.to_owned()),
            _ => Err(bad(&format!("{kind} needs an interface name: {kind},NAME"))),
        };
        match mode {
            "" | "user" | "default" if name("x").is_err() => Ok(Networking::User),
            "none" if name("x").is_err() => Ok(Networking::None),
            "tap" => Ok(Networking::Tap(name("tap")?)),
            "bridge" => Ok(Networking::Bridge(name("bridge")?)),
            _ => Err(bad("expected user, none, tap,IF or bridge,BR")),
        }
    }
}

/// The qemu binary for a machine of `arch`: the machine set up here (q35,
/// the ISA serial console, pvpanic) is x86's, so other architectures are
/// refused rather than started with the wrong machine.
pub fn qemu_for(arch: Arch) -> Result<&'static str, RunError> {
    match arch {
        Arch::Amd64 => Ok("qemu-system-x86_64"),
        Arch::Arm64 | Arch::Riscv64 | Arch::S390x => Err(RunError::ForeignArch { arch }),
    }
}

/// How to run the machine.
#[derive(Clone, Debug)]
pub struct Options {
    /// The qemu binary.
    pub qemu: PathBuf,
    /// The accelerator.
    pub accel: Accel,
    /// vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub mem_mb: u32,
    /// UEFI firmware (`--uefi`, `--fw`); `None`: qemu's SeaBIOS.
    pub firmware: Option<PathBuf>,
    /// Disks after the boot disk, created when missing.
    pub disks: Vec<Disk>,
    /// How the network card is connected.
    pub networking: Networking,
    /// Ports forwarded from the host over user networking.
    pub publish: Vec<Publish>,
    /// Extra `-device` values.
    pub devices: Vec<String>,
    /// `--data`: the contents of `config` on a small ISO attached as a CD.
    pub data: Option<Vec<u8>>,
    /// Also write the console here (detached: only here, default
    /// `<state>/console.log`).
    pub console_file: Option<PathBuf>,
    /// Where the QMP socket, pid file and machine files go.
    pub state_dir: PathBuf,
    /// Appended to the kernel command line.
    pub extra_cmdline: Vec<String>,
    /// Copy the console to our stdout.
    pub echo: bool,
    /// Kill the machine after this long.
    pub timeout: Option<Duration>,
    /// After a first interrupt, how long the guest gets to power off
    /// before it is killed.
    pub grace: Duration,
    /// The network card's MAC address (qemu picks one when `None`).
    pub mac: Option<String>,
    /// Start qemu in the background and return (`--detached`).
    pub detached: bool,
}

impl Options {
    /// Defaults: `qemu-system-x86_64`, detected accelerator, 1 CPU, 1024 MiB,
    /// SeaBIOS, user networking, a 30 s grace.
    pub fn new(state_dir: PathBuf) -> Options {
        Options {
            qemu: PathBuf::from("qemu-system-x86_64"),
            accel: Accel::detect(),
            cpus: 1,
            mem_mb: 1024,
            firmware: None,
            disks: Vec::new(),
            networking: Networking::User,
            publish: Vec::new(),
            devices: Vec::new(),
            data: None,
            console_file: None,
            state_dir,
            extra_cmdline: Vec::new(),
            echo: true,
            timeout: None,
            grace: Duration::from_secs(30),
            mac: None,
            detached: false,
        }
    }

    /// qemu's monitor socket (QMP).
    pub fn qmp_socket(&self) -> PathBuf {
        self.state_dir.join("qmp.sock")
    }

    /// qemu's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.state_dir.join("qemu.pid")
    }

    /// Where a detached machine's console goes.
    pub fn detached_console(&self) -> PathBuf {
        self.console_file
            .clone()
            .unwrap_or_else(|| self.state_dir.join("console.log"))
    }

    /// Refuse combinations qemu would refuse less clearly.
    pub fn check(&self, boot: &Boot) -> Result<(), RunError> {
        if !self.extra_cmdline.is_empty()
            && !matches!(boot, Boot::Kernel { .. } | Boot::KernelRoot { .. })
        {
            return Err(RunError::Invalid {
                what: "--append",
                value: self.extra_cmdline.join(" "),
                reason: format!(
                    "only a kernel boot takes a command line; {} carries its own",
                    crate::qemu::describe(boot)
                ),
            });
        }
        if !self.publish.is_empty() && self.networking != Networking::User {
            return Err(RunError::Invalid {
                what: "--publish",
                value: self
                    .publish
                    .iter()
                    .map(|p| format!("{}:{}/{}", p.host, p.guest, p.proto))
                    .collect::<Vec<_>>()
                    .join(" "),
                reason: "ports are published over user networking only (--networking user)".into(),
            });
        }
        if let Some(fw) = &self.firmware
            && !fw.is_file()
        {
            return Err(RunError::Firmware {
                path: fw.display().to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        assert_eq!(
            Publish::parse("8080:80").unwrap(),
            Publish {
                host: 8080,
                guest: 80,
                proto: "tcp".into()
            }
        );
        assert_eq!(Publish::parse("53:53/udp").unwrap().proto, "udp");
        assert!(Publish::parse("80").is_err());
        assert!(Publish::parse("1:2/sctp").is_err());
        let disk = Disk::parse("file=/d.img,size=2G,format=raw").unwrap();
        assert_eq!(disk.path, Some(PathBuf::from("/d.img")));
        assert_eq!(disk.size, 2 << 30);
        assert_eq!(disk.format.as_deref(), Some("raw"));
        let disk = Disk::parse("/x.qcow2").unwrap();
        assert_eq!((disk.format, disk.size), (None, 1 << 30));
        assert_eq!(Disk::parse("d,size=16M").unwrap().size, 16 << 20);
        assert_eq!(Disk::parse("d,size=3").unwrap().size, 3 << 30);
        assert!(Disk::parse("d,size=1K").is_err());
        assert!(Disk::parse("d,color=red").is_err());
        assert!(Disk::parse("").is_err());
        // A size alone: a new disk in the state directory, numbered as LinuxKit.
        let state = Path::new("/state");
        let new = Disk::parse("size=1G").unwrap();
        assert_eq!(new.file(state, 0), state.join("disk.img"));
        assert_eq!(new.file(state, 2), state.join("disk2.img"));
        assert_eq!(Accel::parse("tcg").unwrap(), Accel::Tcg);
        assert!(Accel::parse("hvf").is_err());
    }

    #[test]
    fn networking_modes() {
        assert_eq!(Networking::parse("user").unwrap(), Networking::User);
        assert_eq!(Networking::parse("default").unwrap(), Networking::User);
        assert_eq!(Networking::parse("none").unwrap(), Networking::None);
        assert_eq!(
            Networking::parse("tap,tap0").unwrap(),
            Networking::Tap("tap0".into())
        );
        assert_eq!(
            Networking::parse("bridge,br0").unwrap(),
            Networking::Bridge("br0".into())
        );
        for bad in ["tap", "bridge,", "vde", "none,x", "tap,a,b"] {
            assert!(Networking::parse(bad).is_err(), "{bad}");
        }
        let mut options = Options::new("/s".into());
        options.networking = Networking::None;
        options.publish.push(Publish::parse("1:2").unwrap());
        let boot = Boot::Kernel {
            kernel: "k".into(),
            initrd: "i".into(),
            cmdline: String::new(),
        };
        let err = options.check(&boot).unwrap_err().to_string();
        assert!(err.contains("user networking only"), "{err}");
    }

    #[test]
    fn only_amd64_machines_are_started() {
        assert_eq!(qemu_for(Arch::Amd64).unwrap(), "qemu-system-x86_64");
        for arch in [Arch::Arm64, Arch::Riscv64, Arch::S390x] {
            let err = qemu_for(arch).unwrap_err().to_string();
            assert!(
                err.contains(&format!("not {arch}: build for --arch amd64")),
                "{err}"
            );
        }
    }
}
