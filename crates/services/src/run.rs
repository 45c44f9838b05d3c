//! The service manager's life: register with the multiplexer, serve until
//! SIGTERM, then (containerd mode) stop the services, stop serving and
//! remove the registrations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use slipway_contract::bundle::SERVICES_DIR;
use slipway_contract::errors::chain;
use slipway_contract::timeline::Event;
use slipway_init::bundle;
use slipway_init::sys::Sys;
use slipway_init::sys::real::RealSys;

use slipway_control::services::power_server::PowerServer;
use slipway_control::services::services_server::ServicesServer;
use slipway_control::{CONTAINERD_DESCRIPTORS, CONTAINERD_SERVICES, DESCRIPTORS};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnixListenerStream;

use crate::backend::Backend;
use crate::cli::Args;
use crate::containerd::{Containerd, EventSink, Options, device_console};
use crate::init_backend::InitBackend;
use crate::init_client;
use crate::registration::Component;
use crate::server::{Files, PowerApi, ServicesApi};

/// The services this process serves.
pub const SERVICES: &[&str] = &["slipway.services.v1.Power", "slipway.services.v1.Services"];

/// How long the services it runs itself get to stop at its TERM: less than
/// the init's grace for its daemons (5 s), after which it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(4);

/// Serve until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), String> {
    let backend = match &args.containerd {
        None => Backend::Init(InitBackend::new(args.init_socket.clone())),
        Some(socket) => {
            // The init's system layer, for the backend's mounts, links and
            // readiness probes (it reaps every child of this process).
            let sys: Arc<dyn Sys> =
                Arc::new(RealSys::start().map_err(|e| format!("starting the reaper: {e}"))?);
            let containerd = connect_containerd(&args, socket, Arc::clone(&sys)).await?;
            // Started while the manager serves, so that they can be watched.
            let starting = containerd.clone();
            tokio::spawn(async move {
                let dirs = bundle::list(sys.as_ref(), &Path::new("/").join(SERVICES_DIR));
                starting.start_all(&dirs).await;
            });
            Backend::Containerd(containerd)
        }
    };
    let backend = Arc::new(backend);
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;

    let listener = bind(&args.listen)?;
    let dir = args.listen.parent().unwrap_or(Path::new("/"));
    let mut registered = Vec::new();
    let result = async {
        let descriptors = dir.join("services.binpb");
        registered.push(register(
            &args,
            Component {
                name: "services",
                socket: &args.listen,
                services: SERVICES,
                descriptors: Some((&descriptors, DESCRIPTORS)),
            },
        )?);
        if let Some(socket) = &args.containerd {
            // containerd serves no reflection: its descriptors describe it.
            let descriptors = dir.join("containerd.binpb");
            registered.push(register(
                &args,
                Component {
                    name: "containerd",
                    socket,
                    services: CONTAINERD_SERVICES,
                    descriptors: Some((&descriptors, CONTAINERD_DESCRIPTORS)),
                },
            )?);
        }
        let files = Files {
            log_dir: args.log_dir.clone(),
            timeline: args.timeline.clone(),
        };
        let (stopping, stopping_rx) = watch::channel(false);
        let stopping_backend = Arc::clone(&backend);
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            // The services this process runs (containerd mode) first.
            stopping_backend.stop_all(STOP_GRACE).await;
            // Followed logs end, so that the graceful shutdown ends.
            let _ = stopping.send(true);
        };
        tonic::transport::Server::builder()
            .add_service(ServicesServer::new(ServicesApi::new(
                Arc::clone(&backend),
                files,
                stopping_rx,
            )))
            .add_service(PowerServer::new(PowerApi::new(args.init_pid)))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
            .await
            .map_err(|e| format!("serving {}: {e}", args.listen.display()))
    }
    .await;
    for file in registered {
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_file(&args.listen);
    result
}

/// Connect to containerd on `socket`, with the shim running the init's OCI
/// runtime and every timeline event sent to the init, in order.
async fn connect_containerd(
    args: &Args,
    socket: &Path,
    sys: Arc<dyn Sys>,
) -> Result<Containerd, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Event, Option<String>, Option<String>)>();
    let init_socket = args.init_socket.clone();
    tokio::spawn(async move {
        while let Some((event, name, detail)) = rx.recv().await {
            if let Err(e) =
                init_client::record_event(&init_socket, event, name.as_deref(), detail.as_deref())
                    .await
            {
                eprintln!(
                    "slipway-services: timeline event {}: {}",
                    event.as_str(),
                    chain(&e)
                );
            }
        }
    });
    let events: EventSink = Arc::new(move |event, name, detail| {
        let _ = tx.send((event, name.map(str::to_owned), detail.map(str::to_owned)));
    });
    let mut options = Options::new(socket.to_owned(), sys, events, None, args.no_pivot);
    if let Some(runtime) = &args.runtime {
        options.shim.binary = runtime.to_string_lossy().into_owned();
    }
    options.log_dir.clone_from(&args.log_dir);
    options.console = device_console(Path::new("/dev/console"));
    Containerd::connect(options)
        .await
        .map_err(|e| format!("containerd on {}: {}", socket.display(), chain(&e)))
}

fn register(args: &Args, component: Component<'_>) -> Result<PathBuf, String> {
    component.register(&args.components).map_err(|e| {
        format!(
            "registering {} in {}: {e}",
            component.name,
            args.components.display()
        )
    })
}

/// Bind the socket, replacing a stale one.
fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))
}
