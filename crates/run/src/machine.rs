//! Starting qemu and seeing it through: the console, interrupts, the
//! timeout, and never leaving qemu behind.
//!
//! * [`run`] keeps qemu in the foreground. A first interrupt (Ctrl-C,
//!   SIGTERM) presses the ACPI power button through QMP and waits
//!   [`Options::grace`] for the guest to power off; a second one kills qemu
//!   at once. qemu gets `PR_SET_PDEATHSIG` (SIGKILL), so it dies with
//!   `slipway run` even when that is killed with SIGKILL; an error or a
//!   panic on our side kills it too (a guard).
//! * [`start_detached`] starts qemu with `-daemonize` and returns once it
//!   runs: its pid is in `<state>/qemu.pid`, its console in
//!   `<state>/console.log`, and it outlives `slipway run`, which is the
//!   point.
//!
//! Both attach the guest's control port; [`run`] serves its bridge on
//! `<state>/control.sock` while the machine runs (a detached machine's
//! bridge is a process of its own: [`control::spawn_detached_bridge`]).

use std::fs;
use std::io::{self as stdio, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slipway_contract::timeline::{Entry, Event};

use crate::boot::Boot;
use crate::control::{self, BridgeThread};
use crate::options::Options;
use crate::qemu::qemu_args;
use crate::state::prepare;
use crate::{RunError, io};

/// Interrupt requests (Ctrl-C, SIGTERM) counted: the first asks the guest
/// to power off, the second stops the machine at once.
#[derive(Debug, Default)]
pub struct Interrupt {
    count: AtomicUsize,
}

impl Interrupt {
    /// No interrupt yet.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Count one more request.
    pub fn raise(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// How many requests came.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// Count SIGINT (Ctrl-C) and SIGTERM in an [`Interrupt`]. The signals are
/// blocked and taken by a thread with `sigwait`, so no handler runs in
/// signal context; call this before starting other threads, since only the
/// calling thread's mask (and that of threads it starts later) changes.
/// Processes started with `std::process::Command` get an empty signal mask
/// again.
pub fn interrupt_on_signals() -> Result<Arc<Interrupt>, RunError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().map_err(|e| RunError::Io {
        what: "blocking SIGINT and SIGTERM".into(),
        source: stdio::Error::from(e),
    })?;
    let interrupt = Arc::new(Interrupt::new());
    let raise = Arc::clone(&interrupt);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while set.wait().is_ok() {
                raise.raise();
            }
        })
        .map_err(io("starting the signal thread"))?;
    Ok(interrupt)
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
    /// The kernel could not unpack the whole initramfs (why, as it said):
    /// the machine booted without some of its files.
    pub initramfs_failure: Option<String>,
    /// The timeout passed and the machine was killed.
    pub timed_out: bool,
    /// A second interrupt came and the machine was killed at once.
    pub stopped: bool,
    /// Everything the console printed.
    pub console: String,
}

impl Outcome {
    /// A clean run: qemu exited 0 with no panic and no init failure.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
            && !self.panicked
            && self.init_failure.is_none()
            && self.initramfs_failure.is_none()
            && !self.timed_out
    }

    /// The boot timeline printed on the console.
    pub fn timeline(&self) -> Vec<Entry> {
        slipway_contract::timeline::parse_transcript(&self.console)
    }
}

/// Ask the guest to power off: the ACPI power button, through QMP.
pub fn powerdown(qmp: &Path) -> stdio::Result<()> {
    qmp_command(qmp, "system_powerdown")
}

fn qmp_command(qmp: &Path, command: &str) -> stdio::Result<()> {
    let mut stream = UnixStream::connect(qmp)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?; // greeting
    stream.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    stream.write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes())?;
    line.clear();
    reader.read_line(&mut line)?;
    Ok(())
}

/// Make `command`'s process get SIGKILL when the thread that spawns it
/// ends, so that qemu cannot outlive `slipway run`, even one killed with
/// SIGKILL.
///
/// Caveats: the signal follows the *thread* that forked, not the process
/// (prctl(2)): spawn from a thread that lives as long as the machine (the
/// main thread does). The closure runs between fork and exec in the child
/// of a multi-threaded process, where only async-signal-safe calls are
/// allowed: it makes two system calls and allocates nothing. A parent that
/// died before the prctl took effect is caught by comparing the parent
/// pid; the child then fails to start instead of running unsupervised.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use nix::errno::Errno;
    use nix::sys::signal::Signal;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure only calls prctl(PR_SET_PDEATHSIG) and getppid,
    // both plain system calls that are async-signal-safe; it touches no
    // lock and no allocator (an `io::Error` from an errno is not boxed).
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(stdio::Error::from)?;
            if nix::unistd::getppid() != parent {
                return Err(stdio::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
}

/// qemu, killed when dropped unless it has been waited for: no error path
/// of ours leaves a machine running.
struct Machine(Child);

impl Drop for Machine {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Boot and wait for the machine to end. The first `interrupt` asks the
/// guest to power off (ACPI) and waits up to `options.grace`; a second one,
/// or the end of the grace, kills qemu.
#[allow(
    clippy::disallowed_methods,
    reason = "the machine's timeout and the grace it gets to power off"
)]
pub fn run(boot: &Boot, options: &Options, interrupt: &Interrupt) -> Result<Outcome, RunError> {
    prepare(boot, options)?;
    let mut console_file = match &options.console_file {
        Some(path) => {
            Some(fs::File::create(path).map_err(io(format!("creating {}", path.display())))?)
        }
        None => None,
    };
    // Bound before qemu starts, so `slipway ctl` finds the machine as soon
    // as it runs; stopped, and its socket removed, when this returns.
    let state = &options.state_dir;
    let bridge = BridgeThread::start(&control::chardev_path(state), &control::socket_path(state))?;
    let mut command = Command::new(&options.qemu);
    command
        .args(qemu_args(boot, options))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group: a terminal's Ctrl-C reaches us, not qemu.
        .process_group(0);
    die_with_parent(&mut command);
    let mut machine = Machine(
        command
            .spawn()
            .map_err(io(format!("starting {}", options.qemu.display())))?,
    );
    let console = Arc::new(Mutex::new(String::new()));
    let reader = machine.0.stdout.take().map(|stdout| {
        let console = Arc::clone(&console);
        let echo = options.echo;
        std::thread::spawn(move || copy_console(stdout, echo, &console))
    });
    let start = Instant::now();
    let mut asked_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut stopped = false;
    let status = loop {
        if let Some(status) = machine.0.try_wait().map_err(io("waiting for qemu"))? {
            break Some(status);
        }
        let requests = interrupt.count();
        if requests >= 1 && asked_at.is_none() {
            asked_at = Some(Instant::now());
            // If the monitor is gone, the kill below ends the machine.
            let _ = powerdown(&options.qmp_socket());
        }
        let over_grace = asked_at.is_some_and(|t| t.elapsed() > options.grace);
        let over_time = options.timeout.is_some_and(|t| start.elapsed() > t);
        if requests >= 2 || over_grace || over_time {
            timed_out = over_time;
            stopped = requests >= 2;
            let _ = machine.0.kill();
            let _ = machine.0.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(bridge);
    let _ = fs::remove_file(control::chardev_path(state));
    let transcript = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    if let Some(file) = console_file.as_mut() {
        file.write_all(&transcript)
            .map_err(io("writing the console file"))?;
    }
    let console = String::from_utf8_lossy(&transcript).into_owned();
    let panicked = status.is_some_and(|s| !s.success()) && console.contains("Kernel panic")
        || console.contains("Kernel panic - not syncing");
    let init_failure = slipway_contract::timeline::parse_transcript(&console)
        .into_iter()
        .find(|e| e.event == Event::Fatal)
        .map(|e| e.detail.unwrap_or_default());
    Ok(Outcome {
        status,
        panicked,
        init_failure,
        initramfs_failure: initramfs_failure(&console),
        timed_out,
        stopped,
        console,
    })
}

/// Why the kernel stopped unpacking the initramfs, when it says so
/// ("write error" when the files do not fit in the machine's memory).
fn initramfs_failure(console: &str) -> Option<String> {
    console.lines().find_map(|l| {
        l.split_once("Initramfs unpacking failed: ")
            .map(|(_, why)| why.trim().to_owned())
    })
}

/// Copy qemu's standard output (the serial console) line by line to ours
/// and into `console`; returns all of it.
fn copy_console(stdout: impl stdio::Read, echo: bool, console: &Mutex<String>) -> Vec<u8> {
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
            let mut stdout = stdio::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
        out.extend_from_slice(text.as_bytes());
        if let Ok(mut c) = console.lock() {
            c.push_str(&text);
        }
    }
    out
}

/// A machine started in the background.
#[derive(Clone, Debug)]
pub struct Detached {
    /// qemu's pid (also in [`Detached::pid_file`]).
    pub pid: u32,
    /// `<state>/qemu.pid`.
    pub pid_file: PathBuf,
    /// Where the console goes.
    pub console: PathBuf,
    /// qemu's monitor (QMP): `system_powerdown` powers the guest off.
    pub qmp: PathBuf,
}

/// Start the machine in the background (`-daemonize`) and return once qemu
/// runs: qemu's first process exits when the machine is set up, after
/// writing the pid file, or with the reason it could not start.
pub fn start_detached(boot: &Boot, options: &Options) -> Result<Detached, RunError> {
    let mut options = options.clone();
    options.detached = true;
    prepare(boot, &options)?;
    let console = options.detached_console();
    let status = Command::new(&options.qemu)
        .args(qemu_args(boot, &options))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .map_err(io(format!("starting {}", options.qemu.display())))?;
    if !status.success() {
        return Err(RunError::Detached { status });
    }
    let pid_file = options.pid_file();
    let pid = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .ok_or_else(|| RunError::Io {
            what: format!("reading {}", pid_file.display()),
            source: stdio::Error::new(stdio::ErrorKind::NotFound, "qemu wrote no pid"),
        })?;
    Ok(Detached {
        pid,
        pid_file,
        console,
        qmp: options.qmp_socket(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initramfs_the_kernel_could_not_unpack_is_found() {
        let console = "[    2.1] Trying to unpack rootfs image as initramfs...\n\
                       [    9.9] Initramfs unpacking failed: write error\n";
        assert_eq!(initramfs_failure(console).as_deref(), Some("write error"));
        assert_eq!(
            initramfs_failure("[ 1.0] Freeing initrd memory: 9000K\n"),
            None
        );
    }
}
