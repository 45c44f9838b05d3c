//! The host's session bridge: several local clients over one byte stream
//! to the multiplexer (a socketpair standing in for the virtio-serial
//! chardev socket, with stale bytes at its start as qemu may hand over),
//! and a new session after the stream breaks.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::echo::echo_client::EchoClient;
use common::info::info_client::InfoClient;
use common::*;
use slipway_mux::Bridge;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{UnixListener, UnixStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_clients_share_one_session_and_a_broken_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_mux(dir.path()).await;
    let _echo = Component::start(Kind::Echo, &dir.path().join("echo.sock"), "one");
    let _info = Component::start(Kind::Info, &dir.path().join("info.sock"), "info");
    register(
        &m.components,
        "echo",
        &dir.path().join("echo.sock"),
        &[ECHO],
        None,
    );
    register(
        &m.components,
        "info",
        &dir.path().join("info.sock"),
        &[INFO],
        None,
    );

    let connects = Arc::new(AtomicUsize::new(0));
    let guests: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
    let mux = m.mux.clone();
    let (n, g) = (connects.clone(), guests.clone());
    let bridge = Bridge::new(move || {
        let (host, mut guest) = UnixStream::pair().unwrap();
        n.fetch_add(1, Ordering::SeqCst);
        let mux = mux.clone();
        g.lock().unwrap().push(tokio::spawn(async move {
            // What an earlier session could have left in the port.
            guest
                .write_all(b"\0\0\x08\x07\0\0\0\0\0 stale goaway\n")
                .await
                .unwrap();
            let _ = mux.serve_session(&mut guest).await;
        }));
        async move { Ok(host) }
    });
    let control = dir.path().join("control.sock");
    let listener = UnixListener::bind(&control).unwrap();
    let b = bridge.clone();
    tokio::spawn(async move { b.serve(listener).await });

    // Three local clients, each its own connection, calling at once.
    let mut calls = Vec::new();
    for i in 0..3 {
        let control = control.clone();
        calls.push(tokio::spawn(async move {
            let ch = channel(&control).await;
            let mut echo = EchoClient::new(ch.clone());
            let r = echo
                .unary(request(&format!("c{i}")))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.text, format!("c{i}"));
            let mut req = request("s");
            req.count = 3;
            let mut s = echo.expand(req).await.unwrap().into_inner();
            let mut n = 0;
            while s.message().await.unwrap().is_some() {
                n += 1;
            }
            assert_eq!(n, 3);
            let words = ["a", "b"].map(request);
            let r = echo
                .collect(tokio_stream::iter(words))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.text, "ab");
            InfoClient::new(ch)
                .get(common::info::InfoRequest {})
                .await
                .unwrap();
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    assert_eq!(
        connects.load(Ordering::SeqCst),
        1,
        "one session for every client"
    );
    assert!(bridge.connected().await);

    // The guest side goes away (the VM's port closes, the multiplexer restarts).
    for g in guests.lock().unwrap().drain(..) {
        g.abort();
    }
    let mut echo = EchoClient::new(channel(&control).await);
    let r = eventually("calls go through a new session", || {
        let mut echo = echo.clone();
        async move { echo.unary(request("after")).await.ok() }
    })
    .await;
    assert_eq!(r.into_inner().text, "after");
    assert_eq!(connects.load(Ordering::SeqCst), 2);
    echo.unary(request("again")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_guest_calls_are_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::unix(dir.path().join("no-such-chardev.sock"));
    let control = dir.path().join("control.sock");
    let listener = UnixListener::bind(&control).unwrap();
    tokio::spawn(async move { bridge.serve(listener).await });
    let e = EchoClient::new(channel(&control).await)
        .unary(request("x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert!(
        e.message().contains("no session with the guest"),
        "{}",
        e.message()
    );
}
