//! An in-memory builder of OCI and Docker images for tests.
//!
//! Everything is built in memory and deterministically: the same calls give
//! the same bytes, hence the same digests, on every run and machine (fixed
//! mtimes, no user names, gzip without a timestamp, entries in the order
//! given). Layers are tar archives written with the `tar` crate.
//!
//! ```
//! use slipway_testkit::image::{Artifact, Entry, ImageBuilder, Index};
//!
//! let amd64 = ImageBuilder::new()
//!     .layer([Entry::dir("etc"), Entry::file("etc/motd", "hello\n")])
//!     .cmd(["/bin/sh"])
//!     .build()
//!     .unwrap();
//! let arm64 = ImageBuilder::new().arch("arm64").layer([Entry::file("a", "b")]).build().unwrap();
//! let index = Index::new([amd64, arm64]);
//! let artifact = Artifact::from(index);
//! assert_eq!(artifact.root().media_type(), slipway_testkit::image::media::OCI_INDEX);
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::TestkitError;

/// Media types used by the builder.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// The annotation naming an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Bytes that do not compress, the same for the same seed: for layers that
/// must have a real size on the wire.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    // xorshift64*: tiny, deterministic, good enough to defeat gzip.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A content-addressed blob held in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    media_type: String,
    digest: String,
    bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: impl Into<String>, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    /// `sha256:<hex>`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The hex part of the digest (the file name under `blobs/sha256/`).
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The OCI descriptor of this blob: `{mediaType, digest, size}`.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }
}

/// Which family of media types to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// `application/vnd.oci.image.*`
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 and manifest list.
    Docker,
}

/// How a layer is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    #[default]
    Gzip,
    /// Only with [`Format::Oci`]; Docker has no zstd media type.
    Zstd,
}

/// What kind of filesystem object an [`Entry`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    /// A hard link to an earlier entry's path.
    HardLink(String),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One entry of a layer's tar archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl Entry {
    fn new(path: impl Into<String>, kind: EntryKind, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }

    /// A regular file, mode 0644.
    pub fn file(path: impl Into<String>, contents: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, EntryKind::File(contents.as_ref().to_vec()), 0o644)
    }

    /// A regular file, mode 0755.
    pub fn executable(path: impl Into<String>, contents: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, EntryKind::File(contents.as_ref().to_vec()), 0o755)
    }

    /// A directory, mode 0755.
    pub fn dir(path: impl Into<String>) -> Entry {
        Entry::new(path, EntryKind::Dir, 0o755)
    }

    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::new(path, EntryKind::Symlink(target.into()), 0o777)
    }

    pub fn hard_link(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::new(path, EntryKind::HardLink(target.into()), 0o644)
    }

    /// A whiteout deleting `path` from lower layers (`dir/.wh.name`).
    pub fn whiteout(path: &str) -> Entry {
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (format!("{dir}/"), name),
            None => (String::new(), path),
        };
        Entry::file(format!("{dir}.wh.{name}"), [])
    }

    /// An opaque whiteout: hides everything lower layers have in `dir`.
    pub fn opaque(dir: &str) -> Entry {
        let dir = dir.trim_end_matches('/');
        Entry::file(format!("{dir}/.wh..wh..opq"), [])
    }

    pub fn char_device(path: impl Into<String>, major: u32, minor: u32) -> Entry {
        Entry::new(path, EntryKind::CharDevice { major, minor }, 0o666)
    }

    pub fn block_device(path: impl Into<String>, major: u32, minor: u32) -> Entry {
        Entry::new(path, EntryKind::BlockDevice { major, minor }, 0o660)
    }

    pub fn fifo(path: impl Into<String>) -> Entry {
        Entry::new(path, EntryKind::Fifo, 0o644)
    }

    pub fn with_mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    pub fn with_owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn with_mtime(mut self, mtime: u64) -> Entry {
        self.mtime = mtime;
        self
    }
}

/// The uncompressed tar archive of `entries`, in the order given.
pub fn tar_bytes(entries: &[Entry]) -> Result<Vec<u8>, TestkitError> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        append_entry(&mut builder, entry).map_err(|source| TestkitError::Tar {
            path: entry.path.clone(),
            source,
        })?;
    }
    builder.into_inner().map_err(|source| TestkitError::Tar {
        path: "<end of archive>".into(),
        source,
    })
}

fn append_entry(builder: &mut tar::Builder<Vec<u8>>, entry: &Entry) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(entry.mode);
    header.set_uid(entry.uid);
    header.set_gid(entry.gid);
    header.set_mtime(entry.mtime);
    header.set_size(0);
    match &entry.kind {
        EntryKind::File(data) => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, &entry.path, data.as_slice())
        }
        EntryKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            builder.append_data(&mut header, &entry.path, std::io::empty())
        }
        EntryKind::Symlink(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            builder.append_link(&mut header, &entry.path, target)
        }
        EntryKind::HardLink(target) => {
            header.set_entry_type(tar::EntryType::Link);
            builder.append_link(&mut header, &entry.path, target)
        }
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            let kind = if matches!(entry.kind, EntryKind::CharDevice { .. }) {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            header.set_entry_type(kind);
            header.set_device_major(*major)?;
            header.set_device_minor(*minor)?;
            builder.append_data(&mut header, &entry.path, std::io::empty())
        }
        EntryKind::Fifo => {
            header.set_entry_type(tar::EntryType::Fifo);
            builder.append_data(&mut header, &entry.path, std::io::empty())
        }
    }
}

fn compress(tar: &[u8], compression: Compression) -> Result<Vec<u8>, TestkitError> {
    let io = |source| TestkitError::Io {
        what: "compressing a layer".into(),
        source,
    };
    match compression {
        Compression::None => Ok(tar.to_vec()),
        Compression::Gzip => {
            // GzEncoder writes mtime 0 and no file name: deterministic.
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            enc.write_all(tar).map_err(io)?;
            enc.finish().map_err(io)
        }
        Compression::Zstd => zstd::encode_all(tar, 3).map_err(io),
    }
}

/// A layer: its (possibly compressed) blob and the digest of its tar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub blob: Blob,
    /// `sha256:` of the uncompressed tar, as listed in the config's `diff_ids`.
    pub diff_id: String,
}

impl Layer {
    pub fn build(
        entries: &[Entry],
        compression: Compression,
        format: Format,
    ) -> Result<Layer, TestkitError> {
        let tar = tar_bytes(entries)?;
        let media_type = match (format, compression) {
            (Format::Oci, Compression::None) => media::OCI_LAYER,
            (Format::Oci, Compression::Gzip) => media::OCI_LAYER_GZIP,
            (_, Compression::Zstd) => media::OCI_LAYER_ZSTD,
            (Format::Docker, Compression::None) => media::DOCKER_LAYER,
            (Format::Docker, Compression::Gzip) => media::DOCKER_LAYER_GZIP,
        };
        Ok(Layer {
            diff_id: sha256_digest(&tar),
            blob: Blob::new(media_type, compress(&tar, compression)?),
        })
    }
}

/// An OS/architecture/variant triple, as written in configs and indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestPlatform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl TestPlatform {
    fn json(&self) -> Value {
        let mut p = json!({"architecture": self.architecture, "os": self.os});
        if let Some(variant) = &self.variant {
            p["variant"] = json!(variant);
        }
        p
    }
}

impl std::fmt::Display for TestPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Builds one single-platform image. Defaults: OCI media types, linux/amd64,
/// gzip layers, no layers.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    format: Format,
    compression: Compression,
    platform: TestPlatform,
    layers: Vec<LayerSource>,
    config: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug)]
enum LayerSource {
    Entries(Vec<Entry>, Compression),
    Built(Layer),
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new()
    }
}

impl ImageBuilder {
    pub fn new() -> ImageBuilder {
        ImageBuilder {
            format: Format::Oci,
            compression: Compression::Gzip,
            platform: TestPlatform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
            layers: Vec::new(),
            config: serde_json::Map::new(),
        }
    }

    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Compression of the layers added after this call.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The OCI architecture name (`amd64`, `arm64`, ...).
    pub fn arch(mut self, architecture: &str) -> Self {
        self.platform.architecture = architecture.into();
        self
    }

    pub fn os(mut self, os: &str) -> Self {
        self.platform.os = os.into();
        self
    }

    pub fn variant(mut self, variant: &str) -> Self {
        self.platform.variant = Some(variant.into());
        self
    }

    /// Adds a layer made of `entries`.
    pub fn layer(mut self, entries: impl IntoIterator<Item = Entry>) -> Self {
        self.layers.push(LayerSource::Entries(
            entries.into_iter().collect(),
            self.compression,
        ));
        self
    }

    /// Adds a layer built elsewhere (shared between images, or malformed on purpose).
    pub fn prebuilt_layer(mut self, layer: Layer) -> Self {
        self.layers.push(LayerSource::Built(layer));
        self
    }

    /// Sets a key of the config's `config` object (`Env`, `Cmd`, `Labels`, ...).
    pub fn config_value(mut self, key: &str, value: Value) -> Self {
        self.config.insert(key.into(), value);
        self
    }

    pub fn cmd<S: Into<String>>(self, cmd: impl IntoIterator<Item = S>) -> Self {
        let cmd: Vec<String> = cmd.into_iter().map(Into::into).collect();
        self.config_value("Cmd", json!(cmd))
    }

    pub fn env<S: Into<String>>(self, env: impl IntoIterator<Item = S>) -> Self {
        let env: Vec<String> = env.into_iter().map(Into::into).collect();
        self.config_value("Env", json!(env))
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        let labels = self.config.entry("Labels").or_insert_with(|| json!({}));
        labels[key] = json!(value);
        self
    }

    pub fn build(self) -> Result<Image, TestkitError> {
        let mut layers = Vec::new();
        for source in self.layers {
            layers.push(match source {
                LayerSource::Entries(entries, compression) => {
                    Layer::build(&entries, compression, self.format)?
                }
                LayerSource::Built(layer) => layer,
            });
        }
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let mut config = self.platform.json();
        config["created"] = json!("1970-01-01T00:00:00Z");
        config["config"] = Value::Object(self.config);
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        let (config_type, manifest_type) = match self.format {
            Format::Oci => (media::OCI_CONFIG, media::OCI_MANIFEST),
            Format::Docker => (media::DOCKER_CONFIG, media::DOCKER_MANIFEST),
        };
        let config = Blob::new(config_type, to_json(&config)?);
        let layer_descriptors: Vec<Value> = layers.iter().map(|l| l.blob.descriptor()).collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layer_descriptors,
        });
        Ok(Image {
            manifest: Blob::new(manifest_type, to_json(&manifest)?),
            config,
            layers: layers.into_iter().map(|l| l.blob).collect(),
            platform: self.platform,
        })
    }
}

fn to_json(value: &Value) -> Result<Vec<u8>, TestkitError> {
    serde_json::to_vec(value).map_err(TestkitError::Json)
}

/// A built single-platform image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub platform: TestPlatform,
}

impl Image {
    /// Config, layers, then the manifest: the order a registry accepts them in.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut blobs = vec![&self.config];
        blobs.extend(self.layers.iter());
        blobs.push(&self.manifest);
        blobs
    }
}

/// A multi-platform index (OCI image index or Docker manifest list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    pub index: Blob,
    pub images: Vec<Image>,
}

impl Index {
    /// An index of `images`; Docker media types if the first image uses them.
    pub fn new(images: impl IntoIterator<Item = Image>) -> Index {
        let images: Vec<Image> = images.into_iter().collect();
        let docker = images
            .first()
            .is_some_and(|i| i.manifest.media_type() == media::DOCKER_MANIFEST);
        let media_type = if docker {
            media::DOCKER_MANIFEST_LIST
        } else {
            media::OCI_INDEX
        };
        let manifests: Vec<Value> = images
            .iter()
            .map(|image| {
                let mut d = image.manifest.descriptor();
                d["platform"] = image.platform.json();
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests});
        // serde_json cannot fail on a Value built from strings and numbers.
        let bytes = serde_json::to_vec(&index).unwrap_or_default();
        Index {
            index: Blob::new(media_type, bytes),
            images,
        }
    }

    /// The image for `architecture`, if the index has one.
    pub fn image(&self, architecture: &str) -> Option<&Image> {
        self.images
            .iter()
            .find(|i| i.platform.architecture == architecture)
    }
}

/// A single image or an index: what a reference points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Artifact {
    Image(Image),
    Index(Index),
}

impl From<Image> for Artifact {
    fn from(image: Image) -> Self {
        Artifact::Image(image)
    }
}

impl From<Index> for Artifact {
    fn from(index: Index) -> Self {
        Artifact::Index(index)
    }
}

impl Artifact {
    /// The manifest or index a tag points at.
    pub fn root(&self) -> &Blob {
        match self {
            Artifact::Image(image) => &image.manifest,
            Artifact::Index(index) => &index.index,
        }
    }

    /// The single-platform images (one for an image, all children of an index).
    pub fn images(&self) -> Vec<&Image> {
        match self {
            Artifact::Image(image) => vec![image],
            Artifact::Index(index) => index.images.iter().collect(),
        }
    }

    /// Every blob, each once, children before the blobs referring to them.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let all = self.images().into_iter().flat_map(|i| i.blobs());
        let root = matches!(self, Artifact::Index(_)).then(|| self.root());
        for blob in all.chain(root) {
            if seen.insert(blob.digest()) {
                out.push(blob);
            }
        }
        out
    }

    /// Writes the artifact into the OCI image layout at `dir` (created if
    /// needed; an existing `index.json` is extended), naming it `ref_name`
    /// in the `org.opencontainers.image.ref.name` annotation if given.
    pub fn write_oci_layout(&self, dir: &Path, ref_name: Option<&str>) -> Result<(), TestkitError> {
        let io = |what: String| move |source| TestkitError::Io { what, source };
        let blobs_dir = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs_dir).map_err(io(format!("creating {}", blobs_dir.display())))?;
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(io(format!("writing {}/oci-layout", dir.display())))?;
        for blob in self.blobs() {
            let path = blobs_dir.join(blob.hex());
            fs::write(&path, blob.bytes()).map_err(io(format!("writing {}", path.display())))?;
        }
        let index_path = dir.join("index.json");
        let mut index = match fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(TestkitError::Json)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []})
            }
            Err(e) => return Err(io(format!("reading {}", index_path.display()))(e)),
        };
        let mut descriptor = self.root().descriptor();
        if let Some(name) = ref_name {
            descriptor["annotations"] = json!({ REF_NAME_ANNOTATION: name });
        }
        match index["manifests"].as_array_mut() {
            Some(manifests) => manifests.push(descriptor),
            None => index["manifests"] = json!([descriptor]),
        }
        fs::write(&index_path, to_json(&index)?)
            .map_err(io(format!("writing {}", index_path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_are_deterministic() {
        let build = || {
            ImageBuilder::new()
                .layer([
                    Entry::dir("etc"),
                    Entry::file("etc/motd", "hi\n"),
                    Entry::symlink("etc/link", "motd"),
                    Entry::hard_link("etc/hard", "etc/motd"),
                    Entry::char_device("dev/null", 1, 3),
                    Entry::whiteout("etc/gone"),
                    Entry::opaque("var"),
                ])
                .compression(Compression::Zstd)
                .layer([Entry::file("x", pseudo_random_bytes(1, 1000))])
                .build()
                .unwrap()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn layer_tar_reads_back() {
        let layer = Layer::build(
            &[
                Entry::file("a/b", "data"),
                Entry::whiteout("a/c"),
                Entry::block_device("dev/sda", 8, 0),
            ],
            Compression::Gzip,
            Format::Docker,
        )
        .unwrap();
        assert_eq!(layer.blob.media_type(), media::DOCKER_LAYER_GZIP);
        let gz = flate2::read::GzDecoder::new(layer.blob.bytes());
        let mut archive = tar::Archive::new(gz);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a/b", "a/.wh.c", "dev/sda"]);
    }

    #[test]
    fn index_lists_platforms() {
        let a = ImageBuilder::new().build().unwrap();
        let b = ImageBuilder::new()
            .arch("arm64")
            .variant("v8")
            .build()
            .unwrap();
        let index = Index::new([a, b]);
        let v: Value = serde_json::from_slice(index.index.bytes()).unwrap();
        assert_eq!(v["manifests"][1]["platform"]["variant"], "v8");
        assert_eq!(Artifact::from(index).blobs().len(), 5);
    }
}
