//! The boot timeline, read from the init's JSON file.

use std::path::Path;

use slipway_contract::timeline::Entry;
use slipway_control::services::Event;
use tonic::Status;

/// The events in `path` (the init's `/run/slipway/timeline.json`); none
/// when it does not exist (yet).
pub async fn read(path: &Path) -> Result<Vec<Event>, Status> {
    let json = match tokio::fs::read(path).await {
        Ok(json) => json,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Status::unavailable(format!("{}: {e}", path.display()))),
    };
    let entries: Vec<Entry> = serde_json::from_slice(&json)
        .map_err(|e| Status::internal(format!("{}: {e}", path.display())))?;
    Ok(entries.into_iter().map(event).collect())
}

fn event(e: Entry) -> Event {
    Event {
        ms: e.ms,
        event: e.event.as_str().to_owned(),
        name: e.name.unwrap_or_default(),
        detail: e.detail.unwrap_or_default(),
    }
}
