//! `slipway ctl` end to end without a boot: the real `slipway` binary
//! against a fake machine (`control::fake`): the real multiplexer serving
//! host sessions where qemu's chardev socket would be, a services
//! component behind it, and the bridge exactly as `slipway run` serves it
//! (a thread for a foreground machine, the hidden `control-bridge` process
//! for a detached one).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod control;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use control::Ctl;
use control::fake::{Bridge, FakeMachine};
use control::pki::Pki;
use serde_json::Value;

/// Wait for `what` to hold, up to 20 s.
#[allow(clippy::disallowed_methods, reason = "a deadline for a condition")]
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ps_status_restart_and_power() {
    let m = FakeMachine::start(Bridge::Thread);
    let ctl = m.ctl();

    let table = ctl.ok(&["ps"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines,
        [
            "NAME   STATE   PID  RESTARTS  RUNTIME  DETAIL",
            "getty  READY   101  0         crun",
            "sshd   EXITED  -    0         runc     exit status 1",
            "web    READY   102  0         crun",
        ],
        "{table}"
    );
    // The machine by the path run booted: its state is `<stem>-state`.
    let image = m.dir.path().join("machine.qcow2");
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("1M")
        .status()
        .unwrap();
    assert!(made.success());
    let by_path = assert_cmd::Command::cargo_bin("slipway")
        .unwrap()
        .args(["ctl", "-m"])
        .arg(&image)
        .arg("ps")
        .output()
        .unwrap();
    assert!(by_path.status.success(), "{by_path:?}");
    assert_eq!(String::from_utf8_lossy(&by_path.stdout), table);

    let ps = ctl.ps();
    let names: Vec<&str> = ps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["getty", "sshd", "web"]);
    assert_eq!(ps[1]["state"], "EXITED");
    assert_eq!(ps[1]["detail"], "exit status 1");
    assert_eq!(ps[2]["pid"], 102);
    assert_eq!(ps[2]["runtime"], "crun");

    let status: Value = serde_json::from_str(&ctl.ok(&["status", "web", "--json"])).unwrap();
    assert_eq!(status["state"], "READY");
    assert!(ctl.ok(&["status", "sshd"]).contains("exit status 1"));
    let err = ctl.fails(&["status", "nope"]);
    assert!(err.contains("NOT_FOUND: no service \"nope\""), "{err}");

    let restarted = ctl.ok(&["restart", "--grace", "3", "web"]);
    assert!(restarted.contains("RUNNING"), "{restarted}");
    let web = ctl.service("web");
    assert_eq!(web["restarts"], 1);
    assert_eq!(web["state"], "RUNNING");
    assert_ne!(web["pid"], 102);

    let err = ctl.fails(&["start", "web"]);
    assert!(
        err.contains("FAILED_PRECONDITION: service \"web\" is already running"),
        "{err}"
    );
    ctl.ok(&["stop", "web"]);
    assert_eq!(ctl.service("web")["state"], "STOPPED");
    ctl.ok(&["start", "web"]);
    assert_eq!(ctl.service("web")["state"], "READY");

    let timeline = ctl.ok(&["timeline"]);
    assert!(timeline.contains("web"), "{timeline}");
    let events: Value = serde_json::from_str(&ctl.ok(&["timeline", "--json"])).unwrap();
    assert_eq!(
        events[0],
        serde_json::json!({"ms": 12, "event": "init-start"})
    );
    assert_eq!(events[2]["name"], "web");

    assert!(!m.table.powered_off.load(Ordering::SeqCst));
    ctl.ok(&["poweroff"]);
    assert!(m.table.powered_off.load(Ordering::SeqCst));

    // The bridge's socket goes with the bridge.
    let socket = slipway_run::control::socket_path(m.state());
    assert!(socket.exists());
    let mut m = m;
    drop(m.bridge.take());
    assert!(!socket.exists());
    let err = m.ctl().fails(&["ps"]);
    assert!(
        err.contains("is not running: it has no control socket"),
        "{err}"
    );
}

#[test]
fn components_and_containers() {
    let m = FakeMachine::start(Bridge::Thread);
    let ctl = m.ctl();
    let table = ctl.ok(&["components"]);
    assert!(
        table.lines().any(|l| l.starts_with("services")
            && l.contains("READY")
            && l.contains("slipway.services.v1.Power,slipway.services.v1.Services")),
        "{table}"
    );
    assert!(table.contains("slipway-mux"), "{table}");
    let all: Value = serde_json::from_str(&ctl.ok(&["components", "--json"])).unwrap();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["services", "slipway-mux"]);

    // No containerd component: the multiplexer's UNIMPLEMENTED, explained.
    let err = ctl.fails(&["containers"]);
    assert!(err.contains("the machine runs no containerd"), "{err}");
    assert!(
        err.contains(
            "UNIMPLEMENTED: unknown method /containerd.services.containers.v1.Containers/List"
        ),
        "{err}"
    );
}

#[test]
fn logs_tail_and_follow() {
    let m = FakeMachine::start(Bridge::Thread);
    let ctl = m.ctl();
    let all = ctl.run(&["logs", "web"]);
    assert_eq!(all.code, 0, "{all:?}");
    assert_eq!(all.stdout, "web: one\nweb: two\nweb: three\n");
    assert_eq!(all.stderr, "web: on stderr\n", "standard error's chunks");
    assert_eq!(
        ctl.ok(&["logs", "--tail", "2", "web"]),
        "web: two\nweb: three\n"
    );
    let err = ctl.fails(&["logs", "nope"]);
    assert!(err.contains("NOT_FOUND"), "{err}");

    // Killed while following: the component sees its stream go.
    let mut follow = ctl.spawn(&["logs", "-f", "web"]);
    let mut out = BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "web: one\n");
    eventually("the stream is followed", || m.table.followers() == 1);
    follow.kill().unwrap();
    follow.wait().unwrap();
    m.table.append("web: four\n");
    eventually("the stream is dropped", || m.table.followers() == 0);

    let mut follow = ctl.spawn(&["logs", "-f", "--tail", "1", "web"]);
    let mut out = BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "web: four\n");
    m.table.append("web: five\n");
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "web: five\n");
    // The component ends the stream: logs -f ends, successfully.
    m.table.end_follow();
    line.clear();
    assert_eq!(out.read_line(&mut line).unwrap(), 0, "{line}");
    let status = follow.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn call_through_reflection() {
    let m = FakeMachine::start(Bridge::Thread);
    let ctl = m.ctl();

    let services = ctl.ok(&["call"]);
    let services: Vec<&str> = services.lines().collect();
    for want in [
        "grpc.health.v1.Health",
        "slipway.mux.v1.Components",
        "slipway.services.v1.Power",
        "slipway.services.v1.Services",
    ] {
        assert!(services.contains(&want), "{want} not in {services:?}");
    }

    let out = ctl.ok(&[
        "call",
        "slipway.services.v1.Services/Status",
        r#"{"name": "sshd"}"#,
    ]);
    let sshd: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sshd["name"], "sshd");
    assert_eq!(sshd["state"], "EXITED");
    assert_eq!(sshd["runtime"], "runc");

    let out = ctl.ok(&[
        "call",
        "slipway.services.v1.Services/Status",
        r#"{"name": "web"}"#,
        "-H",
        "X-Test-Header: forty two",
    ]);
    let web: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(web["detail"], "x-test-header: forty two");

    // A method that changes something, the JSON's field names as protobuf
    // writes them.
    let out = ctl.ok(&[
        "call",
        "slipway.services.v1.Services.Restart",
        r#"{"name": "getty", "grace_seconds": 2}"#,
    ]);
    let getty: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(getty["restarts"], 1);
    assert_eq!(ctl.service("getty")["restarts"], 1);

    // Server streaming: one JSON per message (bytes are base64).
    let out = ctl.ok(&[
        "call",
        "/slipway.services.v1.Services/Logs",
        r#"{"name": "web", "tail": 2}"#,
    ]);
    let chunks: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(chunks.len(), 1, "{out}");
    // "web: two\nweb: three\n"
    assert_eq!(chunks[0]["data"], "d2ViOiB0d28Kd2ViOiB0aHJlZQo=");

    // The multiplexer's own services are described too.
    let out = ctl.ok(&["call", "slipway.mux.v1.Components/List"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["components"][0]["name"], "services");

    // A bad request, an unknown method, an unknown service.
    let err = ctl.fails(&[
        "call",
        "slipway.services.v1.Services/Status",
        r#"{"nom": 1}"#,
    ]);
    assert!(
        err.contains("the request is not a slipway.services.v1.ServiceRequest"),
        "{err}"
    );
    let err = ctl.fails(&["call", "slipway.services.v1.Services/Nope"]);
    assert!(err.contains("UNIMPLEMENTED"), "{err}");
    let err = ctl.fails(&["call", "no.such.Service/Method"]);
    assert!(
        err.contains("UNIMPLEMENTED: unknown method /no.such.Service/Method: no component serves no.such.Service"),
        "{err}"
    );
}

/// `--address HOST:PORT --ca --cert --key` with the files of `pki`.
fn over_tls(m: &FakeMachine, address: &str, pki: &Pki, client: &str, extra: &[&str]) -> Ctl {
    let mut target: Vec<OsString> = vec![
        "--address".into(),
        address.into(),
        "--ca".into(),
        pki.path("ca.pem").into(),
        "--cert".into(),
        pki.path(&format!("{client}.pem")).into(),
        "--key".into(),
        pki.path(&format!("{client}.key")).into(),
    ];
    target.extend(extra.iter().map(OsString::from));
    m.ctl().with_target(target)
}

#[test]
fn by_address_over_mutual_tls() {
    let m = FakeMachine::start(Bridge::None);
    let pki = Pki::new(&m.dir.path().join("pki"));
    let port = m.serve_tls(&control::pki::server(&pki));
    // The certificate is checked against the host part: an IP address here.
    let address = format!("127.0.0.1:{port}");
    let ctl = over_tls(&m, &address, &pki, "client", &[]);

    let table = ctl.ok(&["ps"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines,
        [
            "NAME   STATE   PID  RESTARTS  RUNTIME  DETAIL",
            "getty  READY   101  0         crun",
            "sshd   EXITED  -    0         runc     exit status 1",
            "web    READY   102  0         crun",
        ],
        "{table}"
    );
    // By name, as the certificate says it too.
    let by_name = over_tls(&m, &format!("localhost:{port}"), &pki, "client", &[]);
    assert_eq!(by_name.ok(&["ps"]), table);
    assert!(ctl.ok(&["status", "sshd"]).contains("exit status 1"));
    assert_eq!(ctl.ok(&["logs", "--tail", "1", "web"]), "web: three\n");
    assert!(ctl.ok(&["components"]).contains("slipway-mux"));
    assert!(ctl.ok(&["timeline", "--json"]).contains("service-ready"));
    let listed = ctl.ok(&["call"]);
    assert!(listed.contains("slipway.services.v1.Services"), "{listed}");
    let status: Value = serde_json::from_str(&ctl.ok(&[
        "call",
        "slipway.services.v1.Services/Status",
        r#"{"name": "web"}"#,
    ]))
    .unwrap();
    assert_eq!(status["pid"], 102);
    let restarted = ctl.ok(&["restart", "web"]);
    assert!(restarted.contains("web"), "{restarted}");
    assert_eq!(ctl.service("web")["restarts"], 1);

    // A server name the certificate does not carry: refused by ctl.
    let wrong = over_tls(
        &m,
        &address,
        &pki,
        "client",
        &["--server-name", "other.example"],
    );
    let err = wrong.fails(&["ps"]);
    assert!(
        err.contains(&format!("the machine at {address} does not answer")),
        "{err}"
    );
    assert!(
        err.contains("invalid peer certificate: certificate not valid for name \"other.example\""),
        "{err}"
    );
    // A client certificate from another CA: refused by the machine.
    let stranger = over_tls(&m, &address, &pki, "stranger", &[]);
    let err = stranger.fails(&["ps"]);
    assert!(
        err.contains(&format!(
            "the machine at {address} does not answer: transport error: received fatal alert: UnknownCA"
        )),
        "{err}"
    );
    // Nothing listens there: the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = over_tls(&m, &format!("127.0.0.1:{closed_port}"), &pki, "client", &[]).fails(&["ps"]);
    assert!(err.contains("does not answer"), "{err}");

    // Usage: the TLS files go with --address, and --address with all of them.
    let usage = m
        .ctl()
        .with_target(vec!["--address".into(), address.clone().into()])
        .run(&["ps"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    let usage = m
        .ctl()
        .with_target(vec!["--ca".into(), pki.path("ca.pem").into()])
        .run(&["ps"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    let err = over_tls(&m, "127.0.0.1", &pki, "client", &[]).fails(&["ps"]);
    assert!(err.contains("--address 127.0.0.1: not HOST:PORT"), "{err}");
}

#[test]
fn no_machine() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::new(&dir.path().join("absent-state"));
    let err = ctl.fails(&["ps"]);
    assert!(err.contains("no machine at"), "{err}");
    let ctl = Ctl::new(dir.path());
    let err = ctl.fails(&["ps"]);
    assert!(
        err.contains("is not running: it has no control socket"),
        "{err}"
    );
    // A socket left by a bridge that died.
    let socket = slipway_run::control::socket_path(dir.path());
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let err = ctl.fails(&["ps"]);
    assert!(err.contains("does not answer"), "{err}");
    // By the path run booted: its default state directory.
    let image = dir.path().join("disk.qcow2");
    std::fs::write(&image, b"not a disk").unwrap();
    let err = assert_cmd::Command::cargo_bin("slipway")
        .unwrap()
        .args(["ctl", "--machine"])
        .arg(&image)
        .arg("ps")
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    let said = String::from_utf8_lossy(&err.stderr);
    assert!(said.contains("finding the machine"), "{said}");
    assert!(said.contains("--state"), "{said}");
    // Usage errors are 2.
    let usage = assert_cmd::Command::cargo_bin("slipway")
        .unwrap()
        .args(["ctl", "ps"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let usage = ctl.run(&["logs"]);
    assert_eq!(usage.code, 2, "{usage:?}");
}

#[test]
fn detached_bridge_outlives_its_starter_and_ends_with_qemu() {
    let m = FakeMachine::start(Bridge::None);
    // qemu stand-in: a process the bridge watches.
    let mut qemu = Command::new("sleep").arg("300").spawn().unwrap();
    let program = assert_cmd::cargo::cargo_bin("slipway");
    let args = [
        "control-bridge".to_owned(),
        "--state".to_owned(),
        m.state().display().to_string(),
        "--qemu-pid".to_owned(),
        qemu.id().to_string(),
    ];
    let pid = slipway_run::control::spawn_detached_bridge(&program, &args, m.state()).unwrap();
    let recorded = std::fs::read_to_string(slipway_run::control::pid_path(m.state())).unwrap();
    assert_eq!(recorded.trim(), pid.to_string());
    // Its own session.
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid as i32))).unwrap();
    assert_eq!(sid.as_raw(), pid as i32);

    let ctl = m.ctl();
    assert_eq!(ctl.ps().len(), 3);
    qemu.kill().unwrap();
    qemu.wait().unwrap();
    let socket = slipway_run::control::socket_path(m.state());
    eventually("the bridge ends with qemu", || {
        !slipway_run::control::alive(pid) || is_zombie(pid)
    });
    assert!(!socket.exists());
    assert!(!slipway_run::control::pid_path(m.state()).exists());
}

/// The bridge is this test's child (`slipway run` would have exited): once
/// it ends it is a zombie until reaped.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
