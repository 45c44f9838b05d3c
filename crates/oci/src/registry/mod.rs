//! Talking to OCI distribution registries.

pub mod auth;
pub(crate) mod client;
mod error;

pub use auth::{Challenge, Credential, Credentials};
pub use client::{ClientOptions, FetchedManifest, Mirror, RegistryClient};
pub use error::RegistryError;
