//! The contract between the builder and the guest.
//!
//! Plain data and parsing only, no I/O: the host side (config validation,
//! assembly) and the guest's init both depend on this crate, so they agree
//! on where bundles live ([`bundle`]), what slipway's own OCI annotations
//! mean ([`annotations`]), what `runtime.json` holds ([`runtime`]) and how
//! the boot timeline is written ([`timeline`]) and which kernel modules a
//! root on a disk or CD needs ([`root_device`]).
//!
//! ```
//! use slipway_contract::annotations::{Restart, SlipwayAnnotations};
//! use slipway_contract::bundle;
//!
//! let parsed = SlipwayAnnotations::from_annotations([("org.slipway.restart", "always")]).unwrap();
//! assert_eq!(parsed.restart, Restart::Always);
//! assert_eq!(bundle::onboot_dir(0, "dhcpcd"), "containers/onboot/000-dhcpcd");
//! ```

pub mod annotations;
pub mod bundle;
pub mod errors;
pub mod root_device;
pub mod runtime;
pub mod timeline;
