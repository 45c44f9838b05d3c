//! The multiplexer's own services through real clients: aggregated
//! reflection (v1 and v1alpha, from a component's reflection service and
//! from a registered descriptor set), a generic Python client that knows
//! nothing of slipway, health, and the components listing.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use prost::Message as _;
use prost_types::FileDescriptorProto;
use slipway_mux::proto::health::v1::HealthCheckRequest;
use slipway_mux::proto::health::v1::health_check_response::ServingStatus;
use slipway_mux::proto::health::v1::health_client::HealthClient;
use slipway_mux::proto::mux::v1::ListComponentsRequest;
use slipway_mux::proto::mux::v1::component::State;
use slipway_mux::proto::mux::v1::components_client::ComponentsClient;
use tonic::Code;
use tonic_reflection::pb::{v1, v1alpha};

const OWN: [&str; 4] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "slipway.mux.v1.Components",
];

/// Echo (with its own reflection) and info (without; descriptor set
/// registered) behind a multiplexer.
struct Setup {
    _dir: tempfile::TempDir,
    mux: TestMux,
    echo: Component,
    _info: Component,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mux = start_mux(dir.path()).await;
    let echo = Component::start(Kind::Echo, &dir.path().join("echo.sock"), "one");
    let info = Component::start(Kind::Info, &dir.path().join("info.sock"), "info");
    let set = dir.path().join("info.binpb");
    std::fs::write(&set, INFO_DESCRIPTORS).unwrap();
    register(
        &mux.components,
        "echo",
        &dir.path().join("echo.sock"),
        &[ECHO],
        None,
    );
    register(
        &mux.components,
        "info",
        &dir.path().join("info.sock"),
        &[INFO],
        Some(&set),
    );
    let registry = mux.mux.registry().clone();
    eventually("the watcher reads both registrations", || {
        let n = registry.table().components.len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    Setup {
        _dir: dir,
        mux,
        echo,
        _info: info,
    }
}

fn expected_services() -> Vec<String> {
    let mut all: Vec<String> = OWN
        .iter()
        .chain(&[ECHO, INFO])
        .map(|s| s.to_string())
        .collect();
    all.sort();
    all
}

async fn reflect_v1(
    socket: &Path,
    request: v1::server_reflection_request::MessageRequest,
) -> v1::server_reflection_response::MessageResponse {
    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(channel(socket).await);
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    assert!(replies.message().await.unwrap().is_none());
    reply.message_response.unwrap()
}

fn file_names(response: v1::server_reflection_response::MessageResponse) -> Vec<String> {
    match response {
        v1::server_reflection_response::MessageResponse::FileDescriptorResponse(f) => f
            .file_descriptor_proto
            .iter()
            .map(|b| {
                FileDescriptorProto::decode(b.as_slice())
                    .unwrap()
                    .name()
                    .to_string()
            })
            .collect(),
        other => panic!("not a file descriptor response: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_lists_and_resolves_every_component() {
    use v1::server_reflection_request::MessageRequest as Req;
    use v1::server_reflection_response::MessageResponse as Resp;
    let s = setup().await;
    let socket = &s.mux.socket;

    let Resp::ListServicesResponse(list) =
        reflect_v1(socket, Req::ListServices(String::new())).await
    else {
        panic!("not a list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert_eq!(names, expected_services());

    // from the echo component's own reflection service
    let files = file_names(
        reflect_v1(
            socket,
            Req::FileContainingSymbol("slipway.test.echo.Echo.Chat".into()),
        )
        .await,
    );
    assert_eq!(files, ["echo.proto"]);
    let files = file_names(
        reflect_v1(
            socket,
            Req::FileContainingSymbol("slipway.test.echo.EchoReply".into()),
        )
        .await,
    );
    assert_eq!(files, ["echo.proto"]);
    // from info's registered descriptor set (info serves no reflection)
    let files = file_names(reflect_v1(socket, Req::FileContainingSymbol(INFO.into())).await);
    assert_eq!(files, ["info.proto"]);
    let files = file_names(reflect_v1(socket, Req::FileByFilename("info.proto".into())).await);
    assert_eq!(files, ["info.proto"]);
    // the multiplexer's own
    let files = file_names(
        reflect_v1(
            socket,
            Req::FileContainingSymbol("slipway.mux.v1.Components".into()),
        )
        .await,
    );
    assert_eq!(files, ["slipway/mux/v1/components.proto"]);

    let Resp::ErrorResponse(e) =
        reflect_v1(socket, Req::FileContainingSymbol("no.such.Symbol".into())).await
    else {
        panic!("an unknown symbol resolved");
    };
    assert_eq!(e.error_code, Code::NotFound as i32);
    assert!(
        e.error_message.contains("no.such.Symbol"),
        "{}",
        e.error_message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_answers_too() {
    use v1alpha::server_reflection_request::MessageRequest as Req;
    use v1alpha::server_reflection_response::MessageResponse as Resp;
    let s = setup().await;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(
        channel(&s.mux.socket).await,
    );
    let requests = [
        Req::ListServices(String::new()),
        Req::FileContainingSymbol("slipway.test.echo.Echo".into()),
        Req::FileContainingSymbol("slipway.test.info.Info.Get".into()),
    ]
    .map(|r| v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r),
    });
    // Several requests on one stream, answered in order.
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(Resp::ListServicesResponse(list)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a list");
    };
    assert_eq!(list.service.len(), expected_services().len());
    for want in ["echo.proto", "info.proto"] {
        let Some(Resp::FileDescriptorResponse(f)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("not a file");
        };
        let name = FileDescriptorProto::decode(f.file_descriptor_proto[0].as_slice())
            .unwrap()
            .name()
            .to_string();
        assert_eq!(name, want);
    }
    assert!(replies.message().await.unwrap().is_none());
}

/// The Python with grpcio and grpcio-reflection (`cargo xtask deps` makes it).
fn python() -> PathBuf {
    let python = std::env::var_os("SLIPWAY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("python-test/bin/python3")
        });
    assert!(
        python.is_file(),
        "{} is missing: `cargo xtask test` creates it (a venv with grpcio and grpcio-reflection from PyPI)",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_client_that_knows_nothing_of_slipway_lists_and_calls_everything() {
    let s = setup().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/generic_client.py");
    let mut cmd = std::process::Command::new(python());
    cmd.arg(&script).arg(&s.mux.socket);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let services: Vec<String> = serde_json::from_value(v["services"].clone()).unwrap();
    assert_eq!(services, expected_services());
    assert_eq!(
        v["methods"][ECHO],
        serde_json::json!([
            "slipway.test.echo.Echo.Chat",
            "slipway.test.echo.Echo.Collect",
            "slipway.test.echo.Echo.Expand",
            "slipway.test.echo.Echo.Unary"
        ])
    );
    assert_eq!(
        v["methods"][INFO],
        serde_json::json!(["slipway.test.info.Info.Get"])
    );
    assert_eq!(
        v["methods"]["slipway.mux.v1.Components"],
        serde_json::json!(["slipway.mux.v1.Components.List"])
    );
    assert_eq!(v["echo"]["text"], "from python");
    assert_eq!(v["echo"]["server"], "one");
    assert_eq!(v["info"]["kernel"], "test-kernel");
    assert_eq!(v["health"]["status"], "SERVING");
    let names: Vec<&str> = v["components"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "info", "slipway-mux"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_components() {
    let mut s = setup().await;
    let mut health = HealthClient::new(channel(&s.mux.socket).await);
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    for service in ["", "grpc.health.v1.Health", ECHO, INFO] {
        let r = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service}");
    }
    let e = health.check(check("no.such.Service")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let mut watch = health.watch(check(ECHO)).await.unwrap().into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    s.echo.kill();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    let r = health.check(check(ECHO)).await.unwrap().into_inner();
    assert_eq!(r.status, ServingStatus::NotServing as i32);
    let _back = Component::start(Kind::Echo, &s.echo.socket, "two");
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );

    let mut unknown = health
        .watch(check("later.Service"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unknown.message().await.unwrap().unwrap().status,
        ServingStatus::ServiceUnknown as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_lists_states_shadowed_services_and_bad_registrations() {
    let mut s = setup().await;
    let dir = s.mux.components.clone();
    // A newer registration takes echo's service over; another is broken.
    register(
        &dir,
        "echo-next",
        &s.echo.socket,
        &[ECHO, "slipway.test.echo.Extra"],
        None,
    );
    std::fs::write(dir.join("broken.json"), "{\"name\": 1}").unwrap();
    s.echo.kill();
    let mut client = ComponentsClient::new(channel(&s.mux.socket).await);
    let list = eventually("the new registrations are read", || {
        let mut client = client.clone();
        async move {
            let list = client
                .list(ListComponentsRequest {})
                .await
                .ok()?
                .into_inner()
                .components;
            (list.len() == 5).then_some(list)
        }
    })
    .await;
    let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["broken", "echo", "echo-next", "info", "slipway-mux"]
    );
    let [broken, echo, next, info, mux] = &list[..] else {
        unreachable!()
    };
    assert_eq!(broken.state, State::Invalid as i32);
    assert!(broken.error.contains("broken.json"), "{}", broken.error);
    assert_eq!(echo.state, State::Unavailable as i32);
    assert!(echo.error.contains("\"echo\""), "{}", echo.error);
    assert_eq!(echo.shadowed, [ECHO]);
    assert_eq!(next.services, [ECHO, "slipway.test.echo.Extra"]);
    assert!(next.shadowed.is_empty());
    assert_eq!(info.state, State::Ready as i32);
    assert!(info.descriptors.ends_with("info.binpb"));
    assert_eq!(mux.services, OWN);
    let _ = client.list(ListComponentsRequest {}).await.unwrap();
}
