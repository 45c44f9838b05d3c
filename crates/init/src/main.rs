//! `slipway-init`: the guest's PID 1; also `/usr/bin/service`, by its
//! name, and the kernel's modprobe (`-q -- NAME`).

// Only `main` is here; the logic is in the library.
use std::path::Path;
use std::process::ExitCode;

use slipway_contract::timeline::CONTROL_SOCKET;
use slipway_init::control;
use slipway_init::modules::{self, Requested};
use slipway_init::sys::Sys;
use slipway_init::sys::real::RealSys;

mod pid1;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == "service" {
        let code = control::client(&args[1..], Path::new(CONTROL_SOCKET));
        return ExitCode::from(code as u8);
    }
    if [
        "005-volumes",
        "010-onboot",
        "020-containerd",
        "010-onshutdown",
    ]
    .contains(&name.as_str())
    {
        eprintln!("{name}: slipway-init runs this phase itself");
        return ExitCode::SUCCESS;
    }
    // How the kernel runs its modprobe (`/proc/sys/kernel/modprobe`).
    if let [_, quiet, dashes, names @ ..] = args.as_slice()
        && quiet == "-q"
        && dashes == "--"
        && !names.is_empty()
        && std::process::id() != 1
    {
        return modprobe(names);
    }
    if std::process::id() != 1 {
        eprintln!(
            "slipway-init: must run as PID 1 (as /init); as `service`: service list|start|stop|restart NAME"
        );
        return ExitCode::from(2);
    }
    pid1::run()
}

/// Load what the kernel asks for; a line each in the kernel's log.
fn modprobe(names: &[String]) -> ExitCode {
    let sys = RealSys::without_children();
    let release = sys
        .read(Path::new("/proc/sys/kernel/osrelease"))
        .map(|r| String::from_utf8_lossy(&r).trim().to_owned())
        .unwrap_or_default();
    let mut ok = true;
    for name in names {
        let line = match modules::modprobe(&sys, &release, name) {
            Requested::Unknown => {
                ok = false;
                format!("<6>slipway-init: modprobe {name}: no such module")
            }
            Requested::Loaded(loaded) => {
                let mut line = format!(
                    "<6>slipway-init: modprobe {name}: {} loaded in {} ms",
                    loaded.loaded, loaded.load_ms
                );
                for (module, error) in &loaded.failed {
                    ok = false;
                    line = format!("<4>slipway-init: modprobe {name}: {module}: {error}");
                }
                line
            }
        };
        let _ = sys.write(Path::new("/dev/kmsg"), line.as_bytes(), false);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
