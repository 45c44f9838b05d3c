//! Services as containerd containers and tasks in `services.linuxkit`.
//!
//! The interface the rest of the service manager uses:
//!
//! ```text
//! Containerd::connect(options) -> Result<Containerd, ServiceError>
//! containerd.start_all(bundle_dirs)        // supervision tasks; returns once every
//!                                          // service is started or waiting (services-started)
//! containerd.list() -> Vec<Service>
//! containerd.status(name) / start(name) / stop(name, grace) / restart(name, grace)
//!     -> Result<Service, ServiceError>
//! containerd.stop_all(grace)               // at shutdown
//! ```
