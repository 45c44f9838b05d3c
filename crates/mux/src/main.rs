//! slipway-mux: the guest's gRPC multiplexer.
//!
//! ```text
//! slipway-mux [--components DIR] [--listen PATH] [--port NAME | --no-port]
//! ```
//!
//! Serves on the unix socket PATH (default /run/slipway/mux.sock) and on the
//! virtio-serial port NAME (default org.slipway.control) when the machine
//! has it, routing to the components registered in DIR (default
//! /run/slipway/components). Runs until killed.

use slipway_contract::errors::chain;
use std::path::PathBuf;
use std::process::ExitCode;

use slipway_mux::Mux;
use slipway_mux::virtio::{self, DEFAULT_PORT_NAME, PortError};

const USAGE: &str =
    "usage: slipway-mux [--components DIR] [--listen PATH] [--port NAME | --no-port]";

#[derive(Debug)]
struct Args {
    components: PathBuf,
    listen: PathBuf,
    port: Option<String>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = Args {
        components: PathBuf::from("/run/slipway/components"),
        listen: PathBuf::from("/run/slipway/mux.sock"),
        port: Some(DEFAULT_PORT_NAME.to_string()),
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--components" => out.components = value()?.into(),
            "--listen" => out.listen = value()?.into(),
            "--port" => out.port = Some(value()?),
            "--no-port" => out.port = None,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("slipway-mux: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slipway-mux: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mux = Mux::new(&args.components);
    mux.watch()
        .map_err(|e| format!("watching {}: {e}", args.components.display()))?;
    mux.trim_when_idle();
    if let Some(dir) = args.listen.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // A socket left by an earlier run would make bind fail.
    match std::fs::remove_file(&args.listen) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", args.listen.display())),
    }
    let listener = tokio::net::UnixListener::bind(&args.listen)
        .map_err(|e| format!("{}: {e}", args.listen.display()))?;
    if let Some(name) = &args.port {
        match virtio::find_port(name) {
            Ok(path) => {
                let mux = mux.clone();
                tokio::spawn(async move {
                    if let Err(e) = virtio::serve_port(&mux, &path).await {
                        eprintln!("slipway-mux: {}", chain(&e));
                    }
                });
            }
            Err(PortError::NotFound(_)) => {
                eprintln!(
                    "slipway-mux: no virtio-serial port {name}: serving the unix socket only"
                );
            }
            Err(e) => eprintln!("slipway-mux: {}", chain(&e)),
        }
    }
    mux.serve_unix(listener)
        .await
        .map_err(|e| format!("{}: {e}", args.listen.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_arguments() {
        let a = args(&["--components", "/c", "--listen", "/l.sock", "--no-port"]).unwrap();
        assert_eq!(a.components, PathBuf::from("/c"));
        assert_eq!(a.listen, PathBuf::from("/l.sock"));
        assert_eq!(a.port, None);
        assert_eq!(args(&[]).unwrap().port.as_deref(), Some(DEFAULT_PORT_NAME));
        assert!(args(&["--listen"]).unwrap_err().contains("needs a value"));
        assert!(args(&["--bogus"]).unwrap_err().contains("unknown argument"));
    }
}
