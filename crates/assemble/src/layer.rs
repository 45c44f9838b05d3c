//! Reading an image's layers from a blob source, decompressed on the fly.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use slipway_oci::Descriptor;

use crate::blobs::BlobSource;
use crate::error::{AssembleError, Result};

/// Something made of tar streams, bottom first: an image's layers, or a
/// single tar inside an image (the kernel's `kernel.tar`).
pub trait TarSource {
    /// Names the source in errors (the image reference).
    fn image(&self) -> &str;
    fn layer_count(&self) -> usize;
    /// Names layer `index` in errors (its digest).
    fn layer_name(&self, index: usize) -> String;
    /// Calls `f` with a fresh reader of layer `index`'s uncompressed tar.
    fn with_layer(
        &self,
        index: usize,
        f: &mut dyn FnMut(&mut dyn Read) -> Result<()>,
    ) -> Result<()>;
}

/// What one layer may inflate to unless the caller says otherwise: far
/// above any real layer, far below what fills a disk. A layer's tar can
/// claim any size and a gzip stream inflates about a thousand times, so
/// the uncompressed bytes are counted as they are read.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 16 << 30;

/// The layers of an image in a blob source (the image cache).
#[derive(Clone)]
pub struct StoreLayers<'a> {
    pub store: &'a dyn BlobSource,
    pub image: String,
    pub layers: Vec<Descriptor>,
    /// The most uncompressed bytes one layer may hold.
    pub max_layer_size: u64,
}

/// Counts what the decompressor yields and fails past `limit`.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::other(format!(
                "the layer inflates to more than {} bytes",
                self.limit
            )));
        }
        Ok(n)
    }
}

/// Wraps `reader` in the decompressor its first bytes call for: gzip, zstd,
/// or none. The magic numbers decide, not the media type, so mislabelled
/// layers (common with Docker's media types) still read.
pub fn decompress<'r>(reader: impl Read + 'r) -> std::io::Result<Box<dyn Read + 'r>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buffered)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(
            buffered,
        )?))
    } else {
        Ok(Box::new(buffered))
    }
}

impl std::fmt::Debug for StoreLayers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLayers")
            .field("image", &self.image)
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

impl TarSource for StoreLayers<'_> {
    fn image(&self) -> &str {
        &self.image
    }

    fn layer_count(&self) -> usize {
        self.layers.len()
    }

    fn layer_name(&self, index: usize) -> String {
        self.layers
            .get(index)
            .map(|d| d.digest.to_string())
            .unwrap_or_default()
    }

    fn with_layer(
        &self,
        index: usize,
        f: &mut dyn FnMut(&mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let Some(descriptor) = self.layers.get(index) else {
            return Err(AssembleError::Image {
                image: self.image.clone(),
                message: format!("no layer {index}"),
            });
        };
        let blob =
            self.store
                .open_blob(&descriptor.digest)
                .map_err(|source| AssembleError::Store {
                    image: self.image.clone(),
                    source,
                })?;
        let reader = decompress(blob).map_err(|source| AssembleError::LayerIo {
            image: self.image.clone(),
            layer: descriptor.digest.to_string(),
            source,
        })?;
        let mut reader = Capped {
            inner: reader,
            read: 0,
            limit: self.max_layer_size,
        };
        let too_large = |reader: &Capped<_>| AssembleError::LayerTooLarge {
            image: self.image.clone(),
            layer: descriptor.digest.to_string(),
            limit: reader.limit,
        };
        let result = f(&mut reader);
        if reader.read > reader.limit {
            return Err(too_large(&reader));
        }
        result?;
        // Read to the end so the blob's digest is checked even when the tar
        // stopped early (its end marker, or a caller that found what it sought).
        let rest = std::io::copy(&mut reader, &mut std::io::sink());
        if reader.read > reader.limit {
            return Err(too_large(&reader));
        }
        rest.map_err(|source| AssembleError::LayerIo {
            image: self.image.clone(),
            layer: descriptor.digest.to_string(),
            source,
        })?;
        Ok(())
    }
}

/// Where the tars of layers read once are kept for the reads after:
/// unnamed scratch files (gone with the process, whatever ends it), one
/// per layer index. A layer larger than [`SPOOL_LIMIT`], or a scratch
/// file that cannot be written, is simply inflated again next time.
#[derive(Debug, Default)]
pub struct Spools {
    files: Mutex<Vec<Option<Arc<File>>>>,
}

/// The largest tar a spool keeps: the kernel's modules are 400 MB; a
/// layer of many GiB is read again rather than copied to the disk.
pub const SPOOL_LIMIT: u64 = 2 << 30;

impl Spools {
    fn get(&self, index: usize) -> Option<Arc<File>> {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.get(index).cloned().flatten()
    }

    /// Lets every spool go, on a thread of its own: freeing 400 MB of page
    /// cache takes about a tenth of a second, better spent beside the last
    /// segments' compression than between the outputs and the process's
    /// exit. A reader still replaying keeps its spool until it is done; a
    /// later read inflates the layer again.
    pub fn release(&self) {
        let files = std::mem::take(&mut *self.files.lock().unwrap_or_else(|p| p.into_inner()));
        if files.iter().any(Option::is_some) {
            // Detached: whatever is left of it, the process's exit finishes.
            let _ = std::thread::Builder::new()
                .name("spool-release".into())
                .spawn(move || drop(files));
        }
    }

    fn put(&self, index: usize, file: File) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.len() <= index {
            files.resize(index + 1, None);
        }
        files[index] = Some(Arc::new(file));
    }
}

/// `inner`'s layers, each inflated (and its blob hashed) once: the first
/// read of a layer also writes its tar to a spool, which later reads
/// replay. The kernel image's layer is read for its plan, for its entries
/// and for the kernel file: with a spool, 400 MB of modules are inflated
/// once, and the reads after are page-cache copies.
pub struct Replayed<'a> {
    pub inner: &'a dyn TarSource,
    pub spools: &'a Spools,
}

/// Copies what it reads into a spool, until the spool fails or is full.
struct Tee<'a, R> {
    inner: R,
    spool: Option<BufWriter<&'a File>>,
    written: u64,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(w) = &mut self.spool {
            self.written += n as u64;
            if self.written > SPOOL_LIMIT || w.write_all(&buf[..n]).is_err() {
                self.spool = None;
            }
        }
        Ok(n)
    }
}

/// Reads a spool from its start, by position: several readers share it.
struct Replay {
    file: Arc<File>,
    at: u64,
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl std::fmt::Debug for Replayed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayed")
            .field("image", &self.inner.image())
            .finish_non_exhaustive()
    }
}

impl TarSource for Replayed<'_> {
    fn image(&self) -> &str {
        self.inner.image()
    }

    fn layer_count(&self) -> usize {
        self.inner.layer_count()
    }

    fn layer_name(&self, index: usize) -> String {
        self.inner.layer_name(index)
    }

    fn with_layer(
        &self,
        index: usize,
        f: &mut dyn FnMut(&mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        if let Some(file) = self.spools.get(index) {
            let mut reader = BufReader::with_capacity(
                256 * 1024,
                Replay {
                    file: Arc::clone(&file),
                    at: 0,
                },
            );
            return f(&mut reader);
        }
        let Ok(scratch) = tempfile::tempfile() else {
            return self.inner.with_layer(index, f);
        };
        let mut whole = false;
        self.inner.with_layer(index, &mut |r| {
            let mut tee = Tee {
                inner: r,
                spool: Some(BufWriter::with_capacity(1 << 20, &scratch)),
                written: 0,
            };
            f(&mut tee)?;
            // The rest too (the tar's padding after its end marker), so the
            // spool is the whole stream the blob's digest was checked on.
            std::io::copy(&mut tee, &mut std::io::sink()).map_err(|source| {
                AssembleError::LayerIo {
                    image: self.inner.image().to_string(),
                    layer: self.inner.layer_name(index),
                    source,
                }
            })?;
            whole = tee.spool.take().is_some_and(|mut w| w.flush().is_ok());
            Ok(())
        })?;
        // Kept only once the inner read is done: its digest then matched.
        if whole {
            self.spools.put(index, scratch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Layers of given bytes that count how often each is read.
    struct Counting {
        layers: Vec<Vec<u8>>,
        reads: Mutex<Vec<usize>>,
        fail: bool,
    }

    impl TarSource for Counting {
        fn image(&self) -> &str {
            "counting"
        }
        fn layer_count(&self) -> usize {
            self.layers.len()
        }
        fn layer_name(&self, index: usize) -> String {
            format!("layer{index}")
        }
        fn with_layer(
            &self,
            index: usize,
            f: &mut dyn FnMut(&mut dyn Read) -> Result<()>,
        ) -> Result<()> {
            self.reads.lock().unwrap()[index] += 1;
            f(&mut &self.layers[index][..])?;
            if self.fail {
                return Err(AssembleError::Image {
                    image: "counting".into(),
                    message: "digest mismatch".into(),
                });
            }
            Ok(())
        }
    }

    fn read_prefix(src: &dyn TarSource, index: usize, n: usize) -> Result<Vec<u8>> {
        let mut got = Vec::new();
        src.with_layer(index, &mut |r| {
            r.take(n as u64).read_to_end(&mut got).unwrap();
            Ok(())
        })?;
        Ok(got)
    }

    #[test]
    fn a_layer_is_read_once_and_replayed_whole_after() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let inner = Counting {
            layers: vec![data.clone(), b"small".to_vec()],
            reads: Mutex::new(vec![0, 0]),
            fail: false,
        };
        let spools = Spools::default();
        let src = Replayed {
            inner: &inner,
            spools: &spools,
        };
        // The first reader stops early: the spool still holds it all.
        assert_eq!(read_prefix(&src, 0, 10).unwrap(), &data[..10]);
        assert_eq!(read_prefix(&src, 0, usize::MAX).unwrap(), data);
        assert_eq!(read_prefix(&src, 0, usize::MAX).unwrap(), data);
        assert_eq!(read_prefix(&src, 1, usize::MAX).unwrap(), b"small");
        assert_eq!(*inner.reads.lock().unwrap(), vec![1, 1]);
    }

    #[test]
    fn a_read_that_fails_is_not_kept() {
        let inner = Counting {
            layers: vec![b"tampered".to_vec()],
            reads: Mutex::new(vec![0]),
            fail: true,
        };
        let spools = Spools::default();
        let src = Replayed {
            inner: &inner,
            spools: &spools,
        };
        assert!(read_prefix(&src, 0, usize::MAX).is_err());
        assert!(read_prefix(&src, 0, usize::MAX).is_err());
        assert_eq!(*inner.reads.lock().unwrap(), vec![2]);
    }
}
