//! Errors of the registry client and of pulls.

use std::time::Duration;

use slipway_reference::Digest;

use crate::error::StoreError;

/// What can go wrong talking to a registry or pulling an image. Every
/// variant names the image reference, and what the registry said.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference}: {url}")]
    Http {
        reference: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{reference}: {url}: the transfer stalled (no data for {after:?})")]
    Stalled {
        reference: String,
        url: String,
        after: Duration,
    },
    #[error("{reference}: the registry answered {status} for {url}: {body}")]
    Status {
        reference: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{reference}: not found (the registry answered 404 for {url})")]
    NotFound { reference: String, url: String },
    #[error(
        "{reference}: access denied by the registry ({url}): {body}; check the credentials in Docker's config.json"
    )]
    Unauthorized {
        reference: String,
        url: String,
        body: String,
    },
    #[error("{reference}: token endpoint {realm}: {reason}")]
    Token {
        reference: String,
        realm: String,
        reason: String,
    },
    #[error("{reference}: the registry sent content for {expected} that hashes to {actual}")]
    ContentMismatch {
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{reference}: {what} is too large ({size} bytes, limit {limit})")]
    TooLarge {
        reference: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("{reference}: the manifest is not valid: {reason}")]
    BadManifest { reference: String, reason: String },
    #[error("{reference}: no image for {wanted}; the index has: {}", available.join(", "))]
    PlatformMissing {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error("offline, and the cache lacks {}: {}", if missing.len() == 1 { "this image" } else { "these images" }, missing.join(", "))]
    Offline { missing: Vec<String> },
    /// A plain download (a configuration named by URL) failed.
    #[error("cannot fetch {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("setting up the HTTP client: {0}")]
    Client(String),
    #[error("{reference}")]
    Store {
        reference: String,
        #[source]
        source: StoreError,
    },
}

impl RegistryError {
    /// Whether trying again may help (server errors, throttling, dropped or
    /// stalled connections).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Http { source, .. } => {
                // A body cut short surfaces as a decode error from the byte stream.
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
                    || source.is_decode()
            }
            RegistryError::Stalled { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}
