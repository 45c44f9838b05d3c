//! `org.slipway.ready`: `file:PATH` or `tcp:PORT`.

use std::fmt;
use std::str::FromStr;

use super::{AnnotationError, READY};

/// How the guest init learns that a service is ready, so services listed
/// after it (`org.slipway.after`) may start.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ready {
    /// Ready once this path exists. The path is absolute inside the
    /// container's root, non-empty, without NUL and without `..` components
    /// (it must not name anything outside the container).
    File(String),
    /// Ready once a TCP connection to this port on the guest's loopback succeeds.
    Tcp(u16),
}

impl FromStr for Ready {
    type Err = AnnotationError;

    fn from_str(s: &str) -> Result<Ready, AnnotationError> {
        let invalid = |reason: &str| AnnotationError::InvalidReady {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = s.strip_prefix("file:") {
            check_path(path).map_err(invalid)?;
            Ok(Ready::File(path.to_owned()))
        } else if let Some(port) = s.strip_prefix("tcp:") {
            parse_port(port)
                .map(Ready::Tcp)
                .ok_or_else(|| invalid("the port after tcp: must be a number from 1 to 65535"))
        } else {
            Err(AnnotationError::InvalidValue {
                key: READY,
                value: s.to_owned(),
                expected: "file:<absolute path> or tcp:<port>",
            })
        }
    }
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the path after file: is empty");
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte");
    }
    if !path.starts_with('/') {
        return Err("the path after file: must be absolute (start with '/')");
    }
    if path.split('/').any(|component| component == "..") {
        return Err("the path must not contain a '..' component");
    }
    if path
        .split('/')
        .all(|component| component.is_empty() || component == ".")
    {
        return Err("the path must name a file, not the root directory");
    }
    Ok(())
}

/// A decimal port in 1..=65535, digits only and without leading zeros, so
/// each port has one spelling.
fn parse_port(text: &str) -> Option<u16> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    if !canonical {
        return None;
    }
    text.parse::<u16>().ok()
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ready::File(path) => write!(f, "file:{path}"),
            Ready::Tcp(port) => write!(f, "tcp:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_files() {
        for path in [
            "/run/ready",
            "/a",
            "/a/b/c.pid",
            "/run/dir/",
            "/a/./b",
            "/..a/b..",
            "/a b",
        ] {
            let value = format!("file:{path}");
            let ready: Ready = value.parse().unwrap();
            assert_eq!(ready, Ready::File(path.to_owned()));
            assert_eq!(ready.to_string(), value);
        }
    }

    #[test]
    fn parses_ports() {
        for (text, port) in [
            ("tcp:1", 1),
            ("tcp:80", 80),
            ("tcp:8080", 8080),
            ("tcp:65535", 65535),
        ] {
            let ready: Ready = text.parse().unwrap();
            assert_eq!(ready, Ready::Tcp(port));
            assert_eq!(ready.to_string(), text);
        }
    }

    #[test]
    fn rejects_bad_values() {
        let port = "the port after tcp: must be a number from 1 to 65535";
        let cases: &[(&str, &str)] = &[
            ("file:", "the path after file: is empty"),
            (
                "file:run/ready",
                "the path after file: must be absolute (start with '/')",
            ),
            (
                "file:./ready",
                "the path after file: must be absolute (start with '/')",
            ),
            ("file:/run/\0x", "the path contains a NUL byte"),
            (
                "file:/../etc/passwd",
                "the path must not contain a '..' component",
            ),
            (
                "file:/a/../../b",
                "the path must not contain a '..' component",
            ),
            ("file:/a/..", "the path must not contain a '..' component"),
            (
                "file:/",
                "the path must name a file, not the root directory",
            ),
            (
                "file://./",
                "the path must name a file, not the root directory",
            ),
            ("tcp:", port),
            ("tcp:0", port),
            ("tcp:65536", port),
            ("tcp:99999999999", port),
            ("tcp:-1", port),
            ("tcp:+80", port),
            ("tcp:080", port),
            ("tcp: 80", port),
            ("tcp:80 ", port),
            ("tcp:http", port),
        ];
        for (value, reason) in cases {
            assert_eq!(
                value.parse::<Ready>().unwrap_err().to_string(),
                format!("invalid value {value:?} for org.slipway.ready: {reason}"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn rejects_unknown_forms() {
        for value in [
            "",
            "/run/ready",
            "http://localhost/",
            "File:/a",
            "TCP:80",
            "udp:53",
            " tcp:80",
        ] {
            assert_eq!(
                value.parse::<Ready>().unwrap_err().to_string(),
                format!(
                    "invalid value {value:?} for org.slipway.ready: expected file:<absolute path> or tcp:<port>"
                )
            );
        }
    }
}
