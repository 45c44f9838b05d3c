//! The command line.

use std::path::PathBuf;

use slipway_contract::timeline::{CONTROL_SOCKET, TIMELINE_JSON};

/// Usage.
pub const USAGE: &str = "usage: slipway-services [--containerd SOCKET [--runtime PROGRAM] [--no-pivot]] \
[--init-socket PATH] [--listen PATH] [--components DIR] [--log-dir DIR] [--timeline PATH] [--init-pid PID]
       slipway-services [--listen PATH] service list|start|stop|restart NAME";

/// The default `--listen`.
pub const DEFAULT_LISTEN: &str = "/run/slipway/services.sock";
/// The default `--components`.
pub const DEFAULT_COMPONENTS: &str = "/run/slipway/components";

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve the service manager.
    Serve(Args),
    /// The `service` command (what the init's `service` becomes when the
    /// services run in containerd): ask the manager on `listen`.
    Service {
        /// The manager's socket.
        listen: PathBuf,
        /// `list`, or `start|stop|restart NAME`.
        args: Vec<String>,
    },
}

/// The service manager's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// containerd's socket: run the services in containerd. Without it the
    /// init runs them.
    pub containerd: Option<PathBuf>,
    /// The OCI runtime the containerd shim runs (the init's choice); by
    /// default the one the init would choose.
    pub runtime: Option<PathBuf>,
    /// The shim's runtime must not pivot_root (the init stayed on the
    /// initramfs).
    pub no_pivot: bool,
    /// The init's control socket.
    pub init_socket: PathBuf,
    /// The socket to serve gRPC on; the descriptor sets are written beside it.
    pub listen: PathBuf,
    /// The multiplexer's registration directory.
    pub components: PathBuf,
    /// Where the services' logs are.
    pub log_dir: PathBuf,
    /// The init's timeline.
    pub timeline: PathBuf,
    /// The process Power signals (the init, PID 1).
    pub init_pid: i32,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            containerd: None,
            runtime: None,
            no_pivot: false,
            init_socket: CONTROL_SOCKET.into(),
            listen: DEFAULT_LISTEN.into(),
            components: DEFAULT_COMPONENTS.into(),
            log_dir: "/var/log".into(),
            timeline: TIMELINE_JSON.into(),
            init_pid: 1,
        }
    }
}

/// Parse the arguments (without the program's name).
pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut out = Args::default();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--containerd" => out.containerd = Some(value()?.into()),
            "--runtime" => out.runtime = Some(value()?.into()),
            "--no-pivot" => out.no_pivot = true,
            "--init-socket" => out.init_socket = value()?.into(),
            "--listen" => out.listen = value()?.into(),
            "--components" => out.components = value()?.into(),
            "--log-dir" => out.log_dir = value()?.into(),
            "--timeline" => out.timeline = value()?.into(),
            "--init-pid" => {
                let pid = value()?;
                out.init_pid = pid
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("bad --init-pid {pid:?}\n{USAGE}"))?;
            }
            "service" => {
                return Ok(Command::Service {
                    listen: out.listen,
                    args: args.collect(),
                });
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Command::Serve(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(a: &[&str]) -> Result<Command, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_all(&[]).unwrap(), Command::Serve(Args::default()));
        let Command::Serve(a) = parse_all(&[
            "--containerd",
            "/c.sock",
            "--runtime",
            "/usr/bin/runc",
            "--no-pivot",
            "--listen",
            "/l.sock",
            "--init-pid",
            "7",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.containerd, Some("/c.sock".into()));
        assert_eq!(a.runtime, Some("/usr/bin/runc".into()));
        assert!(a.no_pivot);
        assert_eq!((a.listen, a.init_pid), ("/l.sock".into(), 7));
        assert_eq!(a.timeline, PathBuf::from("/run/slipway/timeline.json"));
        assert_eq!(
            parse_all(&["service", "stop", "web"]).unwrap(),
            Command::Service {
                listen: DEFAULT_LISTEN.into(),
                args: vec!["stop".into(), "web".into()]
            }
        );
        assert!(
            parse_all(&["--listen"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(parse_all(&["--init-pid", "0"]).is_err());
        assert!(
            parse_all(&["--bogus"])
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
