//! Reading an image's layers from a blob source, decompressed on the fly.

use std::io::{BufRead, BufReader, Read};

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
