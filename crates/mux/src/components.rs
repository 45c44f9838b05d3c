//! slipway.mux.v1.Components: what is registered, and whether it answers.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto::mux::v1::component::State;
use crate::proto::mux::v1::{
    Component, ListComponentsRequest, ListComponentsResponse, components_server,
};
use crate::registry::{OWN_SERVICES, Registry};

/// The name the multiplexer lists itself under.
pub const SELF_NAME: &str = "slipway-mux";

#[derive(Debug, Clone)]
pub struct Components {
    registry: Arc<Registry>,
}

impl Components {
    pub fn new(registry: Arc<Registry>) -> Self {
        Components { registry }
    }

    /// Every component, probed for reachability, and the multiplexer itself.
    pub async fn list(&self) -> Vec<Component> {
        let table = self.registry.table();
        let mut out = vec![Component {
            name: SELF_NAME.to_string(),
            services: OWN_SERVICES.iter().map(|s| s.to_string()).collect(),
            state: State::Ready as i32,
            ..Component::default()
        }];
        for c in &table.components {
            let mut services = c.registration.services.clone();
            services.sort();
            services.dedup();
            let shadowed = services
                .iter()
                .filter(|s| table.route(s).is_none_or(|owner| !Arc::ptr_eq(owner, c)))
                .cloned()
                .collect();
            let (state, error) = match c.backend.sender().await {
                Ok(_) => (State::Ready, String::new()),
                Err(e) => (State::Unavailable, e),
            };
            out.push(Component {
                name: c.name().to_string(),
                socket: c.registration.socket.display().to_string(),
                services,
                shadowed,
                state: state as i32,
                error,
                descriptors: c
                    .registration
                    .descriptors
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            });
        }
        for i in &table.invalid {
            out.push(Component {
                name: i.name.clone(),
                state: State::Invalid as i32,
                error: i.error.clone(),
                ..Component::default()
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[tonic::async_trait]
impl components_server::Components for Components {
    async fn list(
        &self,
        _request: Request<ListComponentsRequest>,
    ) -> Result<Response<ListComponentsResponse>, Status> {
        Ok(Response::new(ListComponentsResponse {
            components: Components::list(self).await,
        }))
    }
}
