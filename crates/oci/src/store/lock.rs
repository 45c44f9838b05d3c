//! The cache's locks, both flock(2):
//!
//! - `<root>/.lock`, held while `index.json` is read, changed and replaced.
//!   LinuxKit's cache uses the same file, so slipway and linuxkit processes
//!   exclude each other too.
//! - `<root>/.gc.lock`, held *shared* by everything that writes blobs (each
//!   [`crate::BlobWriter`], and a whole pull or import, from its first blob
//!   to naming the image), and *exclusive* by `cache clean` and
//!   `cache verify`: so they never delete a blob a running pull has just
//!   written and not yet named, nor a temporary file still being written.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::StoreError;

fn open(root: &Path, name: &str) -> Result<(File, std::path::PathBuf), StoreError> {
    let path = root.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StoreError::io("opening the lock file", &path))?;
    Ok((file, path))
}

/// Held while `index.json` is read, changed and replaced; released on drop
/// (and by the kernel if the process dies).
#[derive(Debug)]
pub struct IndexLock {
    file: File,
}

impl IndexLock {
    pub fn acquire(root: &Path) -> Result<IndexLock, StoreError> {
        let (file, path) = open(root, ".lock")?;
        file.lock().map_err(StoreError::io("locking", &path))?;
        Ok(IndexLock { file })
    }
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlock explicitly to be prompt.
        let _ = self.file.unlock();
    }
}

/// A hold on the cache's blobs: shared while writing, exclusive while
/// collecting garbage. Released on drop.
#[derive(Debug)]
pub struct GcGuard {
    file: File,
}

impl GcGuard {
    /// Shared: any number of writers at once; waits while a clean runs.
    pub fn shared(root: &Path) -> Result<GcGuard, StoreError> {
        let (file, path) = open(root, ".gc.lock")?;
        file.lock_shared()
            .map_err(StoreError::io("locking", &path))?;
        Ok(GcGuard { file })
    }

    /// Exclusive: waits until no writer holds the cache.
    pub fn exclusive(root: &Path) -> Result<GcGuard, StoreError> {
        let (file, path) = open(root, ".gc.lock")?;
        file.lock().map_err(StoreError::io("locking", &path))?;
        Ok(GcGuard { file })
    }

    /// Exclusive if no writer holds the cache now; `None` if one does.
    pub fn try_exclusive(root: &Path) -> Result<Option<GcGuard>, StoreError> {
        let (file, path) = open(root, ".gc.lock")?;
        match file.try_lock() {
            Ok(()) => Ok(Some(GcGuard { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::io("locking", &path)(e)),
        }
    }
}

impl Drop for GcGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
