//! Keeps the registry current: inotify on the components directory, each
//! burst of events followed by one rescan.

use std::sync::Arc;
use std::time::Duration;

use crate::registry::Registry;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// Events arriving within this time after the first are handled by one rescan
/// (a writer's create, write and rename come together).
const DEBOUNCE: Duration = Duration::from_millis(10);

/// Starts watching the registry's directory (which must exist); rescans
/// until the runtime stops.
pub fn spawn(registry: Arc<Registry>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(
        registry.dir(),
        AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_ATTRIB,
    )?;
    let fd = crate::fd::register(inotify)?;
    // Anything registered before the watch began.
    registry.rescan();
    Ok(tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            match guard.get_inner().0.read_events() {
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) => {
                    eprintln!("slipway-mux: watching {}: {e}", registry.dir().display());
                    return;
                }
            }
            drop(guard);
            tokio::time::sleep(DEBOUNCE).await;
            // Drain what came meanwhile; one rescan covers it all.
            while fd.get_ref().0.read_events().is_ok() {}
            registry.rescan();
        }
    }))
}
