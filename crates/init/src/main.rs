//! `slipway-init`: the guest's PID 1; also `/usr/bin/service`, by its name.

// Only `main` is here; the logic is in the library.
use std::path::Path;
use std::process::ExitCode;

use slipway_contract::timeline::CONTROL_SOCKET;
use slipway_init::control;

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
    if std::process::id() != 1 {
        eprintln!(
            "slipway-init: must run as PID 1 (as /init); as `service`: service list|start|stop|restart NAME"
        );
        return ExitCode::from(2);
    }
    pid1::run()
}
