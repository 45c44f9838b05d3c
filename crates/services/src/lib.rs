//! `slipway-services`, the guest's service manager: the component serving
//! `slipway.services.v1` (the services of `/containers/services` and the
//! machine's power) to the multiplexer, beside the init.
//!
//! Two backends run the services:
//!
//! * [`init_backend`]: the init runs them with crun or runc (no containerd
//!   in the image); every operation is a request on the init's socket;
//! * [`containerd`]: the image has containerd; this process creates every
//!   service as a containerd container and task in `services.linuxkit` and
//!   supervises them itself (restart, readiness, `after`, logs, timeline).
//!
//! What does not depend on the backend ([`logs`], the timeline, power) is
//! served from the files and signals the init defines.

pub mod containerd;
pub mod error;

pub use error::ServiceError;
