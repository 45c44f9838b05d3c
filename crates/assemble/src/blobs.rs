//! Where units read image content from: blobs by digest, each read checked
//! against its digest. The image cache is one; writers of output formats
//! take any, so they need not know the cache.

use std::io::Read;

use slipway_oci::{Store, StoreError, VerifyingReader};
use slipway_reference::Digest;

/// An open blob: its size, and a reader that fails at its end unless the
/// bytes read hash to the digest it was opened by.
pub struct Blob<'a> {
    pub size: u64,
    pub reader: Box<dyn Read + 'a>,
}

impl std::fmt::Debug for Blob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob").field("size", &self.size).finish()
    }
}

impl Read for Blob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

/// Blobs by digest, verified as they are read. Shared by the threads that
/// write units in parallel, hence `Sync`.
pub trait BlobSource: Sync {
    /// Opens blob `digest` for streaming.
    fn open_blob(&self, digest: &Digest) -> Result<Blob<'_>, StoreError>;

    /// Reads a small blob (an image config) whole, verified; `what` names
    /// it in the error when it is larger than such a document may be.
    fn read_blob(&self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, StoreError>;
}

impl BlobSource for Store {
    fn open_blob(&self, digest: &Digest) -> Result<Blob<'_>, StoreError> {
        let reader: VerifyingReader = Store::open_blob(self, digest)?;
        let size = reader.len().map_err(|source| StoreError::Io {
            action: "reading",
            path: self.blob_path(digest),
            source,
        })?;
        Ok(Blob {
            size,
            reader: Box::new(reader),
        })
    }

    fn read_blob(&self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, StoreError> {
        Store::read_blob(self, digest, what)
    }
}
