//! A machine without a boot: the real `slipway-mux` library serving host
//! sessions on a unix listener at `<state>/control.chardev` (where qemu's
//! chardev socket would be, one session at a time as qemu's), a services
//! component (a tonic server implementing `slipway.services.v1` over an
//! in-memory table and log) registered with it, and, optionally, the
//! bridge `slipway run` serves (`slipway_run::BridgeThread`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use slipway_control::services::log_chunk::Stream as LogStream;
use slipway_control::services::power_server::{Power, PowerServer};
use slipway_control::services::services_server::{Services, ServicesServer};
use slipway_control::services::{
    Event, ListRequest, ListResponse, LogChunk, LogsRequest, PowerRequest, PowerResponse, Service,
    ServiceRequest, StopRequest, TimelineRequest, TimelineResponse, service::State,
};
use slipway_mux::{Mux, Registration};
use tokio::net::UnixListener;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status};

pub const SERVICES: &str = "slipway.services.v1.Services";
pub const POWER: &str = "slipway.services.v1.Power";

/// What the component holds, and what the test sees of it.
#[derive(Debug)]
pub struct Table {
    services: Mutex<BTreeMap<String, Service>>,
    log: Mutex<String>,
    appended: tokio::sync::broadcast::Sender<String>,
    /// Set: every `Logs` stream that follows ends.
    end_follow: tokio::sync::watch::Sender<bool>,
    pub powered_off: AtomicBool,
    next_pid: AtomicU32,
}

impl Table {
    fn new() -> Table {
        let mut services = BTreeMap::new();
        for (name, state, pid, runtime, detail) in [
            ("getty", State::Ready, 101, "crun", ""),
            ("sshd", State::Exited, 0, "runc", "exit status 1"),
            ("web", State::Ready, 102, "crun", ""),
        ] {
            services.insert(
                name.to_owned(),
                Service {
                    name: name.into(),
                    state: state as i32,
                    detail: detail.into(),
                    pid,
                    restarts: 0,
                    runtime: runtime.into(),
                    restart: "on-failure".into(),
                },
            );
        }
        Table {
            services: Mutex::new(services),
            log: Mutex::new("web: one\nweb: two\nweb: three\n".into()),
            appended: tokio::sync::broadcast::channel(64).0,
            end_follow: tokio::sync::watch::channel(false).0,
            powered_off: AtomicBool::new(false),
            next_pid: AtomicU32::new(200),
        }
    }

    /// Append to the `web` service's log.
    pub fn append(&self, text: &str) {
        let mut log = self.log.lock().unwrap();
        log.push_str(text);
        let _ = self.appended.send(text.to_owned());
    }

    /// End the streams of `logs -f`, as a component going away would.
    pub fn end_follow(&self) {
        self.end_follow.send_replace(true);
    }

    /// How many `logs -f` streams are open.
    pub fn followers(&self) -> usize {
        self.appended.receiver_count()
    }

    fn get(&self, name: &str) -> Result<Service, Status> {
        self.services
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no service {name:?}")))
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut Service)) -> Result<Service, Status> {
        let mut services = self.services.lock().unwrap();
        let s = services
            .get_mut(name)
            .ok_or_else(|| Status::not_found(format!("no service {name:?}")))?;
        f(s);
        Ok(s.clone())
    }
}

#[derive(Debug, Clone)]
struct Component(Arc<Table>);

type Chunks = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Services for Component {
    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let services = self.0.services.lock().unwrap().values().cloned().collect();
        Ok(Response::new(ListResponse { services }))
    }

    async fn status(&self, req: Request<ServiceRequest>) -> Result<Response<Service>, Status> {
        // Shows a request header, for `call -H`.
        let header = req
            .metadata()
            .get("x-test-header")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut service = self.0.get(&req.into_inner().name)?;
        if let Some(header) = header {
            service.detail = format!("x-test-header: {header}");
        }
        Ok(Response::new(service))
    }

    async fn start(&self, req: Request<ServiceRequest>) -> Result<Response<Service>, Status> {
        let name = req.into_inner().name;
        if self.0.get(&name)?.pid != 0 {
            return Err(Status::failed_precondition(format!(
                "service {name:?} is already running"
            )));
        }
        let pid = self.0.next_pid.fetch_add(1, Ordering::SeqCst);
        self.0
            .update(&name, |s| {
                s.state = State::Ready as i32;
                s.pid = pid;
                s.detail.clear();
            })
            .map(Response::new)
    }

    async fn stop(&self, req: Request<StopRequest>) -> Result<Response<Service>, Status> {
        self.0
            .update(&req.into_inner().name, |s| {
                s.state = State::Stopped as i32;
                s.pid = 0;
            })
            .map(Response::new)
    }

    async fn restart(&self, req: Request<StopRequest>) -> Result<Response<Service>, Status> {
        let pid = self.0.next_pid.fetch_add(1, Ordering::SeqCst);
        self.0
            .update(&req.into_inner().name, |s| {
                s.state = State::Running as i32;
                s.pid = pid;
                s.restarts += 1;
                s.detail.clear();
            })
            .map(Response::new)
    }

    type LogsStream = Chunks;

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Chunks>, Status> {
        let req = req.into_inner();
        self.0.get(&req.name)?;
        // Subscribed before the snapshot: nothing appended in between is lost.
        let mut appended = self.0.appended.subscribe();
        let mut ended = self.0.end_follow.subscribe();
        let log = self.0.log.lock().unwrap().clone();
        let lines: Vec<&str> = log.split_inclusive('\n').collect();
        let skip = match req.tail {
            0 => 0,
            n => lines.len().saturating_sub(n as usize),
        };
        let first = lines[skip..].concat();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            if tx.send(Ok(chunk(first))).await.is_err() {
                return;
            }
            // The whole log has a line on standard error too.
            if req.tail == 0 {
                let err = LogChunk {
                    data: b"web: on stderr\n".to_vec(),
                    stream: LogStream::Stderr.into(),
                };
                if tx.send(Ok(err)).await.is_err() {
                    return;
                }
            }
            if !req.follow {
                return;
            }
            if *ended.borrow_and_update() {
                return;
            }
            loop {
                tokio::select! {
                    text = appended.recv() => match text {
                        Ok(text) => if tx.send(Ok(chunk(text))).await.is_err() { return },
                        Err(_) => return,
                    },
                    _ = ended.changed() => return,
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn timeline(
        &self,
        _: Request<TimelineRequest>,
    ) -> Result<Response<TimelineResponse>, Status> {
        let event = |ms, event: &str, name: &str| Event {
            ms,
            event: event.into(),
            name: name.into(),
            detail: String::new(),
        };
        Ok(Response::new(TimelineResponse {
            events: vec![
                event(12, "init-start", ""),
                event(340, "service-start", "web"),
                event(420, "service-ready", "web"),
            ],
        }))
    }
}

fn chunk(text: String) -> LogChunk {
    LogChunk {
        data: text.into_bytes(),
        stream: LogStream::Stdout.into(),
    }
}

#[tonic::async_trait]
impl Power for Component {
    async fn poweroff(&self, _: Request<PowerRequest>) -> Result<Response<PowerResponse>, Status> {
        self.0.powered_off.store(true, Ordering::SeqCst);
        Ok(Response::new(PowerResponse {}))
    }

    async fn reboot(&self, _: Request<PowerRequest>) -> Result<Response<PowerResponse>, Status> {
        Ok(Response::new(PowerResponse {}))
    }
}

/// Which bridge serves `<state>/control.sock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bridge {
    /// A foreground `slipway run`'s: [`slipway_run::BridgeThread`].
    Thread,
    /// None yet (the test starts a detached one).
    None,
}

/// The guest side on a runtime of its own, and the host's bridge.
#[derive(Debug)]
pub struct FakeMachine {
    pub dir: tempfile::TempDir,
    /// The machine's state directory.
    pub state: PathBuf,
    pub table: Arc<Table>,
    pub bridge: Option<slipway_run::BridgeThread>,
    mux: Mux,
    runtime: tokio::runtime::Runtime,
}

impl FakeMachine {
    pub fn start(bridge: Bridge) -> FakeMachine {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("machine-state");
        slipway_run::state::create_state_dir(&state).unwrap();
        let guest = dir.path().join("guest");
        let components = guest.join("components");
        std::fs::create_dir_all(&components).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let table = Arc::new(Table::new());

        // The services component, described by slipway-control's descriptor
        // set (it serves no reflection itself).
        let socket = guest.join("services.sock");
        let descriptors = guest.join("services.binpb");
        std::fs::write(&descriptors, slipway_control::DESCRIPTORS).unwrap();
        let component = Component(table.clone());
        let listener = runtime.block_on(async { UnixListener::bind(&socket).unwrap() });
        runtime.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(ServicesServer::new(component.clone()))
                .add_service(PowerServer::new(component))
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await
        });
        Registration {
            name: "services".into(),
            socket,
            services: vec![SERVICES.into(), POWER.into()],
            descriptors: Some(descriptors),
        }
        .write_to(&components)
        .unwrap();

        // The multiplexer, its host sessions on the chardev's path.
        let chardev = slipway_run::control::chardev_path(&state);
        let mux = runtime.block_on(async {
            let mux = Mux::new(&components);
            mux.watch().unwrap();
            let listener = UnixListener::bind(&chardev).unwrap();
            let serving = mux.clone();
            tokio::spawn(async move {
                let mux = serving;
                loop {
                    let Ok((mut io, _)) = listener.accept().await else {
                        return;
                    };
                    let _ = mux.serve_session(&mut io).await;
                }
            });
            mux
        });

        let bridge = match bridge {
            Bridge::Thread => Some(
                slipway_run::BridgeThread::start(
                    &chardev,
                    &slipway_run::control::socket_path(&state),
                )
                .unwrap(),
            ),
            Bridge::None => None,
        };
        FakeMachine {
            dir,
            state,
            table,
            bridge,
            mux,
            runtime,
        }
    }

    /// Serves the multiplexer on a loopback TCP port too, with mutual TLS
    /// (as `slipway-mux --tcp` does); returns the port.
    pub fn serve_tls(&self, files: &slipway_mux::tls::TlsFiles) -> u16 {
        let config = slipway_mux::tls::server_config(files).unwrap();
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let mux = self.mux.clone();
        self.runtime
            .spawn(async move { mux.serve_tls(listener, config).await });
        port
    }

    pub fn ctl(&self) -> super::Ctl {
        super::Ctl::new(&self.state)
    }

    pub fn state(&self) -> &Path {
        &self.state
    }
}
