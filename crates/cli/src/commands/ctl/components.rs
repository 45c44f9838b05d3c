//! The multiplexer's `slipway.mux.v1.Components/List`.

use serde_json::{Value, json};
use slipway_mux::proto::mux::v1::components_client::ComponentsClient;
use slipway_mux::proto::mux::v1::{Component, ListComponentsRequest, component};
use tonic::transport::Channel;

use super::GrpcError;
use super::table;
use crate::output::outln;

fn state_name(state: i32) -> String {
    component::State::try_from(state)
        .map_or_else(|_| format!("STATE_{state}"), |s| s.as_str_name().to_owned())
}

fn to_json(c: &Component) -> Value {
    json!({
        "name": c.name,
        "state": state_name(c.state),
        "socket": c.socket,
        "services": c.services,
        "shadowed": c.shadowed,
        "descriptors": c.descriptors,
        "error": c.error,
    })
}

pub async fn list(channel: Channel, json: bool) -> anyhow::Result<()> {
    let components = ComponentsClient::new(channel)
        .list(ListComponentsRequest {})
        .await
        .map_err(GrpcError)?
        .into_inner()
        .components;
    if json {
        let all: Vec<Value> = components.iter().map(to_json).collect();
        outln!("{}", Value::Array(all))?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = components
        .iter()
        .map(|c| {
            let services = c
                .services
                .iter()
                .map(|s| {
                    if c.shadowed.contains(s) {
                        format!("{s} (shadowed)")
                    } else {
                        s.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            vec![
                c.name.clone(),
                state_name(c.state),
                services,
                c.error.clone(),
            ]
        })
        .collect();
    crate::output::write_str(&table::render(
        &["NAME", "STATE", "SERVICES", "ERROR"],
        &rows,
    ))?;
    Ok(())
}
