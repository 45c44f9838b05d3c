//! The service manager's calls (`slipway.services.v1`): ps, status, logs,
//! start, stop, restart, timeline, poweroff, reboot.

use std::io::Write as _;

use serde_json::{Value, json};
use slipway_contract::timeline::Entry;
use slipway_control::services::log_chunk::Stream;
use slipway_control::services::power_client::PowerClient;
use slipway_control::services::services_client::ServicesClient;
use slipway_control::services::{
    ListRequest, LogsRequest, PowerRequest, Service, ServiceRequest, StopRequest, TimelineRequest,
    service,
};
use tonic::transport::Channel;

use super::GrpcError;
use super::table;
use crate::output::outln;

fn state_name(state: i32) -> String {
    service::State::try_from(state)
        .map_or_else(|_| format!("STATE_{state}"), |s| s.as_str_name().to_owned())
}

fn to_json(s: &Service) -> Value {
    json!({
        "name": s.name,
        "state": state_name(s.state),
        "detail": s.detail,
        "pid": s.pid,
        "restarts": s.restarts,
        "runtime": s.runtime,
        "restart": s.restart,
    })
}

fn row(s: &Service) -> Vec<String> {
    let pid = if s.pid == 0 {
        "-".to_owned()
    } else {
        s.pid.to_string()
    };
    vec![
        s.name.clone(),
        state_name(s.state),
        pid,
        s.restarts.to_string(),
        s.runtime.clone(),
        s.detail.clone(),
    ]
}

const HEADER: [&str; 6] = ["NAME", "STATE", "PID", "RESTARTS", "RUNTIME", "DETAIL"];

pub async fn ps(channel: Channel, json: bool) -> anyhow::Result<()> {
    let list = ServicesClient::new(channel)
        .list(ListRequest {})
        .await
        .map_err(GrpcError)?
        .into_inner();
    if json {
        let all: Vec<Value> = list.services.iter().map(to_json).collect();
        outln!("{}", Value::Array(all))?;
    } else {
        let rows: Vec<Vec<String>> = list.services.iter().map(row).collect();
        crate::output::write_str(&table::render(&HEADER, &rows))?;
    }
    Ok(())
}

fn show(service: &Service, json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", to_json(service))?;
    } else {
        crate::output::write_str(&table::render(&HEADER, &[row(service)]))?;
    }
    Ok(())
}

pub async fn status(channel: Channel, name: &str, json: bool) -> anyhow::Result<()> {
    let service = ServicesClient::new(channel)
        .status(ServiceRequest { name: name.into() })
        .await
        .map_err(GrpcError)?
        .into_inner();
    show(&service, json)
}

pub async fn start(channel: Channel, name: &str) -> anyhow::Result<()> {
    let service = ServicesClient::new(channel)
        .start(ServiceRequest { name: name.into() })
        .await
        .map_err(GrpcError)?
        .into_inner();
    show(&service, false)
}

pub async fn stop(channel: Channel, name: &str, grace: u32, restart: bool) -> anyhow::Result<()> {
    let request = StopRequest {
        name: name.into(),
        grace_seconds: grace,
    };
    let mut client = ServicesClient::new(channel);
    let answer = if restart {
        client.restart(request).await
    } else {
        client.stop(request).await
    };
    show(&answer.map_err(GrpcError)?.into_inner(), false)
}

/// Copy the log as it comes, the service's standard error to ours and the
/// rest to standard output, until the stream ends (or Ctrl-C ends us).
pub async fn logs(channel: Channel, name: &str, follow: bool, tail: u32) -> anyhow::Result<()> {
    let mut stream = ServicesClient::new(channel)
        .logs(LogsRequest {
            name: name.into(),
            follow,
            tail,
        })
        .await
        .map_err(GrpcError)?
        .into_inner();
    while let Some(chunk) = stream.message().await.map_err(GrpcError)? {
        if chunk.stream() == Stream::Stderr {
            let mut err = std::io::stderr().lock();
            err.write_all(&chunk.data)?;
            err.flush()?;
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&chunk.data)?;
            out.flush()?;
        }
    }
    Ok(())
}

pub async fn timeline(channel: Channel, json: bool) -> anyhow::Result<()> {
    let events = ServicesClient::new(channel)
        .timeline(TimelineRequest {})
        .await
        .map_err(GrpcError)?
        .into_inner()
        .events;
    if json {
        // The shape of the guest's timeline.json, unknown events included.
        let all: Vec<Value> = events
            .iter()
            .map(|e| {
                let mut v = json!({"ms": e.ms, "event": e.event});
                if !e.name.is_empty() {
                    v["name"] = json!(e.name);
                }
                if !e.detail.is_empty() {
                    v["detail"] = json!(e.detail);
                }
                v
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&Value::Array(all))?)?;
        return Ok(());
    }
    let mut entries = Vec::new();
    for e in &events {
        match e.event.parse() {
            Ok(event) => entries.push(Entry {
                ms: e.ms,
                event,
                name: Some(e.name.clone()).filter(|n| !n.is_empty()),
                detail: Some(e.detail.clone()).filter(|d| !d.is_empty()),
            }),
            Err(err) => eprintln!("slipway: ctl: timeline: {err} at {} ms (skipped)", e.ms),
        }
    }
    crate::output::write_str(&slipway_report::chart::text(&entries))?;
    Ok(())
}

pub async fn power(channel: Channel, reboot: bool, quiet: bool) -> anyhow::Result<()> {
    let mut client = PowerClient::new(channel);
    if reboot {
        client.reboot(PowerRequest {}).await.map_err(GrpcError)?;
    } else {
        client.poweroff(PowerRequest {}).await.map_err(GrpcError)?;
    }
    if !quiet {
        let what = if reboot { "rebooting" } else { "powering off" };
        eprintln!("slipway: ctl: the machine is {what}");
    }
    Ok(())
}
