//! The machine's power: busybox init's signals to PID 1, which stops the
//! services and daemons, runs the onshutdown containers and unmounts first.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tonic::Status;

/// What to ask of the init.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `SIGUSR2`.
    Poweroff,
    /// `SIGTERM`.
    Reboot,
}

impl Action {
    /// The signal the init takes for it.
    pub fn signal(self) -> Signal {
        match self {
            Action::Poweroff => Signal::SIGUSR2,
            Action::Reboot => Signal::SIGTERM,
        }
    }
}

/// Signal `init` (PID 1 in the guest). The init's shutdown stops this
/// process only after the services, so the answer goes out first.
pub fn request(init: i32, action: Action) -> Result<(), Status> {
    kill(Pid::from_raw(init), action.signal())
        .map_err(|e| Status::internal(format!("signalling the init (pid {init}): {e}")))
}
