//! The gRPC service.

use std::path::PathBuf;

use slipway_control::machine::info_server::Info;
use slipway_control::machine::{GetRequest, MachineInfo};
use tonic::{Request, Response, Status};

use crate::info;

/// `slipway.machine.v1.Info`, reading the files under `proc` (`/proc`).
#[derive(Debug, Clone)]
pub struct InfoService {
    /// Where procfs is mounted.
    pub proc: PathBuf,
}

#[tonic::async_trait]
impl Info for InfoService {
    async fn get(&self, _: Request<GetRequest>) -> Result<Response<MachineInfo>, Status> {
        info::gather(&self.proc)
            .map(Response::new)
            .map_err(|e| Status::internal(format!("reading the machine's state: {e}")))
    }
}
