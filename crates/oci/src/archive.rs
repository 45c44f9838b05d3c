//! `cache import` and `cache export`: images in and out of the store as tar
//! archives, streamed both ways (no layer is ever held in memory).
//!
//! Import reads an OCI image layout tar (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`, in any order) or a `docker save` tar (`manifest.json`
//! listing a config and layer tars per image, converted to a Docker v2
//! schema 2 manifest). Export writes either: an OCI layout, or a tar that
//! `docker load` reads (`manifest.json` beside the same OCI layout, as
//! Docker 25 and later write it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use slipway_reference::{Digest, Platform, Reference};

use crate::descriptor::{Descriptor, ImageIndex, ImageManifest, ManifestKind};
use crate::error::StoreError;
use crate::media;
use crate::pull::cache_name;
use crate::store::{MAX_DOCUMENT_SIZE, Store};

/// Annotation containerd and Docker put the full image name in (the OCI
/// ref-name annotation then holds only the tag).
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Small JSON files of a `docker save` tar are held in memory until its
/// `manifest.json` says which are configs; this bounds their total.
const MAX_HELD_BYTES: u64 = 64 << 20;

/// What can go wrong importing or exporting.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("reading the archive")]
    Read(#[source] io::Error),
    #[error("reading {entry} in the archive")]
    Entry {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("writing the archive")]
    Write(#[source] io::Error),
    #[error("{entry} in the archive")]
    Blob {
        entry: String,
        #[source]
        source: StoreError,
    },
    #[error("the archive is not an image archive: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which kind of archive was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    OciLayout,
    DockerSave,
}

/// What an import added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    pub kind: ArchiveKind,
    /// (name, root descriptor); the name is the digest for unnamed images.
    pub images: Vec<(String, Descriptor)>,
    /// Blobs the archive held (new or already cached).
    pub blobs: u64,
}

/// The format `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExportFormat {
    #[default]
    Oci,
    /// Loadable by `docker load`: one platform only.
    Docker,
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// The root written to the archive's `index.json`.
    pub root: Descriptor,
    /// Set when platforms of the cached index are absent: the archive holds
    /// an index of those present, with a digest of its own.
    pub reduced_from: Option<Digest>,
    /// Platforms of the index that the cache lacks, so the archive does too.
    pub absent_platforms: Vec<String>,
}

/// `manifest.json` of a `docker save` tar: one item per image.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerItem {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// `./a/b` → `a/b`; anything with `..` or absolute is refused (it is only
/// ever a lookup key, never a path on the host, but such names are hostile).
fn entry_name(path: &std::path::Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// `blobs/sha256/<hex>` → its digest.
fn blob_digest(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (algorithm, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{algorithm}:{hex}")).ok()
}

fn read_small(entry: &mut impl Read, name: &str, size: u64) -> Result<Vec<u8>, ArchiveError> {
    if size > MAX_DOCUMENT_SIZE {
        return Err(ArchiveError::Invalid(format!(
            "{name} is {size} bytes, more than the {MAX_DOCUMENT_SIZE} allowed"
        )));
    }
    let mut bytes = Vec::new();
    entry
        .take(MAX_DOCUMENT_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ArchiveError::Entry {
            entry: name.to_string(),
            source,
        })?;
    Ok(bytes)
}

/// Streams `entry` into the store under whatever digest it hashes to.
fn store_unknown(
    store: &Store,
    entry: &mut impl Read,
    name: &str,
) -> Result<(Digest, u64), ArchiveError> {
    let blob_error = |source| ArchiveError::Blob {
        entry: name.to_string(),
        source,
    };
    let mut writer = store.blob_writer(None).map_err(blob_error)?;
    io::copy(entry, &mut writer).map_err(|source| ArchiveError::Entry {
        entry: name.to_string(),
        source,
    })?;
    let size = writer.written();
    let digest = writer.commit().map_err(blob_error)?;
    Ok((digest, size))
}

/// Reads an OCI layout tar or a `docker save` tar from `reader` into the
/// store: every blob is hashed as it streams and checked against its name,
/// and images are named in `index.json` only once all their blobs are in.
pub fn import(store: &Store, reader: impl Read) -> Result<ImportReport, ArchiveError> {
    let _guard = store.gc_guard()?;
    store.reap_scratch();
    let mut archive = tar::Archive::new(reader);
    let mut index_json: Option<Vec<u8>> = None;
    let mut docker_manifest: Option<Vec<u8>> = None;
    // Files by name: blobs stored (digest, size), small JSON files held.
    let mut stored: BTreeMap<String, (Digest, u64)> = BTreeMap::new();
    let mut held: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut held_bytes = 0u64;
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(ArchiveError::Read)?.into_owned();
        let Some(name) = entry_name(&path) else {
            return Err(ArchiveError::Invalid(format!(
                "entry {} escapes the archive",
                path.display()
            )));
        };
        let size = entry.size();
        match name.as_str() {
            "index.json" => index_json = Some(read_small(&mut entry, &name, size)?),
            "manifest.json" => docker_manifest = Some(read_small(&mut entry, &name, size)?),
            "oci-layout" | "repositories" => {}
            _ => {
                if let Some(digest) = blob_digest(&name) {
                    store
                        .put_blob_from(&mut entry, &digest, size)
                        .map_err(|source| ArchiveError::Blob {
                            entry: name.clone(),
                            source,
                        })?;
                    stored.insert(name, (digest, size));
                } else if name.ends_with(".json") || name.ends_with("/json") {
                    held_bytes += size;
                    if held_bytes > MAX_HELD_BYTES {
                        return Err(ArchiveError::Invalid(format!(
                            "more than {MAX_HELD_BYTES} bytes of JSON files outside blobs/"
                        )));
                    }
                    held.insert(name.clone(), read_small(&mut entry, &name, size)?);
                } else if name.ends_with(".tar") {
                    let blob = store_unknown(store, &mut entry, &name)?;
                    stored.insert(name, blob);
                }
            }
        }
    }
    let blobs = stored.len() as u64;
    if let Some(bytes) = index_json {
        let images = import_layout(store, &bytes)?;
        return Ok(ImportReport {
            kind: ArchiveKind::OciLayout,
            images,
            blobs,
        });
    }
    if let Some(bytes) = docker_manifest {
        let images = import_docker(store, &bytes, &stored, &held)?;
        return Ok(ImportReport {
            kind: ArchiveKind::DockerSave,
            images,
            blobs,
        });
    }
    Err(ArchiveError::Invalid(
        "it has neither an index.json (OCI image layout) nor a manifest.json (docker save)".into(),
    ))
}

/// The name an imported `index.json` entry is cached under, if it has one.
fn import_name(d: &Descriptor) -> Option<String> {
    let name = d
        .annotations
        .get(CONTAINERD_NAME)
        .map(String::as_str)
        .or_else(|| d.ref_name().filter(|n| n.contains([':', '/', '@'])))?;
    Reference::parse(name)
        .ok()
        .map(|r| cache_name(&r).to_string())
}

fn check_complete(store: &Store, root: &Descriptor) -> Result<(), ArchiveError> {
    let lacks = |d: &Digest| {
        ArchiveError::Invalid(format!("{} refers to {d}, which it lacks", root.digest))
    };
    if !store.has_blob(&root.digest) {
        return Err(ArchiveError::Invalid(format!(
            "index.json names {}, which it lacks",
            root.digest
        )));
    }
    match store.read_document(root)? {
        ManifestKind::Manifest(m) => {
            for b in std::iter::once(&m.config).chain(m.layers.iter()) {
                if !store.has_blob(&b.digest) {
                    return Err(lacks(&b.digest));
                }
            }
        }
        // An index may hold only some platforms (as a partial cache does);
        // each child present must be whole.
        ManifestKind::Index(index) => {
            for child in index.manifests.iter().filter(|c| store.has_blob(&c.digest)) {
                check_complete(store, child)?;
            }
        }
    }
    Ok(())
}

fn import_layout(store: &Store, bytes: &[u8]) -> Result<Vec<(String, Descriptor)>, ArchiveError> {
    let index: ImageIndex = serde_json::from_slice(bytes)
        .map_err(|e| ArchiveError::Invalid(format!("index.json: {e}")))?;
    for d in &index.manifests {
        check_complete(store, d)?;
    }
    let mut images = Vec::new();
    for d in index.manifests {
        match import_name(&d) {
            Some(name) => {
                store.set_ref(&name, &d)?;
                images.push((name, d));
            }
            None => {
                store.add_unnamed(&d)?;
                images.push((d.digest.to_string(), d));
            }
        }
    }
    Ok(images)
}

/// Which layer media type a blob's first bytes call for.
fn layer_media_type(store: &Store, digest: &Digest) -> Result<&'static str, ArchiveError> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(store.blob_path(digest))
        .map_err(StoreError::io("opening", store.blob_path(digest)))?;
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(StoreError::io("reading", store.blob_path(digest))(e).into()),
        }
    }
    Ok(match magic {
        [0x1f, 0x8b, ..] => media::DOCKER_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => media::OCI_LAYER_ZSTD,
        _ => media::DOCKER_LAYER,
    })
}

fn import_docker(
    store: &Store,
    bytes: &[u8],
    stored: &BTreeMap<String, (Digest, u64)>,
    held: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(String, Descriptor)>, ArchiveError> {
    let items: Vec<DockerItem> = serde_json::from_slice(bytes)
        .map_err(|e| ArchiveError::Invalid(format!("manifest.json: {e}")))?;
    let mut images = Vec::new();
    for item in items {
        let lacks = |name: &str| {
            ArchiveError::Invalid(format!(
                "manifest.json names {name}, which the archive lacks"
            ))
        };
        let (config_digest, config_size) = match (held.get(&item.config), stored.get(&item.config))
        {
            (Some(bytes), _) => (store.put_blob(bytes)?, bytes.len() as u64),
            (None, Some(blob)) => blob.clone(),
            (None, None) => return Err(lacks(&item.config)),
        };
        let mut layers = Vec::new();
        for layer in &item.layers {
            let (digest, size) = stored.get(layer).ok_or_else(|| lacks(layer))?;
            let media_type = layer_media_type(store, digest)?;
            layers.push(Descriptor::new(media_type, digest.clone(), *size));
        }
        // Docker has no zstd layer type: such an image becomes an OCI one.
        let oci = layers.iter().any(|l| l.media_type == media::OCI_LAYER_ZSTD);
        let (manifest_type, config_type) = if oci {
            for l in &mut layers {
                l.media_type = match l.media_type.as_str() {
                    media::DOCKER_LAYER_GZIP => media::OCI_LAYER_GZIP.into(),
                    media::DOCKER_LAYER => media::OCI_LAYER.into(),
                    other => other.to_string(),
                };
            }
            (media::OCI_MANIFEST, media::OCI_CONFIG)
        } else {
            (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
        };
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(manifest_type.to_string()),
            config: Descriptor::new(config_type, config_digest, config_size),
            layers,
            extra: serde_json::Map::new(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|e| ArchiveError::Invalid(format!("manifest.json: {e}")))?;
        let digest = store.put_blob(&manifest_bytes)?;
        let root = Descriptor::new(manifest_type, digest, manifest_bytes.len() as u64);
        let tags = item.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            store.add_unnamed(&root)?;
            images.push((root.digest.to_string(), root.clone()));
        }
        for tag in tags {
            let reference = Reference::parse(&tag)
                .map_err(|e| ArchiveError::Invalid(format!("manifest.json: tag {tag:?}: {e}")))?;
            let name = cache_name(&reference).to_string();
            store.set_ref(&name, &root)?;
            images.push((name, root.clone()));
        }
    }
    Ok(images)
}

/// Writes the archive's entries through slipway-tar's writer: time 0,
/// owner root, directories 0755 and files 0644, each directory once.
struct TarOut<W: Write> {
    tar: slipway_tar::TarWriter<W>,
    dirs: BTreeSet<String>,
}

impl<W: Write> TarOut<W> {
    fn dir(&mut self, path: &str) -> Result<(), ArchiveError> {
        if !self.dirs.insert(path.to_string()) {
            return Ok(());
        }
        let name = format!("{path}/");
        let entry = slipway_tar::Entry::new(&name, slipway_tar::Kind::Dir, 0o755, 0);
        self.tar
            .append(&entry, &mut io::empty())
            .map_err(ArchiveError::Write)
    }

    fn file(&mut self, path: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
        let kind = slipway_tar::Kind::File {
            size: bytes.len() as u64,
        };
        let entry = slipway_tar::Entry::new(path, kind, 0o644, 0);
        self.tar
            .append(&entry, &mut &bytes[..])
            .map_err(ArchiveError::Write)
    }

    /// Streams a blob from the store, verified: a corrupt one fails the export.
    fn blob(&mut self, store: &Store, d: &Descriptor) -> Result<String, ArchiveError> {
        let algorithm = d.digest.algorithm().as_str();
        self.dir("blobs")?;
        self.dir(&format!("blobs/{algorithm}"))?;
        let path = format!("blobs/{algorithm}/{}", d.digest.hex());
        if !self.dirs.insert(path.clone()) {
            return Ok(path);
        }
        let mut reader = store.open_blob(&d.digest)?;
        let file = store.blob_path(&d.digest);
        let len = reader.len().map_err(StoreError::io("reading", &file))?;
        if len != d.size {
            return Err(StoreError::SizeMismatch {
                digest: d.digest.clone(),
                expected: d.size,
                actual: len,
            }
            .into());
        }
        let entry = slipway_tar::Entry::new(&path, slipway_tar::Kind::File { size: len }, 0o644, 0);
        // The reader hashes as it goes and fails at its end on a mismatch.
        self.tar.append(&entry, &mut reader).map_err(|e| {
            if crate::store::is_verify_error(&e) {
                ArchiveError::Blob {
                    entry: path.clone(),
                    source: crate::store::verify_error_to_store(e, &file),
                }
            } else {
                ArchiveError::Write(e)
            }
        })?;
        Ok(path)
    }

    fn finish(self) -> Result<W, ArchiveError> {
        self.tar.finish().map_err(ArchiveError::Write)
    }
}

/// Writes the cached image `reference` as a tar to `writer`: an OCI layout
/// naming it in `index.json`, or (`Docker`) also a `manifest.json` for
/// `docker load`. With `platform`, only that platform's image is written;
/// else the whole index as cached, reduced to the platforms present.
pub fn export<W: Write>(
    store: &Store,
    reference: &Reference,
    platform: Option<&Platform>,
    format: ExportFormat,
    writer: W,
) -> Result<(W, ExportReport), ArchiveError> {
    let reference = cache_name(reference);
    let name = reference.to_string();
    let cached = store
        .lookup(&reference)?
        .ok_or_else(|| StoreError::NotCached {
            reference: name.clone(),
            root: store.root().to_path_buf(),
        })?;
    if format == ExportFormat::Docker && platform.is_none() && media::is_index(&cached.media_type) {
        return Err(ArchiveError::Invalid(format!(
            "{name} is a multi-platform index; the docker format holds one platform: choose it"
        )));
    }
    let mut out = TarOut {
        tar: slipway_tar::TarWriter::new(writer),
        dirs: BTreeSet::new(),
    };
    out.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut report = ExportReport {
        root: cached.clone(),
        reduced_from: None,
        absent_platforms: Vec::new(),
    };
    let mut images: Vec<(Descriptor, ImageManifest)> = Vec::new();
    let mut root_bytes: Option<Vec<u8>> = None;
    if let Some(platform) = platform {
        let image = store.resolve_descriptor(&name, cached.clone(), platform)?;
        let mut root = image.manifest_descriptor.clone();
        root.platform = None;
        report.root = root.clone();
        images.push((root, image.manifest));
    } else {
        match store.read_document(&cached)? {
            ManifestKind::Manifest(m) => {
                let missing: Vec<Digest> = std::iter::once(&m.config)
                    .chain(m.layers.iter())
                    .filter(|b| !store.has_blob(&b.digest))
                    .map(|b| b.digest.clone())
                    .collect();
                if !missing.is_empty() {
                    return Err(StoreError::Incomplete {
                        reference: name,
                        wanted: "its platform".into(),
                        missing,
                    }
                    .into());
                }
                images.push((cached.clone(), m));
            }
            ManifestKind::Index(index) => {
                let mut present = Vec::new();
                for child in &index.manifests {
                    let platform = child
                        .platform
                        .as_ref()
                        .map_or_else(|| child.digest.to_string(), |p| p.to_platform().to_string());
                    let complete = store.has_blob(&child.digest)
                        && matches!(store.read_document(child), Ok(ManifestKind::Manifest(ref m))
                            if std::iter::once(&m.config).chain(m.layers.iter()).all(|b| store.has_blob(&b.digest)));
                    if !complete {
                        report.absent_platforms.push(platform);
                        continue;
                    }
                    if let ManifestKind::Manifest(m) = store.read_document(child)? {
                        images.push((child.clone(), m));
                    }
                    present.push(child.clone());
                }
                if !report.absent_platforms.is_empty() {
                    let reduced = ImageIndex {
                        manifests: present,
                        ..index
                    };
                    let bytes = serde_json::to_vec(&reduced)
                        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
                    let digest = crate::hash::sha256(&bytes);
                    report.reduced_from = Some(cached.digest.clone());
                    report.root = Descriptor {
                        digest,
                        size: bytes.len() as u64,
                        ..cached.clone()
                    };
                    root_bytes = Some(bytes);
                }
            }
        }
    }
    // Blobs first (layers, configs, manifests), then the root, then the names.
    let mut docker_items = Vec::new();
    for (descriptor, manifest) in &images {
        let config = out.blob(store, &manifest.config)?;
        let mut layers = Vec::new();
        for layer in &manifest.layers {
            layers.push(out.blob(store, layer)?);
        }
        out.blob(store, descriptor)?;
        docker_items.push(DockerItem {
            config,
            repo_tags: Some(
                reference
                    .tag()
                    .map(|_| vec![name.clone()])
                    .unwrap_or_default(),
            ),
            layers,
        });
    }
    match &root_bytes {
        Some(bytes) => {
            let algorithm = report.root.digest.algorithm().as_str();
            out.file(
                &format!("blobs/{algorithm}/{}", report.root.digest.hex()),
                bytes,
            )?;
        }
        None => {
            out.blob(store, &report.root)?;
        }
    }
    let mut entry = report.root.clone();
    entry.platform = None;
    entry
        .annotations
        .insert(crate::REF_NAME_ANNOTATION.to_string(), name.clone());
    let index = ImageIndex {
        manifests: vec![entry],
        ..ImageIndex::empty()
    };
    let bytes = serde_json::to_vec(&index).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    out.file("index.json", &bytes)?;
    if format == ExportFormat::Docker {
        let bytes =
            serde_json::to_vec(&docker_items).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        out.file("manifest.json", &bytes)?;
    }
    let writer = out.finish()?;
    Ok((writer, report))
}
