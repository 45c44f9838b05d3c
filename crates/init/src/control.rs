//! `/run/slipway/init.sock`: the `service` command's requests, and the
//! service manager's (`slipway-services`).
//!
//! The protocol is one request line and a reply: `ok` or `error: <why>` on
//! the first line, then any output lines. The requests:
//!
//! | request | reply after `ok` |
//! |---|---|
//! | `list` | the console's table |
//! | `start NAME` | nothing |
//! | `stop NAME [GRACE_SECONDS]`, `restart NAME [GRACE_SECONDS]` | nothing (default grace 10 s) |
//! | `list-json` | one line: `{"runtime": "crun", "services": [{"name", "state", "detail", "pid", "restarts", "restart"}...]}` |
//! | `event {"event": E, "name": N, "detail": D}` | nothing; records the event on the init's timeline |
//!
//! When the services run in containerd, the init does not hold them: the
//! service requests (the first five) are answered `redirect`, and the
//! `service` command runs `slipway-services service ...`, which asks the
//! service manager.

use slipway_contract::errors::chain;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use slipway_contract::timeline::Event;

use crate::daemons::SERVICES;
use crate::services::Supervisor;
use crate::sys::Sys;
use crate::timeline::Timeline;

/// The grace period between TERM and KILL for `service stop`.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The first line of the answer to a service request when the init does
/// not hold the services.
pub const REDIRECT: &str = "redirect";

/// Who holds the services the socket answers for.
#[derive(Debug)]
pub enum Held {
    /// The image has no services.
    Nothing,
    /// The init's supervisor.
    Init(Arc<Supervisor>),
    /// The service manager, which runs them in containerd.
    Elsewhere,
}

/// What the socket serves.
pub struct Control {
    /// The services.
    pub held: Held,
    /// For timeline events.
    pub sys: Arc<dyn Sys>,
    /// The init's timeline.
    pub timeline: Arc<Timeline>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

/// `stop` and `restart`'s optional grace period.
fn grace(word: Option<&str>) -> Option<Duration> {
    match word {
        None => Some(STOP_GRACE),
        Some(w) => w.parse().ok().map(Duration::from_secs),
    }
}

/// Answer one request.
pub fn handle(control: &Control, request: &str) -> String {
    let (verb, rest) = request
        .trim()
        .split_once(' ')
        .unwrap_or((request.trim(), ""));
    if verb == "event" {
        return match record_event(control, rest) {
            Ok(()) => "ok\n".into(),
            Err(why) => format!("error: {why}\n"),
        };
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let name = words.first().copied();
    let known = matches!(
        (verb, words.len()),
        ("list" | "list-json", 0) | ("start", 1) | ("stop" | "restart", 1 | 2)
    );
    if !known {
        return format!(
            "error: unknown request {request:?}; expected list, start NAME, stop NAME or restart NAME\n"
        );
    }
    let supervisor = match &control.held {
        Held::Init(supervisor) => Some(supervisor.as_ref()),
        Held::Nothing => None,
        Held::Elsewhere => return format!("{REDIRECT}\n"),
    };
    let result = match (verb, name, supervisor) {
        ("list", _, _) => return table(supervisor),
        ("list-json", _, _) => return json(supervisor),
        (_, Some(name), None) => Err(crate::services::ServiceError::Unknown(name.to_owned())),
        (verb, Some(name), Some(supervisor)) => {
            let Some(grace) = grace(words.get(1).copied()) else {
                return format!("error: bad grace period {:?}\n", words[1]);
            };
            match verb {
                "start" => supervisor.start(name),
                "stop" => supervisor.stop(name, grace),
                _ => supervisor.stop(name, grace).and_then(|()| {
                    // The thread marks the service stopped once its container is gone.
                    for _ in 0..200 {
                        if supervisor.start(name).is_ok() {
                            return Ok(());
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    supervisor.start(name)
                }),
            }
        }
        (_, None, _) => return "error: a service name is needed\n".into(),
    };
    match result {
        Ok(()) => "ok\n".into(),
        Err(e) => format!("error: {}\n", chain(&e)),
    }
}

fn table(supervisor: Option<&Supervisor>) -> String {
    let mut out = String::from("ok\n");
    out.push_str(&format!(
        "{:<20} {:<24} {:>7} {:>8}\n",
        "NAME", "STATUS", "PID", "RESTARTS"
    ));
    for s in supervisor.map(Supervisor::list).unwrap_or_default() {
        let pid = s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<20} {:<24} {:>7} {:>8}\n",
            s.name, s.status, pid, s.restarts
        ));
    }
    out
}

fn json(supervisor: Option<&Supervisor>) -> String {
    let services: Vec<serde_json::Value> = supervisor
        .map(Supervisor::list)
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "state": s.state,
                "detail": s.detail,
                "pid": s.pid.unwrap_or(0),
                "restarts": s.restarts,
                "restart": s.restart,
            })
        })
        .collect();
    let runtime = supervisor.map(Supervisor::runtime_name).unwrap_or_default();
    let all = serde_json::json!({ "runtime": runtime, "services": services });
    format!("ok\n{all}\n")
}

/// `event {"event": ..., "name": ..., "detail": ...}`.
fn record_event(control: &Control, json: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("bad event {json:?}: {e}"))?;
    let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str);
    let event: Event = text("event")
        .ok_or_else(|| format!("bad event {json:?}: no \"event\""))?
        .parse()
        .map_err(|e| chain(&e))?;
    control
        .timeline
        .event(control.sys.as_ref(), event, text("name"), text("detail"));
    Ok(())
}

/// Serve requests on `path` for the life of the machine (a thread of PID 1).
pub fn serve(control: Arc<Control>, path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let control = Arc::clone(&control);
                // One thread per request: `stop` can take the grace period.
                let _ = std::thread::Builder::new()
                    .name("control-req".into())
                    .spawn(move || answer(&control, stream));
            }
        })?;
    Ok(())
}

fn answer(control: &Control, stream: UnixStream) {
    let mut line = String::new();
    let Ok(read) = stream.try_clone() else { return };
    if BufReader::new(read).read_line(&mut line).is_err() {
        return;
    }
    let reply = handle(control, line.trim());
    let mut stream = stream;
    let _ = stream.write_all(reply.as_bytes());
}

/// The `service` command: send one request, print the reply; exit status 0
/// for `ok`, 1 for an error, 2 for a usage error. When the init does not
/// hold the services, it runs `slipway-services service ARGS` and exits
/// with its status.
pub fn client(args: &[String], socket: &Path) -> i32 {
    client_with(args, socket, Path::new(SERVICES))
}

/// [`client`], with the service manager at `services`.
pub fn client_with(args: &[String], socket: &Path, services: &Path) -> i32 {
    let request = match args {
        [verb] if verb == "list" => "list".to_owned(),
        [verb, name] if ["start", "stop", "restart"].contains(&verb.as_str()) => {
            format!("{verb} {name}")
        }
        _ => {
            eprintln!("usage: service list | service start|stop|restart NAME");
            return 2;
        }
    };
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "service: cannot reach the init at {}: {e}",
                socket.display()
            );
            return 1;
        }
    };
    if let Err(e) = stream.write_all(format!("{request}\n").as_bytes()) {
        eprintln!("service: {e}");
        return 1;
    }
    let mut reply = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut stream, &mut reply) {
        eprintln!("service: {e}");
        return 1;
    }
    let (status, rest) = reply.split_once('\n').unwrap_or((reply.as_str(), ""));
    if status == REDIRECT {
        return match std::process::Command::new(services)
            .arg("service")
            .args(args)
            .status()
        {
            Ok(status) => status.code().unwrap_or(1),
            Err(e) => {
                eprintln!(
                    "service: the services run in containerd, and {}: {e}",
                    services.display()
                );
                1
            }
        };
    }
    print!("{rest}");
    if status == "ok" {
        0
    } else {
        eprintln!("service: {}", status.trim_start_matches("error: "));
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::OciRuntime;
    use crate::sys::fake::FakeSys;

    fn control(held: impl FnOnce(Arc<dyn Sys>) -> Held) -> Control {
        let sys: Arc<dyn Sys> = Arc::new(FakeSys::new());
        Control {
            held: held(Arc::clone(&sys)),
            sys,
            timeline: Arc::new(Timeline::default()),
        }
    }

    fn supervisor(sys: Arc<dyn Sys>) -> Held {
        let rt = OciRuntime {
            program: "/usr/bin/crun".into(),
            root: "/run/crun".into(),
            no_pivot: false,
            timeout: crate::bundle::RUNTIME_TIMEOUT,
        };
        Held::Init(Supervisor::new(
            sys,
            Arc::new(Timeline::default()),
            rt,
            "/var/log".into(),
        ))
    }

    #[test]
    fn requests() {
        let c = control(supervisor);
        assert!(handle(&c, "list").starts_with("ok\nNAME"));
        assert_eq!(handle(&c, "start nope"), "error: no service nope\n");
        assert_eq!(handle(&c, "stop nope 3"), "error: no service nope\n");
        assert_eq!(
            handle(&c, "stop x soon"),
            "error: bad grace period \"soon\"\n"
        );
        assert!(handle(&c, "frobnicate x").starts_with("error: unknown request"));
        assert!(handle(&c, "start").starts_with("error: unknown request"));
        assert_eq!(
            handle(&c, "list-json"),
            "ok\n{\"runtime\":\"crun\",\"services\":[]}\n"
        );
    }

    #[test]
    fn without_services_and_in_containerd_mode() {
        let c = control(|_| Held::Nothing);
        assert_eq!(
            handle(&c, "list-json"),
            "ok\n{\"runtime\":\"\",\"services\":[]}\n"
        );
        assert_eq!(handle(&c, "restart web"), "error: no service web\n");
        let c = control(|_| Held::Elsewhere);
        for request in ["list", "list-json", "start web", "stop web 1"] {
            assert_eq!(handle(&c, request), "redirect\n", "{request}");
        }
        assert!(handle(&c, "dance").starts_with("error: unknown request"));
    }

    #[test]
    fn events_go_on_the_timeline() {
        let c = control(|_| Held::Elsewhere);
        let request = r#"event {"event": "service-start", "name": "web", "detail": "pid 42"}"#;
        assert_eq!(handle(&c, request), "ok\n");
        assert_eq!(handle(&c, r#"event {"event": "services-started"}"#), "ok\n");
        assert!(handle(&c, r#"event {"event": "party"}"#).starts_with("error: "));
        assert!(handle(&c, "event {").starts_with("error: bad event"));
        let lines: Vec<String> = c.timeline.entries().iter().map(|e| e.to_line()).collect();
        assert_eq!(
            lines,
            [
                "slipway: 1000 ms service-start web pid 42",
                "slipway: 1000 ms services-started"
            ]
        );
    }

    #[test]
    fn the_client_hands_over_to_the_service_manager() {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("slipway-init-redirect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("init.sock");
        serve(Arc::new(control(|_| Held::Elsewhere)), &path).unwrap();
        let manager = dir.join("slipway-services");
        let seen = dir.join("args");
        std::fs::write(
            &manager,
            format!("#!/bin/sh\necho \"$@\" > {}\nexit 3\n", seen.display()),
        )
        .unwrap();
        std::fs::set_permissions(&manager, std::fs::Permissions::from_mode(0o755)).unwrap();
        let args = ["restart".to_owned(), "web".to_owned()];
        assert_eq!(client_with(&args, &path, &manager), 3);
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap(),
            "service restart web\n"
        );
        assert_eq!(client_with(&args, &path, &dir.join("missing")), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn client_round_trip_over_a_socket() {
        let dir = std::env::temp_dir().join(format!("slipway-init-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("init.sock");
        serve(Arc::new(control(supervisor)), &path).unwrap();
        assert_eq!(client(&["list".into()], &path), 0);
        assert_eq!(client(&["stop".into(), "ghost".into()], &path), 1);
        assert_eq!(client(&["dance".into()], &path), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
