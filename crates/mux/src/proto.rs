//! Code generated from `proto/` (build.rs), and the descriptor set of those
//! files that the multiplexer's reflection serves.

#![allow(missing_debug_implementations, clippy::all, clippy::pedantic)]

/// The serialized `FileDescriptorSet` of the multiplexer's own services.
pub const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mux_descriptors.bin"));

pub mod reflection {
    pub mod v1 {
        tonic::include_proto!("grpc.reflection.v1");
    }
    pub mod v1alpha {
        tonic::include_proto!("grpc.reflection.v1alpha");
    }
}

pub mod health {
    pub mod v1 {
        tonic::include_proto!("grpc.health.v1");
    }
}

pub mod mux {
    pub mod v1 {
        tonic::include_proto!("slipway.mux.v1");
    }
}
