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
use slipway_formats::{
    Compression, Output, RequestedFormat, SegmentCache, write_outputs, write_tar, write_tar_file,
};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::config_input::{ConfigFiles, load_config};
use crate::report::warn;

mod resolve;

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

    /// Compression of the initrd: gzip (default), zstd or none
    #[arg(long, value_name = "ALGORITHM")]
    pub compress: Option<Compression>,

    /// Disk size for disk formats, e.g. 1024M or 4G
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,

    /// Do not write an SBOM
    #[arg(long)]
    pub no_sbom: bool,

    /// Where to write the SBOM inside the image
    #[arg(long, value_name = "PATH")]
    pub sbom_output: Option<String>,

    /// Use the current time in the SBOM (LinuxKit flag)
    #[arg(long, hide = true)]
    pub sbom_current_time: bool,

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
        if self.sbom_output.is_some() || self.sbom_current_time {
            warn("SBOMs are not written yet: --sbom-output and --sbom-current-time have no effect");
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
/// this version, `tar`/`docker` alone (they are the whole image in one
/// stream), and `-o` only with one of them.
fn outputs(args: &BuildArgs) -> anyhow::Result<Vec<Output>> {
    let mut out: Vec<Output> = Vec::new();
    for requested in &args.format {
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
    Ok(out)
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
            None => crate::local_checks::io_reason(&err),
        };
        anyhow::bail!(
            "cannot create the output directory {}: {reason}",
            dir.display()
        );
    }
    Ok(())
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
        return resolve::print_resolved(args, global, &loaded);
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

/// Resolves, plans, writes; then the summary on standard error.
fn build(args: &BuildArgs, global: &GlobalArgs, loaded: &Loaded) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let outputs = outputs(args)?;
    let compression = args.compress.unwrap_or(Compression::Gzip);
    let destination = destination(args);
    if let Some(o) = outputs.iter().find(|o| o.needs_kernel())
        && loaded
            .config
            .kernel
            .as_ref()
            .and_then(|k| k.value.image.as_ref())
            .is_none()
    {
        anyhow::bail!(
            "the {o} format needs a `kernel:` with an image; use --format tar for an image without one"
        );
    }

    let resolution = resolve::resolve_config(args, global, loaded)?;
    let resolved_at = Instant::now();
    let store = resolution.store;
    let to_out = slipway_config::print::ToOut::to_out(&loaded.config);
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
                    },
                )
            })
            .collect(),
        decompress_kernel: args.decompress_kernel,
        source_dir: std::env::current_dir().context("finding the working directory")?,
        metadata_yaml: slipway_config::print::to_yaml(&to_out),
        metadata_json: serde_json::to_string(&to_out)
            .context("writing the configuration as JSON")?,
        source_date_epoch: source_date_epoch()?,
    };
    let units = plan_units(&loaded.config, &inputs, &store)?;
    let planned_at = Instant::now();
    let unit_refs: Vec<&slipway_assemble::Unit> = units.iter().collect();
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
            write_outputs(&outputs, &unit_refs, &store, &cache, compression, base)?
        }
    };
    let written_at = Instant::now();

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
