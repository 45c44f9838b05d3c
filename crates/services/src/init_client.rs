//! The init's control socket (`/run/slipway/init.sock`), as the service
//! manager speaks it: one request line, then the init's reply (`ok`,
//! `error: WHY` or `redirect` on its first line). See the init's `control`
//! module for the requests.

use std::path::Path;

use serde::Deserialize;
use slipway_contract::timeline::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::ServiceError;

/// The init's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done; the lines after `ok`.
    Ok(String),
    /// Refused, and why.
    Error(String),
    /// The init does not hold the services (they run in containerd).
    Redirect,
}

/// Send one request and read the whole reply.
pub async fn request(socket: &Path, line: &str) -> Result<Reply, ServiceError> {
    let failed = |source: std::io::Error| ServiceError::Backend {
        what: format!("asking the init ({}) {line:?}", socket.display()),
        source: Box::new(source),
    };
    let mut stream = UnixStream::connect(socket).await.map_err(failed)?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(failed)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.map_err(failed)?;
    let (status, rest) = reply.split_once('\n').unwrap_or((reply.as_str(), ""));
    Ok(match status {
        "ok" => Reply::Ok(rest.to_owned()),
        "redirect" => Reply::Redirect,
        other => Reply::Error(other.trim_start_matches("error: ").to_owned()),
    })
}

/// Record `event` on the init's timeline (its console line and
/// `/run/slipway/timeline.json`), as the init's own events are.
pub async fn record_event(
    socket: &Path,
    event: Event,
    name: Option<&str>,
    detail: Option<&str>,
) -> Result<(), ServiceError> {
    let json = serde_json::json!({ "event": event.as_str(), "name": name, "detail": detail });
    match request(socket, &format!("event {json}")).await? {
        Reply::Ok(_) => Ok(()),
        Reply::Error(why) => Err(refused(socket, why)),
        Reply::Redirect => Err(refused(socket, "redirect".into())),
    }
}

fn refused(socket: &Path, why: String) -> ServiceError {
    ServiceError::Backend {
        what: format!("the init ({})", socket.display()),
        source: why.into(),
    }
}

/// The init's `list-json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Listing {
    /// The OCI runtime's name (`crun`, `runc`); empty without services.
    pub runtime: String,
    /// The services, sorted by name.
    pub services: Vec<InitService>,
}

/// One service as the init lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct InitService {
    /// Its name.
    pub name: String,
    /// `waiting`, `starting`, `running`, `ready`, `backing-off`, `exited`,
    /// `failed` or `stopped`.
    pub state: String,
    /// What the state refers to.
    pub detail: String,
    /// The container's pid, or 0.
    pub pid: u32,
    /// Starts after the first.
    pub restarts: u32,
    /// `never`, `on-failure` or `always`.
    pub restart: String,
}

/// The init's services; [`Reply::Redirect`] is an error here.
pub async fn list(socket: &Path) -> Result<Listing, ServiceError> {
    match request(socket, "list-json").await? {
        Reply::Ok(json) => serde_json::from_str(json.trim()).map_err(|e| ServiceError::Backend {
            what: format!("the init's listing {:?}", json.trim()),
            source: Box::new(e),
        }),
        Reply::Error(why) => Err(refused(socket, why)),
        Reply::Redirect => Err(refused(
            socket,
            "the init does not hold the services: they run in containerd".into(),
        )),
    }
}
