//! Mutual TLS for the multiplexer's TCP listener, and for clients of it.
//!
//! The only way to serve TCP: TLS 1.2 or 1.3 (rustls on ring), ALPN `h2`,
//! and a client certificate required and verified against a CA given by
//! file. A client without a certificate, with one from another CA, or
//! speaking plaintext fails the handshake.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use crate::session::Prefixed;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub use rustls::pki_types::ServerName;
pub use rustls::{ClientConfig, ServerConfig};

/// How long a client waits for the server's first bytes after the TLS
/// handshake (the server's own handshake limit).
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN protocol both sides insist on.
const ALPN_H2: &[u8] = b"h2";

/// The PEM files of one side of a mutual TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA (one or more certificates) the peer's certificate must chain to.
    pub ca: PathBuf,
    /// This side's certificate, then any intermediates.
    pub cert: PathBuf,
    /// This side's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// TLS material that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what} {path} holds no {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{what} {path}")]
    Rejected {
        what: &'static str,
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("the client CA {path} cannot verify client certificates")]
    Verifier {
        path: PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("{0}")]
    Config(#[source] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "PEM CERTIFICATE",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            what: "key",
            path: path.to_path_buf(),
            expected: "PEM private key",
        },
        source => TlsError::Read {
            what: "key",
            path: path.to_path_buf(),
            source,
        },
    })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("CA", path)? {
        roots.add(cert).map_err(|source| TlsError::Rejected {
            what: "CA",
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

/// The server side: `files.cert`/`files.key` presented, a client
/// certificate chaining to `files.ca` required.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&files.ca)?), provider.clone())
            .build()
            .map_err(|source| TlsError::Verifier {
                path: files.ca.clone(),
                source,
            })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            read_certs("certificate", &files.cert)?,
            read_key(&files.key)?,
        )
        .map_err(|source| TlsError::Rejected {
            what: "certificate and key",
            path: files.cert.clone(),
            source,
        })?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The client side: `files.cert`/`files.key` presented, the server's
/// certificate verified against `files.ca`.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_root_certificates(roots(&files.ca)?)
        .with_client_auth_cert(
            read_certs("certificate", &files.cert)?,
            read_key(&files.key)?,
        )
        .map_err(|source| TlsError::Rejected {
            what: "certificate and key",
            path: files.cert.clone(),
            source,
        })?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The name a server's certificate is checked against: an IP address
/// (matched against its IP SANs) or a DNS name.
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(name.to_owned()).map_err(|_| format!("{name:?} is not a server name"))
}

/// The host part of `HOST:PORT` (`[V6]:PORT` too), the default server name.
pub fn host_of(address: &str) -> &str {
    match address.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => address,
    }
}

/// Connects to the multiplexer's TCP listener at `address`: a TLS
/// handshake with `config`, the server's certificate checked against
/// `server_name`, and then its first bytes awaited.
///
/// Why wait: with TLS 1.3 a client's handshake is over before the server
/// has checked the client's certificate, so a refusal would only show as a
/// failed first call. The multiplexer speaks first (its HTTP/2 SETTINGS),
/// so its alert, or its first bytes, arrive here; the bytes are handed back
/// first by the returned stream.
pub async fn connect(
    address: &str,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> std::io::Result<Prefixed<TlsStream<TcpStream>>> {
    let tcp = TcpStream::connect(address).await?;
    tcp.set_nodelay(true)?;
    let mut tls = TlsConnector::from(config).connect(server_name, tcp).await?;
    let mut first = vec![0; 1024];
    let n = match tokio::time::timeout(FIRST_BYTES_TIMEOUT, tls.read(&mut first)).await {
        Ok(read) => read?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{address} sent nothing within {}s of the TLS handshake",
                    FIRST_BYTES_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{address} closed the connection after the TLS handshake"),
        ));
    }
    first.truncate(n);
    Ok(Prefixed::new(Bytes::from(first), tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hosts() {
        assert_eq!(host_of("example.com:7443"), "example.com");
        assert_eq!(host_of("10.0.0.5:7443"), "10.0.0.5");
        assert_eq!(host_of("[::1]:7443"), "::1");
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("machine.example"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let files = TlsFiles {
            ca: dir.path().join("missing.pem"),
            cert: empty.clone(),
            key: empty.clone(),
        };
        let e = server_config(&files).unwrap_err();
        assert!(e.to_string().contains("CA"), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let files = TlsFiles {
            ca: empty.clone(),
            ..files
        };
        let e = server_config(&files).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("CA {} holds no PEM CERTIFICATE", empty.display())
        );
    }
}
