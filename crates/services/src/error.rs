//! What a service operation can fail with, and its gRPC status.

use tonic::{Code, Status};

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No service has this name.
    #[error("no service {0}")]
    Unknown(String),
    /// The operation does not apply in the service's state (starting a
    /// running service, a service whose bundle is unusable).
    #[error("service {name}: {why}")]
    Precondition {
        /// The service.
        name: String,
        /// Why not.
        why: String,
    },
    /// What runs the services (the init, containerd) cannot be reached or
    /// failed.
    #[error("{what}")]
    Backend {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        let code = match &e {
            ServiceError::Unknown(_) => Code::NotFound,
            ServiceError::Precondition { .. } => Code::FailedPrecondition,
            ServiceError::Backend { .. } => Code::Unavailable,
        };
        Status::new(code, slipway_contract::errors::chain(&e))
    }
}
