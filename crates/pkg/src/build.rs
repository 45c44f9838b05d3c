//! Building a package: lock the Debian packages, compute the tag, apply the
//! steps per arch, check libraries, write the images, name the index.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use slipway_oci::{Descriptor, Store, cache_name};
use slipway_reference::{Arch, Platform, Reference};

use crate::deb::lock::{Lock, LockedDeb, LockedStep};
use crate::deb::repo::{DebPackage, Fetcher, Repository};
use crate::deb::resolve::{Pin, resolve};
use crate::deb::sources::{Source, effective, host_sources};
use crate::deb::{DebError, debian_arch, unpack};
use crate::def::{self, DebsStep, PackageDef, Step};
use crate::error::PkgError;
use crate::image::{Meta, source_date_epoch, tag_index, write_image};
use crate::sbom::Recorder;
use crate::tree::Tree;
use crate::{cargo_step, elf, kernel, steps, tag};

/// The scratch name of the OCI layout buildx writes (see `slipway_scratch`).
const BUILDX_OUT: &str = "slipway-buildx-";

/// How to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Where downloaded `.deb`s and indexes are kept.
    pub debs_cache: PathBuf,
    /// Re-resolve every Debian package from the current indexes.
    pub update_lock: bool,
    /// Fail instead of changing `debs.lock`.
    pub locked: bool,
    /// Build these arches instead of `build.yml`'s.
    pub arches: Option<Vec<Arch>>,
    /// Rebuild even if the cache has the image.
    pub force: bool,
    /// Where the host's apt sources are read (`/`).
    pub host_root: PathBuf,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            debs_cache: crate::deb::default_cache_dir(),
            update_lock: false,
            locked: false,
            arches: None,
            force: false,
            host_root: PathBuf::from("/"),
        }
    }
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct Built {
    /// One image per tag, in the order of the arches built. Arches share a
    /// tag (and an index) unless their Debian pins tell them apart.
    pub images: Vec<BuiltImage>,
    pub warnings: Vec<String>,
}

/// An index a build named in the cache, and the arches it holds.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub reference: Reference,
    /// The index named `reference` in the cache.
    pub index: Descriptor,
    pub arches: Vec<Arch>,
    /// The manifests written (none when `cached`).
    pub manifests: Vec<(Arch, Descriptor)>,
    /// True when the cache had it already and nothing was built.
    pub cached: bool,
}

impl Built {
    /// The reference the image for `arch` is under.
    pub fn reference(&self, arch: Arch) -> Option<&Reference> {
        self.images
            .iter()
            .find(|i| i.arches.contains(&arch))
            .map(|i| &i.reference)
    }

    /// True when the cache had every image and nothing was built.
    pub fn cached(&self) -> bool {
        self.images.iter().all(|i| i.cached)
    }
}

/// `org/image:tag`, as stored in the cache.
pub fn reference_for(def: &PackageDef, tag: &str) -> Result<Reference, PkgError> {
    let text = format!("{}/{}:{tag}", def.org, def.image);
    Reference::parse(&text)
        .map(|r| cache_name(&r))
        .map_err(|e| PkgError::Package {
            dir: def.dir.clone(),
            message: format!("{text} is not a valid image reference: {e}"),
        })
}

fn arches(def: &PackageDef, opts: &BuildOptions) -> Result<Vec<Arch>, PkgError> {
    let list = opts.arches.clone().unwrap_or_else(|| def.arches.clone());
    if list.is_empty() {
        return Err(PkgError::Package {
            dir: def.dir.clone(),
            message: "no architecture to build for: the host's is not supported; set `arches`"
                .into(),
        });
    }
    Ok(list)
}

pub fn build(dir: &Path, store: &Store, opts: &BuildOptions) -> Result<Built, PkgError> {
    // What a killed build left in the cache goes first.
    store.reap_scratch();
    let def = def::load(dir)?;
    let arches = arches(&def, opts)?;
    if def.steps.is_empty() {
        return docker_build(&def, store, &arches);
    }
    let mut warnings = Vec::new();
    let locked = lock_debs(&def, &arches, opts, &mut warnings)?;
    // Arches with the same tag share an index.
    let mut groups: Vec<(Reference, Vec<Arch>)> = Vec::new();
    for arch in &arches {
        let reference = reference_for(&def, &tag::tag(&def, *arch)?)?;
        match groups.iter_mut().find(|(r, _)| *r == reference) {
            Some((_, list)) => list.push(*arch),
            None => groups.push((reference, vec![*arch])),
        }
    }
    let mut images = Vec::new();
    let mut to_build = Vec::new();
    for (reference, list) in groups {
        if !opts.force
            && let Some(index) = store.lookup(&reference)?
            && list
                .iter()
                .all(|a| store.resolve(&reference, &Platform::linux(*a)).is_ok())
        {
            images.push(BuiltImage {
                reference,
                index,
                arches: list,
                manifests: Vec::new(),
                cached: true,
            });
        } else {
            to_build.push((reference, list));
        }
    }
    let meta = Meta {
        entrypoint: def.entrypoint.clone(),
        cmd: def.cmd.clone(),
        env: def.env.clone(),
        workdir: def.workdir.clone(),
        labels: {
            let mut labels = def.labels.clone();
            if let Some(label) = &def.label {
                labels.insert(slipway_config::label::LABEL.to_string(), label.clone());
            }
            labels
        },
    };
    // Every tree first, so that a failing arch adds nothing to the cache.
    let mut trees = Vec::new();
    for (_, list) in &to_build {
        for arch in list {
            let mut recorder = Recorder::default();
            let tree = build_tree_recorded(&def, *arch, locked.as_ref(), opts, &mut recorder)?;
            trees.push((*arch, tree, recorder));
        }
    }
    if to_build.is_empty() {
        return Ok(Built { images, warnings });
    }
    let _guard = store.gc_guard()?;
    for (reference, list) in to_build {
        let mut manifests = Vec::new();
        let mut attestations = Vec::new();
        for (arch, tree, recorder) in trees.iter().filter(|(a, _, _)| list.contains(a)) {
            let mut meta = meta.clone();
            meta.labels
                .extend(tree.labels().iter().map(|(k, v)| (k.clone(), v.clone())));
            let manifest = write_image(store, tree, *arch, &meta)?;
            attestations.push(crate::image::attach_sbom(
                store, &reference, &manifest, recorder,
            )?);
            manifests.push((*arch, manifest));
        }
        let descriptors: Vec<Descriptor> = manifests.iter().map(|(_, d)| d.clone()).collect();
        let index = tag_index(store, &reference, &descriptors, &attestations)?;
        images.push(BuiltImage {
            reference,
            index,
            arches: list,
            manifests,
            cached: false,
        });
    }
    // In the order of the arches asked for.
    images.sort_by_key(|i| arches.iter().position(|a| i.arches.first() == Some(a)));
    Ok(Built { images, warnings })
}

/// Applies the steps for one arch.
pub fn build_tree(
    def: &PackageDef,
    arch: Arch,
    lock: Option<&Lock>,
    opts: &BuildOptions,
) -> Result<Tree, PkgError> {
    build_tree_recorded(def, arch, lock, opts, &mut Recorder::default())
}

/// [`build_tree`], recording what goes in for the image's SBOM.
pub fn build_tree_recorded(
    def: &PackageDef,
    arch: Arch,
    lock: Option<&Lock>,
    opts: &BuildOptions,
    recorder: &mut Recorder,
) -> Result<Tree, PkgError> {
    let mut tree = Tree::new()?;
    let epoch = source_date_epoch();
    let mut deb_step = 0;
    for step in &def.steps {
        match step {
            Step::Root(dir) => steps::root(&mut tree, def, dir)?,
            Step::Debs(_) => {
                let locked = lock
                    .and_then(|l| l.steps.get(deb_step))
                    .and_then(|s| s.resolved.get(debian_arch(arch)))
                    .ok_or_else(|| PkgError::step("debs", "internal: no lock for this step"))?;
                deb_step += 1;
                let fetcher = Fetcher::new(opts.debs_cache.clone())?;
                for d in locked {
                    let path = fetch_locked(&fetcher, d, &sources_for(def, opts)?)?;
                    unpack::unpack_deb(&path, &mut tree)?;
                    let mirror = d.suite.split(' ').next().unwrap_or_default();
                    recorder.deb(d, mirror, &tree);
                }
            }
            Step::Files(files) => steps::files(&mut tree, def, files)?,
            Step::Symlinks(links) => steps::symlinks(&mut tree, links)?,
            Step::Users(users) => steps::users(&mut tree, users)?,
            Step::Groups(groups) => steps::groups(&mut tree, groups)?,
            Step::CaCertificates { dest } => steps::ca_certificates(&mut tree, dest)?,
            Step::Kernel(k) => kernel::apply(&mut tree, k, epoch)?,
            Step::Cargo(c) => {
                cargo_step::apply(&mut tree, &def.dir, c, arch)?;
                recorder.cargo(&def.dir, c, arch, &tree)?;
            }
            Step::Remove(paths) => steps::remove(&mut tree, paths),
        }
    }
    if def.check_libraries {
        let missing = elf::missing_libraries(&tree, arch)?;
        if !missing.is_empty() {
            return Err(PkgError::MissingLibraries { missing });
        }
    }
    Ok(tree)
}

fn sources_for(def: &PackageDef, opts: &BuildOptions) -> Result<Vec<Source>, PkgError> {
    Ok(effective(
        def.debian.as_ref(),
        &host_sources(&opts.host_root),
    )?)
}

/// A locked `.deb` from the download cache, or from the first source that serves it.
fn fetch_locked(fetcher: &Fetcher, d: &LockedDeb, sources: &[Source]) -> Result<PathBuf, DebError> {
    let mut uris: Vec<&str> = sources.iter().map(|s| s.uri.as_str()).collect();
    uris.dedup();
    let mut last = None;
    for uri in uris {
        let url = format!("{}/{}", uri.trim_end_matches('/'), d.filename);
        match fetcher.fetch_verified(&url, &d.sha256, Some(d.size), "pool", "debs.lock") {
            Ok(p) => return Ok(p),
            Err(e @ DebError::NotFound { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(DebError::Sources {
        message: "no Debian sources".into(),
    }))
}

fn locked_deb(p: &DebPackage, repo: &Repository) -> LockedDeb {
    LockedDeb {
        name: p.name.clone(),
        version: p.version.clone(),
        architecture: p.architecture.clone(),
        filename: p.filename.clone(),
        size: p.size,
        sha256: p.sha256.clone(),
        suite: repo.sources[p.source].label(),
    }
}

/// Makes sure `debs.lock` covers every `debs:` step for every arch and that
/// every locked file can be had; resolves (and rewrites the lock) when not.
fn lock_debs(
    def: &PackageDef,
    arches: &[Arch],
    opts: &BuildOptions,
    warnings: &mut Vec<String>,
) -> Result<Option<Lock>, PkgError> {
    let deb_steps: Vec<&DebsStep> = def
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Debs(d) => Some(d),
            _ => None,
        })
        .collect();
    if deb_steps.is_empty() {
        return Ok(None);
    }
    let existing = Lock::read(&def.dir)?;
    // The lock was made for these very steps (whatever arches it pins).
    let same_steps = |lock: &Lock| {
        lock.steps.len() == deb_steps.len()
            && lock
                .steps
                .iter()
                .zip(&deb_steps)
                .all(|(l, s)| l.packages == s.packages && l.exclude == s.exclude)
    };
    let matches = |lock: &Lock| {
        same_steps(lock)
            && lock.steps.iter().all(|l| {
                arches
                    .iter()
                    .all(|a| l.resolved.contains_key(debian_arch(*a)))
            })
    };
    let fetcher = Fetcher::new(opts.debs_cache.clone())?;
    let sources = sources_for(def, opts)?;
    // Fast path: the lock fits and every file it names can be had.
    if !opts.update_lock
        && let Some(lock) = &existing
        && matches(lock)
    {
        let mut gone = false;
        'all: for step in &lock.steps {
            for a in arches {
                for d in step.resolved.get(debian_arch(*a)).into_iter().flatten() {
                    match fetch_locked(&fetcher, d, &sources) {
                        Ok(_) => {}
                        Err(DebError::NotFound { .. }) => {
                            gone = true;
                            break 'all;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        if !gone {
            return Ok(existing);
        }
    }
    if opts.locked {
        let why = match &existing {
            None => "there is no debs.lock".to_string(),
            Some(l) if !matches(l) => {
                "debs.lock does not match build.yml's `debs:` steps".to_string()
            }
            Some(_) => {
                "a version pinned in debs.lock is no longer served by the mirror".to_string()
            }
        };
        return Err(DebError::Lock {
            path: Lock::path(&def.dir),
            message: format!(
                "--locked: {why}; run `slipway pkg build --update-lock {}`",
                def.dir.display()
            ),
        }
        .into());
    }
    // Resolve from the current, verified indexes, preferring pinned versions.
    // Only the arches being built are resolved: the pins of every other
    // arch stay as they are (their images and tags with them), unless the
    // steps changed, which makes them stale for every arch.
    let mut lock = Lock::new();
    let mut steps_out: Vec<LockedStep> = match &existing {
        Some(l) if same_steps(l) => l.steps.clone(),
        _ => deb_steps
            .iter()
            .map(|s| LockedStep {
                packages: s.packages.clone(),
                exclude: s.exclude.clone(),
                resolved: BTreeMap::new(),
            })
            .collect(),
    };
    for arch in arches {
        let darch = debian_arch(*arch);
        let repo = Repository::load(&fetcher, &sources, darch)?;
        let mut installed = BTreeSet::new();
        for (i, s) in deb_steps.iter().enumerate() {
            let pins: BTreeMap<String, Pin> = if opts.update_lock {
                BTreeMap::new()
            } else {
                existing
                    .as_ref()
                    .and_then(|l| l.steps.get(i))
                    .and_then(|l| l.resolved.get(darch))
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        (
                            d.name.clone(),
                            Pin {
                                version: d.version.clone(),
                                sha256: d.sha256.clone(),
                            },
                        )
                    })
                    .collect()
            };
            let resolution = resolve(&repo, &s.packages, &s.exclude, &installed, &pins)
                .map_err(|e| at_package(def, s, e))?;
            for w in &resolution.repinned {
                tracing::warn!("{}: {w}", def.dir.display());
                warnings.push(w.clone());
            }
            let debs: Vec<LockedDeb> = resolution
                .packages
                .iter()
                .map(|p: &Arc<DebPackage>| locked_deb(p, &repo))
                .collect();
            for d in &debs {
                installed.insert(d.name.clone());
                fetch_locked(&fetcher, d, &sources)?;
            }
            steps_out[i].resolved.insert(darch.to_string(), debs);
        }
    }
    lock.steps = steps_out;
    if existing.as_ref() != Some(&lock) {
        lock.write(&def.dir)?;
        tracing::info!(
            "{}: wrote {}",
            def.dir.display(),
            Lock::path(&def.dir).display()
        );
    }
    Ok(Some(lock))
}

/// A package a `debs:` step lists that no suite has, reported where it is written.
fn at_package(def: &PackageDef, step: &DebsStep, error: DebError) -> PkgError {
    if let DebError::NoSuchPackage { request, .. } = &error
        && let Some(span) = step
            .packages
            .iter()
            .position(|p| p == request)
            .and_then(|i| step.spans.get(i))
    {
        return PkgError::At {
            location: format!("{}:{}:{}", def.file, span.line, span.column),
            source: Box::new(error),
        };
    }
    error.into()
}

/// `docker buildx build ...` for a Dockerfile package, writing an OCI layout
/// at `layout`: `build.yml`'s `network`, `buildArgs`, `disable-cache` and
/// `config` (as the label) as LinuxKit passes them.
pub fn buildx_args(def: &PackageDef, arches: &[Arch], layout: &Path) -> Vec<std::ffi::OsString> {
    let platforms: Vec<String> = arches
        .iter()
        .map(|a| format!("linux/{}", a.as_oci()))
        .collect();
    let mut args: Vec<std::ffi::OsString> = vec![
        "buildx".into(),
        "build".into(),
        "--platform".into(),
        platforms.join(",").into(),
        "--file".into(),
        def.dir.join(&def.dockerfile).into(),
        "--output".into(),
        format!("type=oci,tar=false,dest={}", layout.display()).into(),
    ];
    if !def.network {
        args.extend(["--network".into(), "none".into()]);
    }
    if def.disable_cache {
        args.push("--no-cache".into());
    }
    for a in &def.build_args {
        args.extend(["--build-arg".into(), a.into()]);
    }
    if let Some(label) = &def.label {
        args.push("--label".into());
        args.push(format!("{}={label}", slipway_config::label::LABEL).into());
    }
    args.push(def.dir.clone().into());
    args
}

/// A package without `steps:` is a LinuxKit package built from its
/// Dockerfile: that needs Docker's buildx, used only when `docker info` answers.
fn docker_build(def: &PackageDef, store: &Store, arches: &[Arch]) -> Result<Built, PkgError> {
    let dockerfile = def.dir.join(&def.dockerfile);
    if !dockerfile.is_file() {
        return Err(PkgError::Package {
            dir: def.dir.clone(),
            message: format!(
                "build.yml has no `steps:` and there is no {}",
                def.dockerfile
            ),
        });
    }
    let answers = Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !answers {
        return Err(PkgError::Package {
            dir: def.dir.clone(),
            message: format!(
                "this package is built from {} and needs a Docker engine (`docker info` does not answer); slipway builds packages without Docker from `steps:` in build.yml (see docs/packages.md)",
                def.dockerfile
            ),
        });
    }
    // buildx writes one index for every arch: named by the first arch's
    // tag, which is every arch's when there are no Debian pins.
    let first = arches.first().copied().ok_or_else(|| PkgError::Package {
        dir: def.dir.clone(),
        message: "no architecture to build for".into(),
    })?;
    let tag = tag::tag(def, first)?;
    let reference = reference_for(def, &tag)?;
    let tmp = std::env::temp_dir();
    slipway_scratch::reap(&tmp, BUILDX_OUT);
    let out = slipway_scratch::dir_in(&tmp, BUILDX_OUT)
        .map_err(PkgError::io("creating a temporary directory in", tmp))?;
    let layout = out.path().join("oci");
    let mut cmd = Command::new("docker");
    cmd.args(buildx_args(def, arches, &layout));
    let status = cmd.status().map_err(|source| PkgError::Spawn {
        step: "docker",
        program: "docker buildx",
        source,
    })?;
    if !status.success() {
        return Err(PkgError::Failed {
            step: "docker",
            what: "docker buildx build".into(),
            status,
            output: String::new(),
        });
    }
    // Copy the layout's blobs (each verified) and name its root.
    let source = Store::open(&layout)?;
    let root = source
        .index()?
        .manifests
        .into_iter()
        .next()
        .ok_or_else(|| PkgError::step("docker", "buildx wrote an empty OCI layout"))?;
    let blobs = layout.join("blobs/sha256");
    let _guard = store.gc_guard()?;
    for e in std::fs::read_dir(&blobs).map_err(PkgError::io("reading", &blobs))? {
        let e = e.map_err(PkgError::io("reading", &blobs))?;
        let digest = slipway_reference::Digest::sha256_from_hex(&e.file_name().to_string_lossy())
            .map_err(|source| PkgError::BlobName { source })?;
        let size = e
            .metadata()
            .map_err(PkgError::io("reading", e.path()))?
            .len();
        let mut file = std::fs::File::open(e.path()).map_err(PkgError::io("opening", e.path()))?;
        store.put_blob_from(&mut file, &digest, size)?;
    }
    store.set_ref(&reference.to_string(), &root)?;
    Ok(Built {
        images: vec![BuiltImage {
            reference,
            index: root,
            arches: arches.to_vec(),
            manifests: Vec::new(),
            cached: false,
        }],
        warnings: Vec::new(),
    })
}
