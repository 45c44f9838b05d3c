//! The real `slipway-services` in init mode, reached through the real
//! `slipway-mux`, against a test init speaking the init socket's text
//! protocol.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_contract::timeline::Event;
use slipway_control::channel::connect_unix;
use slipway_control::services::power_client::PowerClient;
use slipway_control::services::service::State;
use slipway_control::services::services_client::ServicesClient;
use slipway_control::services::{
    ListRequest, LogsRequest, PowerRequest, ServiceRequest, StopRequest, TimelineRequest,
};
use tonic::Code;
use tonic::transport::Channel;

/// `slipway-mux`, another package's binary: `SLIPWAY_MUX_BINARY`, else
/// built into this test's target directory and profile.
fn mux_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SLIPWAY_MUX_BINARY") {
        return path.into();
    }
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let ours = Path::new(env!("CARGO_BIN_EXE_slipway-services"));
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "slipway-mux",
                    "--bin",
                    "slipway-mux",
                ])
                .status()
                .unwrap();
            assert!(status.success(), "building slipway-mux failed");
            let mux = ours.with_file_name("slipway-mux");
            assert!(mux.is_file(), "{} was not built", mux.display());
            mux
        })
        .clone()
}

/// A service as the test init holds it.
#[derive(Clone, Debug)]
struct Svc {
    state: &'static str,
    detail: String,
    pid: u32,
    restarts: u32,
}

/// An init socket with two services, `db` (exited) and `web` (ready).
#[derive(Default)]
struct TestInit {
    services: Mutex<BTreeMap<String, Svc>>,
    requests: Mutex<Vec<String>>,
}

impl TestInit {
    fn serve(path: &Path) -> Arc<TestInit> {
        let init = Arc::new(TestInit::default());
        {
            let mut s = init.services.lock().unwrap();
            s.insert(
                "db".into(),
                Svc {
                    state: "exited",
                    detail: "exit status 1".into(),
                    pid: 0,
                    restarts: 2,
                },
            );
            s.insert(
                "web".into(),
                Svc {
                    state: "ready",
                    detail: String::new(),
                    pid: 42,
                    restarts: 0,
                },
            );
        }
        let listener = UnixListener::bind(path).unwrap();
        let me = Arc::clone(&init);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                me.answer(stream);
            }
        });
        init
    }

    fn answer(&self, mut stream: UnixStream) {
        let mut line = String::new();
        BufReader::new(stream.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        let line = line.trim().to_owned();
        self.requests.lock().unwrap().push(line.clone());
        let reply = self.handle(&line);
        stream.write_all(reply.as_bytes()).unwrap();
    }

    fn handle(&self, line: &str) -> String {
        let mut services = self.services.lock().unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["list-json"] => {
                let list: Vec<serde_json::Value> = services
                    .iter()
                    .map(|(name, s)| {
                        serde_json::json!({"name": name, "state": s.state, "detail": s.detail,
                            "pid": s.pid, "restarts": s.restarts, "restart": "on-failure"})
                    })
                    .collect();
                format!(
                    "ok\n{}\n",
                    serde_json::json!({"runtime": "crun", "services": list})
                )
            }
            ["event", ..] => "ok\n".into(),
            [verb, name, rest @ ..] if rest.len() <= 1 => {
                let Some(s) = services.get_mut(*name) else {
                    return format!("error: no service {name}\n");
                };
                match *verb {
                    "start" if s.pid != 0 => format!("error: service {name} is already ready\n"),
                    "start" | "restart" => {
                        s.state = "ready";
                        s.pid = 43;
                        s.detail.clear();
                        "ok\n".into()
                    }
                    "stop" => {
                        s.state = "stopped";
                        s.pid = 0;
                        "ok\n".into()
                    }
                    _ => "error: unknown request\n".into(),
                }
            }
            _ => "error: unknown request\n".into(),
        }
    }
}

/// A test machine: the test init, the multiplexer, the service manager.
struct Machine {
    dir: tempfile::TempDir,
    init: Arc<TestInit>,
    mux: Child,
    services: Child,
    /// What Power signals in place of PID 1.
    pid1: Child,
}

impl Drop for Machine {
    fn drop(&mut self) {
        for child in [&mut self.mux, &mut self.services, &mut self.pid1] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Machine {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn start() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        std::fs::create_dir_all(p("log")).unwrap();
        let init = TestInit::serve(&p("init.sock"));
        let mux = Command::new(mux_binary())
            .arg("--components")
            .arg(p("components"))
            .arg("--listen")
            .arg(p("mux.sock"))
            .arg("--no-port")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid1 = Command::new("sleep").arg("60").spawn().unwrap();
        let services = Command::new(env!("CARGO_BIN_EXE_slipway-services"))
            .arg("--init-socket")
            .arg(p("init.sock"))
            .arg("--listen")
            .arg(p("run/services.sock"))
            .arg("--components")
            .arg(p("components"))
            .arg("--log-dir")
            .arg(p("log"))
            .arg("--timeline")
            .arg(p("timeline.json"))
            .arg("--init-pid")
            .arg(pid1.id().to_string())
            .spawn()
            .unwrap();
        let machine = Machine {
            dir,
            init,
            mux,
            services,
            pid1,
        };
        // Until the multiplexer routes to the registered manager.
        for _ in 0..200 {
            if let Ok(channel) = connect_unix(&machine.path("mux.sock")).await
                && ServicesClient::new(channel)
                    .list(ListRequest {})
                    .await
                    .is_ok()
            {
                return machine;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service manager never answered through the multiplexer");
    }

    async fn channel(&self) -> Channel {
        connect_unix(&self.path("mux.sock")).await.unwrap()
    }

    async fn client(&self) -> ServicesClient<Channel> {
        ServicesClient::new(self.channel().await)
    }
}

fn name(name: &str) -> ServiceRequest {
    ServiceRequest { name: name.into() }
}

#[tokio::test]
async fn list_status_stop_start() {
    let m = Machine::start().await;
    let mut c = m.client().await;
    let services = c.list(ListRequest {}).await.unwrap().into_inner().services;
    let summary: Vec<(String, State, String, u32, String)> = services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.state(),
                s.detail.clone(),
                s.pid,
                s.runtime.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "db".into(),
                State::Exited,
                "exit status 1".into(),
                0,
                "crun".into()
            ),
            ("web".into(), State::Ready, String::new(), 42, "crun".into()),
        ]
    );
    assert_eq!(services[0].restarts, 2);
    assert_eq!(services[0].restart, "on-failure");

    let missing = c.status(name("ghost")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(
        c.start(name("ghost")).await.unwrap_err().code(),
        Code::NotFound
    );

    let stop = StopRequest {
        name: "web".into(),
        grace_seconds: 3,
    };
    let stopped = c.stop(stop.clone()).await.unwrap().into_inner();
    assert_eq!((stopped.state(), stopped.pid), (State::Stopped, 0));
    let started = c.start(name("web")).await.unwrap().into_inner();
    assert_eq!((started.state(), started.pid), (State::Ready, 43));
    let again = c.start(name("web")).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(again.message().contains("already"), "{again:?}");
    let restarted = c
        .restart(StopRequest {
            name: "db".into(),
            grace_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(restarted.state(), State::Ready);
    let requests = m.init.requests.lock().unwrap().clone();
    for sent in ["stop web 3", "start web", "restart db 10"] {
        assert!(requests.contains(&sent.to_owned()), "{requests:?}");
    }

    // The console's command, as the init's `service` runs it in containerd mode.
    let out = Command::new(env!("CARGO_BIN_EXE_slipway-services"))
        .arg("--listen")
        .arg(m.path("run/services.sock"))
        .args(["service", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("NAME"));
    assert!(lines[1].starts_with("db                   ready"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_slipway-services"))
        .arg("--listen")
        .arg(m.path("run/services.sock"))
        .args(["service", "stop", "ghost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service ghost"));
}

async fn next_text(
    stream: &mut tonic::Streaming<slipway_control::services::LogChunk>,
    until: &str,
) -> String {
    let mut text = String::new();
    while !text.ends_with(until) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap_or_else(|_| {
                panic!("no log data within 10 s; so far {text:?}, waiting for {until:?}")
            })
            .unwrap()
            .expect("the log stream ended");
        text.push_str(&String::from_utf8(chunk.data).unwrap());
    }
    text
}

#[tokio::test]
async fn logs_tail_and_follow() {
    let m = Machine::start().await;
    let mut c = m.client().await;
    let log = m.path("log/web.log");
    std::fs::write(&log, "one\ntwo\nthree\nfour\n").unwrap();
    let mut tail = c
        .logs(LogsRequest {
            name: "web".into(),
            follow: false,
            tail: 2,
        })
        .await
        .unwrap()
        .into_inner();
    let mut text = Vec::new();
    while let Some(chunk) = tail.message().await.unwrap() {
        text.extend(chunk.data);
    }
    assert_eq!(text, b"three\nfour\n");
    let mut all = c
        .logs(LogsRequest {
            name: "web".into(),
            follow: false,
            tail: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = all.message().await.unwrap().unwrap();
    assert_eq!(first.data, b"one\ntwo\nthree\nfour\n");
    assert!(all.message().await.unwrap().is_none());
    let bad = c
        .logs(LogsRequest {
            name: "../x".into(),
            follow: false,
            tail: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // Follow: the last line, what is appended, a rotation, a new file.
    let mut follow = c
        .logs(LogsRequest {
            name: "web".into(),
            follow: true,
            tail: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_text(&mut follow, "four\n").await, "four\n");
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    append("five\n");
    assert_eq!(next_text(&mut follow, "five\n").await, "five\n");
    // As the init rotates at its cap: the old file renamed, a new one.
    append("six\n");
    std::fs::rename(&log, m.path("log/web.log.0")).unwrap();
    append("seven\n");
    assert_eq!(next_text(&mut follow, "seven\n").await, "six\nseven\n");
    // Truncated in place (seen as the file being shorter than what was read).
    std::fs::write(&log, "8\n").unwrap();
    assert_eq!(next_text(&mut follow, "8\n").await, "8\n");
    drop(follow);

    // A log that does not exist yet.
    let mut later = c
        .logs(LogsRequest {
            name: "db".into(),
            follow: true,
            tail: 10,
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(m.path("log/db.log"), "db up\n").unwrap();
    assert_eq!(next_text(&mut later, "db up\n").await, "db up\n");
    drop(later);
    // Cancelled calls leave the manager serving.
    c.list(ListRequest {}).await.unwrap();
}

#[tokio::test]
async fn timeline_power_events_and_exit() {
    let mut m = Machine::start().await;
    let mut c = m.client().await;
    assert!(
        c.timeline(TimelineRequest {})
            .await
            .unwrap()
            .into_inner()
            .events
            .is_empty()
    );
    std::fs::write(
        m.path("timeline.json"),
        r#"[{"ms": 5, "event": "init-start", "detail": "0.1.0"},
            {"ms": 900, "event": "daemon-start", "name": "mux", "detail": "pid 80"}]"#,
    )
    .unwrap();
    let events = c
        .timeline(TimelineRequest {})
        .await
        .unwrap()
        .into_inner()
        .events;
    let events: Vec<(u64, String, String, String)> = events
        .into_iter()
        .map(|e| (e.ms, e.event, e.name, e.detail))
        .collect();
    assert_eq!(
        events,
        [
            (5, "init-start".into(), String::new(), "0.1.0".into()),
            (900, "daemon-start".into(), "mux".into(), "pid 80".into()),
        ]
    );

    // The containerd backend's way of putting events on the init's timeline.
    slipway_services::init_client::record_event(
        &m.path("init.sock"),
        Event::ServiceStart,
        Some("web"),
        Some("pid 7"),
    )
    .await
    .unwrap();
    let requests = m.init.requests.lock().unwrap().clone();
    let event = requests.iter().find(|r| r.starts_with("event ")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&event["event ".len()..]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"event": "service-start", "name": "web", "detail": "pid 7"})
    );

    // Registered for the multiplexer, with its descriptors beside its socket.
    let registration = m.path("components/services.json");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&registration).unwrap()).unwrap();
    assert_eq!(
        json["socket"],
        m.path("run/services.sock").to_str().unwrap()
    );
    assert_eq!(
        std::fs::read(m.path("run/services.binpb")).unwrap(),
        slipway_control::DESCRIPTORS
    );

    // Poweroff: PID 1 gets SIGUSR2, after which the call has its answer.
    PowerClient::new(m.channel().await)
        .poweroff(PowerRequest {})
        .await
        .unwrap();
    let status = m.pid1.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(12)
    );

    // SIGTERM: the manager stops, ending a followed log (through the
    // multiplexer) rather than waiting for it, and takes its registration
    // with it.
    let mut follow = c
        .logs(LogsRequest {
            name: "web".into(),
            follow: true,
            tail: 0,
        })
        .await
        .unwrap()
        .into_inner();
    nix_kill(m.services.id(), 15);
    let ended = tokio::time::timeout(Duration::from_secs(10), follow.message())
        .await
        .expect("the followed log ended");
    assert!(matches!(ended, Ok(None)), "{ended:?}");
    let status = m.services.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!registration.exists());
    assert!(!m.path("run/services.sock").exists());
}

fn nix_kill(pid: u32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The multiplexer describes the manager from the descriptor set it
/// registered (the manager serves no reflection of its own).
#[tokio::test]
async fn reflection_through_the_multiplexer() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let m = Machine::start().await;
    let mut client = ServerReflectionClient::new(m.channel().await);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("slipway.services.v1.Services.Logs".into()),
        MessageRequest::FileContainingSymbol("slipway.services.v1.Power".into()),
    ]
    .map(|r| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r),
    });
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut answers = Vec::new();
    while let Some(reply) = replies.message().await.unwrap() {
        answers.push(reply.message_response.unwrap());
    }
    assert_eq!(answers.len(), 3);
    let MessageResponse::ListServicesResponse(list) = &answers[0] else {
        panic!("{:?}", answers[0]);
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in ["slipway.services.v1.Power", "slipway.services.v1.Services"] {
        assert!(names.contains(&service), "{names:?}");
    }
    for answer in &answers[1..] {
        let MessageResponse::FileDescriptorResponse(files) = answer else {
            panic!("{answer:?}");
        };
        // The serialized FileDescriptorProto holds its file name verbatim.
        let needle = b"slipway/services/v1/services.proto";
        assert!(
            files
                .file_descriptor_proto
                .iter()
                .any(|f| f.windows(needle.len()).any(|w| w == needle)),
            "{answer:?}"
        );
    }
}
