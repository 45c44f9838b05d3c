//! A TLS front for a plain HTTP test server, with a certificate for
//! `127.0.0.1` and `localhost` from a private CA made on the spot (rcgen):
//! for testing `--cert-file` against a real TLS handshake.
//!
//! It relays one request per connection to the upstream and its answer back
//! until the upstream closes, which suits [`crate::MockRegistry`]
//! (`Connection: close` on every answer).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::TestkitError;

/// Largest request head relayed.
const MAX_HEAD: usize = 64 << 10;

/// The running TLS front; stops on drop.
#[derive(Debug)]
pub struct TlsProxy {
    addr: SocketAddr,
    ca_pem: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> TestkitError {
    TestkitError::Io {
        what: format!("TLS proxy: {what}"),
        source: std::io::Error::other(e.to_string()),
    }
}

impl TlsProxy {
    /// Serves TLS on a free loopback port, relaying to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<TlsProxy, TestkitError> {
        let ca_key = rcgen::KeyPair::generate().map_err(|e| tls_error("CA key", e))?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_error("CA", e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "slipway test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(|e| tls_error("CA certificate", e))?;
        let key = rcgen::KeyPair::generate().map_err(|e| tls_error("server key", e))?;
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .map_err(|e| tls_error("server certificate", e))?;
        let cert = params
            .signed_by(&key, &ca)
            .map_err(|e| tls_error("server certificate", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("configuration", e))?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| tls_error("configuration", e))?;
        let config = Arc::new(config);
        let io = |source| TestkitError::Io {
            what: "starting the TLS proxy".into(),
            source,
        };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let config = config.clone();
                            workers.push(std::thread::spawn(move || {
                                let _ = relay(stream, upstream, config);
                            }));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
                for worker in workers {
                    let _ = worker.join();
                }
            })
        };
        Ok(TlsProxy {
            addr,
            ca_pem: ca.pem(),
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The CA that signed the server's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn relay(
    stream: TcpStream,
    upstream: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    // The request head, then as much body as it announces.
    let mut request = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if request.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(10)))?;
    up.write_all(&request)?;
    std::io::copy(&mut up, &mut tls)?;
    tls.conn.send_close_notify();
    tls.flush()
}
