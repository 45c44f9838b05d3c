//! The multiplexer's cost per unary call on loopback: the same calls to a
//! component directly, through the multiplexer, and through the host
//! bridge and the multiplexer, interleaved in rounds. Prints numbers,
//! asserts none (timings stay out of tests):
//!
//! ```text
//! cargo test -p slipway-mux --release --test overhead -- --ignored --nocapture
//! ```

#![allow(
    clippy::disallowed_methods,
    reason = "measures the per-call overhead it reports"
)]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::echo::echo_client::EchoClient;
use common::*;
use slipway_mux::Bridge;
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::Channel;

const ROUNDS: usize = 5;
const CALLS: usize = 1000;

async fn run(client: &mut EchoClient<Channel>, n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        client.unary(request("x")).await.unwrap();
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it with --ignored --nocapture"]
async fn unary_call_overhead() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_mux(dir.path()).await;
    let echo_socket = dir.path().join("echo.sock");
    let _echo = Component::start(Kind::Echo, &echo_socket, "one");
    register(&m.components, "echo", &echo_socket, &[ECHO], None);

    let mux = m.mux.clone();
    let bridge = Bridge::new(move || {
        let (host, mut guest) = UnixStream::pair().unwrap();
        let mux = mux.clone();
        tokio::spawn(async move {
            let _ = mux.serve_session(&mut guest).await;
        });
        async move { Ok(host) }
    });
    let control = dir.path().join("control.sock");
    let listener = UnixListener::bind(&control).unwrap();
    tokio::spawn(async move { bridge.serve(listener).await });

    let mut direct = EchoClient::new(channel(&echo_socket).await);
    let mut via_mux = EchoClient::new(channel(&m.socket).await);
    let mut via_bridge = EchoClient::new(channel(&control).await);
    for c in [&mut direct, &mut via_mux, &mut via_bridge] {
        run(c, 200).await; // warm up connections and allocators
    }
    let mut totals = [Duration::ZERO; 3];
    for _ in 0..ROUNDS {
        totals[0] += run(&mut direct, CALLS).await;
        totals[1] += run(&mut via_mux, CALLS).await;
        totals[2] += run(&mut via_bridge, CALLS).await;
    }
    let per_call = |d: Duration| d.as_secs_f64() * 1e6 / (ROUNDS * CALLS) as f64;
    let [d, m, b] = totals.map(per_call);
    println!(
        "unary call, {} calls each, sequential, loopback unix sockets:",
        ROUNDS * CALLS
    );
    println!("  direct to the component       {d:8.1} µs/call");
    println!(
        "  through slipway-mux           {m:8.1} µs/call  (+{:.1} µs)",
        m - d
    );
    println!(
        "  through the bridge and mux    {b:8.1} µs/call  (+{:.1} µs)",
        b - d
    );
}

/// The binary's resident memory, idle after serving calls to two
/// components (unary, streams, reflection), from `/proc/<pid>/status`.
/// Uses `SLIPWAY_MUX_BINARY` when set (the static release build), else the
/// binary cargo built for this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it with --ignored --nocapture"]
async fn idle_memory_after_calls() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir_all(&components).unwrap();
    let binary = std::env::var("SLIPWAY_MUX_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_slipway-mux").to_string());
    let socket = dir.path().join("mux.sock");
    let mut child = Command::new(&binary)
        .arg("--components")
        .arg(&components)
        .arg("--listen")
        .arg(&socket)
        .arg("--no-port")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rss = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap()
            .to_string()
    };
    let _echo = Component::start(Kind::Echo, &dir.path().join("echo.sock"), "one");
    let _info = Component::start(Kind::Info, &dir.path().join("info.sock"), "info");
    let set = dir.path().join("info.binpb");
    std::fs::write(&set, INFO_DESCRIPTORS).unwrap();
    register(
        &components,
        "echo",
        &dir.path().join("echo.sock"),
        &[ECHO],
        None,
    );
    register(
        &components,
        "info",
        &dir.path().join("info.sock"),
        &[INFO],
        Some(&set),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("{binary}\n  started:             {}", rss(child.id()));

    let ch = channel(&socket).await;
    let mut echo = EchoClient::new(ch.clone());
    run(&mut echo, 1000).await;
    let mut streams = Vec::new();
    for _ in 0..100 {
        let mut e = echo.clone();
        streams.push(tokio::spawn(async move {
            let mut req = request("s");
            req.count = 10;
            req.payload = vec![0; 4096];
            let mut s = e.expand(req).await.unwrap().into_inner();
            while s.message().await.unwrap().is_some() {}
        }));
    }
    for s in streams {
        s.await.unwrap();
    }
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(ch.clone());
    for symbol in [ECHO, INFO, "slipway.mux.v1.Components"] {
        let req = tonic_reflection::pb::v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                tonic_reflection::pb::v1::server_reflection_request::MessageRequest::FileContainingSymbol(symbol.into()),
            ),
        };
        let mut r = reflection
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        while r.message().await.unwrap().is_some() {}
    }
    println!("  after the calls:     {}", rss(child.id()));
    drop((echo, reflection, ch));
    tokio::time::sleep(Duration::from_secs(6)).await;
    println!("  idle 6 s later:      {}", rss(child.id()));
    let _ = child.kill();
    let _ = child.wait();
}
