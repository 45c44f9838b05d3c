//! The host's side of the control channel: one byte stream to the guest's
//! multiplexer (the virtio-serial chardev socket that `slipway run` holds),
//! spoken as one HTTP/2 client connection, and any number of local gRPC
//! clients served on a unix socket, their streams forwarded over that one
//! connection with the multiplexer's own forwarding code.
//!
//! A session starts with the `session` line exchange, then HTTP/2. It is
//! checked with HTTP/2 PINGs; a session that breaks or stops answering is
//! dropped (closing the byte stream) and the next call opens a new one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::{Ping, RecvStream};
use http::Request;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tonic::Code;

use crate::forward::forward;
use crate::{limits, session, status};

/// How long one session line exchange may take before a new hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// Hellos sent on one byte stream before giving up on it.
const HELLO_ATTEMPTS: u32 = 5;
/// Time between keep-alive PINGs, and how long an answer may take.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// A byte stream to the guest.
pub trait GuestIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> GuestIo for T {}

type Connect =
    dyn Fn() -> Pin<Box<dyn Future<Output = io::Result<Box<dyn GuestIo>>> + Send>> + Send + Sync;

#[derive(Debug)]
struct Session {
    sender: SendRequest<Bytes>,
    alive: Arc<AtomicBool>,
    close: Arc<tokio::sync::Notify>,
}

struct Inner {
    connect: Box<Connect>,
    session: tokio::sync::Mutex<Option<Session>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

/// The host's bridge to one guest. Cheap to clone; clones share the session.
#[derive(Debug, Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

impl Bridge {
    /// A bridge that opens byte streams to the guest with `connect`, once at
    /// first use and again after a session is lost.
    pub fn new<F, Fut, IO>(connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<IO>> + Send + 'static,
        IO: GuestIo,
    {
        let connect: Box<Connect> = Box::new(move || {
            let fut = connect();
            Box::pin(async move { fut.await.map(|io| Box::new(io) as Box<dyn GuestIo>) })
        });
        Bridge {
            inner: Arc::new(Inner {
                connect,
                session: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// A bridge to the chardev socket at `path` (qemu's
    /// `-chardev socket,path=...,server=on` of the guest's control port).
    pub fn unix(path: impl Into<std::path::PathBuf>) -> Self {
        let path = path.into();
        Bridge::new(move || tokio::net::UnixStream::connect(path.clone()))
    }

    /// Serves local clients on `listener`, each on its own task.
    pub async fn serve(&self, listener: UnixListener) -> io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let bridge = self.clone();
            tokio::spawn(async move {
                let _ = bridge.serve_connection(stream).await;
            });
        }
    }

    /// Serves one local client's HTTP/2 connection.
    pub async fn serve_connection<IO>(&self, io: IO) -> Result<(), h2::Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut conn = limits::server().handshake(io).await?;
        while let Some(stream) = conn.accept().await {
            let (req, respond) = stream?;
            let bridge = self.clone();
            tokio::spawn(async move { bridge.handle(req, respond).await });
        }
        Ok(())
    }

    /// Whether a session to the guest is up now (without opening one).
    pub async fn connected(&self) -> bool {
        self.inner
            .session
            .lock()
            .await
            .as_ref()
            .is_some_and(|s| s.alive.load(Ordering::Acquire))
    }

    /// Ends the current session, if any; the next call opens a new one.
    pub async fn disconnect(&self) {
        if let Some(s) = self.inner.session.lock().await.take() {
            s.alive.store(false, Ordering::Release);
            s.close.notify_one();
        }
    }

    async fn handle(&self, req: Request<RecvStream>, respond: SendResponse<Bytes>) {
        let sender = match self.sender().await {
            Ok(s) => s,
            Err(e) => return status::reply(respond, Code::Unavailable, &e),
        };
        let Err((req, respond)) = forward(req, respond, sender, "guest").await else {
            return;
        };
        // The session went away before this call could be sent: once more
        // on a new one.
        self.disconnect().await;
        let sender = match self.sender().await {
            Ok(s) => s,
            Err(e) => return status::reply(respond, Code::Unavailable, &e),
        };
        if let Err((_, respond)) = forward(req, respond, sender, "guest").await {
            status::reply(respond, Code::Unavailable, "the guest session closed");
        }
    }

    /// The live session, opening one if there is none.
    async fn sender(&self) -> Result<SendRequest<Bytes>, String> {
        let mut slot = self.inner.session.lock().await;
        if let Some(s) = slot.as_ref()
            && s.alive.load(Ordering::Acquire)
        {
            return Ok(s.sender.clone());
        }
        *slot = None;
        let session = self
            .open()
            .await
            .map_err(|e| format!("no session with the guest's multiplexer: {e}"))?;
        let sender = session.sender.clone();
        *slot = Some(session);
        Ok(sender)
    }

    async fn open(&self) -> io::Result<Session> {
        let mut io = (self.inner.connect)().await?;
        let mut rest = None;
        for _ in 0..HELLO_ATTEMPTS {
            match tokio::time::timeout(HELLO_TIMEOUT, session::hello(&mut io, &session::nonce()))
                .await
            {
                Ok(r) => {
                    rest = Some(r?);
                    break;
                }
                Err(_) => continue,
            }
        }
        let rest = rest.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the guest did not answer the session hello",
            )
        })?;
        let (sender, mut conn) = limits::client()
            .handshake::<_, Bytes>(session::Prefixed::new(rest, io))
            .await
            .map_err(io::Error::other)?;
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let mut pings = conn.ping_pong();
        let close = Arc::new(tokio::sync::Notify::new());
        let closed = close.clone();
        tokio::spawn(async move {
            let keepalive = async {
                let Some(pings) = pings.as_mut() else {
                    return std::future::pending().await;
                };
                loop {
                    tokio::time::sleep(KEEPALIVE).await;
                    match tokio::time::timeout(KEEPALIVE, pings.ping(Ping::opaque())).await {
                        Ok(Ok(_)) => {}
                        _ => return,
                    }
                }
            };
            tokio::select! {
                _ = &mut conn => {}
                () = keepalive => {}
                () = closed.notified() => {}
            }
            // Dropping the connection closes the byte stream.
            flag.store(false, Ordering::Release);
        });
        Ok(Session {
            sender,
            alive,
            close,
        })
    }
}
