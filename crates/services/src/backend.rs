//! What runs the services, behind one interface: the init, or containerd
//! (`crate::containerd`, whose variant joins this enum).

use std::time::Duration;

use slipway_control::services::Service;

use crate::ServiceError;
use crate::init_backend::InitBackend;

/// The grace period of Stop and Restart when the request gives none.
pub const DEFAULT_GRACE_SECONDS: u32 = 10;

/// The backend the service manager dispatches to.
#[derive(Debug)]
pub enum Backend {
    /// The init runs the services.
    Init(InitBackend),
}

fn grace(seconds: u32) -> u32 {
    if seconds == 0 {
        DEFAULT_GRACE_SECONDS
    } else {
        seconds
    }
}

impl Backend {
    /// Every service, sorted by name.
    pub async fn list(&self) -> Result<Vec<Service>, ServiceError> {
        match self {
            Backend::Init(b) => b.list().await,
        }
    }

    /// One service; [`ServiceError::Unknown`] when there is none.
    pub async fn status(&self, name: &str) -> Result<Service, ServiceError> {
        match self {
            Backend::Init(b) => b.status(name).await,
        }
    }

    /// Start a stopped or ended service.
    pub async fn start(&self, name: &str) -> Result<Service, ServiceError> {
        match self {
            Backend::Init(b) => b.start(name).await,
        }
    }

    /// Stop a service; `grace_seconds` 0 is the default.
    pub async fn stop(&self, name: &str, grace_seconds: u32) -> Result<Service, ServiceError> {
        match self {
            Backend::Init(b) => b.stop(name, grace(grace_seconds)).await,
        }
    }

    /// Stop, then start a service.
    pub async fn restart(&self, name: &str, grace_seconds: u32) -> Result<Service, ServiceError> {
        match self {
            Backend::Init(b) => b.restart(name, grace(grace_seconds)).await,
        }
    }

    /// Before the service manager exits (its TERM at shutdown): stop the
    /// services it runs itself. The init stops its own.
    pub async fn stop_all(&self, _grace: Duration) {
        match self {
            Backend::Init(_) => {}
        }
    }
}
