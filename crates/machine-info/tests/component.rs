//! The real `slipway-machine-info` binary, registered with a real
//! multiplexer, answering through it; its answers checked against what
//! this host's kernel says, and its registration gone after SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use slipway_control::channel::connect_unix;
use slipway_control::machine::GetRequest;
use slipway_control::machine::info_client::InfoClient;
use slipway_mux::proto::reflection::v1::ServerReflectionRequest;
use slipway_mux::proto::reflection::v1::server_reflection_client::ServerReflectionClient;
use slipway_mux::proto::reflection::v1::server_reflection_request::MessageRequest;
use slipway_mux::proto::reflection::v1::server_reflection_response::MessageResponse;
use tonic::Code;

/// The component's process, killed if the test ends without waiting for it.
struct Component(Option<Child>);

impl Drop for Component {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(dir: &Path) -> Component {
    Component(Some(
        Command::new(env!("CARGO_BIN_EXE_slipway-machine-info"))
            .arg("--listen")
            .arg(dir.join("run/machine-info.sock"))
            .arg("--components")
            .arg(dir.join("components"))
            .spawn()
            .unwrap(),
    ))
}

async fn until<T, F: AsyncFnMut() -> Option<T>>(what: &str, mut f: F) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_through_the_multiplexer_and_unregisters_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir_all(&components).unwrap();
    let mux = slipway_mux::Mux::new(&components);
    mux.watch().unwrap();
    let mux_socket = dir.path().join("mux.sock");
    let listener = tokio::net::UnixListener::bind(&mux_socket).unwrap();
    let serving = mux.clone();
    tokio::spawn(async move { serving.serve_unix(listener).await });

    let mut component = start(dir.path());
    let channel = connect_unix(&mux_socket).await.unwrap();
    let mut client = InfoClient::new(channel.clone());
    let info = until("Info/Get through the multiplexer", async || {
        client.get(GetRequest {}).await.ok()
    })
    .await
    .into_inner();

    let hostname = nix::unistd::gethostname().unwrap();
    assert_eq!(info.hostname, hostname.to_string_lossy());
    let uts = nix::sys::utsname::uname().unwrap();
    assert_eq!(info.kernel_release, uts.release().to_string_lossy());
    assert_eq!(info.architecture, std::env::consts::ARCH);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    assert_eq!(
        Some(info.memory_total),
        slipway_machine_info::info::meminfo_bytes(&meminfo, "MemTotal")
    );
    assert!(info.memory_available > 0 && info.memory_available <= info.memory_total);
    assert!(info.uptime_seconds > 0.0);
    assert_eq!(info.load_average.len(), 3);
    assert!(info.cpus >= 1);
    assert_eq!(
        info.cmdline,
        std::fs::read_to_string("/proc/cmdline").unwrap().trim_end()
    );
    assert!(
        info.mounts.iter().any(|m| m.target == "/"),
        "{:?}",
        info.mounts
    );
    let lo = info.interfaces.iter().find(|i| i.name == "lo").expect("lo");
    assert_eq!(lo.state, "up");
    assert!(lo.addresses.contains(&"127.0.0.1/8".to_owned()), "{lo:?}");

    // Reflection through the multiplexer, from the component's descriptors.
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "slipway.machine.v1.Info".into(),
        )),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    match answers.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => {
            assert!(!files.file_descriptor_proto.is_empty());
        }
        other => panic!("reflection answered {other:?}"),
    }

    // SIGTERM: the registration goes, and with it the route.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(component.0.as_ref().unwrap().id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut child = component.0.take().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!components.join("machine-info.json").exists());
    let code = until("the route to go", async || {
        match client.get(GetRequest {}).await {
            Err(s) if s.code() == Code::Unimplemented => Some(s.code()),
            _ => None,
        }
    })
    .await;
    assert_eq!(code, Code::Unimplemented);
}
