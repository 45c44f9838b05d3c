//! Which machine: its state directory, named by `--state` or found from
//! the path `slipway run` booted, as run finds it, and the channel to its
//! control socket; or its multiplexer's TCP listener by `--address`, over
//! mutual TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use hyper_util::rt::TokioIo;
use slipway_mux::tls::{self, ClientConfig, ServerName, TlsFiles};
use slipway_run::{Boot, Hint};
use tonic::transport::{Channel, Endpoint};

use super::CtlArgs;

/// Where the machine's control channel is.
#[derive(Debug)]
pub enum Target {
    /// The bridge `slipway run` serves, `<state>/control.sock`.
    Socket(PathBuf),
    /// The guest multiplexer's TCP listener.
    Tls {
        address: String,
        server_name: ServerName<'static>,
        config: Arc<ClientConfig>,
    },
}

impl Target {
    /// The machine `args` name, its control socket checked to exist or
    /// its TLS material read.
    pub fn of(args: &CtlArgs) -> anyhow::Result<Target> {
        if let Some(address) = &args.address {
            return tls_target(args, address);
        }
        socket(args).map(Target::Socket)
    }

    /// A channel to the machine, connected now.
    pub async fn connect(&self) -> anyhow::Result<Channel> {
        match self {
            Target::Socket(socket) => connect_unix(socket).await,
            Target::Tls {
                address,
                server_name,
                config,
            } => connect_tls(address, server_name, config).await,
        }
    }
}

fn tls_target(args: &CtlArgs, address: &str) -> anyhow::Result<Target> {
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        bail!("--address {address}: not HOST:PORT");
    }
    let (Some(ca), Some(cert), Some(key)) = (&args.ca, &args.cert, &args.key) else {
        // clap requires them with --address.
        bail!("--address needs --ca, --cert and --key");
    };
    let name = args
        .server_name
        .as_deref()
        .unwrap_or_else(|| tls::host_of(address));
    let server_name = tls::server_name(name).map_err(|e| anyhow::anyhow!("--server-name: {e}"))?;
    let config = tls::client_config(&TlsFiles {
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
    })?;
    Ok(Target::Tls {
        address: address.to_owned(),
        server_name,
        config,
    })
}

/// The machine's control socket, checked to exist.
fn socket(args: &CtlArgs) -> anyhow::Result<PathBuf> {
    let state = match (&args.state, &args.machine) {
        (Some(state), _) => state.clone(),
        (None, Some(path)) => {
            let boot = Boot::detect_as(path, Hint::Auto).with_context(|| {
                format!(
                    "finding the machine {}: name its state directory with --state",
                    path.display()
                )
            })?;
            slipway_run::default_state_dir(&boot, path)
        }
        (None, None) => {
            bail!("name the machine: --state DIR, --machine PATH or --address HOST:PORT")
        }
    };
    socket_in(&state)
}

fn socket_in(state: &Path) -> anyhow::Result<PathBuf> {
    if !state.is_dir() {
        bail!(
            "no machine at {}: the directory does not exist (`slipway run` makes it)",
            state.display()
        );
    }
    let socket = slipway_run::control::socket_path(state);
    if !socket.exists() {
        bail!(
            "the machine at {} is not running: it has no control socket {}",
            state.display(),
            socket.display()
        );
    }
    Ok(socket)
}

/// A channel to the bridge, connected now.
async fn connect_unix(socket: &Path) -> anyhow::Result<Channel> {
    slipway_control::channel::connect_unix(socket)
        .await
        .with_context(|| {
            format!(
                "the machine is not running: its control socket {} does not answer",
                socket.display()
            )
        })
}

/// A channel over TCP and mutual TLS, connected now (and again, by tonic,
/// should the connection break).
async fn connect_tls(
    address: &str,
    server_name: &ServerName<'static>,
    config: &Arc<ClientConfig>,
) -> anyhow::Result<Channel> {
    // The URI gives :scheme and :authority; the connector does the rest.
    let endpoint = Endpoint::from_shared(format!("https://{address}"))
        .with_context(|| format!("--address {address}"))?;
    let (target, name, config) = (address.to_owned(), server_name.clone(), config.clone());
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let (target, name, config) = (target.clone(), name.clone(), config.clone());
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tls::connect(&target, name, config).await?))
            }
        }))
        .await
        .map_err(|e| anyhow::anyhow!("the machine at {address} does not answer: {}", causes(&e)))
}

/// An error and its sources, each said once: an I/O error wrapping rustls'
/// says the same as its source.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let message = e.to_string();
        if said.last() != Some(&message) {
            said.push(message);
        }
        next = e.source();
    }
    said.join(": ")
}
