//! `slipway-machine-info [--listen SOCKET] [--components DIR] [--proc DIR]`:
//! serve `slipway.machine.v1.Info` on a unix socket and register it with the
//! multiplexer; on SIGTERM or SIGINT remove the registration and exit.

use std::path::PathBuf;
use std::process::ExitCode;

use slipway_control::machine::info_server::InfoServer;
use slipway_machine_info::{registration, server::InfoService};
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    listen: PathBuf,
    components: PathBuf,
    proc: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        listen: "/run/slipway/machine-info.sock".into(),
        components: "/run/slipway/components".into(),
        proc: "/proc".into(),
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{} needs a value", flag.to_string_lossy()))
        };
        match flag.to_str() {
            Some("--listen") => args.listen = value()?,
            Some("--components") => args.components = value()?,
            Some("--proc") => args.proc = value()?,
            _ => {
                return Err(format!(
                    "unknown argument {}; usage: slipway-machine-info [--listen SOCKET] [--components DIR] [--proc DIR]",
                    flag.to_string_lossy()
                ));
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("slipway-machine-info: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slipway-machine-info: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slipway-machine-info: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let socket = &args.listen;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    // A socket left by an earlier run of this component.
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)
        .map_err(|e| format!("listening on {}: {e}", socket.display()))?;
    // The descriptors beside the socket: reflection for this component.
    let descriptors = socket.with_extension("binpb");
    std::fs::write(&descriptors, slipway_control::DESCRIPTORS)
        .map_err(|e| format!("writing {}: {e}", descriptors.display()))?;
    let registered = registration::write(&args.components, socket, &descriptors)
        .map_err(|e| format!("registering in {}: {e}", args.components.display()))?;

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let (shutdown, shutting_down) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(InfoServer::new(InfoService { proc: args.proc }))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            async move {
                let _ = shutting_down.await;
            },
        );
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        _ = async { tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} } } => {
            // Unregister first, so new calls stop coming, then give calls
            // in flight a moment: the multiplexer keeps its connection open.
            let _ = std::fs::remove_file(&registered);
            let _ = shutdown.send(());
            tokio::time::timeout(GRACE, &mut server).await.unwrap_or(Ok(()))
        }
    };
    let _ = std::fs::remove_file(&registered);
    let _ = std::fs::remove_file(socket);
    served.map_err(|e| format!("serving: {e}"))
}

/// How long calls in flight may go on after SIGTERM.
const GRACE: std::time::Duration = std::time::Duration::from_secs(2);
