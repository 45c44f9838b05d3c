//! `slipway-services service list|start|stop|restart NAME`: the console's
//! `service` command, asking the service manager (what the init's
//! `service` runs when the services are in containerd). It prints what
//! the init's prints.

use std::path::Path;

use slipway_control::channel::connect_unix;
use slipway_control::services::service::State;
use slipway_control::services::services_client::ServicesClient;
use slipway_control::services::{ListRequest, Service, ServiceRequest, StopRequest};

/// A service's STATUS column, as the init writes it.
pub fn status_text(s: &Service) -> String {
    let state = State::try_from(s.state).unwrap_or(State::Unspecified);
    let name = state.as_str_name().to_ascii_lowercase().replace('_', "-");
    match state {
        State::Exited | State::Failed => format!("{name} ({})", s.detail),
        _ => name,
    }
}

/// The listing, as the init's `service list`.
pub fn table(services: &[Service]) -> String {
    let mut out = format!(
        "{:<20} {:<24} {:>7} {:>8}\n",
        "NAME", "STATUS", "PID", "RESTARTS"
    );
    for s in services {
        let pid = if s.pid == 0 {
            "-".to_owned()
        } else {
            s.pid.to_string()
        };
        out.push_str(&format!(
            "{:<20} {:<24} {:>7} {:>8}\n",
            s.name,
            status_text(s),
            pid,
            s.restarts
        ));
    }
    out
}

/// Run the command; the exit status: 0 done, 1 refused or failed, 2 usage.
pub async fn service(listen: &Path, args: &[String]) -> i32 {
    let usage = || {
        eprintln!("usage: service list | service start|stop|restart NAME");
        2
    };
    let channel = match connect_unix(listen).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "service: cannot reach the service manager at {}: {e}",
                listen.display()
            );
            return 1;
        }
    };
    let mut client = ServicesClient::new(channel);
    let result = match args {
        [verb] if verb == "list" => client.list(ListRequest {}).await.map(|r| {
            print!("{}", table(&r.into_inner().services));
        }),
        [verb, name] => {
            let stop = StopRequest {
                name: name.clone(),
                grace_seconds: 0,
            };
            let done = match verb.as_str() {
                "start" => client.start(ServiceRequest { name: name.clone() }).await,
                "stop" => client.stop(stop).await,
                "restart" => client.restart(stop).await,
                _ => return usage(),
            };
            done.map(|_| ())
        }
        _ => return usage(),
    };
    match result {
        Ok(()) => 0,
        Err(status) => {
            eprintln!("service: {}", status.message());
            1
        }
    }
}
