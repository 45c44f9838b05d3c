//! The cache's write lock: flock(2) on `<root>/.lock`, as LinuxKit's cache
//! uses, so slipway and linuxkit processes exclude each other too.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::StoreError;

/// Held while `index.json` is read, changed and replaced; released on drop
/// (and by the kernel if the process dies).
#[derive(Debug)]
pub struct IndexLock {
    file: File,
}

impl IndexLock {
    pub fn acquire(root: &Path) -> Result<IndexLock, StoreError> {
        let path = root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("opening the lock file", &path))?;
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
