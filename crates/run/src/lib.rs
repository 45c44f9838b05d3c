//! Launching images: qemu first, as `linuxkit run qemu`.
//!
//! [`Boot::detect`] finds what a path names (a kernel+initrd prefix, an ISO,
//! a disk image), [`qemu_args`] turns it and the [`Options`] into a qemu
//! command line, and [`run`] boots it: the serial console is copied to the
//! caller and scanned for the init's timeline, a guest panic (pvpanic, or
//! the kernel's message) and an init-reported failure decide the outcome.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slipway_layout::timeline::{Entry, Event};
use slipway_reference::Arch;

/// Errors of `slipway run`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The path names nothing bootable.
    #[error("{0}: not a kernel+initrd prefix (no {0}-kernel), an ISO or a disk image")]
    NotBootable(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A command-line value is malformed.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which option.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The machine's architecture is one `run` does not set up.
    #[error(
        "slipway run boots amd64 machines (qemu-system-x86_64, q35), not {arch}: build for --arch amd64, or boot the {arch} image with qemu-system-{} by hand",
        arch.as_uname()
    )]
    ForeignArch {
        /// The architecture asked for.
        arch: Arch,
    },
    /// qemu-img failed.
    #[error("qemu-img create {path} failed: {status}")]
    QemuImg {
        /// The disk.
        path: String,
        /// Its exit status.
        status: ExitStatus,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

/// What to boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// `<prefix>-kernel`, `<prefix>-initrd.img`, `<prefix>-cmdline`.
    Kernel {
        /// The kernel.
        kernel: PathBuf,
        /// The initramfs.
        initrd: PathBuf,
        /// The kernel command line.
        cmdline: String,
    },
    /// An ISO image, as a CD-ROM.
    Iso(PathBuf),
    /// A raw or qcow2 disk image.
    Disk(PathBuf),
}

impl Boot {
    /// What `path` names, as `linuxkit run qemu` decides it.
    pub fn detect(path: &Path) -> Result<Boot, RunError> {
        let text = path.to_string_lossy().into_owned();
        let kernel = PathBuf::from(format!("{text}-kernel"));
        if !path.is_file() && kernel.is_file() {
            let cmdline = fs::read_to_string(format!("{text}-cmdline"))
                .map(|c| c.trim().to_owned())
                .unwrap_or_else(|_| "console=ttyS0".to_owned());
            return Ok(Boot::Kernel {
                kernel,
                initrd: PathBuf::from(format!("{text}-initrd.img")),
                cmdline,
            });
        }
        if path.is_file() {
            if text.ends_with(".iso") {
                return Ok(Boot::Iso(path.to_path_buf()));
            }
            return Ok(Boot::Disk(path.to_path_buf()));
        }
        Err(RunError::NotBootable(text))
    }
}

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
    /// is a nested hypervisor that hangs guests (test-environment.md §3).
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

/// `--disk [file=]PATH[,size=N[M|G]][,format=F]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// The image file.
    pub path: PathBuf,
    /// Size for a new image (qemu-img syntax), default `1G`.
    pub size: String,
    /// `qcow2` (default) or `raw`.
    pub format: String,
}

impl Disk {
    /// Parse the `--disk` syntax.
    pub fn parse(value: &str) -> Result<Disk, RunError> {
        let mut disk = Disk {
            path: PathBuf::new(),
            size: "1G".into(),
            format: "qcow2".into(),
        };
        for (i, part) in value.split(',').enumerate() {
            match part.split_once('=') {
                Some(("file", p)) => disk.path = PathBuf::from(p),
                Some(("size", s)) => disk.size = s.to_owned(),
                Some(("format", f)) => disk.format = f.to_owned(),
                None if i == 0 => disk.path = PathBuf::from(part),
                _ => {
                    return Err(RunError::Invalid {
                        what: "--disk",
                        value: value.to_owned(),
                        reason: format!(
                            "unknown part {part:?}; expected [file=]PATH[,size=N][,format=F]"
                        ),
                    });
                }
            }
        }
        if disk.path.as_os_str().is_empty() {
            return Err(RunError::Invalid {
                what: "--disk",
                value: value.to_owned(),
                reason: "no path".into(),
            });
        }
        Ok(disk)
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
    /// Disks, created when missing.
    pub disks: Vec<Disk>,
    /// Ports forwarded from the host over user networking.
    pub publish: Vec<Publish>,
    /// Also write the console here.
    pub console_file: Option<PathBuf>,
    /// Where the QMP socket and pid file go.
    pub state_dir: PathBuf,
    /// Appended to the kernel command line.
    pub extra_cmdline: Vec<String>,
    /// Copy the console to our stdout.
    pub echo: bool,
    /// Kill the machine after this long.
    pub timeout: Option<Duration>,
    /// The network card's MAC address (qemu picks one when `None`).
    pub mac: Option<String>,
}

impl Options {
    /// Defaults: `qemu-system-x86_64`, detected accelerator, 1 CPU, 1024 MiB.
    pub fn new(state_dir: PathBuf) -> Options {
        Options {
            qemu: PathBuf::from("qemu-system-x86_64"),
            accel: Accel::detect(),
            cpus: 1,
            mem_mb: 1024,
            disks: Vec::new(),
            publish: Vec::new(),
            console_file: None,
            state_dir,
            extra_cmdline: Vec::new(),
            echo: true,
            timeout: None,
            mac: None,
        }
    }

    fn qmp_socket(&self) -> PathBuf {
        self.state_dir.join("qmp.sock")
    }
}

/// The state directory LinuxKit uses for `path`: `<prefix>-state`, where
/// the prefix is a kernel+initrd prefix as given, or a file's path without
/// its extension.
pub fn default_state_dir(boot: &Boot, path: &Path) -> PathBuf {
    let prefix = match boot {
        Boot::Kernel { .. } => path.to_path_buf(),
        Boot::Iso(_) | Boot::Disk(_) => path.with_extension(""),
    };
    let mut text = prefix.into_os_string();
    text.push("-state");
    PathBuf::from(text)
}

/// The MAC address kept in `<state>/mac-addr`, made (locally administered,
/// unicast, random) and written there on the first run, so a machine keeps
/// its address, and with it its DHCP lease and hostname, across boots.
pub fn persistent_mac(state_dir: &Path) -> Result<String, RunError> {
    let file = state_dir.join("mac-addr");
    if let Ok(text) = fs::read_to_string(&file) {
        let mac = text.trim();
        if valid_mac(mac) {
            return Ok(mac.to_owned());
        }
    }
    fs::create_dir_all(state_dir).map_err(io(format!("creating {}", state_dir.display())))?;
    let mut bytes = [0u8; 6];
    let mut random =
        fs::File::open("/dev/urandom").map_err(io("opening /dev/urandom for a MAC address"))?;
    std::io::Read::read_exact(&mut random, &mut bytes)
        .map_err(io("reading /dev/urandom for a MAC address"))?;
    // Locally administered (bit 1), unicast (bit 0 clear).
    bytes[0] = (bytes[0] | 0x02) & 0xfe;
    let mac = bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let tmp = state_dir.join("mac-addr.tmp");
    fs::write(&tmp, format!("{mac}\n")).map_err(io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, &file).map_err(io(format!("writing {}", file.display())))?;
    Ok(mac)
}

fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A flag set when the process receives SIGINT (Ctrl-C) or SIGTERM, for
/// [`run`]'s `interrupt`. The signals are blocked and taken by a thread
/// with `sigwait`, so no handler runs in signal context; call this before
/// starting other threads, since only the calling thread's mask (and that
/// of threads it starts later) changes. Processes started with
/// `std::process::Command` get an empty signal mask again.
pub fn interrupt_on_signals() -> Result<Arc<AtomicBool>, RunError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().map_err(|e| RunError::Io {
        what: "blocking SIGINT and SIGTERM".into(),
        source: std::io::Error::from(e),
    })?;
    let flag = Arc::new(AtomicBool::new(false));
    let set_flag = Arc::clone(&flag);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while set.wait().is_ok() {
                set_flag.store(true, Ordering::SeqCst);
            }
        })
        .map_err(io("starting the signal thread"))?;
    Ok(flag)
}

/// The qemu command line (without the program).
pub fn qemu_args(boot: &Boot, options: &Options) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));
    let accel = match options.accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    push(&["-machine", &format!("q35,accel={accel}")]);
    if options.accel == Accel::Kvm {
        push(&["-cpu", "host"]);
    }
    push(&[
        "-smp",
        &options.cpus.to_string(),
        "-m",
        &options.mem_mb.to_string(),
    ]);
    push(&[
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
    ]);
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", options.qmp_socket().display()),
        "-pidfile",
        &options.state_dir.join("qemu.pid").to_string_lossy(),
    ]);
    // A guest panic ends qemu with a failure status.
    push(&["-device", "pvpanic-pci", "-action", "panic=exit-failure"]);
    push(&[
        "-object",
        "rng-random,id=rng0,filename=/dev/urandom",
        "-device",
        "virtio-rng-pci,rng=rng0",
    ]);
    let mut netdev = "user,id=net0".to_owned();
    for p in &options.publish {
        netdev.push_str(&format!(
            ",hostfwd={}:127.0.0.1:{}-:{}",
            p.proto, p.host, p.guest
        ));
    }
    let mut nic = "virtio-net-pci,netdev=net0".to_owned();
    if let Some(mac) = &options.mac {
        nic.push_str(&format!(",mac={mac}"));
    }
    push(&["-netdev", &netdev, "-device", &nic]);
    match boot {
        Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            let mut cmdline = cmdline.clone();
            for extra in &options.extra_cmdline {
                cmdline.push(' ');
                cmdline.push_str(extra);
            }
            push(&[
                "-kernel",
                &kernel.to_string_lossy(),
                "-initrd",
                &initrd.to_string_lossy(),
                "-append",
                &cmdline,
            ]);
        }
        Boot::Iso(path) => push(&["-cdrom", &path.to_string_lossy(), "-boot", "d"]),
        Boot::Disk(path) => {
            let format = if path.extension().is_some_and(|e| e == "qcow2") {
                "qcow2"
            } else {
                "raw"
            };
            push(&[
                "-drive",
                &format!("file={},format={format},if=virtio", path.display()),
            ]);
        }
    }
    for disk in &options.disks {
        push(&[
            "-drive",
            &format!(
                "file={},format={},if=virtio",
                disk.path.display(),
                disk.format
            ),
        ]);
    }
    args
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// qemu's exit status (`None` when it had to be killed).
    pub status: Option<ExitStatus>,
    /// The guest panicked (pvpanic, or the kernel said so on the console).
    pub panicked: bool,
    /// The init reported a fatal error (its `fatal` timeline line).
    pub init_failure: Option<String>,
    /// The timeout passed and the machine was killed.
    pub timed_out: bool,
    /// Everything the console printed.
    pub console: String,
}

impl Outcome {
    /// A clean run: qemu exited 0 with no panic and no init failure.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
            && !self.panicked
            && self.init_failure.is_none()
            && !self.timed_out
    }

    /// The boot timeline printed on the console.
    pub fn timeline(&self) -> Vec<Entry> {
        slipway_layout::timeline::parse_transcript(&self.console)
    }
}

/// Create the disks that do not exist yet, with `qemu-img`.
pub fn create_disks(disks: &[Disk]) -> Result<(), RunError> {
    for disk in disks {
        if disk.path.exists() {
            continue;
        }
        let status = Command::new("qemu-img")
            .args(["create", "-q", "-f", &disk.format])
            .arg(&disk.path)
            .arg(&disk.size)
            .status()
            .map_err(io("running qemu-img"))?;
        if !status.success() {
            return Err(RunError::QemuImg {
                path: disk.path.display().to_string(),
                status,
            });
        }
    }
    Ok(())
}

/// Ask the guest to power off: the ACPI power button, through QMP.
pub fn powerdown(qmp: &Path) -> std::io::Result<()> {
    let mut stream = UnixStream::connect(qmp)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?; // greeting
    stream.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    stream.write_all(b"{\"execute\":\"system_powerdown\"}\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    Ok(())
}

/// Boot and wait for the machine to end. Setting `interrupt` asks the guest
/// to power off (ACPI), waits up to `grace`, then kills qemu.
#[allow(
    clippy::disallowed_methods,
    reason = "the machine's timeout and the grace it gets to power off"
)]
pub fn run(
    boot: &Boot,
    options: &Options,
    interrupt: &AtomicBool,
    grace: Duration,
) -> Result<Outcome, RunError> {
    fs::create_dir_all(&options.state_dir)
        .map_err(io(format!("creating {}", options.state_dir.display())))?;
    create_disks(&options.disks)?;
    let mut console_file = match &options.console_file {
        Some(path) => {
            Some(fs::File::create(path).map_err(io(format!("creating {}", path.display())))?)
        }
        None => None,
    };
    let mut child: Child = Command::new(&options.qemu)
        .args(qemu_args(boot, options))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group: a terminal's Ctrl-C reaches us, not qemu.
        .process_group(0)
        .spawn()
        .map_err(io(format!("starting {}", options.qemu.display())))?;
    let console = Arc::new(Mutex::new(String::new()));
    let reader = child.stdout.take().map(|stdout| {
        let console = Arc::clone(&console);
        let echo = options.echo;
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            let mut out: Vec<u8> = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line).into_owned();
                if echo {
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(text.as_bytes());
                    let _ = stdout.flush();
                }
                out.extend_from_slice(text.as_bytes());
                if let Ok(mut c) = console.lock() {
                    c.push_str(&text);
                }
            }
            out
        })
    });
    let start = Instant::now();
    let mut asked_at: Option<Instant> = None;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io("waiting for qemu"))? {
            break Some(status);
        }
        if interrupt.load(Ordering::SeqCst) && asked_at.is_none() {
            asked_at = Some(Instant::now());
            // If the monitor is gone, the kill below ends the machine.
            let _ = powerdown(&options.qmp_socket());
        }
        let over_grace = asked_at.is_some_and(|t| t.elapsed() > grace);
        let over_time = options.timeout.is_some_and(|t| start.elapsed() > t);
        if over_grace || over_time {
            timed_out = over_time;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let transcript = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    if let Some(file) = console_file.as_mut() {
        file.write_all(&transcript)
            .map_err(io("writing the console file"))?;
    }
    let console = String::from_utf8_lossy(&transcript).into_owned();
    let panicked = status.is_some_and(|s| !s.success()) && console.contains("Kernel panic")
        || console.contains("Kernel panic - not syncing");
    let init_failure = slipway_layout::timeline::parse_transcript(&console)
        .into_iter()
        .find(|e| e.event == Event::Fatal)
        .map(|e| e.detail.unwrap_or_default());
    Ok(Outcome {
        status,
        panicked,
        init_failure,
        timed_out,
        console,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_boot_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("img");
        fs::write(dir.path().join("img-kernel"), b"k").unwrap();
        fs::write(dir.path().join("img-cmdline"), b"console=ttyS0 quiet\n").unwrap();
        match Boot::detect(&prefix).unwrap() {
            Boot::Kernel {
                initrd, cmdline, ..
            } => {
                assert_eq!(initrd, dir.path().join("img-initrd.img"));
                assert_eq!(cmdline, "console=ttyS0 quiet");
            }
            other => panic!("{other:?}"),
        }
        let iso = dir.path().join("x.iso");
        fs::write(&iso, b"").unwrap();
        assert_eq!(Boot::detect(&iso).unwrap(), Boot::Iso(iso.clone()));
        let raw = dir.path().join("x.img");
        fs::write(&raw, b"").unwrap();
        assert_eq!(Boot::detect(&raw).unwrap(), Boot::Disk(raw));
        assert!(Boot::detect(&dir.path().join("nothing")).is_err());
    }

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
        assert_eq!(
            (
                disk.path.to_str().unwrap(),
                disk.size.as_str(),
                disk.format.as_str()
            ),
            ("/d.img", "2G", "raw")
        );
        assert_eq!(Disk::parse("/x.qcow2").unwrap().format, "qcow2");
        assert!(Disk::parse("size=1G").is_err());
        assert_eq!(Accel::parse("tcg").unwrap(), Accel::Tcg);
        assert!(Accel::parse("hvf").is_err());
    }

    #[test]
    fn state_dir_and_mac() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = Boot::Kernel {
            kernel: "k".into(),
            initrd: "i".into(),
            cmdline: String::new(),
        };
        assert_eq!(
            default_state_dir(&kernel, Path::new("out/img")),
            PathBuf::from("out/img-state")
        );
        assert_eq!(
            default_state_dir(&Boot::Disk("d.qcow2".into()), Path::new("out/d.qcow2")),
            PathBuf::from("out/d-state")
        );
        let state = dir.path().join("s");
        let mac = persistent_mac(&state).unwrap();
        assert!(valid_mac(&mac), "{mac}");
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 0x03, 0x02, "{mac}");
        assert_eq!(persistent_mac(&state).unwrap(), mac);
        let mut options = Options::new(state);
        options.mac = Some(mac.clone());
        let args = qemu_args(&kernel, &options).join(" ");
        assert!(
            args.contains(&format!("virtio-net-pci,netdev=net0,mac={mac}")),
            "{args}"
        );
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

    #[test]
    fn command_line() {
        let mut options = Options::new(PathBuf::from("/state"));
        options.accel = Accel::Tcg;
        options.publish.push(Publish::parse("8080:80").unwrap());
        options.extra_cmdline.push("slipway.runtime=runc".into());
        let boot = Boot::Kernel {
            kernel: "/k".into(),
            initrd: "/i".into(),
            cmdline: "console=ttyS0".into(),
        };
        let args = qemu_args(&boot, &options).join(" ");
        assert!(args.contains("-machine q35,accel=tcg"), "{args}");
        assert!(args.contains("hostfwd=tcp:127.0.0.1:8080-:80"), "{args}");
        assert!(
            args.contains("-append console=ttyS0 slipway.runtime=runc"),
            "{args}"
        );
        assert!(
            args.contains("-qmp unix:/state/qmp.sock,server=on,wait=off"),
            "{args}"
        );
        assert!(args.contains("panic=exit-failure"), "{args}");
    }
}
