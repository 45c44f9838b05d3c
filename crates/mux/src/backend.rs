//! The multiplexer's HTTP/2 connection to one component's unix socket:
//! made on first use, shared by every call to that component, and made
//! again after it breaks (a component that restarts is reached again).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::net::UnixStream;

use crate::limits;

#[derive(Debug)]
struct Live {
    sender: SendRequest<Bytes>,
    alive: Arc<AtomicBool>,
}

/// One component's connection, shared by the calls routed to it.
#[derive(Debug)]
pub struct Backend {
    name: String,
    socket: PathBuf,
    conn: tokio::sync::Mutex<Option<Live>>,
    last_error: std::sync::Mutex<Option<String>>,
}

impl Backend {
    pub fn new(name: &str, socket: &Path) -> Self {
        Backend {
            name: name.to_string(),
            socket: socket.to_path_buf(),
            conn: tokio::sync::Mutex::new(None),
            last_error: std::sync::Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A handle on a live connection, connecting if there is none.
    /// The error names the component and says why it is unavailable.
    pub async fn sender(&self) -> Result<SendRequest<Bytes>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(live) = slot.as_ref()
            && live.alive.load(Ordering::Acquire)
        {
            return Ok(live.sender.clone());
        }
        *slot = None;
        match self.connect().await {
            Ok(live) => {
                let sender = live.sender.clone();
                *slot = Some(live);
                self.set_error(None);
                Ok(sender)
            }
            Err(e) => {
                let e = format!("component \"{}\" is unavailable: {e}", self.name);
                self.set_error(Some(e.clone()));
                Err(e)
            }
        }
    }

    /// Drops the current connection (it refused a new stream), so the next
    /// `sender` connects again.
    pub async fn reset(&self) {
        let mut slot = self.conn.lock().await;
        if let Some(live) = slot.as_ref() {
            live.alive.store(false, Ordering::Release);
        }
        *slot = None;
    }

    /// Why the last connection attempt failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = e;
        }
    }

    async fn connect(&self) -> Result<Live, String> {
        let what = format!("connecting to {}", self.socket.display());
        let stream =
            tokio::time::timeout(limits::CONNECT_TIMEOUT, UnixStream::connect(&self.socket))
                .await
                .map_err(|_| format!("{what}: timed out"))?
                .map_err(|e| format!("{what}: {e}"))?;
        let (sender, conn) =
            tokio::time::timeout(limits::CONNECT_TIMEOUT, limits::client().handshake(stream))
                .await
                .map_err(|_| format!("{what}: HTTP/2 handshake timed out"))?
                .map_err(|e| format!("{what}: HTTP/2 handshake: {e}"))?;
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        tokio::spawn(async move {
            // Ends when the component closes or breaks the connection, or
            // when every handle is dropped and no stream is left.
            let _ = conn.await;
            flag.store(false, Ordering::Release);
        });
        Ok(Live { sender, alive })
    }
}
