//! The multiplexer: accepts HTTP/2 connections and routes each stream by
//! its method path to a component or to its own services.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::{Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::time::Instant;
use tonic::Code;

use crate::descriptors::DescriptorIndex;
use crate::forward::forward;
use crate::local::Local;
use crate::registry::{Component, Registry};
use crate::{limits, proto, status};

/// A client has this long to complete the HTTP/2 handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The multiplexer. Cheap to clone; clones share the registry.
#[derive(Debug, Clone)]
pub struct Mux {
    registry: Arc<Registry>,
    local: Local,
    activity: Arc<crate::trim::Activity>,
}

impl Mux {
    /// A multiplexer routing to the components registered in `components_dir`.
    pub fn new(components_dir: &Path) -> Self {
        let registry = Arc::new(Registry::new(components_dir));
        // The descriptors are compiled into the binary and checked by tests.
        let own = DescriptorIndex::from_set(proto::DESCRIPTORS).unwrap_or_default();
        Mux {
            local: Local::new(registry.clone(), Arc::new(own)),
            registry,
            activity: Arc::default(),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Watches the components directory (creating it if needed) so that
    /// registrations take effect as they are written.
    pub fn watch(&self) -> std::io::Result<tokio::task::JoinHandle<()>> {
        std::fs::create_dir_all(self.registry.dir())?;
        crate::watch::spawn(self.registry.clone())
    }

    /// Returns the allocator's free memory to the system whenever the
    /// multiplexer has been idle for a few seconds after serving calls.
    pub fn trim_when_idle(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.activity.clone().trim_when_idle())
    }

    /// Waits until no call is in progress, or `grace` has passed; returns
    /// how many calls are still going.
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        loop {
            let active = self.activity.active();
            if active == 0 || Instant::now() >= deadline {
                return active;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Serves clients connecting to `listener`, each on its own task.
    pub async fn serve_unix(&self, listener: UnixListener) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let mux = self.clone();
            tokio::spawn(async move {
                if let Err(e) = mux.serve_connection(stream).await {
                    eprintln!("slipway-mux: client connection: {e}");
                }
            });
        }
    }

    /// Serves one HTTP/2 connection until the client closes it. A client that
    /// does not speak HTTP/2 (HTTP/1, garbage) gets an error here and nothing
    /// else is affected.
    pub async fn serve_connection<IO>(&self, io: IO) -> Result<(), h2::Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.serve_connection_by(io, Instant::now() + HANDSHAKE_TIMEOUT)
            .await
    }

    /// Serves one HTTP/2 connection whose handshake must be done by `deadline`.
    async fn serve_connection_by<IO>(&self, io: IO, deadline: Instant) -> Result<(), h2::Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut conn = match tokio::time::timeout_at(deadline, limits::server().handshake(io)).await
        {
            Ok(conn) => conn?,
            Err(_) => return Ok(()), // a silent client
        };
        while let Some(stream) = conn.accept().await {
            let (req, respond) = stream?;
            let mux = self.clone();
            tokio::spawn(async move { mux.handle(req, respond).await });
        }
        Ok(())
    }

    /// Serves TLS clients connecting to `listener`, each on its own task:
    /// the TLS handshake (with `config`: a client certificate required, see
    /// [`crate::tls::server_config`]) and the HTTP/2 handshake together
    /// within the handshake limit, then the same routing as
    /// [`Mux::serve_unix`]. A client refused by the handshake is logged and
    /// affects nobody else.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<()> {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Out of descriptors, or a connection reset while queued:
                // the listener itself is fine.
                Err(e) if accept_error_is_transient(&e) => {
                    eprintln!("slipway-mux: accepting a TCP client: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mux = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
                let _ = stream.set_nodelay(true);
                // A client that vanishes without closing (a network gone)
                // would otherwise hold its connection and calls forever.
                let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&limits::tcp_keepalive());
                let tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        return eprintln!("slipway-mux: TLS client {peer} refused: {e}");
                    }
                    Err(_) => {
                        return eprintln!(
                            "slipway-mux: TLS client {peer} refused: no handshake within {}s",
                            HANDSHAKE_TIMEOUT.as_secs()
                        );
                    }
                };
                if let Err(e) = mux.serve_connection_by(tls, deadline).await {
                    eprintln!("slipway-mux: TLS client {peer}: {e}");
                }
            });
        }
    }

    /// Serves one host session on a byte stream that may carry bytes of
    /// earlier sessions (a virtio-serial port): waits for the session line
    /// (`session`), then serves one HTTP/2 connection on the rest.
    pub async fn serve_session<IO>(&self, io: &mut IO) -> std::io::Result<()>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let rest = crate::session::accept(io).await?;
        self.serve_connection(crate::session::Prefixed::new(rest, io))
            .await
            .map_err(std::io::Error::other)
    }

    async fn handle(&self, req: Request<RecvStream>, respond: SendResponse<Bytes>) {
        let _call = self.activity.call();
        if !status::is_grpc(req.method(), req.headers()) {
            let code = if req.method() == http::Method::POST {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else {
                StatusCode::METHOD_NOT_ALLOWED
            };
            return status::reply_http(respond, code);
        }
        let path = req.uri().path().to_string();
        let Some(service) = status::service_of(&path) else {
            return status::reply(
                respond,
                Code::Unimplemented,
                &format!("malformed method {path}"),
            );
        };
        let Some((req, respond)) = self.local.serve(service, req, respond).await else {
            return;
        };
        match self.registry.route(service) {
            Some(component) => to_component(&component, req, respond).await,
            None => status::reply(
                respond,
                Code::Unimplemented,
                &format!("unknown method {path}: no component serves {service}"),
            ),
        }
    }
}

/// Forwards to `component`, connecting again once if its connection turns
/// out to be gone before the call could be sent.
async fn to_component(
    component: &Component,
    req: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let name = component.name();
    let backend = &component.backend;
    let sender = match backend.sender().await {
        Ok(s) => s,
        Err(e) => return status::reply(respond, Code::Unavailable, &e),
    };
    let Err((req, respond)) = forward(req, respond, sender, name).await else {
        return;
    };
    backend.reset().await;
    let sender = match backend.sender().await {
        Ok(s) => s,
        Err(e) => return status::reply(respond, Code::Unavailable, &e),
    };
    if let Err((_, respond)) = forward(req, respond, sender, name).await {
        status::reply(
            respond,
            Code::Unavailable,
            &format!("component \"{name}\" closed the connection"),
        );
    }
}

/// Errors of `accept` that concern one connection or a passing shortage,
/// not the listening socket.
fn accept_error_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | OutOfMemory
    ) || e.raw_os_error().is_some_and(|n| {
        use nix::errno::Errno;
        matches!(
            Errno::from_raw(n),
            Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM
        )
    })
}
