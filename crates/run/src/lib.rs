//! Launching images: qemu first, as `linuxkit run qemu`.
//!
//! [`Boot::detect_as`] finds what a path names, from the files' bytes (an
//! ISO, a qcow2, VHD or VMDK image, a raw MBR or GPT disk, a UKI, a GCP
//! image, a kernel+initrd or kernel+root-filesystem prefix) and refuses
//! anything else with what it found ([`detect`]); [`qemu_args`] turns it
//! and the [`Options`] into a qemu command line; [`run`] boots it in the
//! foreground (the serial console is copied to the caller and scanned for
//! the init's timeline, a guest panic and an init-reported failure decide
//! the outcome) and [`start_detached`] in the background. Every machine
//! gets the guest's control port; [`control`] has its files, its qemu
//! arguments and the host's bridge to it (docs/control.md).

pub mod boot;
pub mod control;
pub mod data;
pub mod detect;
pub mod machine;
pub mod options;
pub mod qemu;
pub mod state;

use std::process::ExitStatus;

use slipway_reference::Arch;

pub use boot::{Boot, Firmware, Hint};
pub use control::BridgeThread;
pub use machine::{
    Detached, Interrupt, Outcome, interrupt_on_signals, powerdown, run, start_detached,
};
pub use options::{Accel, DEFAULT_FIRMWARE, Disk, Networking, Options, Publish, qemu_for};
pub use qemu::qemu_args;
pub use state::{create_disks, default_state_dir, persistent_mac};

/// Errors of `slipway run`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The path names nothing `slipway run` boots.
    #[error("cannot boot {path}: {reason}")]
    NotBootable {
        /// The path given.
        path: String,
        /// What was found instead, and what would boot.
        reason: String,
    },
    /// A file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A command-line value is malformed.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which option.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The machine's architecture is one `run` does not set up.
    #[error(
        "slipway run boots amd64 machines (qemu-system-x86_64, q35), not {arch}: build for --arch amd64, or boot the {arch} image with qemu-system-{} by hand",
        arch.as_uname()
    )]
    ForeignArch {
        /// The architecture asked for.
        arch: Arch,
    },
    /// qemu-img failed.
    #[error("qemu-img create {path} failed ({status}): {stderr}")]
    QemuImg {
        /// The disk.
        path: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// The UEFI firmware is missing.
    #[error(
        "no UEFI firmware at {path}: install Debian's ovmf package, or name a firmware with --fw"
    )]
    Firmware {
        /// The firmware file.
        path: String,
    },
    /// A detached qemu did not start.
    #[error("qemu did not start in the background ({status}); its messages are above")]
    Detached {
        /// qemu's exit status.
        status: ExitStatus,
    },
    /// A detached machine's control bridge did not start.
    #[error("the control bridge did not start: {reason}")]
    Bridge {
        /// Why.
        reason: String,
    },
    /// The `--data` ISO could not be written.
    #[error("writing the --data ISO {path}: {reason}")]
    Data {
        /// The ISO.
        path: String,
        /// Why.
        reason: String,
    },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}
