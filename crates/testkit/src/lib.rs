//! Test support for slipway (a dev-dependency only).
//!
//! - [`Registry`]: Debian's real `docker-registry` on a free loopback port,
//!   optionally with basic auth; stopped on drop.
//! - [`image`]: a deterministic in-memory builder of layers, images and
//!   multi-platform indexes (OCI or Docker media types), which can write
//!   itself as an OCI layout or [`push`] itself to a registry.
//! - [`FileServer`]: plain HTTP files on loopback (a copy of a Debian suite).
//! - [`initramfs`], [`packages`]: what the boot tests boot; [`boot`]: build
//!   it with `slipway build` and boot it with `slipway run`.
//! - [`hostile`]: a corpus of hostile layers (escapes, bombs, lies).
//! - [`tiny`]: a busybox initramfs that boots in seconds; [`media`]: UKIs,
//!   ISOs and disks made with the standard tools.

#![allow(
    clippy::disallowed_methods,
    reason = "test support: deadlines for the registries and machines tests wait on"
)]

pub mod boot;
pub mod files;
pub mod hostile;
pub mod http;
pub mod image;
pub mod initramfs;
pub mod media;
pub mod mock;
pub mod packages;
pub mod pki;
pub mod proxy;
pub mod push;
pub mod python;
pub mod registry;
pub mod tiny;
pub mod tls;

use std::net::SocketAddr;

pub use files::FileServer;
pub use image::{Artifact, Compression, Entry, Format, Image, ImageBuilder, Index};
pub use mock::{Fault, FaultKind, MockRegistry};
pub use proxy::CuttingProxy;
pub use push::PushTarget;
pub use registry::{BasicAuth, Registry};
pub use tls::TlsProxy;

/// Everything that can go wrong in the testkit.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing tar entry {path}")]
    Tar {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid JSON")]
    Json(#[from] serde_json::Error),
    #[error(
        "`{binary}` is not installed; the registry tests need Debian's docker-registry \
         (apt-get install docker-registry, or `cargo xtask deps`)"
    )]
    RegistryMissing { binary: String },
    #[error("the test registry did not start: {reason}\n--- registry log ---\n{log}")]
    RegistryFailed { reason: String, log: String },
    #[error("HTTP request to {addr}{target}")]
    Http {
        addr: SocketAddr,
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("registry answered {status} to {target}: {body}")]
    Registry {
        target: String,
        status: u16,
        body: String,
    },
    #[error("hashing the htpasswd password: {0}")]
    Htpasswd(String),
}
