//! containerd's containers and their tasks in the services' namespace.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use slipway_control::SERVICES_NAMESPACE;
use slipway_control::containerd::services::containers::v1::ListContainersRequest;
use slipway_control::containerd::services::containers::v1::containers_client::ContainersClient;
use slipway_control::containerd::services::tasks::v1::ListTasksRequest;
use slipway_control::containerd::services::tasks::v1::tasks_client::TasksClient;
use slipway_control::containerd::v1::types::{Process, Status};
use tonic::transport::Channel;
use tonic::{Code, Request};

use super::GrpcError;
use super::table;
use crate::output::outln;

/// The header containerd reads the namespace from.
const NAMESPACE_HEADER: &str = "containerd-namespace";

fn in_namespace<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        NAMESPACE_HEADER,
        tonic::metadata::MetadataValue::from_static(SERVICES_NAMESPACE),
    );
    request
}

fn no_containerd(status: tonic::Status) -> anyhow::Error {
    if status.code() == Code::Unimplemented {
        let why = GrpcError(status);
        anyhow::anyhow!("the machine runs no containerd (its multiplexer answers {why})")
    } else {
        GrpcError(status).into()
    }
}

pub async fn list(channel: Channel, json: bool) -> anyhow::Result<()> {
    let containers = ContainersClient::new(channel.clone())
        .list(in_namespace(ListContainersRequest { filters: vec![] }))
        .await
        .map_err(no_containerd)?
        .into_inner()
        .containers;
    let tasks = TasksClient::new(channel)
        .list(in_namespace(ListTasksRequest::default()))
        .await
        .map_err(no_containerd)?
        .into_inner()
        .tasks;
    // A container's task is its init process: the task's id is the
    // container's.
    let tasks: BTreeMap<&str, &Process> = tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut containers = containers;
    containers.sort_by(|a, b| a.id.cmp(&b.id));
    let rows: Vec<(String, String, String, String, u32)> = containers
        .iter()
        .map(|c| {
            let runtime = c
                .runtime
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default();
            let (status, pid) = match tasks.get(c.id.as_str()) {
                Some(t) => (
                    Status::try_from(t.status).map_or_else(
                        |_| format!("STATUS_{}", t.status),
                        |s| s.as_str_name().to_owned(),
                    ),
                    t.pid,
                ),
                None => ("NO TASK".to_owned(), 0),
            };
            (c.id.clone(), c.image.clone(), runtime, status, pid)
        })
        .collect();
    if json {
        let all: Vec<Value> = rows
            .iter()
            .map(|(id, image, runtime, status, pid)| {
                json!({"id": id, "image": image, "runtime": runtime, "status": status, "pid": pid})
            })
            .collect();
        outln!("{}", Value::Array(all))?;
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("slipway: ctl: no containers in namespace {SERVICES_NAMESPACE}");
    }
    let table_rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(id, image, runtime, status, pid)| {
            let pid = if pid == 0 {
                "-".into()
            } else {
                pid.to_string()
            };
            vec![id, image, runtime, status, pid]
        })
        .collect();
    crate::output::write_str(&table::render(
        &["ID", "IMAGE", "RUNTIME", "STATUS", "PID"],
        &table_rows,
    ))?;
    Ok(())
}
