//! The init backend: the init runs the services (crun or runc); every
//! operation is a request on its control socket.

use std::path::PathBuf;

use slipway_control::services::Service;
use slipway_control::services::service::State;

use crate::ServiceError;
use crate::init_client::{self, InitService, Reply};

/// The services the init runs.
#[derive(Clone, Debug)]
pub struct InitBackend {
    socket: PathBuf,
}

fn state(name: &str) -> State {
    match name {
        "waiting" => State::Waiting,
        "starting" => State::Starting,
        "running" => State::Running,
        "ready" => State::Ready,
        "backing-off" => State::BackingOff,
        "exited" => State::Exited,
        "failed" => State::Failed,
        "stopped" => State::Stopped,
        _ => State::Unspecified,
    }
}

fn service(s: InitService, runtime: &str) -> Service {
    Service {
        name: s.name,
        state: state(&s.state) as i32,
        detail: s.detail,
        pid: s.pid,
        restarts: s.restarts,
        runtime: runtime.to_owned(),
        restart: s.restart,
    }
}

impl InitBackend {
    /// The init serving `socket`.
    pub fn new(socket: PathBuf) -> InitBackend {
        InitBackend { socket }
    }

    /// Every service, sorted by name.
    pub async fn list(&self) -> Result<Vec<Service>, ServiceError> {
        let listing = init_client::list(&self.socket).await?;
        Ok(listing
            .services
            .into_iter()
            .map(|s| service(s, &listing.runtime))
            .collect())
    }

    /// One service.
    pub async fn status(&self, name: &str) -> Result<Service, ServiceError> {
        self.list()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ServiceError::Unknown(name.to_owned()))
    }

    /// Send `request` about `name` (which must exist), then its status.
    async fn act(&self, name: &str, request: String) -> Result<Service, ServiceError> {
        self.status(name).await?;
        match init_client::request(&self.socket, &request).await? {
            Reply::Ok(_) => self.status(name).await,
            Reply::Error(why) => Err(ServiceError::Precondition {
                name: name.to_owned(),
                why,
            }),
            Reply::Redirect => Err(ServiceError::Backend {
                what: format!("{request:?}"),
                source: "the init does not hold the services: they run in containerd".into(),
            }),
        }
    }

    /// Start a stopped or ended service.
    pub async fn start(&self, name: &str) -> Result<Service, ServiceError> {
        self.act(name, format!("start {name}")).await
    }

    /// Stop a service: TERM, then KILL after `grace_seconds`.
    pub async fn stop(&self, name: &str, grace_seconds: u32) -> Result<Service, ServiceError> {
        self.act(name, format!("stop {name} {grace_seconds}")).await
    }

    /// Stop, then start.
    pub async fn restart(&self, name: &str, grace_seconds: u32) -> Result<Service, ServiceError> {
        self.act(name, format!("restart {name} {grace_seconds}"))
            .await
    }
}
