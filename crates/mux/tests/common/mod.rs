//! Real gRPC components (tonic servers on unix sockets, each on a runtime
//! of its own so that killing it closes every connection) and clients.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use slipway_mux::{Mux, Registration};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::Stream;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

pub mod echo {
    tonic::include_proto!("slipway.test.echo");
}
pub mod info {
    tonic::include_proto!("slipway.test.info");
}

pub const ECHO_DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/echo.binpb"));
pub const INFO_DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/info.binpb"));
pub const ECHO: &str = "slipway.test.echo.Echo";
pub const INFO: &str = "slipway.test.info.Info";

use echo::echo_server::{Echo, EchoServer};
use echo::{EchoReply, EchoRequest};

/// What a test can see of an echo server's work.
#[derive(Debug, Default)]
pub struct Counters {
    /// Server-streaming calls whose client went away.
    pub cancelled: AtomicUsize,
    /// Bytes of payload put into streams.
    pub streamed: AtomicU64,
}

#[derive(Debug, Clone)]
struct EchoService {
    server: String,
    counters: Arc<Counters>,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

fn fail(req: &EchoRequest) -> Result<(), Status> {
    if req.fail_code == 0 {
        return Ok(());
    }
    let mut status = Status::new(
        tonic::Code::from(req.fail_code as i32),
        format!("failing as asked: {}", req.text),
    );
    status
        .metadata_mut()
        .insert("x-detail", "trailer-value".parse().unwrap());
    Err(status)
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, req: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let req = req.into_inner();
        fail(&req)?;
        Ok(Response::new(EchoReply {
            text: req.text,
            server: self.server.clone(),
            index: 0,
            payload: req.payload,
        }))
    }

    type ExpandStream = ReplyStream;

    async fn expand(&self, req: Request<EchoRequest>) -> Result<Response<ReplyStream>, Status> {
        let req = req.into_inner();
        fail(&req)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let this = self.clone();
        tokio::spawn(async move {
            let mut i = 0u32;
            loop {
                if req.count != 0 && i >= req.count {
                    return;
                }
                let reply = EchoReply {
                    text: req.text.clone(),
                    server: this.server.clone(),
                    index: i,
                    payload: req.payload.clone(),
                };
                if tx.send(Ok(reply)).await.is_err() {
                    this.counters.cancelled.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                this.counters
                    .streamed
                    .fetch_add(req.payload.len() as u64, Ordering::SeqCst);
                i += 1;
                if req.interval_ms != 0 {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(req.interval_ms.into())) => {}
                        () = tx.closed() => {
                            this.counters.cancelled.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn collect(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        let mut stream = req.into_inner();
        let mut text = String::new();
        let mut n = 0;
        while let Some(m) = stream.message().await? {
            fail(&m)?;
            text.push_str(&m.text);
            n += 1;
        }
        Ok(Response::new(EchoReply {
            text,
            server: self.server.clone(),
            index: n,
            payload: Vec::new(),
        }))
    }

    type ChatStream = ReplyStream;

    async fn chat(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let mut stream = req.into_inner();
        let server = self.server.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            let mut i = 0;
            while let Ok(Some(m)) = stream.message().await {
                let reply = EchoReply {
                    text: m.text.to_uppercase(),
                    server: server.clone(),
                    index: i,
                    payload: Vec::new(),
                };
                i += 1;
                if tx.send(Ok(reply)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[derive(Debug)]
struct InfoService;

#[tonic::async_trait]
impl info::info_server::Info for InfoService {
    async fn get(
        &self,
        _: Request<info::InfoRequest>,
    ) -> Result<Response<info::InfoReply>, Status> {
        Ok(Response::new(info::InfoReply {
            kernel: "test-kernel".into(),
        }))
    }
}

/// A component process stand-in: its own runtime, so `kill` ends every
/// connection at once, as a dying process would.
#[derive(Debug)]
pub struct Component {
    runtime: Option<tokio::runtime::Runtime>,
    pub socket: PathBuf,
    pub counters: Arc<Counters>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Echo with tonic-reflection.
    Echo,
    /// Info without reflection.
    Info,
}

impl Component {
    pub fn start(kind: Kind, socket: &Path, server: &str) -> Component {
        let _ = std::fs::remove_file(socket);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let counters = Arc::new(Counters::default());
        let listener = {
            let _guard = runtime.enter();
            UnixListener::bind(socket).unwrap()
        };
        let service = EchoService {
            server: server.to_string(),
            counters: counters.clone(),
        };
        runtime.spawn(async move {
            let incoming = UnixListenerStream::new(listener);
            let result = match kind {
                Kind::Echo => {
                    let reflection = tonic_reflection::server::Builder::configure()
                        .register_encoded_file_descriptor_set(ECHO_DESCRIPTORS)
                        .build_v1()
                        .unwrap();
                    Server::builder()
                        .add_service(EchoServer::new(service))
                        .add_service(reflection)
                        .serve_with_incoming(incoming)
                        .await
                }
                Kind::Info => {
                    Server::builder()
                        .add_service(info::info_server::InfoServer::new(InfoService))
                        .serve_with_incoming(incoming)
                        .await
                }
            };
            result.unwrap();
        });
        Component {
            runtime: Some(runtime),
            socket: socket.to_path_buf(),
            counters,
        }
    }

    /// Ends the component and every connection to it, and removes its socket.
    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `name`'s registration into `dir`.
pub fn register(
    dir: &Path,
    name: &str,
    socket: &Path,
    services: &[&str],
    descriptors: Option<&Path>,
) {
    Registration {
        name: name.into(),
        socket: socket.to_path_buf(),
        services: services.iter().map(|s| s.to_string()).collect(),
        descriptors: descriptors.map(Path::to_path_buf),
    }
    .write_to(dir)
    .unwrap();
}

/// A multiplexer serving on `<dir>/mux.sock`, with registrations in
/// `<dir>/components`, running on the test's runtime.
pub struct TestMux {
    pub mux: Mux,
    pub socket: PathBuf,
    pub components: PathBuf,
}

pub async fn start_mux(dir: &Path) -> TestMux {
    let components = dir.join("components");
    std::fs::create_dir_all(&components).unwrap();
    let mux = Mux::new(&components);
    mux.watch().unwrap();
    let socket = dir.join("mux.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let m = mux.clone();
    tokio::spawn(async move { m.serve_unix(listener).await });
    TestMux {
        mux,
        socket,
        components,
    }
}

/// A tonic channel to a unix socket.
pub async fn channel(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .unwrap()
}

pub fn request(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.into(),
        ..EchoRequest::default()
    }
}

/// Retries `f` until it returns `Some`, for changes the multiplexer's
/// watcher picks up asynchronously; fails after 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not after 10 s");
}
