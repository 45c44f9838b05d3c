//! slipway's `org.slipway.*` OCI annotations and their value syntax.
//!
//! The host validates them when reading the config, the guest init parses
//! them again from each bundle's `config.json`; both use these parsers so the
//! two can never disagree. Annotations outside the `org.slipway.` prefix are
//! not ours: LinuxKit passes them through, and so do we.

mod after;
mod console;
mod error;
mod keys;
mod ready;
mod restart;
mod set;

pub use after::After;
pub use console::Console;
pub use error::AnnotationError;
pub use keys::{KeyStatus, check_key, known_keys};
pub use ready::Ready;
pub use restart::Restart;
pub use set::SlipwayAnnotations;

/// Prefix of every slipway annotation.
pub const PREFIX: &str = "org.slipway.";
/// When a service is restarted: [`Restart`].
pub const RESTART: &str = "org.slipway.restart";
/// How a service signals that it is ready: [`Ready`].
pub const READY: &str = "org.slipway.ready";
/// Services that must be ready before this one starts: [`After`].
pub const AFTER: &str = "org.slipway.after";
/// Whether the service gets the console: [`Console`].
pub const CONSOLE: &str = "org.slipway.console";
