//! slipway's gRPC multiplexer (`slipway-mux`, in the guest) and the host's
//! session bridge to it.
//!
//! The multiplexer serves one HTTP/2 endpoint and routes each call by its
//! method path (`/package.Service/Method`) to the component that registered
//! `package.Service`, copying HTTP/2 frames both ways without decoding
//! messages. Components are gRPC servers on unix sockets that register with
//! a file in the components directory ([`Registration`]). The multiplexer
//! itself serves aggregated reflection (v1 and v1alpha), health, and
//! `slipway.mux.v1.Components`. Besides its unix socket and the host's
//! virtio-serial session, it can serve TCP with mutual TLS only
//! ([`tls`], [`config`]). See docs/control.md.
//!
//! [`Bridge`] is the host's side: local gRPC clients on a unix socket,
//! forwarded over one byte stream to the guest's multiplexer.

mod backend;
mod body;
pub mod bridge;
mod call;
mod components;
pub mod config;
mod descriptors;
mod fd;
mod forward;
mod health;
mod limits;
mod local;
pub mod proto;
mod reflection;
mod registration;
mod registry;
mod server;
pub mod session;
mod status;
pub mod tls;
mod trim;
pub mod virtio;
mod watch;

pub use bridge::Bridge;
pub use components::SELF_NAME;
pub use registration::{Registration, RegistrationError};
pub use registry::OWN_SERVICES;
pub use server::Mux;
