//! `slipway build`: LinuxKit's flags. Resolves every image, plans the units,
//! writes them (in parallel, through the segment cache) as the outputs
//! asked for, and sums up on standard error. `--dry-run` prints the merged,
//! normalised configuration; `--resolve-only` the resolved images.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use indicatif::BinaryBytes;
use slipway_assemble::{ImageInput, Inputs, plan_units};
use slipway_config::Loaded;
use slipway_formats::disk::{DEFAULT_SIZE, parse_size};
use slipway_formats::{
    Compression, Output, OutputOptions, RequestedFormat, SegmentCache, clash, write_outputs,
    write_tar, write_tar_file,
};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::config_input::{ConfigFiles, load_config};
use crate::report::warn;

mod bootloader;
mod insight;
mod resolve;
mod root_modules;

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub files: ConfigFiles,

    /// Print the merged, normalised configuration as YAML and stop
    #[arg(long)]
    pub dry_run: bool,

    /// Resolve every image to a digest, print them, and stop
    #[arg(long)]
    pub resolve_only: bool,

    /// Print the build's summary as JSON on standard output: the images
    /// with their digests, each unit, and each file written with its size
    /// (with --resolve-only: the images alone)
    #[arg(long)]
    pub json: bool,

    /// Output formats, repeatable or comma-separated [default: kernel+initrd, or tar with -o]
    #[arg(
        short = 'f',
        long = "format",
        value_delimiter = ',',
        value_name = "FORMAT"
    )]
    pub format: Vec<RequestedFormat>,

    /// Name of the outputs [default: the last file's name without extension]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Directory for the outputs [default: the working directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Write a single streamable output to FILE (`-` for standard output)
    #[arg(
        short = 'o',
        long = "o",
        visible_alias = "outfile",
        value_name = "FILE"
    )]
    pub output: Option<String>,

    /// Fetch every tagged image again, even if the cache has it
    #[arg(long)]
    pub pull: bool,

    /// Never use the network; name every image missing from the cache
    #[arg(long, conflicts_with = "pull")]
    pub offline: bool,

    /// Build the `@pkg:` packages the cache lacks first (as `slipway pkg build`)
    #[arg(long)]
    pub build_packages: bool,

    /// With --build-packages: fail rather than change a package's debs.lock
    #[arg(long, requires = "build_packages")]
    pub locked: bool,

    /// Decompress the kernel (gzip, xz, zstd) before writing it
    #[arg(long)]
    pub decompress_kernel: bool,

    /// Compression of the initrd: gzip, zstd or none [default: zstd when the kernel image says its kernel unpacks it, else gzip]
    #[arg(long, value_name = "ALGORITHM")]
    pub compress: Option<Compression>,

    /// Size of the disk formats: 1024M (MiB), 4G or 4 (GiB) [default: 1024M]
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,

    /// The image holding isolinux and systemd's EFI stub, for the ISO, disk
    /// and UKI formats: a reference or @pkg:DIR [default: slipway's
    /// pkg/bootloader, from the cache]
    #[arg(long, value_name = "IMAGE")]
    pub bootloader: Option<String>,

    /// Do not put an SBOM (SPDX 2.3 JSON) in the image
    #[arg(long)]
    pub no_sbom: bool,

    /// Where the SBOM goes inside the image [default: sbom.spdx.json]
    #[arg(long, value_name = "PATH", conflicts_with = "no_sbom")]
    pub sbom_output: Option<String>,

    /// The SBOM's creation time is now, not SOURCE_DATE_EPOCH or LinuxKit's fixed time
    #[arg(long, conflicts_with = "no_sbom")]
    pub sbom_current_time: bool,

    /// Also write the SBOM to FILE, beside the outputs
    #[arg(long, value_name = "FILE", conflicts_with = "no_sbom")]
    pub sbom_file: Option<PathBuf>,

    /// Write a size report: FILE.html (self-contained), FILE.json, or `-` for text on standard output
    #[arg(long, value_name = "FILE")]
    pub report: Option<String>,

    /// LinuxKit: take images from a Docker daemon (slipway needs none)
    #[arg(long, hide = true)]
    pub docker: bool,

    /// LinuxKit: reuse a previous tar (slipway caches each unit instead)
    #[arg(long, value_name = "TAR", hide = true)]
    pub input_tar: Option<PathBuf>,
}

impl BuildArgs {
    /// Say which accepted LinuxKit flags have no effect (yet).
    fn warn_unimplemented(&self) {
        if self.docker {
            warn(
                "--docker is accepted for compatibility and ignored: slipway reads images from its cache and registries, never from a Docker daemon",
            );
        }
        if self.input_tar.is_some() {
            warn(
                "--input-tar is accepted for compatibility and ignored: slipway caches every unit of the image, so unchanged parts are reused anyway",
            );
        }
    }
}

/// Where the outputs go.
#[derive(Debug, PartialEq, Eq)]
enum Destination {
    /// `--dir`/`--name`: `DIR/NAME...` files.
    Files(PathBuf),
    /// `-o FILE`.
    File(PathBuf),
    /// `-o -`.
    Stdout,
}

/// The formats asked for (each name parsed by clap), checked: written by
/// this version (and `rpi3` for the architecture it is for), `tar`/`docker`
/// alone (they are the whole image in one stream), `-o` only with one of
/// them, no two writing the same file.
fn outputs(args: &BuildArgs, arch: slipway_reference::Arch) -> anyhow::Result<Vec<Output>> {
    let mut out: Vec<Output> = Vec::new();
    for requested in &args.format {
        if *requested == RequestedFormat::NotYet("rpi3") && arch != slipway_reference::Arch::Arm64 {
            anyhow::bail!(
                "the rpi3 format is a Raspberry Pi 3 image, which is arm64; this build is for {arch}"
            );
        }
        let o = requested.output()?;
        if !out.contains(&o) {
            out.push(o);
        }
    }
    if out.is_empty() {
        out.push(if args.output.is_some() {
            Output::Tar
        } else {
            Output::KernelInitrd
        });
    }
    if out.len() > 1
        && let Some(o) = out.iter().find(|o| o.streamable())
    {
        anyhow::bail!(
            "the {o} format must be the only format (asked for: {})",
            names(&out)
        );
    }
    if args.output.is_some()
        && let [o] = out.as_slice()
        && !o.streamable()
    {
        anyhow::bail!("-o writes a single file: it takes the tar or docker format, not {o}");
    }
    if let Some((a, b, suffix)) = clash(&out) {
        anyhow::bail!("the {a} and {b} formats both write NAME{suffix}; ask for one of them");
    }
    Ok(out)
}

/// `--size` in bytes: LinuxKit's syntax, default 1024M.
fn disk_size(args: &BuildArgs) -> anyhow::Result<u64> {
    match &args.size {
        None => Ok(DEFAULT_SIZE),
        Some(text) => Ok(parse_size(text).map_err(|e| anyhow::anyhow!("--size: {e}"))?),
    }
}

fn names(outputs: &[Output]) -> String {
    outputs
        .iter()
        .map(|o| o.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--name`, else the last file's name without its extension (`moby` for
/// standard input).
fn output_name(args: &BuildArgs) -> String {
    if let Some(n) = &args.name {
        return n.clone();
    }
    match args.files.files.last().map(String::as_str) {
        None | Some("-") => "moby".into(),
        Some(f) => Path::new(f)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "moby".into()),
    }
}

fn destination(args: &BuildArgs) -> Destination {
    match args.output.as_deref() {
        Some("-") => Destination::Stdout,
        Some(f) => Destination::File(PathBuf::from(f)),
        None => Destination::Files(
            args.dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("."))
                .join(output_name(args)),
        ),
    }
}

/// `-o DIR/x.tar` and `--dir DIR` alike create a missing `DIR` (and its
/// parents), as `mkdir -p` would.
fn create_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(err) = std::fs::create_dir_all(dir)
    {
        // "File exists" would hide which part is in the way.
        let reason = match dir
            .ancestors()
            .find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()))
        {
            Some(file) => format!("{} is not a directory", file.display()),
            None => slipway_contract::errors::io_reason(&err),
        };
        anyhow::bail!(
            "cannot create the output directory {}: {reason}",
            dir.display()
        );
    }
    Ok(())
}

/// `REFERENCE DIGEST` lines as `[{reference, digest}]`.
fn images_json(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|line| {
            let (reference, digest) = line.rsplit_once(' ').unwrap_or((line, ""));
            serde_json::json!({ "reference": reference, "digest": digest })
        })
        .collect()
}

/// `build --json`: what was built, without the timings (which vary), so
/// the same build prints the same document.
fn json_summary(
    args: &BuildArgs,
    outputs: &[Output],
    images: &[String],
    reports: &[slipway_formats::UnitReport],
    files: &[slipway_formats::OutputFile],
) -> serde_json::Value {
    let images = images_json(images);
    let units: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "unit": r.title,
                "bytes": r.bytes,
                "segments": r.segments,
                "cached": r.cached,
            })
        })
        .collect();
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| serde_json::json!({ "path": f.path.display().to_string(), "bytes": f.bytes }))
        .collect();
    serde_json::json!({
        "name": output_name(args),
        "formats": outputs.iter().map(|o| o.name()).collect::<Vec<_>>(),
        "images": images,
        "units": units,
        "files": files,
    })
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn run(args: &BuildArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    args.warn_unimplemented();
    let Some(loaded) = load_config(&args.files, global)? else {
        return Ok(Outcome::Failure);
    };
    if args.dry_run {
        crate::output::write_str(&slipway_config::print::to_yaml(
            &slipway_config::print::ToOut::to_out(&loaded.config),
        ))
        .context("writing the configuration to standard output")?;
        return Ok(Outcome::Success);
    }
    if args.resolve_only {
        let outputs = outputs(args, crate::context::arch(global)?)?;
        let loader = loader_choice(args, &outputs)?;
        return resolve::print_resolved(args, global, &loaded, loader.as_ref());
    }
    build(args, global, &loaded)
}

/// `SOURCE_DATE_EPOCH`, the time of generated entries: whole seconds since
/// the epoch. Unset or empty: LinuxKit's fixed time.
fn source_date_epoch() -> anyhow::Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => {
            anyhow::bail!("SOURCE_DATE_EPOCH is not a number of seconds: {v:?}")
        }
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(t) if t <= u64::from(u32::MAX) => Ok(Some(t)),
            _ => anyhow::bail!(
                "SOURCE_DATE_EPOCH is not a number of seconds between 0 and {} (an initrd holds 32-bit times): {v:?}",
                u32::MAX
            ),
        },
    }
}

/// The boot loader image to resolve, when a format needs one.
fn loader_choice(
    args: &BuildArgs,
    outputs: &[Output],
) -> anyhow::Result<Option<bootloader::Choice>> {
    if outputs.iter().any(|o| o.needs_bootloader()) {
        Ok(Some(bootloader::parse(args.bootloader.as_deref())?))
    } else {
        Ok(None)
    }
}

/// How `files[].metadata` names images: as LinuxKit, the references it
/// resolved (a package's tag for `@pkg:`), and volume images as written.
struct MetadataNames<'a> {
    entries: &'a [resolve::ResolvedEntry],
    sources: &'a slipway_config::SourceMap,
}

impl slipway_config::metadata::ImageNames for MetadataNames<'_> {
    fn resolved(&self, name: &slipway_config::Sp<slipway_config::ImageName>) -> String {
        resolved_name(self.entries, &name.value)
    }

    fn volume(&self, name: &slipway_config::Sp<slipway_config::ImageName>) -> String {
        if matches!(name.value, slipway_config::ImageName::Package(_)) {
            return self.resolved(name);
        }
        let span = name.span;
        let written = self
            .sources
            .get(span.file)
            .and_then(|f| f.text.get(span.offset..span.offset + span.len))
            .map(|t| t.trim().trim_matches(['"', '\'']));
        match written {
            // The span is the scalar's; make sure it is the same image.
            Some(t)
                if slipway_reference::Reference::parse(t)
                    .is_ok_and(|r| slipway_config::ImageName::Reference(r) == name.value) =>
            {
                t.to_string()
            }
            _ => name.value.to_string(),
        }
    }
}

/// The initrd's compression without `--compress`: zstd when the kernel
/// image's [`INITRD_COMPRESSION_LABEL`] says its kernel unpacks it (smaller
/// and faster to unpack at boot than gzip), else gzip, which every kernel
/// LinuxKit boots unpacks.
///
/// [`INITRD_COMPRESSION_LABEL`]: slipway_config::label::INITRD_COMPRESSION_LABEL
fn default_compression(
    loaded: &Loaded,
    entries: &[resolve::ResolvedEntry],
    store: &dyn slipway_assemble::BlobSource,
) -> Compression {
    let Some(image) = kernel_image(loaded) else {
        return Compression::Gzip;
    };
    let Some(entry) = entries.iter().find(|e| e.name == image.value) else {
        return Compression::Gzip;
    };
    let unpacks_zstd = store
        .read_blob(&entry.image.manifest.config.digest, "image config")
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| {
            v["config"]["Labels"][slipway_config::label::INITRD_COMPRESSION_LABEL]
                .as_str()
                .map(|list| list.split(',').any(|c| c.trim() == "zstd"))
        })
        .unwrap_or(false);
    if unpacks_zstd {
        Compression::Zstd
    } else {
        Compression::Gzip
    }
}

/// The `kernel:` section's image, when there is one.
fn kernel_image(
    loaded: &Loaded,
) -> Option<&slipway_config::source::Sp<slipway_config::model::ImageName>> {
    loaded
        .config
        .kernel
        .as_ref()
        .and_then(|k| k.value.image.as_ref())
}

/// The kernel image as resolved (`NAME:TAG`, an `@pkg:` package's tag),
/// for messages about it.
fn kernel_reference(loaded: &Loaded, entries: &[resolve::ResolvedEntry]) -> String {
    let Some(image) = kernel_image(loaded) else {
        return "(none)".into();
    };
    resolved_name(entries, &image.value)
}

/// An image as it was resolved (`@pkg:` as its package's tag), or as
/// written when it was not.
fn resolved_name(entries: &[resolve::ResolvedEntry], name: &slipway_config::ImageName) -> String {
    entries
        .iter()
        .find(|e| e.name == *name)
        .map_or_else(|| name.to_string(), |e| e.reference.clone())
}

/// Resolves, plans, writes; then the summary on standard error.
#[allow(
    clippy::disallowed_methods,
    reason = "the summary says how long each step took; the outputs do not depend on it"
)]
fn build(args: &BuildArgs, global: &GlobalArgs, loaded: &Loaded) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let outputs = outputs(args, crate::context::arch(global)?)?;
    let disk_size = disk_size(args)?;
    let loader_choice = loader_choice(args, &outputs)?;
    let destination = destination(args);
    if args.json && destination == Destination::Stdout {
        anyhow::bail!(
            "--json prints the summary on standard output, where -o - would write the image; write the image to a file"
        );
    }
    if let Some(o) = outputs.iter().find(|o| o.needs_kernel())
        && kernel_image(loaded).is_none()
    {
        anyhow::bail!(
            "the {o} format needs a `kernel:` with an image; use --format tar for an image without one"
        );
    }

    let resolution = resolve::resolve_config(args, global, loaded, loader_choice.as_ref())?;
    let resolved_at = Instant::now();
    let store = resolution.store;
    let compression = match args.compress {
        Some(c) => c,
        None => default_compression(loaded, &resolution.entries, &store),
    };
    let loader = match &resolution.bootloader {
        Some((reference, image)) => Some(bootloader::read(reference, image, &store)?),
        None => None,
    };
    let image_names = MetadataNames {
        entries: &resolution.entries,
        sources: &loaded.sources,
    };
    let inputs = Inputs {
        images: resolution
            .entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    ImageInput {
                        name: e.reference.clone(),
                        resolved: e.image.clone(),
                        max_layer_size: global.max_layer_size,
                    },
                )
            })
            .collect(),
        decompress_kernel: args.decompress_kernel,
        source_dir: std::env::current_dir().context("finding the working directory")?,
        metadata_yaml: slipway_config::metadata::to_yaml(&loaded.config, &image_names),
        metadata_json: slipway_config::metadata::to_json(&loaded.config, &image_names),
        source_date_epoch: source_date_epoch()?,
    };
    let mut units = plan_units(&loaded.config, &inputs, &store)?;
    let sbom = insight::add_sbom(
        args,
        &output_name(args),
        &resolution.entries,
        &store,
        crate::context::arch(global)?.as_oci(),
        inputs.source_date_epoch,
        &mut units,
    )?;
    let planned_at = Instant::now();
    let unit_refs: Vec<&slipway_assemble::Unit> = units.iter().collect();
    if matches!(destination, Destination::Files(_)) {
        root_modules::check(
            &outputs,
            &unit_refs,
            &store,
            &kernel_reference(loaded, &resolution.entries),
        )?;
    }
    let cache = SegmentCache::in_store(store.root());

    let (files, reports) = match &destination {
        Destination::Stdout => {
            let docker = outputs.first() == Some(&Output::Docker);
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            let reports = write_tar(&unit_refs, &store, &cache, docker, &mut w)?;
            w.flush().context("writing to standard output")?;
            (Vec::new(), reports)
        }
        Destination::File(path) => {
            create_parent(path)?;
            let docker = outputs.first() == Some(&Output::Docker);
            let (file, reports) = write_tar_file(path, &unit_refs, &store, &cache, docker)?;
            (vec![file], reports)
        }
        Destination::Files(base) => {
            create_parent(base)?;
            let options = OutputOptions {
                compression,
                disk_size,
                bootloader: loader.as_ref(),
            };
            write_outputs(&outputs, &unit_refs, &store, &cache, &options, base)?
        }
    };
    let written_at = Instant::now();
    insight::finish(
        args,
        sbom.as_deref(),
        &insight::Built {
            name: &output_name(args),
            outputs: &outputs,
            compression: compression.name(),
            units: &unit_refs,
            blobs: &store,
            reports: &reports,
            files: &files,
            ucode: loaded
                .config
                .kernel
                .as_ref()
                .and_then(|k| k.value.ucode.as_ref())
                .is_some_and(|u| !u.value.is_empty()),
        },
    )?;

    if args.json {
        let summary = json_summary(args, &outputs, &resolution.lines, &reports, &files);
        crate::output::outln!("{}", serde_json::to_string_pretty(&summary)?)?;
    }
    if global.level() > 0 {
        for line in &resolution.lines {
            eprintln!("slipway: image {line}");
        }
        let cached = reports.iter().filter(|r| r.cached).count();
        eprintln!(
            "slipway: built {} ({}) in {}: resolve {}, plan {}, write {} ({} units, {} from the segment cache)",
            output_name(args),
            names(&outputs),
            secs(written_at - started),
            secs(resolved_at - started),
            secs(planned_at - resolved_at),
            secs(written_at - planned_at),
            reports.len(),
            cached
        );
        if global.level() > 1 {
            for r in &reports {
                eprintln!(
                    "slipway:   unit {}: {} in {} segment(s){}, {}",
                    r.title,
                    BinaryBytes(r.bytes),
                    r.segments,
                    if r.cached { " (cached)" } else { "" },
                    secs(r.time)
                );
            }
        }
        if destination == Destination::Stdout {
            eprintln!("slipway:   <standard output>");
        }
        for f in &files {
            eprintln!("slipway:   {} {}", f.path.display(), BinaryBytes(f.bytes));
        }
    }
    Ok(Outcome::Success)
}
