//! Planning: the units of a configuration, in LinuxKit's order, each with
//! the key of everything deciding its bytes. Reads image configs (for
//! labels and defaults) and `files[].source` contents (for the keys).

use std::collections::{BTreeMap, HashMap};

use slipway_config::label::{ImageDefaults, parse_label, resolve};
use slipway_config::model::{Config, Image, ImageName, Section};
use slipway_config::{ImageSpec, Sp};
use slipway_contract::bundle;

use crate::blobs::BlobSource;
use crate::bundle_json::{IdMap, RootMount, Volumes, config_json, runtime_json};
use crate::entry::DEFAULT_MTIME;
use crate::error::{AssembleError, Result};

use super::bundle::BundleUnit;
use super::files::{file_entries, files_key};
use super::kernel::KernelUnit;
use super::{Body, ImageInput, Inputs, Unit, hash_parts};

/// Makes the units of `config`, in LinuxKit's order: kernel, init images
/// (and their apk database union), volumes, onboot, onshutdown and service
/// bundles, files.
pub fn plan_units(config: &Config, inputs: &Inputs, store: &dyn BlobSource) -> Result<Vec<Unit>> {
    let mut units = Vec::new();
    units.extend(kernel_unit(config, inputs)?);
    let inits = init_units(config, inputs)?;
    let apk_db = apk_db_unit(&inits);
    units.extend(inits);
    units.extend(apk_db);
    let (volume_units, volumes) = volume_units(config, inputs)?;
    units.extend(volume_units);
    // Containers' uid/gid names resolve to 100, 101... in config order.
    let mut ids: IdMap = BTreeMap::new();
    for (n, (_, _, image)) in config.containers().enumerate() {
        ids.insert(image.name.value.clone(), 100 + n as u32);
    }
    // The first bundle of an image extracts it; later ones share its root.
    let mut extracted: HashMap<String, String> = HashMap::new();
    for (section, i, entry) in config.containers() {
        units.push(bundle_unit(
            (section, i, entry),
            inputs,
            store,
            (&ids, &volumes),
            &mut extracted,
        )?);
    }
    if !config.files().is_empty() {
        let entries = file_entries(config, inputs, &ids)?;
        units.push(Unit {
            mtime: DEFAULT_MTIME,
            location: "files".into(),
            title: format!("{} files", config.files().len()),
            key: files_key(&entries)?,
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

/// The image's defaults and its `org.mobyproject.config` label, parsed.
fn image_label(
    store: &dyn BlobSource,
    image: &ImageInput,
) -> Result<(ImageDefaults, Option<ImageSpec>)> {
    let (defaults, label_text) = image_config(store, image)?;
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
    Ok((defaults, label))
}

/// The kernel unit, when the config has a `kernel:` with an image.
fn kernel_unit(config: &Config, inputs: &Inputs) -> Result<Option<Unit>> {
    let Some(kernel) = &config.kernel else {
        return Ok(None);
    };
    let Some(image) = &kernel.value.image else {
        return Ok(None);
    };
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
        plans: Default::default(),
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
    Ok(Some(Unit {
        mtime: DEFAULT_MTIME,
        location: "kernel".into(),
        title: format!("kernel {}", unit.image.name),
        key,
        body: Body::Kernel(unit),
    }))
}

/// One unit per init image.
fn init_units(config: &Config, inputs: &Inputs) -> Result<Vec<Unit>> {
    let mut units = Vec::new();
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
    Ok(units)
}

/// With several init images, LinuxKit appends the concatenation of their
/// apk databases, so the last (which the unpacker keeps) lists them all.
fn apk_db_unit(inits: &[Unit]) -> Option<Unit> {
    let images: Vec<ImageInput> = inits
        .iter()
        .filter_map(|u| match &u.body {
            Body::Init { image } => Some(image.clone()),
            _ => None,
        })
        .collect();
    if images.len() < 2 {
        return None;
    }
    let mut parts: Vec<&[u8]> = vec![b"apkdb"];
    let names: Vec<String> = images
        .iter()
        .map(|i| format!("{} {}", i.name, i.digest()))
        .collect();
    parts.extend(names.iter().map(|n| n.as_bytes()));
    Some(Unit {
        mtime: DEFAULT_MTIME,
        location: "init".into(),
        title: format!("apk database of {} init images", images.len()),
        key: hash_parts(&parts),
        body: Body::ApkDb(images),
    })
}

/// One unit per volume, and each volume's read-only flag by name (the
/// bundles' mounts need it).
fn volume_units(config: &Config, inputs: &Inputs) -> Result<(Vec<Unit>, Volumes)> {
    let mut units = Vec::new();
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
    Ok((units, volumes))
}

/// The unit of one onboot, onshutdown or service entry. `extracted` maps
/// each image to the root the first bundle using it extracts.
fn bundle_unit(
    (section, i, entry): (Section, usize, &Image),
    inputs: &Inputs,
    store: &dyn BlobSource,
    (ids, volumes): (&IdMap, &Volumes),
    extracted: &mut HashMap<String, String>,
) -> Result<Unit> {
    let location = format!("{}[{i}]", section.key());
    let image = image_for(inputs, &entry.image.value, &location)?.clone();
    let (defaults, label) = image_label(store, &image)?;
    let resolved = resolve(entry, label.as_ref(), &defaults);
    let config_text = config_json(&resolved, ids, volumes).map_err(|e| AssembleError::Config {
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
    Ok(Unit {
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
    })
}
