//! Keeping the cache tidy and sound: `clean` (garbage collection) and
//! `verify` (re-hashing everything).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use slipway_reference::{Algorithm, Digest};

use super::Store;
use super::lock::{GcGuard, IndexLock};
use crate::descriptor::{Descriptor, ImageIndex, ManifestKind};
use crate::error::StoreError;
use crate::media;

/// Prefixes of the temporary files slipway writes (blobs; `index.json` and
/// `oci-layout`), removed by `clean` when no writer holds the cache.
const TEMP_PREFIXES: [&str; 3] = [".tmp-", ".index.json.tmp-", ".oci-layout.tmp-"];

/// Where cached segments (encoded units of a build) live, outside the OCI index.
pub const SEGMENTS_DIR: &str = "segments";

/// What `clean` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Blobs no named image refers to (all blobs with `all`).
    pub removed_blobs: Vec<Digest>,
    /// Temporary files left by interrupted writers.
    pub removed_temp_files: Vec<PathBuf>,
    /// Image names removed from `index.json` (only with `all`).
    pub removed_refs: Vec<String>,
    /// Files removed under `segments/`.
    pub removed_segments: u64,
    pub freed_bytes: u64,
}

/// An image in `index.json` that lacks blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    /// Its name, or its digest when it has none.
    pub name: String,
    pub missing: Vec<Digest>,
}

/// What `verify` found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub checked: u64,
    pub checked_bytes: u64,
    /// Blobs whose content did not match their digest; deleted.
    pub corrupt: Vec<Digest>,
    /// Entries whose root manifest or index was gone; removed from `index.json`.
    pub dropped_refs: Vec<String>,
    /// Images that lack some config or layer (a pull completes them).
    pub incomplete: Vec<Damaged>,
    /// Indexes cached with only some platforms, and which are absent: valid,
    /// reported for information.
    pub partial: Vec<(String, Vec<String>)>,
}

impl VerifyReport {
    /// Whether nothing was wrong (partial indexes are fine).
    pub fn is_sound(&self) -> bool {
        self.corrupt.is_empty() && self.dropped_refs.is_empty() && self.incomplete.is_empty()
    }
}

fn is_temp(name: &str) -> bool {
    TEMP_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn entry_name(d: &Descriptor) -> String {
    d.ref_name()
        .map_or_else(|| d.digest.to_string(), str::to_string)
}

impl Store {
    /// Every stored blob: (digest, path, size). Files that are not named
    /// like blobs (temporary files, strays) are skipped.
    fn stored_blobs(&self) -> Result<Vec<(Digest, PathBuf, u64)>, StoreError> {
        let mut out = Vec::new();
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root().join("blobs").join(algorithm.as_str());
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("listing", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(StoreError::io("listing", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(digest) = Digest::parse(&format!("{}:{name}", algorithm.as_str())) else {
                    continue;
                };
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((digest, entry.path(), size));
            }
        }
        Ok(out)
    }

    /// Every blob reachable from `index`: roots, child manifests present,
    /// their configs and layers. A document that cannot be read is a leaf.
    fn reachable(&self, index: &ImageIndex) -> BTreeSet<Digest> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<Descriptor> = index.manifests.clone();
        while let Some(d) = todo.pop() {
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            let document = media::is_index(&d.media_type)
                || media::is_manifest(&d.media_type)
                || d.media_type.is_empty();
            if !document || !self.has_blob(&d.digest) {
                continue;
            }
            match self.read_document(&d) {
                Ok(ManifestKind::Index(i)) => todo.extend(i.manifests),
                Ok(ManifestKind::Manifest(m)) => {
                    seen.insert(m.config.digest);
                    seen.extend(m.layers.into_iter().map(|l| l.digest));
                }
                Err(_) => {}
            }
        }
        seen
    }

    /// Removes blobs no image in `index.json` refers to, temporary files
    /// left by killed processes, and `segments/`; with `all`, every image
    /// and blob too. Waits for running pulls and imports to finish first.
    pub fn clean(&self, all: bool) -> Result<CleanReport, StoreError> {
        let gc = GcGuard::exclusive(self.root())?;
        self.clean_holding(all, gc)
    }

    /// As [`Store::clean`], but `None` at once if a pull, an import or a
    /// blob write is running (the caller may say so, then wait with `clean`).
    pub fn try_clean(&self, all: bool) -> Result<Option<CleanReport>, StoreError> {
        match GcGuard::try_exclusive(self.root())? {
            Some(gc) => self.clean_holding(all, gc).map(Some),
            None => Ok(None),
        }
    }

    fn clean_holding(&self, all: bool, _gc: GcGuard) -> Result<CleanReport, StoreError> {
        let mut report = CleanReport::default();
        let keep = if all {
            let _lock = IndexLock::acquire(self.root())?;
            let index = self.index()?;
            report.removed_refs = index.manifests.iter().map(entry_name).collect();
            let empty = ImageIndex {
                manifests: Vec::new(),
                ..index
            };
            self.write_index(&empty)?;
            BTreeSet::new()
        } else {
            self.reachable(&self.index()?)
        };
        for (digest, path, size) in self.stored_blobs()? {
            if keep.contains(&digest) {
                continue;
            }
            remove(&path)?;
            report.removed_blobs.push(digest);
            report.freed_bytes += size;
        }
        // Temporary files: no writer holds the cache now, so they are stale.
        let mut dirs = vec![self.root().to_path_buf()];
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            dirs.push(self.root().join("blobs").join(algorithm.as_str()));
        }
        for dir in dirs {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if is_temp(&entry.file_name().to_string_lossy()) {
                    report.freed_bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    remove(&entry.path())?;
                    report.removed_temp_files.push(entry.path());
                }
            }
        }
        let segments = self.root().join(SEGMENTS_DIR);
        if segments.is_dir() {
            let (files, bytes) = tree_size(&segments);
            fs::remove_dir_all(&segments).map_err(StoreError::io("removing", &segments))?;
            report.removed_segments = files;
            report.freed_bytes += bytes;
        }
        report.removed_blobs.sort();
        Ok(report)
    }

    /// Re-hashes every blob and deletes those that do not match their
    /// digest; then checks every image in `index.json`: an entry whose root
    /// is gone is removed, an image lacking configs or layers is reported.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let _gc = GcGuard::exclusive(self.root())?;
        let mut report = VerifyReport::default();
        for (digest, path, size) in self.stored_blobs()? {
            report.checked += 1;
            report.checked_bytes += size;
            if !self.verify_blob(&digest)? {
                remove(&path)?;
                report.corrupt.push(digest);
            }
        }
        report.corrupt.sort();
        let dropped = self.update_index(|index| {
            let mut dropped = Vec::new();
            index.manifests.retain(|d| {
                let present = self.has_blob(&d.digest);
                if !present {
                    dropped.push(entry_name(d));
                }
                present
            });
            dropped
        })?;
        report.dropped_refs = dropped;
        for d in self.index()?.manifests {
            let name = entry_name(&d);
            let mut missing = Vec::new();
            let mut absent = Vec::new();
            match self.read_document(&d) {
                Ok(ManifestKind::Manifest(m)) => missing.extend(self.missing_of(&m)),
                Ok(ManifestKind::Index(index)) => {
                    for child in &index.manifests {
                        let platform = child.platform.as_ref().map_or_else(
                            || child.digest.to_string(),
                            |p| p.to_platform().to_string(),
                        );
                        if !self.has_blob(&child.digest) {
                            absent.push(platform);
                            continue;
                        }
                        if let Ok(ManifestKind::Manifest(m)) = self.read_document(child) {
                            missing.extend(self.missing_of(&m));
                        }
                    }
                }
                Err(e @ StoreError::Io { .. }) => return Err(e),
                // A root that is not a manifest (an artifact): nothing more to check.
                Err(_) => {}
            }
            if !missing.is_empty() {
                report.incomplete.push(Damaged {
                    name: name.clone(),
                    missing,
                });
            }
            if !absent.is_empty() {
                report.partial.push((name, absent));
            }
        }
        Ok(report)
    }

    fn missing_of(&self, m: &crate::ImageManifest) -> Vec<Digest> {
        std::iter::once(&m.config)
            .chain(m.layers.iter())
            .filter(|b| !self.has_blob(&b.digest))
            .map(|b| b.digest.clone())
            .collect()
    }
}

fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("removing", path)(e)),
    }
}

/// (files, bytes) under `dir`, not following symbolic links.
fn tree_size(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(entry.path()),
                Ok(_) => {
                    files += 1;
                    bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
                Err(_) => {}
            }
        }
    }
    (files, bytes)
}
