//! Units: the parts of the image in LinuxKit's order, each a deterministic
//! stream of entries with a key that digests everything deciding its bytes.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use slipway_config::label::{ImageDefaults, parse_label, resolve};
use slipway_config::model::{Config, ImageName, Section};
use slipway_config::validate::parse_mode;
use slipway_config::{Id, Sp};
use slipway_layout::bundle;
use slipway_oci::ResolvedImage;

use crate::blobs::BlobSource;

use crate::entry::{DEFAULT_MTIME, EntrySink, Header, Kind, PAX_LOCATION, PAX_SOURCE};
use crate::error::{AssembleError, Result};
use crate::flatten::{Filters, Plan, RESOLV_SYMLINK};
use crate::layer::{StoreLayers, TarSource};
use crate::oci::{IdMap, RootMount, Volumes, config_json, numeric_id, runtime_json};

/// Bumped whenever the bytes a unit produces change for the same inputs:
/// part of every unit key, so cached segments of older versions are not used.
pub const FORMAT_VERSION: u32 = 1;

/// An image the build uses, as the cache holds it.
#[derive(Clone, Debug)]
pub struct ImageInput {
    /// The fully expanded reference, as written into `LINUXKIT.source`.
    pub name: String,
    pub resolved: ResolvedImage,
}

impl ImageInput {
    fn layers<'s>(&self, store: &'s dyn BlobSource) -> StoreLayers<'s> {
        StoreLayers {
            store,
            image: self.name.clone(),
            layers: self.resolved.manifest.layers.clone(),
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

#[derive(Debug, Clone)]
struct KernelUnit {
    image: ImageInput,
    cmdline: String,
    binary: String,
    tar: Option<String>,
    ucode: Option<String>,
    decompress: bool,
}

#[derive(Debug, Clone)]
struct BundleUnit {
    dir: String,
    image: ImageInput,
    readonly: bool,
    /// The directory holding the image when an earlier bundle extracted it.
    shared_root: Option<String>,
    config: String,
    runtime: String,
}

#[derive(Debug, Clone)]
struct FileEntry {
    header: Header,
    content: FileContent,
}

#[derive(Debug, Clone)]
enum FileContent {
    None,
    Bytes(Vec<u8>),
    /// A host file, streamed at write time; its size and digest were taken
    /// when the unit was made, and are checked again.
    Host(PathBuf),
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

fn image_for<'a>(inputs: &'a Inputs, name: &ImageName, location: &str) -> Result<&'a ImageInput> {
    if let Some(image) = inputs.images.get(name) {
        return Ok(image);
    }
    if let ImageName::Package(p) = name {
        return Err(AssembleError::Config {
            location: location.to_string(),
            message: format!(
                "`@pkg:{}` was not resolved to a built package",
                p.dir.display()
            ),
        });
    }
    inputs
        .images
        .get(name)
        .ok_or_else(|| AssembleError::Config {
            location: location.to_string(),
            message: format!("{name} was not resolved"),
        })
}

/// The image's own config: entrypoint, cmd, env, working directory, labels.
fn image_config(
    store: &dyn BlobSource,
    image: &ImageInput,
) -> Result<(ImageDefaults, Option<String>)> {
    let bytes = store
        .read_blob(&image.resolved.manifest.config.digest, "image config")
        .map_err(|source| AssembleError::Store {
            image: image.name.clone(),
            source,
        })?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| AssembleError::ImageConfig {
            image: image.name.clone(),
            source,
        })?;
    let c = &v["config"];
    let strings = |k: &str| -> Vec<String> {
        c[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let defaults = ImageDefaults {
        entrypoint: strings("Entrypoint"),
        cmd: strings("Cmd"),
        env: strings("Env"),
        working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_string(),
    };
    let label = c["Labels"][slipway_config::label::LABEL]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok((defaults, label))
}

/// Makes the units of `config`, in LinuxKit's order. Reads image configs
/// (for labels and defaults) and `files[].source` contents (for the keys).
pub fn plan_units(config: &Config, inputs: &Inputs, store: &dyn BlobSource) -> Result<Vec<Unit>> {
    let mut units = Vec::new();

    if let Some(kernel) = &config.kernel
        && let Some(image) = &kernel.value.image
    {
        let k = &kernel.value;
        let image = image_for(inputs, &image.value, "kernel")?.clone();
        let get = |v: &Option<Sp<String>>| v.as_ref().map(|v| v.value.clone());
        let tar = match get(&k.tar) {
            None => Some("kernel.tar".to_string()),
            Some(t) if t.is_empty() || t == "none" => None,
            Some(t) => Some(t),
        };
        let unit = KernelUnit {
            cmdline: get(&k.cmdline).unwrap_or_default(),
            binary: get(&k.binary)
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "kernel".into()),
            tar,
            ucode: get(&k.ucode).filter(|u| !u.is_empty()),
            decompress: inputs.decompress_kernel,
            image,
        };
        let key = hash_parts(&[
            b"kernel",
            unit.image.name.as_bytes(),
            unit.image.digest().as_bytes(),
            unit.cmdline.as_bytes(),
            unit.binary.as_bytes(),
            unit.tar.as_deref().unwrap_or("\0").as_bytes(),
            unit.ucode.as_deref().unwrap_or("\0").as_bytes(),
            &[u8::from(unit.decompress)],
        ]);
        units.push(Unit {
            mtime: DEFAULT_MTIME,
            location: "kernel".into(),
            title: format!("kernel {}", unit.image.name),
            key,
            body: Body::Kernel(unit),
        });
    }

    for (i, name) in config.init().iter().enumerate() {
        let location = format!("init[{i}]");
        let image = image_for(inputs, &name.value, &location)?.clone();
        let key = hash_parts(&[
            b"init",
            location.as_bytes(),
            image.name.as_bytes(),
            image.digest().as_bytes(),
        ]);
        units.push(Unit {
            mtime: DEFAULT_MTIME,
            title: format!("init {}", image.name),
            location,
            key,
            body: Body::Init { image },
        });
    }

    // With several init images, LinuxKit appends the concatenation of their
    // apk databases, so the last (which the unpacker keeps) lists them all.
    let inits: Vec<ImageInput> = units
        .iter()
        .filter_map(|u| match &u.body {
            Body::Init { image } => Some(image.clone()),
            _ => None,
        })
        .collect();
    if inits.len() > 1 {
        let mut parts: Vec<&[u8]> = vec![b"apkdb"];
        let names: Vec<String> = inits
            .iter()
            .map(|i| format!("{} {}", i.name, i.digest()))
            .collect();
        parts.extend(names.iter().map(|n| n.as_bytes()));
        units.push(Unit {
            mtime: DEFAULT_MTIME,
            location: "init".into(),
            title: format!("apk database of {} init images", inits.len()),
            key: hash_parts(&parts),
            body: Body::ApkDb(inits),
        });
    }

    let mut volumes: Volumes = BTreeMap::new();
    for (i, v) in config.volumes().iter().enumerate() {
        let location = format!("volume[{i}]");
        let name = v
            .value
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .unwrap_or_default();
        let readonly = v.value.readonly.as_ref().is_some_and(|r| r.value);
        volumes.insert(name.clone(), readonly);
        let image = match &v.value.image {
            Some(img) => Some(image_for(inputs, &img.value, &location)?.clone()),
            None => None,
        };
        let oci = v.value.format.as_ref().is_some_and(|f| f.value == "oci");
        let key = hash_parts(&[
            b"volume",
            location.as_bytes(),
            name.as_bytes(),
            image
                .as_ref()
                .map_or(b"\0".as_slice(), |i| i.name.as_bytes()),
            image
                .as_ref()
                .map(|i| i.digest())
                .unwrap_or_default()
                .as_bytes(),
            &[u8::from(oci)],
        ]);
        units.push(Unit {
            mtime: DEFAULT_MTIME,
            title: format!("volume {name}"),
            location,
            key,
            body: Body::Volume { name, image, oci },
        });
    }

    let mut ids: IdMap = BTreeMap::new();
    for (n, (_, _, image)) in config.containers().enumerate() {
        ids.insert(image.name.value.clone(), 100 + n as u32);
    }
    let mut extracted: HashMap<String, String> = HashMap::new();
    for (section, i, entry) in config.containers() {
        let location = format!("{}[{i}]", section.key());
        let image = image_for(inputs, &entry.image.value, &location)?.clone();
        let (defaults, label_text) = image_config(store, &image)?;
        let label = match label_text {
            None => None,
            Some(text) => match parse_label(&image.name, &text) {
                Ok((spec, _warnings)) => Some(spec),
                Err(e) => {
                    let detail: Vec<String> = e
                        .diagnostics
                        .errors()
                        .map(|d| d.render_plain(&e.sources))
                        .collect();
                    return Err(AssembleError::Image {
                        image: image.name.clone(),
                        message: format!(
                            "the org.mobyproject.config label is invalid:\n{}",
                            detail.join("\n")
                        ),
                    });
                }
            },
        };
        let resolved = resolve(entry, label.as_ref(), &defaults);
        let config_text =
            config_json(&resolved, &ids, &volumes).map_err(|e| AssembleError::Config {
                location: location.clone(),
                message: e.0,
            })?;
        let dir = match section {
            Section::Onboot => bundle::onboot_dir(i, &entry.name.value),
            Section::Onshutdown => bundle::onshutdown_dir(i, &entry.name.value),
            Section::Services => bundle::service_dir(&entry.name.value),
        };
        let readonly = resolved.readonly;
        let own_root = format!(
            "{dir}/{}",
            if readonly {
                bundle::ROOTFS
            } else {
                bundle::LOWER
            }
        );
        let shared_root = extracted.get(&image.name).cloned();
        if shared_root.is_none() {
            extracted.insert(image.name.clone(), own_root.clone());
        }
        let root = shared_root.clone().unwrap_or(own_root);
        let mount = if readonly {
            RootMount::Bind {
                dir: dir.clone(),
                root,
            }
        } else {
            RootMount::Overlay {
                dir: dir.clone(),
                lower: root,
            }
        };
        let runtime = runtime_json(&resolved.runtime, &mount);
        let key = hash_parts(&[
            b"bundle",
            location.as_bytes(),
            dir.as_bytes(),
            image.name.as_bytes(),
            image.digest().as_bytes(),
            &[u8::from(readonly)],
            shared_root.as_deref().unwrap_or("\0").as_bytes(),
            config_text.as_bytes(),
            runtime.as_bytes(),
        ]);
        units.push(Unit {
            mtime: DEFAULT_MTIME,
            title: format!("{} {}", section.key(), entry.name.value),
            location,
            key,
            body: Body::Bundle(Box::new(BundleUnit {
                dir,
                image,
                readonly,
                shared_root,
                config: config_text,
                runtime,
            })),
        });
    }

    if !config.files().is_empty() {
        let entries = file_entries(config, inputs, &ids)?;
        let mut h = Sha256::new();
        h.update(FORMAT_VERSION.to_le_bytes());
        h.update(b"files");
        for e in &entries {
            h.update(format!("{:?}", e.header).as_bytes());
            match &e.content {
                FileContent::None => h.update(b"none"),
                FileContent::Bytes(b) => {
                    h.update((b.len() as u64).to_le_bytes());
                    h.update(b);
                }
                FileContent::Host(p) => {
                    let mut f = std::fs::File::open(p).map_err(|source| AssembleError::Source {
                        location: "files".into(),
                        path: p.clone(),
                        source,
                    })?;
                    let mut hw = HashWriter(&mut h);
                    io::copy(&mut f, &mut hw).map_err(|source| AssembleError::Source {
                        location: "files".into(),
                        path: p.clone(),
                        source,
                    })?;
                }
            }
        }
        units.push(Unit {
            mtime: DEFAULT_MTIME,
            location: "files".into(),
            title: format!("{} files", config.files().len()),
            key: h.finalize().into(),
            body: Body::Files(entries),
        });
    }
    if let Some(mtime) = inputs.source_date_epoch.filter(|t| *t != DEFAULT_MTIME) {
        for u in &mut units {
            u.mtime = mtime;
            u.key = hash_parts(&[b"mtime", &u.key, &mtime.to_le_bytes()]);
        }
    }
    Ok(units)
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

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn file_entries(config: &Config, inputs: &Inputs, ids: &IdMap) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    let mut added: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (n, f) in config.files().iter().enumerate() {
        let f = &f.value;
        let location = format!("files[{n}]");
        let cerr = |message: String| AssembleError::Config {
            location: location.clone(),
            message,
        };
        let get = |v: &Option<Sp<String>>| v.as_ref().map(|v| v.value.clone());
        let path = get(&f.path).unwrap_or_default();
        let path = path.trim_start_matches('/').to_string();
        if path.is_empty() {
            return Err(cerr("did not specify path for file".into()));
        }
        let directory = f.directory.as_ref().is_some_and(|d| d.value);
        let mode = match get(&f.mode) {
            Some(m) => parse_mode(&m).map_err(cerr)?,
            None if directory => 0o700,
            None => 0o600,
        };
        let mut dir_mode = mode;
        for (any, x) in [(0o700, 0o100), (0o070, 0o010), (0o007, 0o001)] {
            if dir_mode & any != 0 {
                dir_mode |= x;
            }
        }
        let id = |v: &Option<Sp<Id>>| -> Result<u32> {
            match v {
                None => Ok(0),
                Some(v) => numeric_id(&v.value, ids).map_err(|e| cerr(e.0)),
            }
        };
        let uid = u64::from(id(&f.uid)?);
        let gid = u64::from(id(&f.gid)?);
        let symlink = get(&f.symlink).filter(|s| !s.is_empty());
        let contents = get(&f.contents);
        let (kind, content) = if directory {
            (Kind::Dir, FileContent::None)
        } else if let Some(target) = symlink {
            (Kind::Symlink { target }, FileContent::None)
        } else if let Some(c) = contents {
            (
                Kind::File {
                    size: c.len() as u64,
                },
                FileContent::Bytes(c.into_bytes()),
            )
        } else if let Some(source) = get(&f.source) {
            let expanded = match source.strip_prefix("~/") {
                Some(rest) => std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(rest))
                    .unwrap_or_else(|| PathBuf::from(&source)),
                None => inputs.source_dir.join(&source),
            };
            match std::fs::metadata(&expanded) {
                Ok(meta) => (Kind::File { size: meta.len() }, FileContent::Host(expanded)),
                Err(_) if f.optional.as_ref().is_some_and(|o| o.value) => continue,
                Err(source) => {
                    return Err(AssembleError::Source {
                        location,
                        path: expanded,
                        source,
                    });
                }
            }
        } else if let Some(md) = get(&f.metadata) {
            let text = match md.as_str() {
                "yaml" => &inputs.metadata_yaml,
                "json" => &inputs.metadata_json,
                other => return Err(cerr(format!("unsupported metadata type: {other}"))),
            };
            (
                Kind::File {
                    size: text.len() as u64,
                },
                FileContent::Bytes(text.clone().into_bytes()),
            )
        } else {
            return Err(cerr(format!("contents of file ({path}) not specified")));
        };
        let origin = |h: Header| h.with_origin("linuxkit.files", &location);
        let mut parent = String::new();
        if let Some((dirs, _)) = path.rsplit_once('/') {
            for part in dirs.split('/').filter(|p| !p.is_empty() && *p != ".") {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(part);
                if added.insert(parent.clone()) {
                    let mut h = Header::new(parent.clone(), Kind::Dir, dir_mode);
                    h.uid = uid;
                    h.gid = gid;
                    out.push(FileEntry {
                        header: origin(h),
                        content: FileContent::None,
                    });
                }
            }
        }
        added.insert(path.clone());
        let mut h = Header::new(path, kind, mode);
        h.uid = uid;
        h.gid = gid;
        out.push(FileEntry {
            header: origin(h),
            content,
        });
    }
    Ok(out)
}

/// A reader that fails unless it yields exactly `expected` bytes.
struct Exact<R> {
    inner: R,
    left: u64,
    what: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} changed size during the build", self.what),
            ));
        }
        self.left -= n as u64;
        Ok(n)
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
            Body::Kernel(k) => write_kernel(k, store, sink),
            Body::Init { image } => {
                let src = image.layers(store);
                let filters = Filters {
                    resolv_symlink: Some(RESOLV_SYMLINK.into()),
                };
                Plan::build(&src, Some(filters))?.emit(&src, "", &image.name, &self.location, sink)
            }
            Body::ApkDb(images) => write_apk_db(images, store, sink),
            Body::Volume { name, image, oci } => {
                let source = image
                    .as_ref()
                    .map_or("linuxkit.volumes", |i| i.name.as_str());
                let lower = bundle::volume_lower_dir(name);
                prefix_dirs(&lower, source, &self.location, sink)?;
                if let Some(image) = image {
                    if *oci {
                        write_oci_layout(image, store, &lower, &self.location, sink)?;
                    } else {
                        let src = image.layers(store);
                        let filters = Filters {
                            resolv_symlink: Some(RESOLV_SYMLINK.into()),
                        };
                        Plan::build(&src, Some(filters))?.emit(
                            &src,
                            &format!("{lower}/"),
                            &image.name,
                            &self.location,
                            sink,
                        )?;
                    }
                }
                dir(&bundle::volume_tmp_dir(name), source, &self.location, sink)?;
                dir(
                    &bundle::volume_merged_dir(name),
                    source,
                    &self.location,
                    sink,
                )
            }
            Body::Bundle(b) => {
                let source = b.image.name.as_str();
                let loc = self.location.as_str();
                let extract = if b.readonly {
                    bundle::ROOTFS
                } else {
                    bundle::LOWER
                };
                match &b.shared_root {
                    None => {
                        let root = format!("{}/{extract}", b.dir);
                        prefix_dirs(&root, source, loc, sink)?;
                        let src = b.image.layers(store);
                        let filters = Filters {
                            resolv_symlink: None,
                        };
                        Plan::build(&src, Some(filters))?.emit(
                            &src,
                            &format!("{root}/"),
                            source,
                            loc,
                            sink,
                        )?;
                    }
                    Some(_) => prefix_dirs(&b.dir, source, loc, sink)?,
                }
                file(
                    &format!("{}/{}", b.dir, bundle::CONFIG_JSON),
                    b.config.as_bytes(),
                    source,
                    loc,
                    sink,
                )?;
                if !b.readonly {
                    dir(&format!("{}/{}", b.dir, bundle::TMP), source, loc, sink)?;
                    dir(&format!("{}/{}", b.dir, bundle::ROOTFS), source, loc, sink)?;
                } else if b.shared_root.is_some() {
                    dir(&format!("{}/{}", b.dir, bundle::ROOTFS), source, loc, sink)?;
                }
                file(
                    &format!("{}/{}", b.dir, bundle::RUNTIME_JSON),
                    b.runtime.as_bytes(),
                    source,
                    loc,
                    sink,
                )
            }
            Body::Files(entries) => {
                for e in entries {
                    match &e.content {
                        FileContent::None => sink.entry(&e.header, &[], &mut io::empty()),
                        FileContent::Bytes(b) => sink.entry(&e.header, &[], &mut &b[..]),
                        FileContent::Host(p) => {
                            let f =
                                std::fs::File::open(p).map_err(|source| AssembleError::Source {
                                    location: self.location.clone(),
                                    path: p.clone(),
                                    source,
                                })?;
                            let mut exact = Exact {
                                inner: f,
                                left: e.header.kind.size(),
                                what: p.display().to_string(),
                            };
                            sink.entry(&e.header, &[], &mut exact)
                        }
                    }
                    .map_err(AssembleError::Sink)?;
                }
                Ok(())
            }
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
        let Body::Kernel(k) = &self.body else {
            return Ok(false);
        };
        let name = match part {
            KernelPart::Cmdline => {
                out.write_all(k.cmdline.as_bytes())
                    .map_err(AssembleError::Sink)?;
                return Ok(true);
            }
            KernelPart::Kernel => &k.binary,
            KernelPart::Ucode => match &k.ucode {
                Some(u) => u,
                None => return Ok(false),
            },
        };
        let src = k.image.layers(store);
        let plan = Plan::build(&src, None)?;
        let mut found = false;
        plan.stream_file(&src, name, &mut |_h, r| {
            found = true;
            if part == KernelPart::Kernel && k.decompress {
                let bytes = decompress_kernel(r, &k.image.name)?;
                out.write_all(&bytes).map_err(AssembleError::Sink)
            } else {
                io::copy(r, out).map(|_| ()).map_err(AssembleError::Sink)
            }
        })?;
        if !found {
            return Err(AssembleError::Image {
                image: k.image.name.clone(),
                message: format!("did not find {name} in the kernel image"),
            });
        }
        Ok(true)
    }
}

/// An in-memory sink adapter: tags and prefixes nothing, forwards to `inner`
/// all but the entries `skip` names.
fn write_kernel(k: &KernelUnit, store: &dyn BlobSource, sink: &mut dyn EntrySink) -> Result<()> {
    let src = k.image.layers(store);
    // The outer plan and kernel.tar's plan in one read of the layers, then
    // the kernel, microcode and kernel.tar's entries in one more: a large
    // kernel.tar is inflated twice, not four times.
    let (plan, inner) = match &k.tar {
        Some(t) => Plan::build_with_nested(&src, None, t)?,
        None => (Plan::build(&src, None)?, None),
    };
    let source = k.image.name.as_str();
    let tag = |h: Header| h.with_origin(source, "kernel");
    let missing = |what: &str| AssembleError::Image {
        image: k.image.name.clone(),
        message: format!("did not find {what} in kernel image"),
    };
    if !plan.contains(&k.binary) {
        return Err(missing("kernel"));
    }
    if k.tar.is_some() && inner.is_none() {
        return Err(missing("kernel tar"));
    }
    if let Some(u) = &k.ucode
        && !plan.contains(u)
    {
        return Err(missing(&format!("microcode {u}")));
    }
    dir("boot", source, "kernel", sink)?;
    file("boot/cmdline", k.cmdline.as_bytes(), source, "kernel", sink)?;
    let mut parts = vec![k.binary.as_str()];
    let ucode = k.ucode.as_deref().map(|u| {
        parts.push(u);
        parts.len() - 1
    });
    let tar = k.tar.as_deref().map(|t| {
        parts.push(t);
        parts.len() - 1
    });
    plan.stream_parts(&src, &parts, &mut |i, h, r| {
        if i == 0 {
            if k.decompress {
                let bytes = decompress_kernel(r, &k.image.name)?;
                let header = tag(Header::new(
                    "boot/kernel",
                    Kind::File {
                        size: bytes.len() as u64,
                    },
                    h.mode,
                ));
                sink.entry(&header, &[], &mut &bytes[..])
                    .map_err(AssembleError::Sink)
            } else {
                let header = tag(Header::new("boot/kernel", h.kind.clone(), h.mode));
                sink.entry(&header, &[], r).map_err(AssembleError::Sink)
            }
        } else if Some(i) == ucode {
            let header = tag(Header::new("boot/ucode.cpio", h.kind.clone(), h.mode));
            sink.entry(&header, &[], r).map_err(AssembleError::Sink)
        } else if Some(i) == tar
            && let Some(inner) = &inner
        {
            let layer = plan.layer_of(parts[i]).unwrap_or_default();
            let name = format!("{} {}", TarSource::layer_name(&src, layer), parts[i]);
            let once = crate::flatten::OneShot::new(source, name, r);
            inner.emit(&once, "", source, "kernel", sink)
        } else {
            Ok(())
        }
    })
}

/// `--decompress-kernel`: a gzip, xz or zstd kernel, or a bzImage whose
/// payload is one (Debian's x86 kernels carry zstd or xz, LinuxKit's gzip).
fn decompress_kernel(r: &mut dyn Read, image: &str) -> Result<Vec<u8>> {
    let fail = |message: String| AssembleError::Image {
        image: image.to_string(),
        message,
    };
    let mut raw = Vec::new();
    r.read_to_end(&mut raw)
        .map_err(|e| fail(format!("reading the kernel: {e}")))?;
    let (payload, bzimage) = kernel_payload(&raw).map_err(|m| fail(m.into()))?;
    let what = if bzimage {
        "the bzImage payload"
    } else {
        "the kernel"
    };
    let mut out = Vec::new();
    // One stream each: a bzImage payload ends with 4 bytes of size after it.
    let format = if payload.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(payload)
            .read_to_end(&mut out)
            .map_err(|e| fail(format!("gunzip of {what}: {e}")))?;
        "gzip"
    } else if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::with_buffer(payload)
            .map(zstd::stream::read::Decoder::single_frame)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(|e| fail(format!("zstd decompression of {what}: {e}")))?;
        "zstd"
    } else if payload.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        liblzma::read::XzDecoder::new(payload)
            .read_to_end(&mut out)
            .map_err(|e| fail(format!("xz decompression of {what}: {e}")))?;
        "xz"
    } else {
        let known: &[(&[u8], &str)] = &[
            (&[0x5d, 0x00, 0x00], "lzma"),
            (b"BZh", "bzip2"),
            (&[0x89, b'L', b'Z', b'O'], "lzo"),
            (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
            (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
        ];
        let found = known
            .iter()
            .find(|(magic, _)| payload.starts_with(magic))
            .map(|(_, name)| *name);
        return Err(fail(match found {
            Some(name) => format!(
                "{what} is {name}-compressed; --decompress-kernel handles gzip, xz and zstd"
            ),
            None => format!(
                "{what} is not gzip, xz or zstd (first bytes {}); --decompress-kernel handles those, in a bzImage or alone",
                hex::encode(&payload[..payload.len().min(8)])
            ),
        }));
    };
    // x86 appends the decompressed size after the payload: check it.
    if bzimage && let Some(tail) = payload.len().checked_sub(4).and_then(|n| payload.get(n..)) {
        let said = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        if u64::from(said) != out.len() as u64 {
            return Err(fail(format!(
                "{what} ({format}) decompressed to {} bytes, but the bzImage says {said}",
                out.len()
            )));
        }
    }
    Ok(out)
}

/// The compressed payload of a bzImage (boot protocol 2.08+, which says
/// where it is), else the whole kernel. The flag says which.
fn kernel_payload(raw: &[u8]) -> std::result::Result<(&[u8], bool), &'static str> {
    let is_bzimage = raw.len() > 0x250
        && raw.get(0x1fe..0x200) == Some(&[0x55, 0xaa])
        && raw.get(0x202..0x206) == Some(b"HdrS")
        && raw
            .get(0x206..0x208)
            .is_some_and(|v| u16::from_le_bytes([v[0], v[1]]) >= 0x208);
    if !is_bzimage {
        return Ok((raw, false));
    }
    let le = |o: usize| {
        raw.get(o..o + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let setup = match raw.get(0x1f1).copied().map(usize::from) {
        Some(0) | None => 4,
        Some(n) => n,
    };
    let off = le(0x248).saturating_add((setup + 1) * 512);
    let len = le(0x24c);
    raw.get(off..off.saturating_add(len))
        .filter(|p| !p.is_empty())
        .map(|p| (p, true))
        .ok_or("the bzImage payload lies outside the image")
}

/// Where apk keeps its database of installed packages.
pub const APK_DB: &str = "lib/apk/db/installed";

/// LinuxKit's apk database union: when more than one init image has
/// [`APK_DB`], their contents, each followed by an empty line, as one more
/// entry after the init images.
fn write_apk_db(
    images: &[ImageInput],
    store: &dyn BlobSource,
    sink: &mut dyn EntrySink,
) -> Result<()> {
    let mut dbs: Vec<Vec<u8>> = Vec::new();
    for image in images {
        let src = image.layers(store);
        let plan = Plan::build(&src, None)?;
        if !plan.contains(APK_DB) {
            continue;
        }
        plan.stream_file(&src, APK_DB, &mut |h, r| {
            if !matches!(h.kind, Kind::File { .. }) {
                return Ok(());
            }
            let mut db = Vec::new();
            r.read_to_end(&mut db).map_err(|e| AssembleError::Image {
                image: image.name.clone(),
                message: format!("reading {APK_DB}: {e}"),
            })?;
            dbs.push(db);
            Ok(())
        })?;
    }
    if dbs.len() < 2 {
        return Ok(());
    }
    let mut union = Vec::new();
    for db in dbs {
        union.extend_from_slice(&db);
        union.extend_from_slice(b"\n\n");
    }
    file(APK_DB, &union, "LINUXKIT.apkinit", "init", sink)
}

/// Volume `format: oci`: the image as an OCI layout under `lower/`.
fn write_oci_layout(
    image: &ImageInput,
    store: &dyn BlobSource,
    lower: &str,
    location: &str,
    sink: &mut dyn EntrySink,
) -> Result<()> {
    let source = image.name.as_str();
    let r = &image.resolved;
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    file(
        &format!("{lower}/oci-layout"),
        layout,
        source,
        location,
        sink,
    )?;
    let mut root = serde_json::to_value(&r.root).map_err(|source| AssembleError::ImageConfig {
        image: image.name.clone(),
        source,
    })?;
    root["annotations"] = serde_json::json!({ slipway_oci::REF_NAME_ANNOTATION: image.name });
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": slipway_oci::media::OCI_INDEX, "manifests": [root]});
    let index = serde_json::to_vec(&index).map_err(|source| AssembleError::ImageConfig {
        image: image.name.clone(),
        source,
    })?;
    file(
        &format!("{lower}/index.json"),
        &index,
        source,
        location,
        sink,
    )?;
    for d in [&format!("{lower}/blobs"), &format!("{lower}/blobs/sha256")] {
        dir(d, source, location, sink)?;
    }
    let mut digests = vec![r.root.digest.clone()];
    if r.manifest_descriptor.digest != r.root.digest {
        digests.push(r.manifest_descriptor.digest.clone());
    }
    digests.extend(r.blobs().map(|d| d.digest.clone()));
    digests.sort_by_key(|d| d.to_string());
    digests.dedup();
    for digest in digests {
        let mut blob = store
            .open_blob(&digest)
            .map_err(|source| AssembleError::Store {
                image: image.name.clone(),
                source,
            })?;
        let size = blob.size;
        let h = Header::new(
            format!("{lower}/blobs/sha256/{}", digest.hex()),
            Kind::File { size },
            0o644,
        )
        .with_origin(source, location);
        sink.entry(&h, &[], &mut blob)
            .map_err(AssembleError::Sink)?;
    }
    Ok(())
}

/// Whether a header carries the given origin (for tests and filters).
pub fn origin(h: &Header) -> (Option<&[u8]>, Option<&[u8]>) {
    (h.pax(PAX_SOURCE), h.pax(PAX_LOCATION))
}
