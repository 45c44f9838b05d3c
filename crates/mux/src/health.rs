//! grpc.health.v1.Health: the multiplexer itself (service "") and its own
//! services are SERVING; a registered service is SERVING while its
//! component accepts connections, NOT_SERVING otherwise.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::proto::health::v1::health_check_response::ServingStatus;
use crate::proto::health::v1::{HealthCheckRequest, HealthCheckResponse, health_server};
use crate::registry::{OWN_SERVICES, Registry};

/// How often `Watch` checks a component's reachability when nothing else
/// (a registration change) wakes it.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Health {
    registry: Arc<Registry>,
}

impl Health {
    pub fn new(registry: Arc<Registry>) -> Self {
        Health { registry }
    }

    /// The status of `service`, or `None` if nobody serves it.
    pub async fn status(&self, service: &str) -> Option<ServingStatus> {
        if service.is_empty() || OWN_SERVICES.contains(&service) {
            return Some(ServingStatus::Serving);
        }
        let component = self.registry.route(service)?;
        Some(match component.backend.sender().await {
            Ok(_) => ServingStatus::Serving,
            Err(_) => ServingStatus::NotServing,
        })
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl health_server::Health for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match self.status(&service).await {
            Some(s) => Ok(Response::new(HealthCheckResponse { status: s as i32 })),
            None => Err(Status::not_found(format!("unknown service {service}"))),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let changes = self.registry.subscribe();
        let state = (self.clone(), service, changes, None::<ServingStatus>);
        let stream =
            futures_util::stream::unfold(state, |(this, service, mut changes, last)| async move {
                loop {
                    let now = this
                        .status(&service)
                        .await
                        .unwrap_or(ServingStatus::ServiceUnknown);
                    if last != Some(now) {
                        let reply = HealthCheckResponse { status: now as i32 };
                        return Some((Ok(reply), (this, service, changes, Some(now))));
                    }
                    tokio::select! {
                        _ = changes.changed() => {}
                        () = tokio::time::sleep(WATCH_INTERVAL) => {}
                    }
                }
            });
        Ok(Response::new(Box::pin(stream)))
    }
}
