//! Units: the parts of the image in LinuxKit's order, each a deterministic
//! stream of entries with a key that digests everything deciding its bytes.
//!
//! [`plan_units`] makes them (`plan`); each kind of unit is written by its
//! own module: `kernel` (with `--decompress-kernel`), `apk` (the init
//! images' apk database union), `volume` and `oci_layout` (a volume's
//! image, flattened or as an OCI layout), `bundle` (onboot, onshutdown and
//! service bundles), `files` (`files:` entries).

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use slipway_config::model::ImageName;
use slipway_oci::ResolvedImage;

use crate::blobs::BlobSource;
use crate::entry::{DEFAULT_MTIME, EntrySink, Header, Kind};
use crate::error::{AssembleError, Result};
use crate::flatten::{Filters, Plan, RESOLV_SYMLINK};
use crate::layer::StoreLayers;

mod apk;
mod bundle;
mod files;
mod kernel;
mod oci_layout;
mod plan;
mod volume;

pub use apk::APK_DB;
pub use files::source_path;
pub use plan::plan_units;

use bundle::BundleUnit;
use files::{FileContent, FileEntry};
use kernel::KernelUnit;

/// Bumped whenever the bytes a unit produces change for the same inputs:
/// part of every unit key, so cached segments of older versions are not used.
pub const FORMAT_VERSION: u32 = 2;

/// An image the build uses, as the cache holds it.
#[derive(Clone, Debug)]
pub struct ImageInput {
    /// The fully expanded reference, as written into `LINUXKIT.source`.
    pub name: String,
    pub resolved: ResolvedImage,
    /// The most uncompressed bytes one of its layers may hold
    /// ([`crate::layer::DEFAULT_MAX_LAYER_SIZE`] unless the user says).
    pub max_layer_size: u64,
}

impl ImageInput {
    fn layers<'s>(&self, store: &'s dyn BlobSource) -> StoreLayers<'s> {
        StoreLayers {
            store,
            image: self.name.clone(),
            layers: self.resolved.manifest.layers.clone(),
            max_layer_size: self.max_layer_size,
        }
    }

    fn digest(&self) -> String {
        self.resolved.manifest_descriptor.digest.to_string()
    }

    /// The image's layers flattened (whiteouts applied, hard links kept),
    /// its entries as in the image: `cache export --format filesystem`.
    pub fn write_filesystem(&self, blobs: &dyn BlobSource, sink: &mut dyn EntrySink) -> Result<()> {
        let src = self.layers(blobs);
        Plan::build(&src, None)?.emit(&src, "", &self.name, "export", sink)
    }
}

/// Everything the build decided before assembling: the images, by the
/// reference the config names them with.
#[derive(Debug, Default)]
pub struct Inputs {
    pub images: HashMap<ImageName, ImageInput>,
    /// `--decompress-kernel`.
    pub decompress_kernel: bool,
    /// What relative `files[].source` paths are relative to (LinuxKit: the
    /// working directory).
    pub source_dir: PathBuf,
    /// `files[].metadata: yaml` / `json` contents (the merged config).
    pub metadata_yaml: String,
    pub metadata_json: String,
    /// The time of generated entries (`SOURCE_DATE_EPOCH`); LinuxKit's
    /// [`DEFAULT_MTIME`] when `None`.
    pub source_date_epoch: Option<u64>,
}

/// A part of the image.
#[derive(Debug, Clone)]
pub struct Unit {
    /// `kernel`, `init[0]`, `volume[1]`, `onboot[0]`, `services[2]`, `files`.
    pub location: String,
    /// A short description for progress and summaries.
    pub title: String,
    key: [u8; 32],
    /// The time of the unit's generated entries.
    mtime: u64,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Kernel(KernelUnit),
    Init {
        image: ImageInput,
    },
    /// LinuxKit's union of the init images' apk databases.
    ApkDb(Vec<ImageInput>),
    Volume {
        name: String,
        image: Option<ImageInput>,
        oci: bool,
    },
    Bundle(Box<BundleUnit>),
    Files(Vec<FileEntry>),
}

/// The parts of the kernel unit a kernel+initrd output writes on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPart {
    Kernel,
    Cmdline,
    Ucode,
}

fn hash_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(FORMAT_VERSION.to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Gives generated entries the build's time; entries from images keep theirs.
struct Stamp<'a> {
    inner: &'a mut dyn EntrySink,
    mtime: u64,
}

impl EntrySink for Stamp<'_> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        if !header.generated && links.iter().all(|l| !l.generated) {
            return self.inner.entry(header, links, content);
        }
        let stamp = |h: &Header| {
            let mut h = h.clone();
            if h.generated {
                h.mtime = self.mtime;
            }
            h
        };
        let links: Vec<Header> = links.iter().map(stamp).collect();
        self.inner.entry(&stamp(header), &links, content)
    }
}

/// The leading directories LinuxKit writes for a bundle or volume path
/// (`containers`, `containers/onboot`, ...), each tagged.
fn prefix_dirs(path: &str, source: &str, location: &str, sink: &mut dyn EntrySink) -> Result<()> {
    let mut cur = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(part);
        dir(&cur, source, location, sink)?;
    }
    Ok(())
}

fn dir(path: &str, source: &str, location: &str, sink: &mut dyn EntrySink) -> Result<()> {
    let h = Header::new(path, Kind::Dir, 0o755).with_origin(source, location);
    sink.entry(&h, &[], &mut io::empty())
        .map_err(AssembleError::Sink)
}

fn file(
    path: &str,
    bytes: &[u8],
    source: &str,
    location: &str,
    sink: &mut dyn EntrySink,
) -> Result<()> {
    let h = Header::new(
        path,
        Kind::File {
            size: bytes.len() as u64,
        },
        0o644,
    )
    .with_origin(source, location);
    sink.entry(&h, &[], &mut &bytes[..])
        .map_err(AssembleError::Sink)
}

impl Unit {
    /// A unit of one generated file at `path` (the build's SBOM, after the
    /// `files`), mode 0644 and owned by root, stamped with
    /// `source_date_epoch` or LinuxKit's time. Its entry carries no
    /// `LINUXKIT.*` records, as LinuxKit writes its SBOM.
    pub fn generated_file(
        location: &str,
        title: &str,
        path: &str,
        content: Vec<u8>,
        source_date_epoch: Option<u64>,
    ) -> Unit {
        let header = Header::new(
            path,
            Kind::File {
                size: content.len() as u64,
            },
            0o644,
        );
        let mut unit = Unit {
            mtime: DEFAULT_MTIME,
            location: location.to_owned(),
            title: title.to_owned(),
            key: hash_parts(&[b"generated", location.as_bytes(), path.as_bytes(), &content]),
            body: Body::Files(vec![FileEntry {
                header,
                content: FileContent::Bytes(content),
            }]),
        };
        if let Some(mtime) = source_date_epoch.filter(|t| *t != DEFAULT_MTIME) {
            unit.mtime = mtime;
            unit.key = hash_parts(&[b"mtime", &unit.key, &mtime.to_le_bytes()]);
        }
        unit
    }

    /// The digest of everything deciding this unit's bytes, in hex.
    pub fn key(&self) -> String {
        hex::encode(self.key)
    }

    /// Whether this is the kernel unit.
    pub fn is_kernel(&self) -> bool {
        matches!(self.body, Body::Kernel(_))
    }

    /// Whether this is a kernel unit with microcode, which an initrd
    /// carries before its archives.
    pub fn has_ucode(&self) -> bool {
        matches!(&self.body, Body::Kernel(k) if k.ucode.is_some())
    }

    /// Whether this is the unit of an init image (`init[N]`).
    pub fn is_init(&self) -> bool {
        matches!(self.body, Body::Init { .. })
    }

    /// The time of the unit's generated entries.
    pub fn mtime(&self) -> u64 {
        self.mtime
    }

    /// Streams the unit's entries into `sink`.
    pub fn write(&self, store: &dyn BlobSource, sink: &mut dyn EntrySink) -> Result<()> {
        if self.mtime != DEFAULT_MTIME {
            let mut stamp = Stamp {
                inner: sink,
                mtime: self.mtime,
            };
            return self.write_entries(store, &mut stamp);
        }
        self.write_entries(store, sink)
    }

    fn write_entries(&self, store: &dyn BlobSource, sink: &mut dyn EntrySink) -> Result<()> {
        match &self.body {
            Body::Kernel(k) => kernel::write_kernel(k, store, sink),
            Body::Init { image } => {
                let src = image.layers(store);
                let filters = Filters {
                    resolv_symlink: Some(RESOLV_SYMLINK.into()),
                };
                Plan::build(&src, Some(filters))?.emit(&src, "", &image.name, &self.location, sink)
            }
            Body::ApkDb(images) => apk::write_apk_db(images, store, sink),
            Body::Volume { name, image, oci } => {
                volume::write_volume(name, image.as_ref(), *oci, &self.location, store, sink)
            }
            Body::Bundle(b) => bundle::write_bundle(b, &self.location, store, sink),
            Body::Files(entries) => files::write_files(entries, &self.location, sink),
        }
    }

    /// Streams one part of the kernel unit (the kernel, the cmdline, the
    /// microcode) to `out`. `Ok(false)` when the unit has no such part.
    pub fn write_kernel_part(
        &self,
        store: &dyn BlobSource,
        part: KernelPart,
        out: &mut dyn io::Write,
    ) -> Result<bool> {
        match &self.body {
            Body::Kernel(k) => kernel::write_part(k, store, part, out),
            _ => Ok(false),
        }
    }
}
