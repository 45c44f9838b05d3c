//! `debs.lock`: the exact Debian packages (version, file, SHA-256) each
//! `debs:` step of a package installs, per architecture. JSON, sorted, so
//! that it diffs well and hashes the same everywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DebError;

pub const LOCK_FILE: &str = "debs.lock";
const LOCK_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    #[serde(rename = "lockVersion")]
    pub lock_version: u32,
    pub steps: Vec<LockedStep>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedStep {
    /// The step's `packages`, as written: a changed list re-resolves.
    pub packages: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Debian architecture -> packages, sorted by name.
    pub resolved: BTreeMap<String, Vec<LockedDeb>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedDeb {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Path below the mirror's root (`pool/main/...`).
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// `uri suite` it was resolved from.
    pub suite: String,
}

impl Lock {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(LOCK_FILE)
    }

    /// The lock beside `build.yml`, or an empty one.
    pub fn read(dir: &Path) -> Result<Option<Lock>, DebError> {
        let path = Lock::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DebError::io("reading", &path)(e)),
        };
        let lock: Lock = serde_json::from_str(&text).map_err(|e| DebError::Lock {
            path: path.clone(),
            message: format!("line {} column {}: {e}", e.line(), e.column()),
        })?;
        if lock.lock_version != LOCK_VERSION {
            return Err(DebError::Lock {
                path,
                message: format!(
                    "lockVersion {} is not supported (expected {LOCK_VERSION})",
                    lock.lock_version
                ),
            });
        }
        Ok(Some(lock))
    }

    pub fn new() -> Lock {
        Lock {
            lock_version: LOCK_VERSION,
            steps: Vec::new(),
        }
    }

    /// The lock as one architecture sees it: every step's request and that
    /// architecture's pins only. What the package's tag for `arch` hashes,
    /// so that pinning another architecture leaves it alone.
    pub fn for_arch(&self, arch: &str) -> Lock {
        Lock {
            lock_version: self.lock_version,
            steps: self
                .steps
                .iter()
                .map(|s| LockedStep {
                    packages: s.packages.clone(),
                    exclude: s.exclude.clone(),
                    resolved: s
                        .resolved
                        .iter()
                        .filter(|(a, _)| a.as_str() == arch)
                        .map(|(a, debs)| (a.clone(), debs.clone()))
                        .collect(),
                })
                .collect(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the lock by temporary file and rename.
    pub fn write(&self, dir: &Path) -> Result<(), DebError> {
        let path = Lock::path(dir);
        let mut temp = tempfile::Builder::new()
            .prefix(".debs.lock.")
            .tempfile_in(dir)
            .map_err(DebError::io("creating a file in", dir))?;
        std::io::Write::write_all(&mut temp, self.to_text().as_bytes())
            .map_err(DebError::io("writing", temp.path().to_path_buf()))?;
        // A file to commit: readable by all, like the build.yml beside it.
        std::fs::set_permissions(
            temp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .map_err(DebError::io(
            "setting the mode of",
            temp.path().to_path_buf(),
        ))?;
        temp.persist(&path)
            .map_err(|e| DebError::io("renaming into", &path)(e.error))?;
        Ok(())
    }
}
