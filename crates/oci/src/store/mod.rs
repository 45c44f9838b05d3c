//! The content store: an OCI image layout on disk, shared with LinuxKit.
//!
//! ```text
//! <root>/oci-layout            {"imageLayoutVersion":"1.0.0"}
//! <root>/index.json            descriptors annotated org.opencontainers.image.ref.name=<full ref>
//! <root>/blobs/sha256/<hex>    content, verified before it is renamed into place
//! <root>/.lock                 flock(2) held while index.json is rewritten
//! ```
//!
//! Blobs are immutable once present, so only `index.json` needs the lock:
//! readers never lock (the file is replaced by rename, never rewritten).

mod blob;
mod lock;
mod maintain;
mod resolve;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use slipway_reference::{Algorithm, Digest, Reference};

pub use blob::{BlobWriter, VerifyingReader};
pub(crate) use blob::{is_verify_error, verify_error_to_store};
pub use lock::GcGuard;
pub use maintain::{CleanReport, Damaged, VerifyReport};
pub(crate) use resolve::listed_platforms;
pub use resolve::{ResolvedImage, select_platform};

use crate::descriptor::{Descriptor, ImageIndex, REF_NAME_ANNOTATION};
use crate::error::StoreError;

/// The temporary name of a blob being written (see `slipway_scratch`).
pub(crate) const BLOB_SCRATCH: &str = ".tmp-";

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// Manifests, indexes and configs larger than this are refused: they are
/// read whole, and no real one comes close.
pub const MAX_DOCUMENT_SIZE: u64 = 8 << 20;

/// An OCI image layout directory used as slipway's (and LinuxKit's) cache.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the layout at `root`, creating an empty one if the directory
    /// does not exist or is empty.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(StoreError::io("creating", &root))?;
        let store = Store { root };
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            write_atomically(&store.root, "oci-layout", OCI_LAYOUT.as_bytes())?;
        } else {
            let text = fs::read_to_string(&layout).map_err(StoreError::io("reading", &layout))?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| StoreError::InvalidLayout {
                    path: layout.clone(),
                    reason: e.to_string(),
                })?;
            if value.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
                return Err(StoreError::InvalidLayout {
                    path: layout,
                    reason: format!("unsupported imageLayoutVersion in {text}"),
                });
            }
        }
        let blobs = store.root.join("blobs");
        fs::create_dir_all(&blobs).map_err(StoreError::io("creating", &blobs))?;
        if !store.index_path().exists() {
            let _lock = store.lock()?;
            if !store.index_path().exists() {
                store.write_index(&ImageIndex::empty())?;
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/blobs/<algorithm>/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether the blob is present (not whether it is intact: see [`Store::verify_blob`]).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A writer for a new blob. If `expected` is given, [`BlobWriter::commit`]
    /// refuses content of another digest or size; nothing is stored until then.
    pub fn blob_writer(&self, expected: Option<(&Digest, u64)>) -> Result<BlobWriter, StoreError> {
        BlobWriter::new(self, expected.map(|(d, s)| (d.clone(), s)))
    }

    /// Stores `bytes` and returns their sha256 digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let mut writer = self.blob_writer(None)?;
        writer
            .write_all(bytes)
            .map_err(StoreError::io("writing", writer.temp_path()))?;
        writer.commit()
    }

    /// Copies `reader` into the store, checking digest and size as it streams.
    pub fn put_blob_from(
        &self,
        reader: &mut dyn Read,
        digest: &Digest,
        size: u64,
    ) -> Result<(), StoreError> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut writer = self.blob_writer(Some((digest, size)))?;
        let temp = writer.temp_path().to_path_buf();
        std::io::copy(reader, &mut writer).map_err(StoreError::io("writing", temp))?;
        writer.commit().map(|_| ())
    }

    /// A reader over a blob that fails at its end if the content does not
    /// match the digest: callers streaming a layer learn of corruption.
    pub fn open_blob(&self, digest: &Digest) -> Result<VerifyingReader, StoreError> {
        let path = self.blob_path(digest);
        let file = fs::File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::BlobMissing {
                    digest: digest.clone(),
                    root: self.root.clone(),
                }
            } else {
                StoreError::io("opening", &path)(e)
            }
        })?;
        Ok(VerifyingReader::new(file, digest.clone()))
    }

    /// Reads a small blob (manifest, index, config) whole, verified.
    pub fn read_blob(&self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let mut reader = self.open_blob(digest)?;
        let len = reader.len().map_err(StoreError::io("reading", &path))?;
        if len > MAX_DOCUMENT_SIZE {
            return Err(StoreError::TooLarge {
                digest: digest.clone(),
                what,
                limit: MAX_DOCUMENT_SIZE,
            });
        }
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| blob::verify_error_to_store(e, &path))?;
        Ok(bytes)
    }

    /// Re-hashes a blob; `Ok(false)` if its content does not match.
    pub fn verify_blob(&self, digest: &Digest) -> Result<bool, StoreError> {
        let path = self.blob_path(digest);
        let mut reader = self.open_blob(digest)?;
        match std::io::copy(&mut reader, &mut std::io::sink()) {
            Ok(_) => Ok(true),
            Err(e) if blob::is_verify_error(&e) => Ok(false),
            Err(e) => Err(StoreError::io("reading", path)(e)),
        }
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The current `index.json`.
    pub fn index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.index_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ImageIndex::empty()),
            Err(e) => return Err(StoreError::io("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::InvalidLayout {
            path,
            reason: e.to_string(),
        })
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(index).map_err(|e| StoreError::InvalidLayout {
            path: self.index_path(),
            reason: e.to_string(),
        })?;
        write_atomically(&self.root, "index.json", &bytes)
    }

    /// Read-modify-write of `index.json` under the cache's lock, so
    /// concurrent processes never lose each other's updates.
    pub fn update_index<T>(
        &self,
        change: impl FnOnce(&mut ImageIndex) -> T,
    ) -> Result<T, StoreError> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let out = change(&mut index);
        self.write_index(&index)?;
        Ok(out)
    }

    fn lock(&self) -> Result<lock::IndexLock, StoreError> {
        lock::IndexLock::acquire(&self.root)
    }

    /// Removes the temporary files that killed processes left (a blob
    /// half fetched, an index never renamed); a live writer's stay. Pulls
    /// and imports call it, so what one killed leaves, the next removes.
    pub fn reap_scratch(&self) {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(algorithm.as_str());
            slipway_scratch::reap(&dir, BLOB_SCRATCH);
        }
        for name in ["index.json", "oci-layout"] {
            slipway_scratch::reap(&self.root, &format!(".{name}.tmp-"));
        }
    }

    /// A shared hold on the blobs: while any is held, `clean` and `verify`
    /// wait. Take one around everything that writes blobs and then names
    /// them (a pull, an import), so the blobs are not collected in between.
    pub fn gc_guard(&self) -> Result<GcGuard, StoreError> {
        GcGuard::shared(&self.root)
    }

    /// Adds `descriptor` to `index.json` without a name, unless an entry
    /// with its digest is there already.
    pub fn add_unnamed(&self, descriptor: &Descriptor) -> Result<(), StoreError> {
        let mut entry = descriptor.clone();
        entry.annotations.remove(REF_NAME_ANNOTATION);
        self.update_index(|index| {
            if !index.manifests.iter().any(|d| d.digest == entry.digest) {
                index.manifests.push(entry);
            }
        })
    }

    /// Names `descriptor` `name` (a fully expanded reference) in `index.json`,
    /// replacing whatever had that name.
    pub fn set_ref(&self, name: &str, descriptor: &Descriptor) -> Result<(), StoreError> {
        let mut entry = descriptor.clone();
        entry.platform = None;
        entry
            .annotations
            .insert(REF_NAME_ANNOTATION.to_string(), name.to_string());
        self.update_index(|index| {
            index.manifests.retain(|d| d.ref_name() != Some(name));
            index.manifests.push(entry);
        })
    }

    /// Removes the entry named `name`; whether there was one.
    pub fn remove_ref(&self, name: &str) -> Result<bool, StoreError> {
        self.update_index(|index| {
            let before = index.manifests.len();
            index.manifests.retain(|d| d.ref_name() != Some(name));
            index.manifests.len() != before
        })
    }

    /// Every named entry: (name, descriptor), sorted by name.
    pub fn refs(&self) -> Result<Vec<(String, Descriptor)>, StoreError> {
        let mut refs: Vec<(String, Descriptor)> = self
            .index()?
            .manifests
            .into_iter()
            .filter_map(|d| d.ref_name().map(|n| (n.to_string(), d.clone())))
            .collect();
        refs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(refs)
    }

    /// The descriptor `reference` names: its entry in `index.json` by exact
    /// name, else (for a reference with a digest) any entry with that digest.
    pub fn lookup(&self, reference: &Reference) -> Result<Option<Descriptor>, StoreError> {
        let name = reference.to_string();
        let index = self.index()?;
        if let Some(d) = index.manifests.iter().find(|d| d.ref_name() == Some(&name)) {
            return Ok(Some(d.clone()));
        }
        Ok(reference.digest().and_then(|digest| {
            index
                .manifests
                .iter()
                .find(|d| &d.digest == digest)
                .cloned()
        }))
    }
}

/// Writes `name` in `dir` through a temporary file and a rename, so readers
/// see the old or the new content, never a mix; the content reaches the
/// disk before the rename, so a power cut cannot leave it named but empty.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let mut temp = tempfile::Builder::new()
        .prefix(&slipway_scratch::prefix(&format!(".{name}.tmp-")))
        .tempfile_in(dir)
        .map_err(StoreError::io("creating a temporary file in", dir))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_data())
        .map_err(StoreError::io("writing", temp.path()))?;
    let target = dir.join(name);
    temp.persist(&target)
        .map_err(|e| StoreError::io("renaming into", &target)(e.error))?;
    Ok(())
}
