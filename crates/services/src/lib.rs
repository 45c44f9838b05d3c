//! `slipway-services`, the guest's service manager: the component serving
//! `slipway.services.v1` (the services of `/containers/services` and the
//! machine's power) to the multiplexer, beside the init.
//!
//! Two backends run the services ([`backend::Backend`]):
//!
//! * [`init_backend`]: the init runs them with crun or runc (no containerd
//!   in the image); every operation is a request on the init's socket
//!   ([`init_client`]);
//! * [`containerd`]: the image has containerd; this process creates every
//!   service as a containerd container and task in `services.linuxkit` and
//!   supervises them itself (restart, readiness, `after`, logs, timeline),
//!   recording its events on the init's timeline with
//!   [`init_client::record_event`].
//!
//! What does not depend on the backend ([`logs`], the [`timeline`],
//! [`power`]) is served from the files and signals the init defines.
//! [`run`] is the whole program; [`client`] is its `service` command.

pub mod backend;
pub mod cli;
pub mod client;
pub mod containerd;
pub mod error;
pub mod init_backend;
pub mod init_client;
pub mod logs;
pub mod power;
pub mod registration;
pub mod run;
pub mod server;
pub mod timeline;

pub use error::ServiceError;
