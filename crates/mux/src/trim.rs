//! Giving memory back after a burst of calls. glibc's allocator keeps the
//! heap it grew for a hundred concurrent streams after they end, which
//! doubled the multiplexer's idle resident size; once no call has been
//! active for a while, `malloc_trim` returns the free pages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How long the multiplexer must have been idle before trimming.
const IDLE: Duration = Duration::from_secs(2);

/// Counts calls in progress and calls started.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    active: AtomicUsize,
    started: AtomicU64,
}

/// Marks one call in progress for as long as it lives.
#[derive(Debug)]
pub(crate) struct Call(Arc<Activity>);

impl Activity {
    /// Calls in progress.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn call(self: &Arc<Self>) -> Call {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        Call(self.clone())
    }

    /// Trims after each period of activity once it has been idle for `IDLE`.
    pub(crate) async fn trim_when_idle(self: Arc<Self>) {
        let mut trimmed_at = 0;
        loop {
            tokio::time::sleep(IDLE).await;
            let started = self.started.load(Ordering::Relaxed);
            if started != trimmed_at && self.active.load(Ordering::Relaxed) == 0 {
                // Idle for a whole period with nothing started since: trim.
                let before = started;
                tokio::time::sleep(IDLE).await;
                if self.started.load(Ordering::Relaxed) == before {
                    release_free_memory();
                    trimmed_at = before;
                }
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists (under
    // its locks) and takes no pointers from us.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
