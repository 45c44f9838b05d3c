//! slipway's guest PID 1.
//!
//! It leaves the initramfs root, mounts what LinuxKit's `rc.init` mounts,
//! loads kernel modules in-process, runs `/etc/init.d`, the onboot bundles
//! and then the services with an OCI runtime (crun or runc), supervises the
//! services, starts and supervises the control plane's daemons (the
//! multiplexer, the service manager, containerd: [`daemons`]), serves
//! `service list|start|stop|restart` and the service manager's requests on
//! `/run/slipway/init.sock`, and shuts down cleanly on busybox init's
//! signals. Every step is stamped on the boot timeline.
//!
//! Every side effect goes through [`sys::Sys`]; the real implementation is
//! the only place that touches the system.

pub mod boot;
pub mod bundle;
pub mod control;
pub mod daemons;
pub mod machine;
pub mod modules;
pub mod mounts;
pub mod netlink;
pub mod ready;
pub mod root;
pub mod services;
pub mod shutdown;
pub mod sys;
pub mod timeline;

use std::io;

use sys::MountSpec;

/// What went wrong in the init.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A bundle is unusable (bad `config.json` or `runtime.json`).
    #[error("bundle {bundle}: {reason}")]
    Bundle {
        /// The bundle directory.
        bundle: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// A failed mount.
    pub fn mount(spec: &MountSpec, source: io::Error) -> Error {
        Error::io(spec.to_string(), source)
    }
}

/// The init's result type.
pub type Result<T> = std::result::Result<T, Error>;
