//! `slipway-machine-info`: a component of the guest's control plane that
//! answers `slipway.machine.v1.Info/Get` with what the kernel says about the
//! machine (kernel, uptime, load, memory, CPUs, mounts, interfaces).
//!
//! It is deliberately built like a component anybody could add: a service
//! container that serves gRPC on a unix socket under `/run/slipway` and
//! registers itself by writing a file into `/run/slipway/components`, with
//! no code from the multiplexer.

pub mod info;
pub mod registration;
pub mod server;
