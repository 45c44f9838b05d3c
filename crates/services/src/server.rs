//! The gRPC services: `slipway.services.v1.Services` (dispatched to the
//! backend, but Logs and Timeline, which read the files the init and the
//! backends write) and `slipway.services.v1.Power`.

use std::path::PathBuf;
use std::sync::Arc;

use slipway_control::services::power_server::Power;
use slipway_control::services::services_server::Services;
use slipway_control::services::{
    ListRequest, ListResponse, LogsRequest, PowerRequest, PowerResponse, Service, ServiceRequest,
    StopRequest, TimelineRequest, TimelineResponse,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::backend::Backend;
use crate::logs::{self, LogStream};
use crate::power::{self, Action};
use crate::timeline;

/// The files the backend-independent calls read.
#[derive(Clone, Debug)]
pub struct Files {
    /// Where `<name>.log` are.
    pub log_dir: PathBuf,
    /// The init's timeline JSON.
    pub timeline: PathBuf,
}

/// `slipway.services.v1.Services`.
#[derive(Debug)]
pub struct ServicesApi {
    backend: Arc<Backend>,
    files: Files,
    stopping: watch::Receiver<bool>,
}

impl ServicesApi {
    /// Serve `backend`'s services, and the logs and timeline in `files`;
    /// followed logs end when `stopping` turns true.
    pub fn new(
        backend: Arc<Backend>,
        files: Files,
        stopping: watch::Receiver<bool>,
    ) -> ServicesApi {
        ServicesApi {
            backend,
            files,
            stopping,
        }
    }
}

#[tonic::async_trait]
impl Services for ServicesApi {
    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let services = self.backend.list().await?;
        Ok(Response::new(ListResponse { services }))
    }

    async fn status(&self, r: Request<ServiceRequest>) -> Result<Response<Service>, Status> {
        Ok(Response::new(self.backend.status(&r.get_ref().name).await?))
    }

    async fn start(&self, r: Request<ServiceRequest>) -> Result<Response<Service>, Status> {
        Ok(Response::new(self.backend.start(&r.get_ref().name).await?))
    }

    async fn stop(&self, r: Request<StopRequest>) -> Result<Response<Service>, Status> {
        let r = r.get_ref();
        Ok(Response::new(
            self.backend.stop(&r.name, r.grace_seconds).await?,
        ))
    }

    async fn restart(&self, r: Request<StopRequest>) -> Result<Response<Service>, Status> {
        let r = r.get_ref();
        Ok(Response::new(
            self.backend.restart(&r.name, r.grace_seconds).await?,
        ))
    }

    type LogsStream = LogStream;

    async fn logs(&self, r: Request<LogsRequest>) -> Result<Response<LogStream>, Status> {
        let r = r.get_ref();
        let files = logs::log_paths(&self.files.log_dir, &r.name)?;
        Ok(Response::new(logs::stream(
            files,
            r.tail,
            r.follow,
            self.stopping.clone(),
        )))
    }

    async fn timeline(
        &self,
        _: Request<TimelineRequest>,
    ) -> Result<Response<TimelineResponse>, Status> {
        let events = timeline::read(&self.files.timeline).await?;
        Ok(Response::new(TimelineResponse { events }))
    }
}

/// `slipway.services.v1.Power`.
#[derive(Debug)]
pub struct PowerApi {
    init: i32,
}

impl PowerApi {
    /// Signal process `init` (1 in the guest).
    pub fn new(init: i32) -> PowerApi {
        PowerApi { init }
    }
}

#[tonic::async_trait]
impl Power for PowerApi {
    async fn poweroff(&self, _: Request<PowerRequest>) -> Result<Response<PowerResponse>, Status> {
        power::request(self.init, Action::Poweroff)?;
        Ok(Response::new(PowerResponse {}))
    }

    async fn reboot(&self, _: Request<PowerRequest>) -> Result<Response<PowerResponse>, Status> {
        power::request(self.init, Action::Reboot)?;
        Ok(Response::new(PowerResponse {}))
    }
}
