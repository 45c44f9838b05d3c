//! `service list|start|stop|restart NAME` over `/run/slipway/init.sock`.
//!
//! The protocol is one request line (`list`, `start NAME`, ...) and a reply:
//! `ok` or `error: <why>` on the first line, then any output lines.

use slipway_contract::errors::chain;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::services::Supervisor;

/// The grace period between TERM and KILL for `service stop`.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Answer one request.
pub fn handle(supervisor: &Supervisor, request: &str) -> String {
    let mut words = request.split_whitespace();
    let verb = words.next().unwrap_or_default();
    let name = words.next();
    let result = match (verb, name) {
        ("list", None) => {
            let mut out = String::from("ok\n");
            out.push_str(&format!(
                "{:<20} {:<24} {:>7} {:>8}\n",
                "NAME", "STATUS", "PID", "RESTARTS"
            ));
            for s in supervisor.list() {
                let pid = s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                out.push_str(&format!(
                    "{:<20} {:<24} {:>7} {:>8}\n",
                    s.name, s.status, pid, s.restarts
                ));
            }
            return out;
        }
        ("start", Some(name)) => supervisor.start(name),
        ("stop", Some(name)) => supervisor.stop(name, STOP_GRACE),
        ("restart", Some(name)) => supervisor.stop(name, STOP_GRACE).and_then(|()| {
            // The thread marks the service stopped once its container is gone.
            for _ in 0..200 {
                if supervisor.start(name).is_ok() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            supervisor.start(name)
        }),
        _ => {
            return format!(
                "error: unknown request {request:?}; expected list, start NAME, stop NAME or restart NAME\n"
            );
        }
    };
    match result {
        Ok(()) => "ok\n".into(),
        Err(e) => format!("error: {}\n", chain(&e)),
    }
}

/// Serve requests on `path` forever (a thread of PID 1).
pub fn serve(supervisor: Arc<Supervisor>, path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let supervisor = Arc::clone(&supervisor);
                // One thread per request: `stop` can take the grace period.
                let _ = std::thread::Builder::new()
                    .name("control-req".into())
                    .spawn(move || answer(&supervisor, stream));
            }
        })?;
    Ok(())
}

fn answer(supervisor: &Supervisor, stream: UnixStream) {
    let mut line = String::new();
    let Ok(read) = stream.try_clone() else { return };
    if BufReader::new(read).read_line(&mut line).is_err() {
        return;
    }
    let reply = handle(supervisor, line.trim());
    let mut stream = stream;
    let _ = stream.write_all(reply.as_bytes());
}

/// The `service` command: send one request, print the reply; exit status 0
/// for `ok`, 1 for an error, 2 for a usage error.
pub fn client(args: &[String], socket: &Path) -> i32 {
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
    use crate::sys::Sys;
    use crate::sys::fake::FakeSys;
    use crate::timeline::Timeline;

    #[test]
    fn requests() {
        let sys: Arc<dyn Sys> = Arc::new(FakeSys::new());
        let rt = OciRuntime {
            program: "/usr/bin/crun".into(),
            root: "/run/crun".into(),
            no_pivot: false,
        };
        let sup = Supervisor::new(sys, Arc::new(Timeline::default()), rt, "/var/log".into());
        assert!(handle(&sup, "list").starts_with("ok\nNAME"));
        assert_eq!(handle(&sup, "start nope"), "error: no service nope\n");
        assert!(handle(&sup, "frobnicate x").starts_with("error: unknown request"));
        assert!(handle(&sup, "start").starts_with("error: unknown request"));
    }

    #[test]
    fn client_round_trip_over_a_socket() {
        let dir = std::env::temp_dir().join(format!("slipway-init-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("init.sock");
        let sys: Arc<dyn Sys> = Arc::new(FakeSys::new());
        let rt = OciRuntime {
            program: "/usr/bin/crun".into(),
            root: "/run/crun".into(),
            no_pivot: false,
        };
        let sup = Supervisor::new(sys, Arc::new(Timeline::default()), rt, "/var/log".into());
        serve(sup, &path).unwrap();
        assert_eq!(client(&["list".into()], &path), 0);
        assert_eq!(client(&["stop".into(), "ghost".into()], &path), 1);
        assert_eq!(client(&["dance".into()], &path), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
