//! slipway's own Debian repository client: apt sources, signed `InRelease`
//! files, `Packages` indexes, dependency resolution, verified downloads,
//! and unpacking `.deb`s into the image without maintainer scripts.

pub mod lock;
pub mod repo;
pub mod resolve;
pub mod sources;
pub mod unpack;
pub mod version;

use std::path::PathBuf;

/// What can go wrong talking to a Debian repository or unpacking a package.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error(
        "{url}: the signature does not verify against {}: {reason}",
        keyring.display()
    )]
    BadSignature {
        url: String,
        keyring: PathBuf,
        reason: String,
    },
    #[error("{url}: {what} has sha256 {actual}, but {expected_from} says {expected}")]
    Checksum {
        url: String,
        what: String,
        expected: String,
        actual: String,
        expected_from: String,
    },
    #[error("{url}: {message}")]
    BadIndex { url: String, message: String },
    #[error("{}: {message}", path.display())]
    BadDeb { path: PathBuf, message: String },
    #[error("{message}")]
    Resolve { message: String },
    /// A package a `debs:` step lists is in none of the suites.
    #[error("package {request:?} does not exist in {suites}")]
    NoSuchPackage { request: String, suites: String },
    #[error("{message}")]
    Sources { message: String },
    #[error("{}: {message}", path.display())]
    Lock { path: PathBuf, message: String },
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DebError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> DebError {
        let path = path.into();
        move |source| DebError::Io {
            action,
            path,
            source,
        }
    }
}

/// The download cache: `$SLIPWAY_DEBS_CACHE`, else `$XDG_CACHE_HOME/slipway/debs`,
/// else `~/.cache/slipway/debs`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLIPWAY_DEBS_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("slipway")
        .join("debs")
}

/// Debian's architecture name for an OCI one.
pub fn debian_arch(arch: slipway_reference::Arch) -> &'static str {
    match arch {
        slipway_reference::Arch::Amd64 => "amd64",
        slipway_reference::Arch::Arm64 => "arm64",
        slipway_reference::Arch::Riscv64 => "riscv64",
        slipway_reference::Arch::S390x => "s390x",
    }
}
