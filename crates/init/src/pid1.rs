//! PID 1 proper: signals, the power button, boot, then wait for shutdown.

use slipway_contract::errors::chain;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use slipway_contract::timeline::{CONTROL_SOCKET, Event};
use slipway_init::boot::{self, Options};
use slipway_init::shutdown;
use slipway_init::sys::real::{RealSys, console_line};
use slipway_init::sys::{PowerAction, Sys};
use slipway_init::timeline::Timeline;

/// Grace period between TERM and KILL at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// busybox init's signals and what they mean.
fn action_for(signal: Signal) -> Option<PowerAction> {
    match signal {
        Signal::SIGUSR2 | Signal::SIGPWR => Some(PowerAction::Poweroff),
        Signal::SIGTERM | Signal::SIGINT => Some(PowerAction::Reboot),
        Signal::SIGUSR1 => Some(PowerAction::Halt),
        _ => None,
    }
}

fn fatal_stop(sys: &dyn Sys, timeline: &Timeline, what: &str) -> ! {
    timeline.event(sys, Event::Fatal, None, Some(what));
    sys.sync();
    let err = sys.power(PowerAction::Poweroff);
    console_line(&format!("slipway-init: cannot power off: {}", chain(&err)));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

pub fn run() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        console_line(&format!("slipway: 0 ms fatal - panic: {info}"));
        nix::unistd::sync();
        let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    }));
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGPWR,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        signals.add(s);
    }
    // Blocked in every thread (they inherit the mask); RealSys::spawn
    // gives children an empty one.
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None);
    // Ctrl-Alt-Del becomes SIGINT instead of an immediate reboot.
    let _ = nix::sys::reboot::set_cad_enabled(false);
    let timeline = Arc::new(Timeline::default());
    let real = match RealSys::start() {
        Ok(real) => real,
        Err(e) => {
            console_line(&format!(
                "slipway: 0 ms fatal - starting the reaper: {}",
                chain(&e)
            ));
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
            return ExitCode::FAILURE;
        }
    };
    let sys: Arc<dyn Sys> = Arc::new(real);
    timeline.event(
        sys.as_ref(),
        Event::InitStart,
        None,
        Some(env!("CARGO_PKG_VERSION")),
    );

    let (tx, rx) = mpsc::channel::<(PowerAction, String)>();
    let signal_tx = tx.clone();
    let waited = signals;
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                if let Ok(signal) = waited.wait()
                    && let Some(action) = action_for(signal)
                {
                    let _ = signal_tx.send((action, signal.as_str().to_owned()));
                }
            }
        });

    let mut options = Options::read(sys.as_ref());
    options.control_socket = Some(CONTROL_SOCKET.into());
    let mut booted = match boot::boot(&sys, &timeline, &options) {
        Ok(booted) => booted,
        Err(e) => fatal_stop(sys.as_ref(), &timeline, &chain(&e)),
    };
    // The power button's device exists once its modules are loaded.
    let loading = booted.modules_later.take();
    let watch = move || {
        if let Some(loading) = loading {
            let _ = loading.join();
        }
        watch_power_button(tx);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("power-button".into())
        .spawn(watch)
    {
        console_line(&format!("slipway-init: no power button: {e}"));
    }
    let (action, why) = rx
        .recv()
        .unwrap_or((PowerAction::Poweroff, "no signal source".to_owned()));
    let err = shutdown::run(
        sys.as_ref(),
        &timeline,
        shutdown::Running {
            supervisor: booted.supervisor.as_deref(),
            daemons: Some(&booted.daemons),
            runtime: booted.runtime.as_ref(),
        },
        action,
        &why,
        SHUTDOWN_GRACE,
    );
    fatal_stop(
        sys.as_ref(),
        &timeline,
        &format!("{} failed: {}", action.as_str(), chain(&err)),
    )
}

/// `struct input_event` on x86_64: a 16-byte timeval, type, code, value.
const INPUT_EVENT_SIZE: usize = 24;
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;

/// Whether an input event is the power key being pressed.
fn is_power_press(event: &[u8; INPUT_EVENT_SIZE]) -> bool {
    let kind = u16::from_ne_bytes([event[16], event[17]]);
    let code = u16::from_ne_bytes([event[18], event[19]]);
    let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
    kind == EV_KEY && code == KEY_POWER && value == 1
}

/// The ACPI power button (qemu's `system_powerdown`) powers off: read it
/// from the input device the kernel names "Power Button".
fn watch_power_button(tx: mpsc::Sender<(PowerAction, String)>) {
    let Ok(entries) = std::fs::read_dir("/sys/class/input") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("event") {
            continue;
        }
        let device = std::fs::read_to_string(entry.path().join("device/name")).unwrap_or_default();
        if device.trim() != "Power Button" {
            continue;
        }
        let Ok(mut file) = File::open(Path::new("/dev/input").join(&name)) else {
            continue;
        };
        let tx = tx.clone();
        let _ = std::thread::Builder::new()
            .name("power-button".into())
            .spawn(move || {
                let mut event = [0u8; INPUT_EVENT_SIZE];
                while file.read_exact(&mut event).is_ok() {
                    if is_power_press(&event) {
                        let _ = tx.send((PowerAction::Poweroff, "power button".into()));
                    }
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_signals() {
        assert_eq!(action_for(Signal::SIGUSR2), Some(PowerAction::Poweroff));
        assert_eq!(action_for(Signal::SIGTERM), Some(PowerAction::Reboot));
        assert_eq!(action_for(Signal::SIGINT), Some(PowerAction::Reboot));
        assert_eq!(action_for(Signal::SIGUSR1), Some(PowerAction::Halt));
        assert_eq!(action_for(Signal::SIGCHLD), None);
    }

    #[test]
    fn power_key() {
        let mut event = [0u8; INPUT_EVENT_SIZE];
        event[16..18].copy_from_slice(&EV_KEY.to_ne_bytes());
        event[18..20].copy_from_slice(&KEY_POWER.to_ne_bytes());
        event[20..24].copy_from_slice(&1i32.to_ne_bytes());
        assert!(is_power_press(&event));
        event[20..24].copy_from_slice(&0i32.to_ne_bytes());
        assert!(!is_power_press(&event), "release");
    }
}
