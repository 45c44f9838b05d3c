//! Errors of the content store.

use std::path::PathBuf;

use slipway_reference::Digest;

/// What can go wrong reading or writing the content store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid OCI layout: {reason}", path.display())]
    InvalidLayout { path: PathBuf, reason: String },
    #[error("blob {digest} is not in the cache at {}", root.display())]
    BlobMissing { digest: Digest, root: PathBuf },
    #[error(
        "blob content does not match its digest: expected {expected}, got {actual} ({size} bytes)"
    )]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("blob {digest} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is larger than {limit} bytes, too large for a {what}")]
    TooLarge {
        digest: Digest,
        what: &'static str,
        limit: u64,
    },
    #[error("{what} {digest} is not valid JSON")]
    BadDocument {
        what: &'static str,
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("{reference} is not in the cache at {}", root.display())]
    NotCached { reference: String, root: PathBuf },
    #[error("{reference} has no image for {wanted}; it has: {}", available.join(", "))]
    PlatformMissing {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error("{reference} ({wanted}) is incomplete in the cache: missing {}", missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Incomplete {
        reference: String,
        wanted: String,
        missing: Vec<Digest>,
    },
}

impl StoreError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}
