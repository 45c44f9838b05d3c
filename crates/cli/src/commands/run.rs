//! `slipway run [qemu] PATH`: boot an image under qemu, as `linuxkit run qemu`.
//!
//! PATH is whatever `slipway build` writes: a kernel+initrd or
//! kernel+squashfs/erofs/iso prefix, an ISO, a raw, qcow2, VHD or VMDK
//! disk, a GCP image or a UKI; its kind comes from its bytes, and anything
//! else is refused with what it is (docs/run.md). The exit status is 0
//! after a clean poweroff, 1 when the guest panicked, its init reported a
//! failure, qemu failed, the timeout passed or the machine was stopped.
//! Ctrl-C or SIGTERM asks the guest to power off (the ACPI power button),
//! waits `--grace`, then kills the machine; a second one kills it at once.
//! qemu never outlives `slipway run`, except with `--detached`. The
//! machine's control channel is served on `<state>/control.sock` while it
//! runs (by a process of its own for a detached machine), for `slipway
//! ctl`. At the end the boot timeline's summary goes to standard error. The
//! machine is `--arch`'s; run boots amd64 machines and refuses others.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use slipway_run::{
    Accel, Boot, DEFAULT_FIRMWARE, Disk, Firmware, Hint, Networking, Options, Publish,
};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::context::arch;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// `[qemu] PATH`: the hypervisor (only `qemu`) and what to boot
    #[arg(required = true, num_args = 1..=2, value_name = "PATH")]
    pub target: Vec<String>,

    /// Boot with UEFI firmware (OVMF); implied for a UKI, an EFI-only ISO
    /// and a disk without BIOS boot code
    #[arg(long)]
    pub uefi: bool,

    /// The UEFI firmware: a single-file OVMF, or a `..._CODE...fd` with its
    /// `..._VARS...fd` beside it
    #[arg(long, value_name = "PATH", default_value = DEFAULT_FIRMWARE)]
    pub fw: PathBuf,

    /// PATH is an ISO image (checked against its bytes)
    #[arg(long, conflicts_with_all = ["kernel", "squashfs"])]
    pub iso: bool,

    /// PATH is a kernel+initrd prefix (PATH-kernel, PATH-initrd.img, PATH-cmdline)
    #[arg(long, conflicts_with = "squashfs")]
    pub kernel: bool,

    /// PATH is a kernel+squashfs prefix (PATH-kernel, PATH-squashfs.img)
    #[arg(long)]
    pub squashfs: bool,

    /// Accelerator: kvm, tcg, or auto (KVM where it works, else TCG)
    #[arg(long, default_value = "auto", value_name = "ACCEL")]
    pub accel: String,

    /// Number of vCPUs
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub cpus: u32,

    /// Memory in MiB
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub mem: u32,

    /// A disk: `[file=]PATH[,size=N[M|G]][,format=F]`, created when missing;
    /// without a path, `disk.img`, `disk1.img`... in the state directory (repeatable)
    #[arg(long, value_name = "DISK")]
    pub disk: Vec<String>,

    /// Metadata for the guest: the file `config` on a small ISO attached as a CD
    #[arg(long, value_name = "STRING", conflicts_with = "data_file")]
    pub data: Option<String>,

    /// Metadata for the guest, read from FILE (as --data)
    #[arg(long = "data-file", value_name = "FILE")]
    pub data_file: Option<PathBuf>,

    /// Networking: user, none, tap,IF or bridge,BR
    #[arg(long, default_value = "user", value_name = "MODE")]
    pub networking: String,

    /// Forward a host port to the guest: `HOST:GUEST[/tcp|udp]` (repeatable; user networking)
    #[arg(long, value_name = "PORTS")]
    pub publish: Vec<String>,

    /// An extra qemu `-device` (repeatable)
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,

    /// Also write the serial console to this file (with --detached: only there)
    #[arg(long = "console-file", value_name = "FILE")]
    pub console_file: Option<PathBuf>,

    /// Where the machine's state goes (QMP socket, pid file, MAC address) [default: <prefix>-state]
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Append to the kernel command line of a kernel boot (repeatable)
    #[arg(long, value_name = "ARG")]
    pub append: Vec<String>,

    /// The qemu binary [default: qemu-system-x86_64 for amd64, the only --arch run boots]
    #[arg(long, value_name = "PROGRAM")]
    pub qemu: Option<PathBuf>,

    /// Start the machine in the background and return; stop it with
    /// `kill $(cat STATE/qemu.pid)` (see docs/run.md)
    #[arg(long, conflicts_with = "timeout")]
    pub detached: bool,

    /// Kill the machine after this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Seconds the guest gets to power off after Ctrl-C or SIGTERM before it is killed
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub grace: u64,

    /// Save the guest's boot timeline as JSON (as the guest's /run/slipway/timeline.json)
    #[arg(long, value_name = "FILE.json")]
    pub timeline: Option<PathBuf>,

    /// Draw the boot timeline as an SVG chart
    #[arg(long = "boot-chart", value_name = "FILE.svg")]
    pub boot_chart: Option<PathBuf>,
}

impl RunArgs {
    fn hint(&self) -> Hint {
        if self.iso {
            Hint::Iso
        } else if self.kernel {
            Hint::Kernel
        } else if self.squashfs {
            Hint::Squashfs
        } else {
            Hint::Auto
        }
    }

    fn data(&self) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(text) = &self.data {
            return Ok(Some(text.clone().into_bytes()));
        }
        match &self.data_file {
            Some(file) => {
                Ok(Some(std::fs::read(file).with_context(|| {
                    format!("reading --data-file {}", file.display())
                })?))
            }
            None => Ok(None),
        }
    }
}

pub fn run(args: &RunArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // Before anything starts a thread: Ctrl-C and SIGTERM are counted.
    let interrupt = slipway_run::interrupt_on_signals()?;
    let path = match args.target.as_slice() {
        [path] => path,
        [hypervisor, path] if hypervisor == "qemu" => path,
        [hypervisor, _] => bail!("unknown hypervisor {hypervisor:?}: slipway runs qemu"),
        _ => bail!("expected [qemu] PATH"),
    };
    // The machine follows --arch: one run cannot boot is refused before
    // anything starts.
    let qemu = slipway_run::qemu_for(arch(global)?)?;
    let path = PathBuf::from(path);
    let boot = Boot::detect_as(&path, args.hint())?;
    let firmware = boot.firmware(args.uefi)?;
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| slipway_run::default_state_dir(&boot, &path));
    let mut options = Options::new(state.clone());
    options.qemu = args.qemu.clone().unwrap_or_else(|| PathBuf::from(qemu));
    options.accel = Accel::parse(&args.accel)?;
    options.cpus = args.cpus;
    options.mem_mb = args.mem;
    if firmware == Firmware::Uefi {
        if !args.uefi && !global.quiet {
            eprintln!(
                "slipway: run: {} boots with UEFI: using {}",
                slipway_run::qemu::describe(&boot),
                args.fw.display()
            );
        }
        options.firmware = Some(args.fw.clone());
    }
    options.disks = args
        .disk
        .iter()
        .map(|d| Disk::parse(d))
        .collect::<Result<_, _>>()?;
    options.networking = Networking::parse(&args.networking)?;
    options.publish = args
        .publish
        .iter()
        .map(|p| Publish::parse(p))
        .collect::<Result<_, _>>()?;
    options.devices = args.device.clone();
    options.data = args.data()?;
    options.console_file = args.console_file.clone();
    options.extra_cmdline = args.append.clone();
    options.timeout = args.timeout.map(Duration::from_secs);
    options.grace = Duration::from_secs(args.grace);
    // Checked before the state directory is made.
    options.check(&boot)?;
    options.mac = Some(slipway_run::persistent_mac(&state)?);
    if args.detached {
        let machine = slipway_run::start_detached(&boot, &options)
            .with_context(|| format!("starting {}", path.display()))?;
        // The control bridge outlives this process, as qemu does.
        let program = std::env::current_exe().context("finding the slipway binary")?;
        let bridge_args = [
            "control-bridge".to_owned(),
            "--state".to_owned(),
            state.display().to_string(),
            "--qemu-pid".to_owned(),
            machine.pid.to_string(),
        ];
        let bridge = slipway_run::control::spawn_detached_bridge(&program, &bridge_args, &state);
        let bridge = match bridge {
            Ok(pid) => pid,
            Err(e) => {
                // No machine without its control channel: stop it. (Never
                // pid 0, which would be our own process group.)
                if let Ok(pid) = i32::try_from(machine.pid)
                    && pid > 0
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return Err(e).context("starting the machine's control bridge");
            }
        };
        if !global.quiet {
            eprintln!(
                "slipway: run: {} runs in the background: qemu pid {} ({}), console in {}",
                slipway_run::qemu::describe(&boot),
                machine.pid,
                machine.pid_file.display(),
                machine.console.display()
            );
            eprintln!(
                "slipway: run: stop it with `slipway ctl --state {} poweroff` or `kill $(cat {})`; QMP {} takes system_powerdown",
                state.display(),
                machine.pid_file.display(),
                machine.qmp.display()
            );
            eprintln!(
                "slipway: run: control bridge pid {bridge} on {}",
                slipway_run::control::socket_path(&state).display()
            );
        }
        return Ok(Outcome::Success);
    }
    let outcome = slipway_run::run(&boot, &options, &interrupt)
        .with_context(|| format!("running {}", path.display()))?;
    // The chart is titled with the output's name, not the directory it
    // happens to be in, as `slipway timeline` titles a saved one.
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    crate::timeline_files::save(
        &outcome.timeline(),
        args.timeline.as_deref(),
        args.boot_chart.as_deref(),
        &name,
    )?;
    if !global.quiet
        && let Some(summary) = slipway_contract::timeline::Summary::of(&outcome.timeline())
    {
        eprintln!("slipway: run: boot timeline (guest clock):");
        for line in summary.to_string().lines() {
            eprintln!("  {line}");
        }
    }
    if outcome.success() {
        return Ok(Outcome::Success);
    }
    let why = if outcome.timed_out {
        "the timeout passed; the machine was killed".to_owned()
    } else if outcome.stopped {
        "stopped at once by a second interrupt".to_owned()
    } else if outcome.panicked {
        "the guest kernel panicked".to_owned()
    } else if let Some(failure) = &outcome.init_failure {
        format!("the guest's init failed: {failure}")
    } else if let Some(why) = &outcome.initramfs_failure {
        format!(
            "the kernel could not unpack all of the initramfs ({why}), so the machine ran without some of its files{}",
            if why.contains("write error") {
                format!(
                    ": it does not fit in {} MiB of memory; give the machine more with --mem",
                    args.mem
                )
            } else {
                String::new()
            }
        )
    } else {
        match outcome.status {
            Some(status) => format!("qemu exited with {status}"),
            None => "the machine did not power off in time and was killed".to_owned(),
        }
    };
    eprintln!("slipway: run: {why}");
    Ok(Outcome::Failure)
}
