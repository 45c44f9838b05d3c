//! The multiplexer's configuration file, `/etc/slipway/mux.json`, which an
//! image carries (its `files:` section) since the init starts the
//! multiplexer without arguments:
//!
//! ```json
//! {"tcp": {"listen": "0.0.0.0:7443", "ca": "/etc/slipway/mux/ca.pem",
//!          "cert": "/etc/slipway/mux/server.pem", "key": "/etc/slipway/mux/server.key"}}
//! ```
//!
//! A `tcp` section without all of `ca`, `cert` and `key` is refused: TCP is
//! served with mutual TLS or not at all. Unknown fields are refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::tls::TlsFiles;

/// Where the multiplexer looks for its configuration.
pub const DEFAULT_PATH: &str = "/etc/slipway/mux.json";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The TCP listener, when the machine serves one.
    #[serde(default)]
    pub tcp: Option<Tcp>,
}

/// A TCP listener: always mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawTcp")]
pub struct Tcp {
    pub listen: SocketAddr,
    pub tls: TlsFiles,
}

/// The `tcp` section as written, checked into [`Tcp`] (so that the error
/// names every missing file, at the section's position).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    listen: SocketAddr,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl TryFrom<RawTcp> for Tcp {
    type Error = String;

    fn try_from(raw: RawTcp) -> Result<Tcp, String> {
        match (raw.ca, raw.cert, raw.key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Tcp {
                listen: raw.listen,
                tls: TlsFiles { ca, cert, key },
            }),
            (ca, cert, key) => {
                let missing: Vec<&str> = [("ca", ca), ("cert", cert), ("key", key)]
                    .into_iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(name, _)| name)
                    .collect();
                Err(format!(
                    "tcp: the TCP listener {} needs {} (mutual TLS: plaintext TCP is not served)",
                    raw.listen,
                    missing.join(", ")
                ))
            }
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Config {
    /// Reads `path`; a file that does not exist is `Ok(None)`.
    pub fn load(path: &Path) -> Result<Option<Config>, ConfigError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Config::parse(path, &bytes).map(Some)
    }

    /// Parses the contents of `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        serde_json::from_slice(bytes).map_err(|e| {
            // serde_json appends the position to its message; it goes in front.
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = e.to_string();
            ConfigError::Parse {
                path: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/slipway/mux.json"), text.as_bytes())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_complete_tcp_section() {
        let c = parse(
            r#"{"tcp": {"listen": "0.0.0.0:7443", "ca": "/c.pem", "cert": "/s.pem", "key": "/s.key"}}"#,
        )
        .unwrap();
        let tcp = c.tcp.unwrap();
        assert_eq!(tcp.listen, "0.0.0.0:7443".parse().unwrap());
        assert_eq!(
            tcp.tls,
            TlsFiles {
                ca: "/c.pem".into(),
                cert: "/s.pem".into(),
                key: "/s.key".into()
            }
        );
        assert_eq!(parse("{}").unwrap(), Config::default());
    }

    #[test]
    fn refusals_point_at_the_file() {
        let e =
            parse("{\"tcp\": {\"listen\": \"0.0.0.0:7443\",\n \"cert\": \"/s.pem\"}}").unwrap_err();
        assert_eq!(
            e,
            "/etc/slipway/mux.json:2:19: tcp: the TCP listener 0.0.0.0:7443 needs ca, key \
             (mutual TLS: plaintext TCP is not served)"
        );
        let e = parse(r#"{"tcp": {"listen": "0.0.0.0:7443", "plaintext": true}}"#).unwrap_err();
        assert!(
            e.starts_with("/etc/slipway/mux.json:1:46: unknown field `plaintext`"),
            "{e}"
        );
        let e = parse(r#"{"tls": {}}"#).unwrap_err();
        assert!(
            e.starts_with("/etc/slipway/mux.json:1:6: unknown field `tls`"),
            "{e}"
        );
        let e = parse(r#"{"tcp": {"listen": "7443"}}"#).unwrap_err();
        assert!(
            e.starts_with("/etc/slipway/mux.json:1:25: invalid socket address"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_file_is_no_configuration() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(&dir.path().join("mux.json")).unwrap(), None);
    }
}
