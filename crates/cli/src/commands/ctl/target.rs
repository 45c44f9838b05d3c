//! Which machine: its state directory, named by `--state` or found from
//! the path `slipway run` booted, as run finds it; and the channel to its
//! control socket.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use slipway_run::{Boot, Hint};
use tonic::transport::Channel;

use super::CtlArgs;

/// The machine's control socket, checked to exist.
pub fn socket(args: &CtlArgs) -> anyhow::Result<PathBuf> {
    let state = match (&args.state, &args.machine) {
        (Some(state), _) => state.clone(),
        (None, Some(path)) => {
            let boot = Boot::detect_as(path, Hint::Auto).with_context(|| {
                format!(
                    "finding the machine {}: name its state directory with --state",
                    path.display()
                )
            })?;
            slipway_run::default_state_dir(&boot, path)
        }
        (None, None) => bail!("name the machine: --state DIR or --machine PATH"),
    };
    socket_in(&state)
}

fn socket_in(state: &Path) -> anyhow::Result<PathBuf> {
    if !state.is_dir() {
        bail!(
            "no machine at {}: the directory does not exist (`slipway run` makes it)",
            state.display()
        );
    }
    let socket = slipway_run::control::socket_path(state);
    if !socket.exists() {
        bail!(
            "the machine at {} is not running: it has no control socket {}",
            state.display(),
            socket.display()
        );
    }
    Ok(socket)
}

/// A channel to the bridge, connected now.
pub async fn connect(socket: &Path) -> anyhow::Result<Channel> {
    slipway_control::channel::connect_unix(socket)
        .await
        .with_context(|| {
            format!(
                "the machine is not running: its control socket {} does not answer",
                socket.display()
            )
        })
}
