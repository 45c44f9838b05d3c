//! The TCP listener of the built `slipway-mux`: mutual TLS against a CA
//! made here (rcgen). A client with a certificate from the CA gets answers;
//! one without a certificate, with one from another CA, or speaking
//! plaintext is refused by the handshake while the good client keeps
//! working; a TCP listener without its TLS material is refused with a
//! message and the unix socket still served.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::echo::echo_client::EchoClient;
use common::*;
use hyper_util::rt::TokioIo;
use slipway_mux::tls::{self, TlsFiles};
use slipway_testkit::pki::Pki;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// A client presenting `name`.pem, trusting `ca.pem`.
fn client_files(pki: &Pki, name: &str) -> TlsFiles {
    TlsFiles {
        ca: pki.path("ca.pem"),
        cert: pki.path(&format!("{name}.pem")),
        key: pki.path(&format!("{name}.key")),
    }
}

/// The built binary, its standard error collected line by line.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    new_line: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(dir: &Path, extra: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_slipway-mux"))
            .arg("--components")
            .arg(dir.join("components"))
            .arg("--listen")
            .arg(dir.join("mux.sock"))
            .arg("--no-port")
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, new_line) = mpsc::channel();
        let all = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                all.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Running {
            child,
            lines,
            new_line,
        }
    }

    /// The first line of standard error containing `text` (waiting up to 20 s).
    fn wait_for(&self, text: &str) -> String {
        if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        loop {
            match self.new_line.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l.contains(text) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "slipway-mux did not say {text:?}; it said {:?}",
                    self.lines.lock().unwrap()
                ),
            }
        }
    }

    /// The port of "serving TLS on 127.0.0.1:PORT".
    fn tls_port(&self) -> u16 {
        let line = self.wait_for("serving TLS on 127.0.0.1:");
        let rest = line.split("127.0.0.1:").nth(1).unwrap();
        rest.split(' ').next().unwrap().parse().unwrap()
    }

    fn said(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// A tonic channel over TLS to 127.0.0.1:`port`, checking the server's
/// certificate for `localhost`.
async fn tls_channel(port: u16, files: &TlsFiles) -> Result<Channel, tonic::transport::Error> {
    let config = tls::client_config(files).unwrap();
    let address = format!("127.0.0.1:{port}");
    Endpoint::try_from(format!("https://localhost:{port}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let config = config.clone();
            let address = address.clone();
            async move {
                let name = tls::server_name("localhost").unwrap();
                Ok::<_, std::io::Error>(TokioIo::new(tls::connect(&address, name, config).await?))
            }
        }))
        .await
}

/// How a refused client's connection ends: with the server's alert, never
/// with HTTP/2 (`tls::connect` waits for the server's first bytes).
async fn refused_over_tls(port: u16, config: Arc<rustls::ClientConfig>) -> String {
    let name = tls::server_name("localhost").unwrap();
    let address = format!("127.0.0.1:{port}");
    let connecting = tls::connect(&address, name, config);
    match tokio::time::timeout(Duration::from_secs(20), connecting).await {
        Ok(Ok(_)) => panic!("a client the server should refuse got HTTP/2 bytes"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => panic!("the refused connection stayed open"),
    }
}

async fn echo_works(client: &mut EchoClient<Channel>, text: &str) {
    let reply = client.unary(request(text)).await.unwrap().into_inner();
    assert_eq!(reply.text, text);
    assert_eq!(reply.server, "one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_need_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let _echo = Component::start(Kind::Echo, &dir.path().join("echo.sock"), "one");
    std::fs::create_dir_all(dir.path().join("components")).unwrap();
    register(
        &dir.path().join("components"),
        "echo",
        &dir.path().join("echo.sock"),
        &[ECHO],
        None,
    );
    // The listener from the configuration file, as an image carries it.
    let config = dir.path().join("mux.json");
    std::fs::write(
        &config,
        serde_json::json!({"tcp": {
            "listen": "127.0.0.1:0",
            "ca": pki.path("ca.pem"),
            "cert": pki.path("server.pem"),
            "key": pki.path("server.key"),
        }})
        .to_string(),
    )
    .unwrap();
    let mux = Running::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let port = mux.tls_port();

    // A client that connects and says nothing: dropped at the handshake limit.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();

    let good = tls_channel(port, &client_files(&pki, "client"))
        .await
        .unwrap();
    let mut client = EchoClient::new(good.clone());
    echo_works(&mut client, "over tls").await;
    // A stream open across the refusals below.
    let mut expand = client
        .expand(common::echo::EchoRequest {
            text: "tick".into(),
            interval_ms: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expand.message().await.unwrap().unwrap().index, 0);

    // No client certificate.
    let roots = {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(pki.path("ca.pem")).unwrap();
        for cert in rustls_pki_certs(&pem) {
            roots.add(cert).unwrap();
        }
        roots
    };
    let mut anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    anonymous.alpn_protocols = vec![b"h2".to_vec()];
    let said = refused_over_tls(port, Arc::new(anonymous)).await;
    assert_eq!(said, "received fatal alert: CertificateRequired");
    mux.wait_for("refused: peer sent no certificates");
    echo_works(&mut client, "after a client without a certificate").await;

    // A certificate from another CA.
    let stranger = tls::client_config(&client_files(&pki, "stranger")).unwrap();
    let said = refused_over_tls(port, stranger).await;
    assert_eq!(said, "received fatal alert: UnknownCA");
    mux.wait_for("refused: invalid peer certificate: UnknownIssuer");
    echo_works(&mut client, "after a stranger").await;
    // As a tonic channel: the connection fails, naming the alert.
    let e = tls_channel(port, &client_files(&pki, "stranger"))
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("UnknownCA"), "{e:?}");

    // Plaintext HTTP/2, as a gRPC client without TLS sends it: what comes
    // back (if anything) is a TLS alert record, never HTTP/2.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), plain.read_to_end(&mut back))
        .await
        .expect("the plaintext connection stayed open")
        .ok();
    assert!(
        back.is_empty() || back[0] == 0x15,
        "plaintext got an answer: {back:?}"
    );
    mux.wait_for("refused: received corrupt message");
    let plaintext_channel = Endpoint::try_from(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plaintext_channel {
        let status = EchoClient::new(channel)
            .unary(request("plaintext"))
            .await
            .unwrap_err();
        assert_ne!(status.code(), tonic::Code::Ok);
    }
    echo_works(&mut client, "after plaintext").await;

    // The stream went on throughout.
    let next = expand.message().await.unwrap().unwrap();
    assert!(next.index >= 1, "{next:?}");
    drop(expand);

    // The silent client was dropped by the handshake limit (10 s).
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buf))
        .await
        .expect("a silent client kept its connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
    mux.wait_for("refused: no handshake within 10s");
    echo_works(&mut client, "at the end").await;

    // The good client's connection has TCP keepalive: the kernel's
    // keepalive timer (`tr` 2 in /proc/net/tcp) runs on the multiplexer's
    // side of it while it is idle.
    let keepalive = eventually("a keepalive timer on the TLS connection", || async {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let local = format!(":{port:04X}");
        table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .any(|f| f[1].ends_with(&local) && f[3] == "01" && f[5].starts_with("02:"))
            .then_some(())
    })
    .await;
    let () = keepalive;
    eprintln!("slipway-mux said: {:#?}", mux.said());
}

fn rustls_pki_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A free loopback port (bound and released): where a refused listener
/// would have been.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_without_tls_material_is_refused_and_the_unix_socket_served() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let _echo = Component::start(Kind::Echo, &dir.path().join("echo.sock"), "one");
    std::fs::create_dir_all(dir.path().join("components")).unwrap();
    register(
        &dir.path().join("components"),
        "echo",
        &dir.path().join("echo.sock"),
        &[ECHO],
        None,
    );
    let port = free_port();
    let config = dir.path().join("mux.json");
    let cases: Vec<(String, Vec<String>, String)> = vec![
        (
            format!("{{\"tcp\": {{\"listen\": \"127.0.0.1:{port}\", \"cert\": \"/s.pem\"\n}}}}"),
            vec![],
            format!(
                "TCP listener refused: {}:2:2: tcp: the TCP listener 127.0.0.1:{port} needs ca, key (mutual TLS: plaintext \
                 TCP is not served); serving the unix socket and the virtio port only",
                config.display()
            ),
        ),
        (
            "{}".into(),
            vec![
                "--tcp".into(),
                format!("127.0.0.1:{port}"),
                "--tls-ca".into(),
                pki.path("ca.pem").display().to_string(),
            ],
            format!(
                "TCP listener refused: --tcp 127.0.0.1:{port} needs --tls-cert, --tls-key \
                 (mutual TLS: plaintext TCP is not served)"
            ),
        ),
        (
            format!(
                r#"{{"tcp": {{"listen": "127.0.0.1:{port}", "ca": "/c", "cert": "/s", "key": "/k", "plaintext": true}}}}"#
            ),
            vec![],
            "unknown field `plaintext`".into(),
        ),
        (
            format!(
                r#"{{"tcp": {{"listen": "127.0.0.1:{port}", "ca": "{}", "cert": "{}", "key": "/nowhere.key"}}}}"#,
                pki.path("ca.pem").display(),
                pki.path("server.pem").display()
            ),
            vec![],
            format!("TCP listener 127.0.0.1:{port} refused: reading key /nowhere.key"),
        ),
    ];
    for (file, flags, message) in cases {
        std::fs::write(&config, &file).unwrap();
        let mut args = vec!["--config".to_string(), config.display().to_string()];
        args.extend(flags);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mux = Running::start(dir.path(), &args);
        let line = mux.wait_for("refused");
        assert!(line.contains(&message), "{line}\nnot: {message}");
        // The unix socket is served all the same.
        let mut client = EchoClient::new(channel(&dir.path().join("mux.sock")).await);
        let reply = client.unary(request("still here")).await.unwrap();
        assert_eq!(reply.into_inner().text, "still here");
        // And nothing listens on TCP.
        let e = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(
            !mux.said().iter().any(|l| l.contains("serving TLS")),
            "{:?}",
            mux.said()
        );
    }
}
