//! Progress of downloads, reported to whoever shows it. The library only
//! calls these methods; rendering (bars on a terminal, plain lines
//! otherwise) belongs to the command line.

/// Receives download progress, per image (named by its full reference).
/// Called from several tasks at once; every method defaults to nothing.
pub trait Progress: Send + Sync {
    /// An image starts downloading `total` bytes of blobs it lacks.
    fn start(&self, reference: &str, total: u64) {
        let _ = (reference, total);
    }
    /// `bytes` more arrived.
    fn advance(&self, reference: &str, bytes: u64) {
        let _ = (reference, bytes);
    }
    /// A transfer failed and will be retried: `bytes` counted for it are void.
    fn rewind(&self, reference: &str, bytes: u64) {
        let _ = (reference, bytes);
    }
    /// The image is complete in the cache.
    fn finish(&self, reference: &str) {
        let _ = reference;
    }
}

/// Shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
