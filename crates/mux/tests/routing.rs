//! The multiplexer between real tonic clients and real tonic components on
//! unix sockets: routing of every call shape, statuses, unknown methods,
//! dead, returning and replaced components, cancellation.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::echo::echo_client::EchoClient;
use common::info::info_client::InfoClient;
use common::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_all_four_call_shapes_to_their_components() {
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

    let ch = channel(&m.socket).await;
    let mut echo = EchoClient::new(ch.clone());

    // unary
    let r = echo.unary(request("hello")).await.unwrap().into_inner();
    assert_eq!((r.text.as_str(), r.server.as_str()), ("hello", "one"));

    // server streaming
    let mut req = request("s");
    req.count = 5;
    let mut stream = echo.expand(req).await.unwrap().into_inner();
    let mut indexes = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        indexes.push(m.index);
    }
    assert_eq!(indexes, [0, 1, 2, 3, 4]);

    // client streaming
    let words = ["a", "b", "c", "d"].map(request);
    let r = echo
        .collect(tokio_stream::iter(words))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.text.as_str(), r.index), ("abcd", 4));

    // bidirectional, one reply per message, interleaved
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = echo
        .chat(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for word in ["x", "y", "z"] {
        tx.send(request(word)).await.unwrap();
        let m = replies.message().await.unwrap().unwrap();
        assert_eq!(m.text, word.to_uppercase());
    }
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());

    // the other component, on the same connection to the multiplexer
    let mut info = InfoClient::new(ch);
    let r = info
        .get(common::info::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.kernel, "test-kernel");

    // a large message both ways (several DATA frames, several windows)
    let mut big = request("big");
    big.payload = vec![7u8; 3 * 1024 * 1024];
    let r = echo.unary(big).await.unwrap().into_inner();
    assert_eq!(r.payload.len(), 3 * 1024 * 1024);
    assert!(r.payload.iter().all(|&b| b == 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_messages_and_trailers_come_through() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_mux(dir.path()).await;
    let _echo = Component::start(Kind::Echo, &dir.path().join("echo.sock"), "one");
    register(
        &m.components,
        "echo",
        &dir.path().join("echo.sock"),
        &[ECHO],
        None,
    );
    let mut echo = EchoClient::new(channel(&m.socket).await);

    // trailers-only error response
    let mut req = request("nope");
    req.fail_code = Code::NotFound as u32;
    let e = echo.unary(req.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "failing as asked: nope");
    assert_eq!(e.metadata().get("x-detail").unwrap(), "trailer-value");

    // an error after response headers and messages: a client-streaming call
    // failing on its third message
    let mut bad = request("c");
    bad.fail_code = Code::PermissionDenied as u32;
    let msgs = vec![request("a"), request("b"), bad];
    let e = echo.collect(tokio_stream::iter(msgs)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(e.metadata().get("x-detail").unwrap(), "trailer-value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_unimplemented_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_mux(dir.path()).await;
    let _echo = Component::start(Kind::Echo, &dir.path().join("echo.sock"), "one");
    register(
        &m.components,
        "echo",
        &dir.path().join("echo.sock"),
        &[ECHO],
        None,
    );
    let ch = channel(&m.socket).await;
    let e = InfoClient::new(ch.clone())
        .get(common::info::InfoRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    assert!(
        e.message().contains("/slipway.test.info.Info/Get"),
        "{}",
        e.message()
    );
    // The connection is fine for the next call.
    EchoClient::new(ch)
        .unary(request("still here"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_component_is_unavailable_by_name_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_mux(dir.path()).await;
    let socket = dir.path().join("echo.sock");
    let mut echo_component = Component::start(Kind::Echo, &socket, "one");
    register(&m.components, "echo-service", &socket, &[ECHO], None);
    let mut echo = EchoClient::new(channel(&m.socket).await);
    echo.unary(request("up")).await.unwrap();

    echo_component.kill();
    let e = echo.unary(request("down")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("\"echo-service\""), "{}", e.message());
    // and again, now that the old connection is known to be gone
    let e = echo.unary(request("down")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("\"echo-service\""), "{}", e.message());

    let _back = Component::start(Kind::Echo, &socket, "two");
    let r = echo.unary(request("back")).await.unwrap().into_inner();
    assert_eq!(r.server, "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacement_keeps_open_streams_on_the_old_component() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_mux(dir.path()).await;
    let old = Component::start(Kind::Echo, &dir.path().join("echo-1.sock"), "old");
    register(
        &m.components,
        "echo",
        &dir.path().join("echo-1.sock"),
        &[ECHO],
        None,
    );
    let ch = channel(&m.socket).await;
    let mut echo = EchoClient::new(ch.clone());

    // a `logs -f`-like endless stream
    let mut follow = request("log");
    follow.interval_ms = 20;
    let mut stream = echo.expand(follow).await.unwrap().into_inner();
    for i in 0..2 {
        let m = stream.message().await.unwrap().unwrap();
        assert_eq!((m.server.as_str(), m.index), ("old", i));
    }

    let _new = Component::start(Kind::Echo, &dir.path().join("echo-2.sock"), "new");
    register(
        &m.components,
        "echo",
        &dir.path().join("echo-2.sock"),
        &[ECHO],
        None,
    );
    let mut echo2 = echo.clone();
    eventually("new calls reach the new component", || {
        let mut c = echo2.clone();
        async move {
            let r = c.unary(request("which")).await.ok()?.into_inner();
            (r.server == "new").then_some(())
        }
    })
    .await;
    let r = echo2.unary(request("again")).await.unwrap().into_inner();
    assert_eq!(r.server, "new");

    // the open stream carries on, from the old component, uninterrupted
    let mut last = 1;
    for _ in 0..5 {
        let m = stream.message().await.unwrap().unwrap();
        assert_eq!(m.server, "old");
        assert_eq!(m.index, last + 1);
        last = m.index;
    }

    // the client cancels: the old component sees its stream end
    drop(stream);
    eventually("the component sees the cancellation", || {
        let n = old.counters.cancelled.load(Ordering::SeqCst);
        async move { (n == 1).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_written_just_before_the_call_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_mux(dir.path()).await;
    let _info = Component::start(Kind::Info, &dir.path().join("info.sock"), "info");
    let mut info = InfoClient::new(channel(&m.socket).await);
    assert_eq!(
        info.get(common::info::InfoRequest {})
            .await
            .unwrap_err()
            .code(),
        Code::Unimplemented
    );
    // No wait for the watcher: a miss rescans the directory.
    tokio::time::sleep(Duration::from_millis(60)).await;
    register(
        &m.components,
        "info",
        &dir.path().join("info.sock"),
        &[INFO],
        None,
    );
    info.get(common::info::InfoRequest {}).await.unwrap();
}
