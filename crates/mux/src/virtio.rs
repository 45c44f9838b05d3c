//! The host's way in: a virtio-serial port, found by its name.
//!
//! How virtio-serial reports the host side (Linux `virtio_console`): the
//! host's end counts as connected while a client holds qemu's chardev
//! socket. While nobody does, `poll` on the port reports `POLLHUP`, `read`
//! returns 0 (end of file) once buffered input is consumed, and `write`
//! blocks (`EAGAIN` when non-blocking). A host that connects or leaves
//! wakes the port's wait queue. The port stays open in the guest across
//! host sessions; each time the host side connects, the multiplexer waits
//! for the session line (`session`) and then serves one fresh HTTP/2
//! connection until the host leaves (end of file or `POLLHUP`) or the
//! session fails.
//!
//! There is no udev in the guest: the device node `/dev/<vportNpM>` is made
//! from the port's sysfs `dev` file when it is missing.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::fd::{Owned, register};
use crate::server::Mux;

/// The port name slipway's host side asks qemu for.
pub const DEFAULT_PORT_NAME: &str = "org.slipway.control";

/// Why the port could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no virtio-serial port named \"{0}\" under /sys/class/virtio-ports")]
    NotFound(String),
    #[error("{path}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: unexpected contents \"{contents}\"")]
    BadDev { path: PathBuf, contents: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PortError + '_ {
    move |source| PortError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The device of the port called `name`, created from sysfs if missing.
pub fn find_port(name: &str) -> Result<PathBuf, PortError> {
    find_port_in(
        Path::new("/sys/class/virtio-ports"),
        Path::new("/dev"),
        name,
    )
}

/// `find_port` with other roots, for tests.
pub fn find_port_in(sys: &Path, dev: &Path, name: &str) -> Result<PathBuf, PortError> {
    let entries = match std::fs::read_dir(sys) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PortError::NotFound(name.to_string()));
        }
        Err(e) => return Err(io_err(sys)(e)),
    };
    let mut ports: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    ports.sort();
    for port in ports {
        let name_file = port.join("name");
        let Ok(port_name) = std::fs::read_to_string(&name_file) else {
            continue;
        };
        if port_name.trim_end() != name {
            continue;
        }
        let Some(node) = port.file_name() else {
            continue;
        };
        let device = dev.join(node);
        if !device.exists() {
            make_node(&port.join("dev"), &device)?;
        }
        return Ok(device);
    }
    Err(PortError::NotFound(name.to_string()))
}

/// Makes a character device node from a sysfs `dev` file (`MAJOR:MINOR`).
fn make_node(dev_file: &Path, device: &Path) -> Result<(), PortError> {
    let contents = std::fs::read_to_string(dev_file).map_err(io_err(dev_file))?;
    let bad = || PortError::BadDev {
        path: dev_file.to_path_buf(),
        contents: contents.trim().to_string(),
    };
    let (major, minor) = contents.trim().split_once(':').ok_or_else(bad)?;
    let major: u64 = major.parse().map_err(|_| bad())?;
    let minor: u64 = minor.parse().map_err(|_| bad())?;
    mknod(
        device,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        makedev(major, minor),
    )
    .map_err(|e| io_err(device)(e.into()))
}

/// Serves host sessions on the port at `path`, one at a time, forever.
pub async fn serve_port(mux: &Mux, path: &Path) -> Result<(), PortError> {
    let mut fd: OwnedFd = loop {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(path)
        {
            Ok(f) => break f.into(),
            // Another process holds the port (it admits one opener): wait.
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(io_err(path)(e)),
        }
    };
    loop {
        wait_for_host(&fd).await.map_err(io_err(path))?;
        let mut port = Port {
            fd: register(fd).map_err(io_err(path))?,
        };
        match mux.serve_session(&mut port).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
            Err(e) => eprintln!("slipway-mux: host session on {}: {e}", path.display()),
        }
        // The next session needs a fresh registration: tokio keeps the
        // hang-up it saw in this one for as long as the fd is registered.
        fd = port.fd.into_inner().0;
    }
}

/// Whether a host client is connected to the port now.
fn host_connected(fd: &OwnedFd) -> io::Result<bool> {
    let mut fds = [PollFd::new(
        fd.as_fd(),
        PollFlags::POLLIN | PollFlags::POLLOUT,
    )];
    nix::poll::poll(&mut fds, PollTimeout::ZERO)?;
    Ok(!fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLHUP)))
}

/// Waits until a host client is connected, without spinning on the
/// hang-up `poll` reports meanwhile: an edge-triggered epoll of the port
/// becomes ready again only when the port's wait queue is woken (a host
/// connecting, data), and that epoll's own descriptor is what tokio watches.
async fn wait_for_host(fd: &OwnedFd) -> io::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(
        fd.as_fd(),
        EpollEvent::new(
            EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLET,
            0,
        ),
    )?;
    let watch = register(EpollFd(epoll))?;
    loop {
        let mut events = [EpollEvent::empty(); 4];
        let _ = watch.get_ref().0.0.wait(&mut events, EpollTimeout::ZERO);
        if host_connected(fd)? {
            return Ok(());
        }
        let mut guard = watch.readable().await?;
        guard.clear_ready();
    }
}

/// nix's epoll, by the descriptor it owns.
struct EpollFd(Epoll);

impl std::os::fd::AsFd for EpollFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.0.as_fd()
    }
}

/// The open port as an async byte stream for one session.
#[derive(Debug)]
struct Port {
    fd: AsyncFd<Owned<OwnedFd>>,
}

impl AsyncRead for Port {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let closed = guard.ready().is_read_closed();
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().0.as_fd(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // The host left and nothing is buffered: end of the session.
                Err(_) if closed => return Poll::Ready(Ok(())),
                Err(_) => continue,
            }
        }
    }
}

impl AsyncWrite for Port {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let closed = guard.ready().is_write_closed();
            match guard.try_io(|fd| {
                nix::unistd::write(fd.get_ref().0.as_fd(), data).map_err(io::Error::from)
            }) {
                Ok(r) => return Poll::Ready(r),
                Err(_) if closed => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the host side of the port hung up",
                    )));
                }
                Err(_) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_port_by_name() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let dev = root.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        for (node, name) in [
            ("vport1p1", "org.other"),
            ("vport1p2", "org.slipway.control"),
        ] {
            std::fs::create_dir_all(sys.join(node)).unwrap();
            std::fs::write(sys.join(node).join("name"), format!("{name}\n")).unwrap();
            std::fs::write(sys.join(node).join("dev"), "250:2\n").unwrap();
            std::fs::write(dev.join(node), "").unwrap(); // present: not made again
        }
        let found = find_port_in(&sys, &dev, DEFAULT_PORT_NAME).unwrap();
        assert_eq!(found, dev.join("vport1p2"));
        let missing = find_port_in(&sys, &dev, "org.none").unwrap_err();
        assert!(missing.to_string().contains("org.none"), "{missing}");
        assert!(matches!(
            find_port_in(&root.path().join("nosys"), &dev, "x"),
            Err(PortError::NotFound(_))
        ));
    }

    #[test]
    fn refuses_a_bad_dev_file() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let port = sys.join("vport0p1");
        std::fs::create_dir_all(&port).unwrap();
        std::fs::write(port.join("name"), "p\n").unwrap();
        std::fs::write(port.join("dev"), "nonsense\n").unwrap();
        let e = find_port_in(&sys, root.path(), "p").unwrap_err();
        assert!(matches!(e, PortError::BadDev { .. }), "{e}");
    }
}
