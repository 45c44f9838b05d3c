//! Bad clients: garbage, HTTP/1 and malformed frames against the built
//! binary, and a hundred open streams plus one client that stops reading,
//! while another caller's calls go through.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::echo::echo_client::EchoClient;
use common::*;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(dir: &Path) -> Running {
    let running = Running(
        Command::new(env!("CARGO_BIN_EXE_slipway-mux"))
            .arg("--components")
            .arg(dir.join("components"))
            .arg("--listen")
            .arg(dir.join("mux.sock"))
            .arg("--no-port")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..200 {
        if StdUnixStream::connect(dir.join("mux.sock")).is_ok() {
            return running;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("slipway-mux did not start listening");
}

/// The built binary in `dir`, with an echo component registered.
fn binary_with_echo(dir: &Path) -> (Running, Component) {
    let mux = start_binary(dir);
    let echo = Component::start(Kind::Echo, &dir.join("echo.sock"), "one");
    register(
        &dir.join("components"),
        "echo",
        &dir.join("echo.sock"),
        &[ECHO],
        None,
    );
    (mux, echo)
}

/// Sends `bytes` and reads until the multiplexer closes the connection;
/// returns what it sent back.
fn send_and_wait_for_close(socket: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = StdUnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    // An error (reset) counts as closed too; a timeout would not.
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) => assert_ne!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "the connection stayed open"
        ),
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_http1_and_bad_frames_are_refused_and_the_binary_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mux, _echo) = binary_with_echo(dir.path());
    let socket = dir.path().join("mux.sock");

    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let s = socket.clone();
    tokio::task::spawn_blocking(move || {
        send_and_wait_for_close(&s, &garbage);
        let reply = send_and_wait_for_close(&s, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(
            !reply.starts_with(b"HTTP/1.1 2"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        // A valid preface, then a frame header announcing 16 MiB (over the
        // 16 KiB maximum frame size): FRAME_SIZE_ERROR, GOAWAY.
        let mut bad = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bad.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
        bad.extend_from_slice(&[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]);
        let reply = send_and_wait_for_close(&s, &bad);
        // The last frame the multiplexer sent is a GOAWAY (type 7).
        assert!(
            reply.windows(4).any(|w| w[3] == 7 && w[0] == 0),
            "no GOAWAY in {reply:?}"
        );
    })
    .await
    .unwrap();

    assert!(mux.0.try_wait().unwrap().is_none(), "slipway-mux exited");
    let mut echo = EchoClient::new(channel(&socket).await);
    let r = eventually("a call through the binary", || {
        let mut echo = echo.clone();
        async move { echo.unary(request("fine")).await.ok() }
    })
    .await;
    assert_eq!(r.into_inner().text, "fine");
    echo.unary(request("again")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_streams_and_a_stalled_reader_do_not_block_other_callers() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_mux(dir.path()).await;
    let echo_component = Component::start(Kind::Echo, &dir.path().join("echo.sock"), "one");
    register(
        &m.components,
        "echo",
        &dir.path().join("echo.sock"),
        &[ECHO],
        None,
    );

    // A client that asks for an endless stream of 32 KiB messages and
    // stops reading after the first.
    let mut stalled_client = EchoClient::new(channel(&m.socket).await);
    let mut flood = request("flood");
    flood.payload = vec![1; 32 * 1024];
    let mut stalled = stalled_client.expand(flood).await.unwrap().into_inner();
    stalled.message().await.unwrap().unwrap();

    // A hundred open server streams from one client, one connection.
    let streams_client = EchoClient::new(channel(&m.socket).await);
    let mut open = Vec::new();
    for i in 0..100 {
        let mut c = streams_client.clone();
        open.push(tokio::spawn(async move {
            let mut req = request(&format!("s{i}"));
            req.interval_ms = 100;
            let mut s = c.expand(req).await.unwrap().into_inner();
            s.message().await.unwrap().unwrap();
            s
        }));
    }
    let mut streams = Vec::new();
    for h in open {
        streams.push(
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .unwrap()
                .unwrap(),
        );
    }

    // Another caller's unary calls all complete (the timeout only guards
    // against a hang).
    let mut other = EchoClient::new(channel(&m.socket).await);
    for i in 0..20 {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            other.unary(request(&format!("u{i}"))),
        )
        .await
        .expect("a unary call hung behind the stalled stream")
        .unwrap();
        assert_eq!(r.into_inner().text, format!("u{i}"));
    }
    // The hundred streams still flow.
    for s in &mut streams {
        tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    // Back-pressure reached the component: what it produced for the stalled
    // stream stops growing, bounded by the flow-control windows on the way.
    let mut last = u64::MAX;
    let produced = eventually("the stalled stream's producer blocks", || {
        let now = echo_component.counters.streamed.load(Ordering::SeqCst);
        let settled = now == last;
        last = now;
        async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            settled.then_some(now)
        }
    })
    .await;
    // It did fill the windows (the client's own 2 MiB included) first.
    assert!(produced > 1024 * 1024, "only {produced} bytes produced");
    assert!(
        produced < 16 * 1024 * 1024,
        "{produced} bytes produced for a reader that stopped"
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_calls_under_way_answer_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mux, _echo) = binary_with_echo(dir.path());
    let socket = dir.path().join("mux.sock");
    let mut echo = EchoClient::new(channel(&socket).await);
    // Three replies, 150 ms apart: a call still going when the TERM comes,
    // done well within the second the multiplexer gives it.
    let mut replies = eventually("a stream through the binary", || {
        let mut echo = echo.clone();
        async move {
            let mut req = request("slow");
            req.count = 3;
            req.interval_ms = 150;
            echo.expand(req).await.ok()
        }
    })
    .await
    .into_inner();
    assert_eq!(replies.message().await.unwrap().unwrap().index, 0);
    let pid = nix::unistd::Pid::from_raw(mux.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut indices = Vec::new();
    while let Some(r) = replies.message().await.unwrap() {
        indices.push(r.index);
    }
    assert_eq!(indices, [1, 2], "the call was cut short");
    // Then it is gone, and with it its socket: no new client can come.
    let mut status = None;
    for _ in 0..200 {
        status = mux.0.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let status = status.expect("slipway-mux still running 5 s after its last call");
    assert!(status.success(), "{status}");
    assert!(!socket.exists());
    assert!(echo.unary(request("late")).await.is_err());
}
