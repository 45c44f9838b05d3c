//! Code generated from `proto/` by build.rs.

#![allow(missing_debug_implementations, clippy::all, clippy::pedantic)]

pub mod services {
    //! `slipway.services.v1`.
    tonic::include_proto!("slipway.services.v1");
}

pub mod machine {
    //! `slipway.machine.v1`.
    tonic::include_proto!("slipway.machine.v1");
}

pub mod containerd {
    //! containerd's API: the services slipway calls.
    pub mod types {
        tonic::include_proto!("containerd.types");
    }
    pub mod v1 {
        pub mod types {
            tonic::include_proto!("containerd.v1.types");
        }
    }
    pub mod events {
        tonic::include_proto!("containerd.events");
    }
    pub mod runc {
        pub mod v1 {
            tonic::include_proto!("containerd.runc.v1");
        }
    }
    pub mod services {
        pub mod containers {
            pub mod v1 {
                tonic::include_proto!("containerd.services.containers.v1");
            }
        }
        pub mod tasks {
            pub mod v1 {
                tonic::include_proto!("containerd.services.tasks.v1");
            }
        }
        pub mod namespaces {
            pub mod v1 {
                tonic::include_proto!("containerd.services.namespaces.v1");
            }
        }
        pub mod version {
            pub mod v1 {
                tonic::include_proto!("containerd.services.version.v1");
            }
        }
        pub mod events {
            pub mod v1 {
                tonic::include_proto!("containerd.services.events.v1");
            }
        }
    }
}
