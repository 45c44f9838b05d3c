//! The registration file a component (or whoever launches it) writes to
//! `<components dir>/<name>.json`, atomically (temporary file + rename):
//!
//! ```json
//! {"name": "machine-info", "socket": "/run/slipway/machine-info.sock",
//!  "services": ["slipway.machine.v1.Info"],
//!  "descriptors": "/usr/share/slipway/machine-info.binpb"}
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a component says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The component's name; must be the registration file's name without `.json`.
    pub name: String,
    /// Absolute path of the unix socket it serves gRPC (HTTP/2) on.
    pub socket: PathBuf,
    /// Fully-qualified gRPC services it serves (`package.Service`).
    pub services: Vec<String>,
    /// A serialized `google.protobuf.FileDescriptorSet` describing those
    /// services, for components without a reflection service of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptors: Option<PathBuf>,
}

/// A registration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("cannot write registration {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Registration {
    /// Parses and checks a registration read from `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, RegistrationError> {
        let reg: Registration =
            serde_json::from_slice(bytes).map_err(|source| RegistrationError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let invalid = |problem: String| RegistrationError::Invalid {
            path: path.to_path_buf(),
            problem,
        };
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"));
        if stem != Some(reg.name.as_str()) {
            return Err(invalid(format!(
                "name \"{}\" does not match the file name",
                reg.name
            )));
        }
        if !valid_name(&reg.name) {
            return Err(invalid(format!("invalid component name \"{}\"", reg.name)));
        }
        if !reg.socket.is_absolute() {
            return Err(invalid(format!(
                "socket {} is not an absolute path",
                reg.socket.display()
            )));
        }
        if reg.services.is_empty() {
            return Err(invalid("no services".into()));
        }
        if let Some(bad) = reg.services.iter().find(|s| !valid_service(s)) {
            return Err(invalid(format!(
                "\"{bad}\" is not a fully-qualified service name"
            )));
        }
        if let Some(d) = &reg.descriptors
            && !d.is_absolute()
        {
            return Err(invalid(format!(
                "descriptors {} is not an absolute path",
                d.display()
            )));
        }
        Ok(reg)
    }

    /// Writes this registration into `dir` as `<name>.json`, atomically.
    pub fn write_to(&self, dir: &Path) -> Result<PathBuf, RegistrationError> {
        let path = dir.join(format!("{}.json", self.name));
        let tmp = dir.join(format!(".{}.json.tmp", self.name));
        let write = |source| RegistrationError::Write {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| write(e.into()))?;
        std::fs::write(&tmp, bytes).map_err(write)?;
        std::fs::rename(&tmp, &path).map_err(write)?;
        Ok(path)
    }
}

/// Component names: what a file name can hold without surprises.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `package.Service`: dot-separated protobuf identifiers.
pub(crate) fn valid_service(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut b = part.bytes();
            b.next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, json: &str) -> Result<Registration, RegistrationError> {
        Registration::parse(Path::new(&format!("/c/{name}.json")), json.as_bytes())
    }

    #[test]
    fn accepts_a_registration() {
        let r = parse(
            "info",
            r#"{"name":"info","socket":"/run/i.sock","services":["a.b.Info"],"descriptors":"/x.pb"}"#,
        )
        .unwrap();
        assert_eq!(r.services, ["a.b.Info"]);
        assert_eq!(r.descriptors.as_deref(), Some(Path::new("/x.pb")));
    }

    #[test]
    fn refuses_bad_ones() {
        for (name, json, want) in [
            (
                "x",
                r#"{"name":"y","socket":"/s","services":["a.B"]}"#,
                "does not match",
            ),
            (
                "x",
                r#"{"name":"x","socket":"s","services":["a.B"]}"#,
                "absolute",
            ),
            (
                "x",
                r#"{"name":"x","socket":"/s","services":[]}"#,
                "no services",
            ),
            (
                "x",
                r#"{"name":"x","socket":"/s","services":["a..B"]}"#,
                "fully-qualified",
            ),
            (
                "x",
                r#"{"name":"x","socket":"/s","services":["a.B"],"extra":1}"#,
                "unknown field",
            ),
            ("x", r#"{"name":"x""#, "EOF"),
        ] {
            let e = slipway_contract::errors::chain(&parse(name, json).unwrap_err());
            assert!(e.contains(want), "{json}: {e}");
        }
    }
}
