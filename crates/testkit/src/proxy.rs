//! A TCP proxy that cuts every connection once a given number of bytes has
//! flowed back to the client, and refuses new ones until reset: from the
//! client's side, the registry behind it died at a deterministic point of a
//! transfer, whatever the timing.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::TestkitError;

const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    tripped: AtomicBool,
    /// Cut when this many bytes have gone to clients; 0 = never.
    limit: AtomicU64,
    sent: AtomicU64,
}

/// The running proxy; stops on drop.
#[derive(Debug)]
pub struct CuttingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl CuttingProxy {
    /// Proxies a free loopback port to `upstream`, cutting after `limit` bytes.
    pub fn start(upstream: SocketAddr, limit: u64) -> Result<CuttingProxy, TestkitError> {
        let io = |source| TestkitError::Io {
            what: "starting the proxy".into(),
            source,
        };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let shared = Arc::new(Shared::default());
        shared.limit.store(limit, Ordering::SeqCst);
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(listener, upstream, shared))
        };
        Ok(CuttingProxy {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:<port>`, to use as the registry in references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn is_tripped(&self) -> bool {
        self.shared.tripped.load(Ordering::SeqCst)
    }

    /// Waits until the cut happened; false if it did not within `timeout`.
    pub fn wait_tripped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_tripped() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
        true
    }

    /// Forwards again, with no limit.
    pub fn reset(&self) {
        self.shared.limit.store(0, Ordering::SeqCst);
        self.shared.tripped.store(false, Ordering::SeqCst);
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut workers = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            // While tripped, connections are dropped at once, as a dead server's would be.
            Ok((client, _)) if shared.tripped.load(Ordering::SeqCst) => drop(client),
            Ok((client, _)) => {
                let shared = shared.clone();
                workers.push(std::thread::spawn(move || {
                    let _ = relay(client, upstream, &shared);
                }));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => break,
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
}

fn relay(client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))?;
    for s in [&client, &server] {
        s.set_read_timeout(Some(POLL))?;
    }
    let up = {
        let (from, to, shared) = (client.try_clone()?, server.try_clone()?, shared.clone());
        std::thread::spawn(move || copy(from, to, &shared, false))
    };
    copy(server, client, shared, true);
    let _ = up.join();
    Ok(())
}

/// Copies until EOF, an error, the stop flag, or (downstream) the cut.
fn copy(mut from: TcpStream, mut to: TcpStream, shared: &Shared, downstream: bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) || shared.tripped.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        let mut n = n;
        if downstream {
            let limit = shared.limit.load(Ordering::SeqCst);
            let before = shared.sent.fetch_add(n as u64, Ordering::SeqCst);
            if limit > 0 && before + n as u64 >= limit {
                n = limit.saturating_sub(before) as usize;
                let _ = to.write_all(&buf[..n]);
                shared.tripped.store(true, Ordering::SeqCst);
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
