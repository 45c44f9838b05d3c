//! What runs the services, behind one interface: the init, or containerd
//! through this process (`crate::containerd`).

use std::time::Duration;

use slipway_control::services::Service;

use crate::ServiceError;
use crate::containerd::Containerd;
use crate::init_backend::InitBackend;

/// The grace period of Stop and Restart when the request gives none.
pub const DEFAULT_GRACE_SECONDS: u32 = 10;

/// The backend the service manager dispatches to.
#[derive(Debug)]
pub enum Backend {
    /// The init runs the services.
    Init(InitBackend),
    /// This process runs them in containerd.
    Containerd(Containerd),
}

fn grace(seconds: u32) -> u32 {
    if seconds == 0 {
        DEFAULT_GRACE_SECONDS
    } else {
        seconds
    }
}

fn seconds(grace_seconds: u32) -> Duration {
    Duration::from_secs(u64::from(grace(grace_seconds)))
}

impl Backend {
    /// Every service, sorted by name.
    pub async fn list(&self) -> Result<Vec<Service>, ServiceError> {
        match self {
            Backend::Init(b) => b.list().await,
            Backend::Containerd(b) => Ok(b.list()),
        }
    }

    /// One service; [`ServiceError::Unknown`] when there is none.
    pub async fn status(&self, name: &str) -> Result<Service, ServiceError> {
        match self {
            Backend::Init(b) => b.status(name).await,
            Backend::Containerd(b) => b.status(name),
        }
    }

    /// Start a stopped or ended service.
    pub async fn start(&self, name: &str) -> Result<Service, ServiceError> {
        match self {
            Backend::Init(b) => b.start(name).await,
            Backend::Containerd(b) => b.start(name).await,
        }
    }

    /// Stop a service; `grace_seconds` 0 is the default.
    pub async fn stop(&self, name: &str, grace_seconds: u32) -> Result<Service, ServiceError> {
        match self {
            Backend::Init(b) => b.stop(name, grace(grace_seconds)).await,
            Backend::Containerd(b) => b.stop(name, seconds(grace_seconds)).await,
        }
    }

    /// Stop, then start a service.
    pub async fn restart(&self, name: &str, grace_seconds: u32) -> Result<Service, ServiceError> {
        match self {
            Backend::Init(b) => b.restart(name, grace(grace_seconds)).await,
            Backend::Containerd(b) => b.restart(name, seconds(grace_seconds)).await,
        }
    }

    /// Before the service manager exits (its TERM at shutdown): stop the
    /// services it runs itself. The init stops its own.
    pub async fn stop_all(&self, grace: Duration) {
        match self {
            Backend::Init(_) => {}
            Backend::Containerd(b) => b.stop_all(grace).await,
        }
    }
}
