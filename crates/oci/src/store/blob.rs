//! Writing blobs through a hashing temporary file, and reading them back
//! with verification.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use slipway_reference::{Algorithm, Digest};
use tempfile::NamedTempFile;

use super::Store;
use super::lock::GcGuard;
use crate::error::StoreError;
use crate::hash::Hasher;

/// A blob being written. It lives as a hidden temporary file beside the
/// blobs and becomes `blobs/<alg>/<hex>` only in [`BlobWriter::commit`],
/// after its digest and size are checked; dropped uncommitted, it vanishes.
#[derive(Debug)]
pub struct BlobWriter {
    dir: PathBuf,
    temp: NamedTempFile,
    hasher: Hasher,
    written: u64,
    expected: Option<(Digest, u64)>,
    /// Keeps `cache clean` from taking the temporary file for a stale one.
    _guard: GcGuard,
}

impl BlobWriter {
    pub(super) fn new(
        store: &Store,
        expected: Option<(Digest, u64)>,
    ) -> Result<BlobWriter, StoreError> {
        let algorithm = expected
            .as_ref()
            .map_or(Algorithm::Sha256, |(d, _)| d.algorithm());
        let guard = store.gc_guard()?;
        let dir = store.root().join("blobs").join(algorithm.as_str());
        std::fs::create_dir_all(&dir).map_err(StoreError::io("creating", &dir))?;
        // Same directory as the final name, so the rename is atomic.
        let temp = tempfile::Builder::new()
            .prefix(&slipway_scratch::prefix(super::BLOB_SCRATCH))
            .tempfile_in(&dir)
            .map_err(StoreError::io("creating a temporary file in", &dir))?;
        slipway_scratch::hold(temp.as_file());
        Ok(BlobWriter {
            dir,
            temp,
            hasher: Hasher::new(algorithm),
            written: 0,
            expected,
            _guard: guard,
        })
    }

    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks digest and size and renames the blob into place. If another
    /// process stored the same blob meanwhile, its copy is kept.
    pub fn commit(mut self) -> Result<Digest, StoreError> {
        self.temp
            .flush()
            .map_err(StoreError::io("writing", self.temp.path()))?;
        let actual = self.hasher.finish();
        if let Some((digest, size)) = &self.expected {
            if *size != self.written {
                return Err(StoreError::SizeMismatch {
                    digest: digest.clone(),
                    expected: *size,
                    actual: self.written,
                });
            }
            if *digest != actual {
                return Err(StoreError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                    size: self.written,
                });
            }
        }
        // On disk before it has a name: after a power cut a blob is whole
        // or absent, never named and empty.
        self.temp
            .as_file()
            .sync_data()
            .map_err(StoreError::io("writing", self.temp.path()))?;
        let target = self.dir.join(actual.hex());
        self.temp
            .persist(&target)
            .map_err(|e| StoreError::io("renaming into", &target)(e.error))?;
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some((_, size)) = &self.expected
            && self.written + buf.len() as u64 > *size
        {
            // Stop a server sending more than announced before it fills the disk.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than the {size} bytes announced"),
            ));
        }
        let n = self.temp.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// The error a [`VerifyingReader`] returns at the end of a corrupt blob.
#[derive(Debug, thiserror::Error)]
#[error("content does not match {expected}: got {actual}")]
struct VerifyFailed {
    expected: Digest,
    actual: Digest,
    size: u64,
}

/// Reads a stored blob and, at its end, fails with an error if the bytes
/// read do not hash to the digest.
#[derive(Debug)]
pub struct VerifyingReader {
    file: File,
    digest: Digest,
    hasher: Option<Hasher>,
    read: u64,
}

impl VerifyingReader {
    pub(super) fn new(file: File, digest: Digest) -> VerifyingReader {
        let hasher = Some(Hasher::new(digest.algorithm()));
        VerifyingReader {
            file,
            digest,
            hasher,
            read: 0,
        }
    }

    /// The blob's size on disk.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n > 0 {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            self.read += n as u64;
        } else if !buf.is_empty()
            && let Some(hasher) = self.hasher.take()
        {
            let actual = hasher.finish();
            if actual != self.digest {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    VerifyFailed {
                        expected: self.digest.clone(),
                        actual,
                        size: self.read,
                    },
                ));
            }
        }
        Ok(n)
    }
}

/// Whether `e` is a [`VerifyingReader`]'s digest mismatch.
pub(crate) fn is_verify_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<VerifyFailed>())
}

/// Turns a read error into a [`StoreError`], keeping a digest mismatch typed.
pub(crate) fn verify_error_to_store(e: io::Error, path: &Path) -> StoreError {
    if !is_verify_error(&e) {
        return StoreError::io("reading", path)(e);
    }
    match e.into_inner().map(|inner| inner.downcast::<VerifyFailed>()) {
        Some(Ok(v)) => StoreError::DigestMismatch {
            expected: v.expected,
            actual: v.actual,
            size: v.size,
        },
        // is_verify_error said it was one; keep an error either way.
        _ => StoreError::io("verifying", path)(io::Error::other("digest mismatch")),
    }
}
