//! slipway-mux: the guest's gRPC multiplexer.
//!
//! ```text
//! slipway-mux [--components DIR] [--listen PATH] [--port NAME | --no-port]
//!             [--config FILE] [--tcp ADDR] [--tls-ca PEM] [--tls-cert PEM] [--tls-key PEM]
//! ```
//!
//! Serves on the unix socket PATH (default /run/slipway/mux.sock) and on the
//! virtio-serial port NAME (default org.slipway.control) when the machine
//! has it, routing to the components registered in DIR (default
//! /run/slipway/components). With a TCP listener (the `tcp` section of FILE,
//! default /etc/slipway/mux.json, or `--tcp`; flags win field by field),
//! also on TCP, with mutual TLS only: a listener without all of its TLS
//! material is refused, logged, and the rest served. On SIGTERM it removes
//! the socket, so no new client comes, gives the calls under way a
//! second to answer (a `Poweroff` that signalled the init among them),
//! and exits 0.

use slipway_contract::errors::chain;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use slipway_mux::Mux;
use slipway_mux::config::{self, Config, Tcp};
use slipway_mux::tls::{self, TlsFiles};
use slipway_mux::virtio::{self, DEFAULT_PORT_NAME, PortError};

const USAGE: &str =
    "usage: slipway-mux [--components DIR] [--listen PATH] [--port NAME | --no-port]
                   [--config FILE] [--tcp ADDR] [--tls-ca PEM] [--tls-cert PEM] [--tls-key PEM]";

/// How often a TCP address that cannot be bound (not configured yet) is tried again.
const BIND_RETRY: Duration = Duration::from_secs(5);

/// How long calls under way may take to answer after SIGTERM: ample for a
/// unary call, short enough that a client's open stream (logs, events)
/// does not hold the machine's shutdown up.
const DRAIN: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Args {
    components: PathBuf,
    listen: PathBuf,
    port: Option<String>,
    config: PathBuf,
    tcp: Option<SocketAddr>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = Args {
        components: PathBuf::from("/run/slipway/components"),
        listen: PathBuf::from("/run/slipway/mux.sock"),
        port: Some(DEFAULT_PORT_NAME.to_string()),
        config: PathBuf::from(config::DEFAULT_PATH),
        tcp: None,
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
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
            "--config" => out.config = value()?.into(),
            "--tcp" => {
                let v = value()?;
                let addr = v.parse().map_err(|e| {
                    format!("--tcp {v}: {e} (an IP address and port: 0.0.0.0:7443)\n{USAGE}")
                })?;
                out.tcp = Some(addr);
            }
            "--tls-ca" => out.tls_ca = Some(value()?.into()),
            "--tls-cert" => out.tls_cert = Some(value()?.into()),
            "--tls-key" => out.tls_key = Some(value()?.into()),
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
    // A TCP listener that cannot be served is refused, and everything else
    // served: exiting would only have the init start the same refusal again.
    match tcp_listener(&args) {
        Ok(None) => {}
        Ok(Some(tcp)) => match tls::server_config(&tcp.tls) {
            Ok(tls) => {
                let mux = mux.clone();
                tokio::spawn(async move { serve_tcp(&mux, &tcp, tls).await });
            }
            Err(e) => eprintln!(
                "slipway-mux: TCP listener {} refused: {}; serving the unix socket and the \
                 virtio port only",
                tcp.listen,
                chain(&e)
            ),
        },
        Err(e) => eprintln!(
            "slipway-mux: TCP listener refused: {e}; serving the unix socket and the \
             virtio port only"
        ),
    }
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
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("handling SIGTERM: {e}"))?;
    tokio::select! {
        served = mux.serve_unix(listener) => {
            served.map_err(|e| format!("{}: {e}", args.listen.display()))
        }
        _ = term.recv() => {
            let _ = std::fs::remove_file(&args.listen);
            let left = mux.drain(DRAIN).await;
            if left > 0 {
                eprintln!("slipway-mux: stopping with {left} calls unanswered");
            }
            Ok(())
        }
    }
}

/// The TCP listener the configuration file and the flags ask for, flags
/// winning field by field; an error says what is missing or wrong.
fn tcp_listener(args: &Args) -> Result<Option<Tcp>, String> {
    let file = Config::load(&args.config)
        .map_err(|e| chain(&e))?
        .and_then(|c| c.tcp);
    let flags = [
        ("--tls-ca", &args.tls_ca),
        ("--tls-cert", &args.tls_cert),
        ("--tls-key", &args.tls_key),
    ];
    let Some(listen) = args.tcp.or(file.as_ref().map(|t| t.listen)) else {
        let given: Vec<&str> = flags
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(f, _)| *f)
            .collect();
        if given.is_empty() {
            return Ok(None);
        }
        return Err(format!(
            "{} given without a TCP address (--tcp, or \"tcp\" in {})",
            given.join(", "),
            args.config.display()
        ));
    };
    let from_file = file.map(|t| t.tls);
    let pick = |flag: &Option<PathBuf>, field: fn(&TlsFiles) -> &PathBuf| {
        flag.clone()
            .or_else(|| from_file.as_ref().map(|f| field(f).clone()))
    };
    match (
        pick(&args.tls_ca, |f| &f.ca),
        pick(&args.tls_cert, |f| &f.cert),
        pick(&args.tls_key, |f| &f.key),
    ) {
        (Some(ca), Some(cert), Some(key)) => Ok(Some(Tcp {
            listen,
            tls: TlsFiles { ca, cert, key },
        })),
        (ca, cert, key) => {
            let missing: Vec<&str> = [ca, cert, key]
                .iter()
                .zip(flags)
                .filter(|(v, _)| v.is_none())
                .map(|(_, (flag, _))| flag)
                .collect();
            Err(format!(
                "--tcp {listen} needs {} (mutual TLS: plaintext TCP is not served)",
                missing.join(", ")
            ))
        }
    }
}

/// Binds `tcp.listen` (again every few seconds while the address cannot be
/// bound: an interface not configured yet) and serves it.
async fn serve_tcp(mux: &Mux, tcp: &Tcp, tls: std::sync::Arc<rustls::ServerConfig>) {
    let mut logged = false;
    loop {
        match tokio::net::TcpListener::bind(tcp.listen).await {
            Ok(listener) => {
                let bound = listener.local_addr().unwrap_or(tcp.listen);
                eprintln!(
                    "slipway-mux: serving TLS on {bound} (client certificates from {})",
                    tcp.tls.ca.display()
                );
                if let Err(e) = mux.serve_tls(listener, tls.clone()).await {
                    eprintln!("slipway-mux: TCP listener {bound}: {e}");
                }
            }
            Err(e) if !logged => {
                eprintln!(
                    "slipway-mux: TCP listener {}: {e}; trying again every {}s",
                    tcp.listen,
                    BIND_RETRY.as_secs()
                );
                logged = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(BIND_RETRY).await;
    }
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
        assert!(args(&["--tcp", "7443"]).unwrap_err().contains("--tcp 7443"));
    }

    #[test]
    fn tcp_from_the_file_and_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mux.json");
        let file_arg = file.to_str().unwrap();
        let tcp = |a: &[&str]| tcp_listener(&args(a).unwrap());
        // No file, no flags: no listener.
        assert_eq!(tcp(&["--config", file_arg]), Ok(None));
        let e = tcp(&[
            "--config",
            file_arg,
            "--tcp",
            "127.0.0.1:7443",
            "--tls-cert",
            "/s",
        ]);
        assert_eq!(
            e.unwrap_err(),
            "--tcp 127.0.0.1:7443 needs --tls-ca, --tls-key (mutual TLS: plaintext TCP is not served)"
        );
        let e = tcp(&["--config", file_arg, "--tls-ca", "/c"]).unwrap_err();
        assert!(e.starts_with("--tls-ca given without a TCP address"), "{e}");

        std::fs::write(
            &file,
            r#"{"tcp": {"listen": "0.0.0.0:7443", "ca": "/c", "cert": "/s", "key": "/k"}}"#,
        )
        .unwrap();
        let t = tcp(&["--config", file_arg]).unwrap().unwrap();
        assert_eq!(t.listen, "0.0.0.0:7443".parse().unwrap());
        assert_eq!(t.tls.key, PathBuf::from("/k"));
        // The flags win, field by field.
        let t = tcp(&[
            "--config",
            file_arg,
            "--tcp",
            "127.0.0.1:1",
            "--tls-key",
            "/k2",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(t.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(t.tls.ca, PathBuf::from("/c"));
        assert_eq!(t.tls.key, PathBuf::from("/k2"));

        std::fs::write(&file, r#"{"tcp": {"listen": "0.0.0.0:7443"}}"#).unwrap();
        let e = tcp(&["--config", file_arg]).unwrap_err();
        assert!(
            e.contains(&format!("{file_arg}:1:35: tcp: the TCP listener")),
            "{e}"
        );
        assert!(e.contains("needs ca, cert, key"), "{e}");
    }
}
