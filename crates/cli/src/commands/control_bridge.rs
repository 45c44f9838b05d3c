//! `slipway control-bridge --state DIR --qemu-pid PID` (hidden): the
//! control bridge of a machine `slipway run --detached` started, run as a
//! process of its own that outlives `slipway run` and ends with qemu.

use std::path::PathBuf;

use clap::Args;

use crate::Outcome;

#[derive(Debug, Args)]
pub struct ControlBridgeArgs {
    /// The machine's state directory
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,

    /// qemu's pid: the bridge ends when it does
    #[arg(long = "qemu-pid", value_name = "PID")]
    pub qemu_pid: u32,
}

pub fn run(args: &ControlBridgeArgs) -> anyhow::Result<Outcome> {
    // Out of `slipway run`'s session and process group: a terminal's
    // hang-up or Ctrl-C does not end the machine's bridge. It fails only
    // for a group leader, which a spawned child is not.
    let _ = nix::unistd::setsid();
    slipway_run::control::serve_until_exit(&args.state, args.qemu_pid)?;
    Ok(Outcome::Success)
}
