//! Registering file descriptors the multiplexer owns (inotify, epoll, the
//! virtio-serial port) with tokio's reactor.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;

/// An object that owns its file descriptor for as long as it lives.
#[derive(Debug)]
pub(crate) struct Owned<T>(pub(crate) T);

impl<T: AsFd> AsRawFd for Owned<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers `inner`'s descriptor for readiness events.
#[allow(unsafe_code)]
pub(crate) fn register<T: AsFd>(inner: T) -> std::io::Result<AsyncFd<Owned<T>>> {
    // SAFETY: `AsFd` ties the descriptor to `inner`'s lifetime, and `Owned`
    // keeps `inner` (so the same open descriptor) inside the AsyncFd until
    // it is dropped or taken back out with `into_inner`.
    unsafe { AsyncFd::register(Owned(inner)) }.map_err(std::io::Error::from)
}
