//! Dispatch to the services the multiplexer serves itself (tonic servers
//! called in-process, without a transport).

use std::sync::Arc;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::Request;
use tonic::codegen::Service as _;

use crate::body::{H2Body, relay};
use crate::components::Components;
use crate::descriptors::DescriptorIndex;
use crate::health::Health;
use crate::proto::health::v1::health_server::HealthServer;
use crate::proto::mux::v1::components_server::ComponentsServer;
use crate::proto::reflection::v1::server_reflection_server::ServerReflectionServer as V1Server;
use crate::proto::reflection::v1alpha::server_reflection_server::ServerReflectionServer as V1AlphaServer;
use crate::reflection::Reflection;
use crate::registry::Registry;

#[derive(Debug, Clone)]
pub(crate) struct Local {
    reflection_v1: V1Server<Reflection>,
    reflection_v1alpha: V1AlphaServer<Reflection>,
    health: HealthServer<Health>,
    components: ComponentsServer<Components>,
}

impl Local {
    pub(crate) fn new(registry: Arc<Registry>, own: Arc<DescriptorIndex>) -> Self {
        let reflection = Reflection::new(registry.clone(), own);
        Local {
            reflection_v1: V1Server::new(reflection.clone()),
            reflection_v1alpha: V1AlphaServer::new(reflection),
            health: HealthServer::new(Health::new(registry.clone())),
            components: ComponentsServer::new(Components::new(registry)),
        }
    }

    /// Serves the call if `service` is one of the multiplexer's own;
    /// otherwise gives the stream back.
    pub(crate) async fn serve(
        &self,
        service: &str,
        req: Request<RecvStream>,
        respond: SendResponse<Bytes>,
    ) -> Option<(Request<RecvStream>, SendResponse<Bytes>)> {
        if !crate::registry::OWN_SERVICES.contains(&service) {
            return Some((req, respond));
        }
        let req = req.map(H2Body::new);
        let response = match service {
            "grpc.reflection.v1.ServerReflection" => self.reflection_v1.clone().call(req).await,
            "grpc.reflection.v1alpha.ServerReflection" => {
                self.reflection_v1alpha.clone().call(req).await
            }
            "grpc.health.v1.Health" => self.health.clone().call(req).await,
            _ => self.components.clone().call(req).await,
        };
        let Ok(response) = response;
        relay(response, respond).await;
        None
    }
}
