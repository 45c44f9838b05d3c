//! `slipway run [qemu] PATH`: boot an image under qemu, as `linuxkit run qemu`.
//!
//! PATH is a kernel+initrd prefix (`<prefix>-kernel`, `-initrd.img`,
//! `-cmdline`), an ISO, or a raw or qcow2 disk image. The exit status is 0
//! after a clean poweroff, 1 when the guest panicked, its init reported a
//! failure, qemu failed or the timeout passed. Ctrl-C asks the guest to
//! power off (the ACPI power button), waits, then kills the machine. At the
//! end the boot timeline's summary goes to standard error. The machine is
//! `--arch`'s; run boots amd64 machines and refuses others.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use slipway_run::{Accel, Boot, Disk, Options, Publish};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::context::arch;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// `[qemu] PATH`: the hypervisor (only `qemu`) and what to boot
    #[arg(required = true, num_args = 1..=2, value_name = "PATH")]
    pub target: Vec<String>,

    /// Accelerator: kvm, tcg, or auto (KVM where it works, else TCG)
    #[arg(long, default_value = "auto", value_name = "ACCEL")]
    pub accel: String,

    /// Number of vCPUs
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub cpus: u32,

    /// Memory in MiB
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub mem: u32,

    /// A disk: `[file=]PATH[,size=N][,format=qcow2|raw]`, created when missing (repeatable)
    #[arg(long, value_name = "DISK")]
    pub disk: Vec<String>,

    /// Forward a host port to the guest: `HOST:GUEST[/tcp|udp]` (repeatable)
    #[arg(long, value_name = "PORTS")]
    pub publish: Vec<String>,

    /// Also write the serial console to this file
    #[arg(long = "console-file", value_name = "FILE")]
    pub console_file: Option<PathBuf>,

    /// Where the machine's state goes (QMP socket, pid file, MAC address) [default: <prefix>-state]
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Append to the kernel command line (repeatable)
    #[arg(long, value_name = "ARG")]
    pub append: Vec<String>,

    /// The qemu binary [default: qemu-system-x86_64 for amd64, the only --arch run boots]
    #[arg(long, value_name = "PROGRAM")]
    pub qemu: Option<PathBuf>,

    /// Kill the machine after this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Seconds the guest gets to power off after Ctrl-C before it is killed
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub grace: u64,

    /// Save the guest's boot timeline as JSON (as the guest's /run/slipway/timeline.json)
    #[arg(long, value_name = "FILE.json")]
    pub timeline: Option<PathBuf>,

    /// Draw the boot timeline as an SVG chart
    #[arg(long = "boot-chart", value_name = "FILE.svg")]
    pub boot_chart: Option<PathBuf>,
}

pub fn run(args: &RunArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // Before anything starts a thread: Ctrl-C and SIGTERM become a flag.
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
    let boot = Boot::detect(&path)?;
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| slipway_run::default_state_dir(&boot, &path));
    let mut options = Options::new(state.clone());
    options.qemu = args.qemu.clone().unwrap_or_else(|| PathBuf::from(qemu));
    options.accel = Accel::parse(&args.accel)?;
    options.cpus = args.cpus;
    options.mem_mb = args.mem;
    options.disks = args
        .disk
        .iter()
        .map(|d| Disk::parse(d))
        .collect::<Result<_, _>>()?;
    options.publish = args
        .publish
        .iter()
        .map(|p| Publish::parse(p))
        .collect::<Result<_, _>>()?;
    options.console_file = args.console_file.clone();
    options.extra_cmdline = args.append.clone();
    options.timeout = args.timeout.map(Duration::from_secs);
    options.mac = Some(slipway_run::persistent_mac(&state)?);
    let outcome = slipway_run::run(&boot, &options, &interrupt, Duration::from_secs(args.grace))
        .with_context(|| format!("running {}", path.display()))?;
    // The chart is titled with the output's name, not the directory it
    // happens to be in, as `slipway timeline` titles a saved one.
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    crate::commands::timeline::save(
        &outcome.timeline(),
        args.timeline.as_deref(),
        args.boot_chart.as_deref(),
        &name,
    )?;
    if !global.quiet
        && let Some(summary) = slipway_layout::timeline::Summary::of(&outcome.timeline())
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
    } else if outcome.panicked {
        "the guest kernel panicked".to_owned()
    } else if let Some(failure) = &outcome.init_failure {
        format!("the guest's init failed: {failure}")
    } else {
        match outcome.status {
            Some(status) => format!("qemu exited with {status}"),
            None => "the machine did not power off in time and was killed".to_owned(),
        }
    };
    eprintln!("slipway: run: {why}");
    Ok(Outcome::Failure)
}
