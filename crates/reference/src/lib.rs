//! Image references: parsing, normalisation, digests and platforms.
//!
//! A leaf crate: plain data and parsing, no I/O, no dependencies of ours.
//! [`Reference`] parses and expands references the way LinuxKit does
//! (`redis` → `docker.io/library/redis`), [`Digest`] validates content digests,
//! and [`Arch`] / [`Platform`] name what an image is built for.
//!
//! ```
//! use slipway_reference::{Platform, Reference};
//!
//! let r = Reference::parse("redis:7").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/redis:7");
//! assert_eq!(r.repository(), "library/redis");
//! assert_eq!(Platform::parse("linux/aarch64").unwrap().to_string(), "linux/arm64");
//! ```

mod digest;
mod grammar;
mod platform;
mod reference;

pub use digest::{Algorithm, Digest, DigestError};
pub use platform::{Arch, Platform, PlatformError};
pub use reference::{
    DEFAULT_TAG, DOCKER_HUB_DOMAIN, DOCKER_HUB_LEGACY_DOMAIN, DOCKER_HUB_REGISTRY_HOST,
    OFFICIAL_NAMESPACE, REPOSITORY_MAX_LEN, Reference, ReferenceError, is_loopback_host,
};
