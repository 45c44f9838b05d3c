//! The first step of a build: every image of the configuration resolved to
//! a digest, fetching what the cache lacks (all images at once, bounded),
//! in the order of the configuration; `@pkg:` packages looked up in the
//! cache, or built with `--build-packages`. `--resolve-only` prints them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use slipway_config::model::ImageName;
use slipway_config::source::{Sp, Span};
use slipway_config::{Config, Loaded};
use slipway_oci::{PullPolicy, Puller, ResolvedImage, Store, cache_name};
use slipway_pkg::{BuildOptions, PkgError};
use slipway_reference::{Arch, Platform, Reference};

use super::{BuildArgs, bootloader};
use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::context::{PARALLEL_IMAGES, arch, cache_dir, client, runtime};
use crate::output::outln;
use crate::progress::ProgressDisplay;
use crate::report::chain;

/// One image of the configuration: what it is for, and where it was written.
#[derive(Debug)]
struct Wanted<'a> {
    role: String,
    image: &'a Sp<ImageName>,
}

/// Every image of `config`, in build order: kernel, init, volumes,
/// onboot, onshutdown, services.
fn images(config: &Config) -> Vec<Wanted<'_>> {
    let mut out = Vec::new();
    if let Some(image) = config.kernel.as_ref().and_then(|k| k.value.image.as_ref()) {
        out.push(Wanted {
            role: "kernel".into(),
            image,
        });
    }
    if let Some(init) = &config.init {
        for image in &init.value {
            out.push(Wanted {
                role: "init".into(),
                image,
            });
        }
    }
    if let Some(volumes) = &config.volumes {
        for volume in &volumes.value {
            if let Some(image) = &volume.value.image {
                let name = volume.value.name.as_ref().map_or("", |n| n.value.as_str());
                out.push(Wanted {
                    role: format!("volume {name}"),
                    image,
                });
            }
        }
    }
    for section in slipway_config::model::Section::ALL {
        for entry in config.section(section) {
            out.push(Wanted {
                role: format!("{} {}", section.key(), entry.name.value),
                image: &entry.image,
            });
        }
    }
    out
}

fn location(loaded: &Loaded, span: &Span) -> String {
    format!(
        "{}:{}:{}",
        loaded.sources.name(span.file),
        span.line,
        span.column
    )
}

/// The configuration's images, resolved.
pub struct Resolution {
    pub store: Store,
    /// Each distinct image name once, in the configuration's order.
    pub entries: Vec<ResolvedEntry>,
    /// `REFERENCE DIGEST` for every place an image is named, in order.
    pub lines: Vec<String>,
    /// The boot loader image, when asked for: its reference and image.
    pub bootloader: Option<(String, ResolvedImage)>,
}

/// One image of the configuration, resolved: the name it is written with,
/// the reference it was resolved through (a package's tag for `@pkg:`),
/// and what the cache holds for it.
#[derive(Debug)]
pub struct ResolvedEntry {
    pub name: ImageName,
    pub reference: String,
    pub image: ResolvedImage,
}

/// Every image of the loaded configuration, resolved to a digest (fetching
/// what the cache lacks, unless `--offline`), in the configuration's order
/// without repeats. `@pkg:DIR` names the package's built image, which must
/// be in the cache. Each failure is printed as `file:line:column: error:`;
/// any failure is an error.
pub fn resolve_config(
    args: &BuildArgs,
    global: &GlobalArgs,
    loaded: &Loaded,
    bootloader: Option<&bootloader::Choice>,
) -> anyhow::Result<Resolution> {
    let wanted = images(&loaded.config);
    let store = Store::open(cache_dir(global)?)?;
    let mut errors = Vec::new();
    let policy = if args.offline {
        PullPolicy::Never
    } else if args.pull {
        PullPolicy::Always
    } else {
        PullPolicy::IfMissing
    };
    let arch = arch(global)?;
    let platform = Platform::linux(arch);
    // What each image name stands for, and each distinct reference to resolve.
    let mut names: Vec<(usize, Reference)> = Vec::new();
    let mut references: Vec<(Reference, PullPolicy)> = Vec::new();
    let mut packages = Packages::default();
    for (i, w) in wanted.iter().enumerate() {
        let (r, policy) = match &w.image.value {
            ImageName::Reference(r) => (cache_name(r), policy),
            // A package is built into the cache, never pulled.
            ImageName::Package(p) => match packages.reference(&p.dir, args, global, &store, arch) {
                Ok(r) => (cache_name(&r), PullPolicy::Never),
                Err(e) => {
                    errors.push(format!(
                        "{}: error: {} ({}): {e}",
                        location(loaded, &w.image.span),
                        w.image.value,
                        w.role,
                    ));
                    continue;
                }
            },
        };
        if !references.iter().any(|(seen, _)| *seen == r) {
            references.push((r.clone(), policy));
        }
        names.push((i, r));
    }
    // The boot loader image, resolved with the configuration's.
    let built_in = match bootloader {
        Some(bootloader::Choice::BuiltIn) => Some(bootloader::Package::write()?),
        _ => None,
    };
    let loader_reference = match bootloader {
        None => None,
        Some(choice) => match loader_reference(
            choice,
            built_in.as_ref(),
            &mut packages,
            args,
            global,
            &store,
            arch,
        ) {
            Ok((r, policy)) => {
                if !references.iter().any(|(seen, _)| *seen == r) {
                    references.push((r.clone(), policy));
                }
                Some(r)
            }
            Err(e) => {
                errors.push(format!("error: --bootloader: {e}"));
                None
            }
        },
    };
    let client = client(global)?;
    let progress = ProgressDisplay::new(global);
    let puller = Puller::new(&store, &client).with_progress(&progress);
    let results: Vec<Result<ResolvedImage, slipway_oci::RegistryError>> = runtime()?.block_on(
        futures_util::stream::iter(
            references
                .iter()
                .map(|(r, policy)| puller.resolve(r, &platform, *policy)),
        )
        .buffered(PARALLEL_IMAGES)
        .collect(),
    );
    progress.clear();
    let resolved: HashMap<String, Result<ResolvedImage, slipway_oci::RegistryError>> = references
        .iter()
        .map(|(r, _)| r.to_string())
        .zip(results)
        .collect();
    let mut out: Vec<ResolvedEntry> = Vec::new();
    let mut lines = Vec::new();
    for (i, r) in names {
        let Some(w) = wanted.get(i) else { continue };
        let name = r.to_string();
        match resolved.get(&name) {
            Some(Ok(image)) => {
                lines.push(format!("{name} {}", image.digest()));
                if !out.iter().any(|e| e.name == w.image.value) {
                    out.push(ResolvedEntry {
                        name: w.image.value.clone(),
                        reference: name,
                        image: image.clone(),
                    });
                }
            }
            Some(Err(e)) => errors.push(format!(
                "{}: error: {name} ({}): {}",
                location(loaded, &w.image.span),
                w.role,
                chain(e)
            )),
            None => {}
        }
    }
    let mut loader = None;
    if let Some(r) = loader_reference {
        let name = r.to_string();
        match resolved.get(&name) {
            Some(Ok(image)) => {
                lines.push(format!("{name} {} (boot loader)", image.digest()));
                loader = Some((name, image.clone()));
            }
            Some(Err(e)) => errors.push(format!(
                "error: --bootloader: {name}: {}; name another boot loader image with --bootloader IMAGE",
                chain(e)
            )),
            None => {}
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::bail!(
            "{} of the configuration's images could not be resolved",
            errors.len()
        );
    }
    Ok(Resolution {
        store,
        entries: out,
        lines,
        bootloader: loader,
    })
}

/// The reference of the boot loader image and how to resolve it: a
/// reference is pulled like any image; a package, the built-in one
/// included, is looked up in the cache (and built under
/// `--build-packages`), never pulled.
fn loader_reference(
    choice: &bootloader::Choice,
    built_in: Option<&bootloader::Package>,
    packages: &mut Packages,
    args: &BuildArgs,
    global: &GlobalArgs,
    store: &Store,
    arch: Arch,
) -> Result<(Reference, PullPolicy), String> {
    let policy = if args.offline {
        PullPolicy::Never
    } else if args.pull {
        PullPolicy::Always
    } else {
        PullPolicy::IfMissing
    };
    match choice {
        bootloader::Choice::Reference(r) => Ok((cache_name(r), policy)),
        bootloader::Choice::Package(dir) => {
            let dir =
                std::path::absolute(dir).map_err(|e| format!("@pkg:{}: {e}", dir.display()))?;
            let r = packages.reference(&dir, args, global, store, arch)?;
            Ok((cache_name(&r), PullPolicy::Never))
        }
        bootloader::Choice::BuiltIn => {
            let dir = built_in
                .map(bootloader::Package::path)
                .ok_or("the built-in boot loader package was not written")?;
            let r = match slipway_pkg::package_reference(&dir, store, arch) {
                Ok(r) => r,
                Err(PkgError::NotBuilt {
                    reference,
                    platform,
                    epoch,
                    ..
                }) => {
                    if args.build_packages {
                        let note = slipway_pkg::tag::epoch_note(epoch.as_deref());
                        build_package(&dir, &reference, &note, args, global, store, arch)?
                    } else {
                        return Err(format!(
                            "the boot loader image {reference} ({platform}) is not in the cache at {}; build it with `cargo xtask packages {}` in slipway's source tree or `{}`, or build with --build-packages, or name another image with --bootloader IMAGE",
                            store.root().display(),
                            bootloader::PACKAGE_DIR.trim_start_matches("pkg/"),
                            pkg_build_command(Path::new(bootloader::PACKAGE_DIR), global)
                        ));
                    }
                }
                Err(e) => return Err(chain(&e)),
            };
            Ok((cache_name(&r), PullPolicy::Never))
        }
    }
}

/// The `@pkg:` directories of a configuration, each looked up (and under
/// `--build-packages` built) once.
#[derive(Default)]
struct Packages {
    seen: HashMap<PathBuf, Result<Reference, String>>,
}

impl Packages {
    /// The image `@pkg:DIR` stands for, in the cache for `arch`; built
    /// first under `--build-packages` when the cache lacks it. The error
    /// says how to build it.
    fn reference(
        &mut self,
        dir: &Path,
        args: &BuildArgs,
        global: &GlobalArgs,
        store: &Store,
        arch: Arch,
    ) -> Result<Reference, String> {
        if let Some(known) = self.seen.get(dir) {
            return known.clone();
        }
        let result = match slipway_pkg::package_reference(dir, store, arch) {
            Ok(r) => Ok(r),
            Err(PkgError::NotBuilt {
                reference,
                platform: wanted,
                epoch,
                ..
            }) => {
                let note = slipway_pkg::tag::epoch_note(epoch.as_deref());
                if args.build_packages {
                    build_package(dir, &reference, &note, args, global, store, arch)
                } else {
                    Err(format!(
                        "{reference} ({wanted}) is not in the cache at {}{note}; build it with `{}`, or build this configuration with --build-packages",
                        store.root().display(),
                        pkg_build_command(dir, global)
                    ))
                }
            }
            Err(e) => Err(chain(&e)),
        };
        self.seen.insert(dir.to_path_buf(), result.clone());
        result
    }
}

/// `--build-packages`: builds the package for `arch` into the cache, as
/// `slipway pkg build` would (`--locked` included).
fn build_package(
    dir: &Path,
    reference: &str,
    note: &str,
    args: &BuildArgs,
    global: &GlobalArgs,
    store: &Store,
    arch: Arch,
) -> Result<Reference, String> {
    if global.level() > 0 {
        eprintln!(
            "slipway: building package {} ({reference} is not in the cache{note})",
            dir.display()
        );
    }
    let opts = BuildOptions {
        locked: args.locked,
        arches: Some(vec![arch]),
        ..BuildOptions::default()
    };
    let built = slipway_pkg::build(dir, store, &opts)
        .map_err(|e| format!("building package {} failed: {}", dir.display(), chain(&e)))?;
    for w in &built.warnings {
        crate::report::warn(&format!("{}: {w}", dir.display()));
    }
    let image = built
        .images
        .into_iter()
        .find(|i| i.arches.contains(&arch))
        .ok_or_else(|| format!("building package {} made no {arch} image", dir.display()))?;
    if global.level() > 0 {
        eprintln!("slipway: built {} {}", image.reference, image.index.digest);
    }
    Ok(image.reference)
}

/// The `slipway pkg build` command that puts `dir`'s image where this
/// command looks for it: the same cache and architecture.
fn pkg_build_command(dir: &Path, global: &GlobalArgs) -> String {
    let mut words = vec!["slipway".to_string()];
    if let Some(cache) = &global.cache {
        words.push("--cache".into());
        words.push(cache.to_string_lossy().into_owned());
    }
    if let Some(arch) = global.arch {
        words.push("--arch".into());
        words.push(arch.to_string());
    }
    words.extend(["pkg".into(), "build".into()]);
    words.push(dir.to_string_lossy().into_owned());
    // Only a NUL byte cannot be quoted, and no path or argument holds one.
    shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
}

/// Resolves and prints every image of the loaded configuration.
pub fn print_resolved(
    args: &BuildArgs,
    global: &GlobalArgs,
    loaded: &Loaded,
    bootloader: Option<&bootloader::Choice>,
) -> anyhow::Result<Outcome> {
    let lines = resolve_config(args, global, loaded, bootloader)?.lines;
    if args.json {
        let doc = serde_json::json!({ "images": super::images_json(&lines) });
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(Outcome::Success);
    }
    for line in lines {
        outln!("{line}")?;
    }
    Ok(Outcome::Success)
}
