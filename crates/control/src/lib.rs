//! The control plane's APIs, shared by the guest's components and the
//! host's `slipway ctl`:
//!
//! * [`services`]: `slipway.services.v1`, the service manager's API;
//! * [`machine`]: `slipway.machine.v1`, the machine-info component's;
//! * [`containerd`]: the part of containerd's API slipway calls, and
//!   [`CONTAINERD_DESCRIPTORS`], every containerd service's descriptors
//!   (containerd serves no reflection, so the multiplexer answers for it);
//! * [`channel`]: a gRPC channel over a unix socket.
//!
//! The protos are in `proto/`; containerd's are its own, unchanged
//! (`proto/containerd/README.md`).

pub mod channel;
mod generated;

pub use generated::{containerd, machine, services};

/// The serialized `FileDescriptorSet` of `slipway.services.v1` and
/// `slipway.machine.v1`.
pub const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/slipway.binpb"));

/// The serialized `FileDescriptorSet` of containerd's whole gRPC API.
pub const CONTAINERD_DESCRIPTORS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/containerd.binpb"));

/// The fully-qualified gRPC services in [`CONTAINERD_DESCRIPTORS`], sorted.
/// containerd 1.6 serves those it has; a call to a newer one is its
/// `UNIMPLEMENTED`.
pub const CONTAINERD_SERVICES: &[&str] =
    include!(concat!(env!("OUT_DIR"), "/containerd_services.rs"));

/// The namespace LinuxKit's services run in, and slipway's under containerd.
pub const SERVICES_NAMESPACE: &str = "services.linuxkit";
