//! `slipway cache`: the image cache (an OCI layout shared with `linuxkit cache`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use slipway_oci::{ClientOptions, Mirror, Puller, RegistryClient, Store, cache_name};

use super::resolve::{PARALLEL_IMAGES, ProgressDisplay};
use slipway_reference::{Arch, Platform, Reference};

use crate::Outcome;
use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the cached images: name and root digest
    Ls {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Pull images into the cache (only the --arch platform of an index)
    Pull {
        #[arg(required = true, value_name = "REF")]
        refs: Vec<String>,
    },
    /// Push a cached image to its registry, or to --remote-name
    Push {
        #[arg(value_name = "REF")]
        reference: String,
        /// Push under this name instead
        #[arg(long, value_name = "REF")]
        remote_name: Option<String>,
    },
    /// Remove images from the cache's index (their blobs stay until `clean`)
    Rm {
        #[arg(required = true, value_name = "REF")]
        refs: Vec<String>,
    },
    /// Add the images of an OCI image layout tar or a `docker save` tar (`-`: standard input)
    Import {
        #[arg(value_name = "FILE")]
        file: String,
    },
    /// Write a cached image as a tar: an OCI image layout, or for `docker load`
    Export {
        #[arg(value_name = "REF")]
        reference: String,
        /// Where to write the tar; `-` for standard output
        #[arg(
            short = 'o',
            long = "output",
            visible_alias = "outfile",
            value_name = "FILE"
        )]
        output: String,
        /// `oci` (an OCI image layout) or `docker` (for `docker load`, one platform)
        #[arg(long, value_name = "FORMAT", default_value = "oci")]
        format: ExportFormatArg,
        /// Export only this platform (os/arch[/variant]) [docker format: default --arch]
        #[arg(long, value_name = "PLATFORM")]
        platform: Option<String>,
    },
    /// Remove blobs no cached image uses, stale temporary files and cached
    /// segments; with --all, every image
    Clean {
        /// Empty the cache completely
        #[arg(long)]
        all: bool,
    },
    /// Re-hash every blob; delete the corrupt ones and report damaged images
    /// (exit status 1 if anything was wrong)
    Verify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormatArg {
    Oci,
    Docker,
    /// The image's layers flattened into one tar of its filesystem
    Filesystem,
}

/// `--cache`, else `$XDG_CACHE_HOME/slipway`, else `~/.cache/slipway`.
pub fn cache_dir(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &global.cache {
        return Ok(dir.clone());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("cannot place the cache: set --cache, SLIPWAY_CACHE, XDG_CACHE_HOME or HOME")?;
    Ok(base.join("slipway"))
}

/// The platform to fetch: linux and `--arch`, else the host's architecture.
pub(crate) fn platform(global: &GlobalArgs) -> anyhow::Result<Platform> {
    let arch = match &global.arch {
        Some(a) => Arch::parse(a)?,
        None => Arch::host().context("the host architecture is not supported; pass --arch")?,
    };
    Ok(Platform::linux(arch))
}

fn parse_ref(text: &str) -> anyhow::Result<Reference> {
    Ok(cache_name(&Reference::parse(text)?))
}

/// Registry client options from the global flags: `--insecure-registry`,
/// `--mirror` (and `LINUXKIT_MIRROR`, whose value may list several,
/// separated by commas or spaces), `--cert-file`.
pub(crate) fn client_options(global: &GlobalArgs) -> anyhow::Result<ClientOptions> {
    let mut mirrors = Vec::new();
    for value in &global.mirror {
        for text in value
            .split([',', ' ', '\n'])
            .filter(|t| !t.trim().is_empty())
        {
            mirrors.push(Mirror::parse(text)?);
        }
    }
    let mut extra_roots_pem = Vec::new();
    if let Some(path) = &global.cert_file {
        extra_roots_pem.push(
            std::fs::read(path)
                .with_context(|| format!("cannot read --cert-file {}", path.display()))?,
        );
    }
    Ok(ClientOptions {
        insecure_registries: global.insecure_registry.clone(),
        mirrors,
        extra_roots_pem,
        ..ClientOptions::default()
    })
}

pub(crate) fn client(global: &GlobalArgs) -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::new(client_options(global)?)?)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn run(args: &CacheArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let store = Store::open(cache_dir(global)?)?;
    match &args.command {
        CacheCommand::Ls { json } => {
            let refs = store.refs()?;
            if *json {
                let list: Vec<serde_json::Value> = refs
                    .iter()
                    .map(|(name, d)| serde_json::json!({"name": name, "digest": d.digest.to_string(), "mediaType": d.media_type}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let width = refs.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
                println!("{:<width$}  DIGEST", "IMAGE");
                for (name, d) in &refs {
                    println!("{name:<width$}  {}", d.digest);
                }
            }
        }
        CacheCommand::Pull { refs } => {
            let platform = platform(global)?;
            let client = client(global)?;
            let progress = ProgressDisplay::new(global);
            let puller = Puller::new(&store, &client).with_progress(&progress);
            let references = refs
                .iter()
                .map(|r| parse_ref(r))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let rt = runtime()?;
            // All at once (bounded), like a build's images; results in the order given.
            let results = rt.block_on(async {
                futures_util::stream::iter(
                    references
                        .iter()
                        .map(|r| puller.pull(r, std::slice::from_ref(&platform))),
                )
                .buffered(PARALLEL_IMAGES)
                .collect::<Vec<_>>()
                .await
            });
            progress.clear();
            let mut outcome = Outcome::Success;
            for result in results {
                match result {
                    Ok(images) => {
                        for image in images {
                            println!("{} {}", image.reference, image.digest());
                        }
                    }
                    Err(e) => {
                        eprintln!("slipway: error: {}", super::resolve::chain(&e));
                        outcome = Outcome::Failure;
                    }
                }
            }
            return Ok(outcome);
        }
        CacheCommand::Push {
            reference,
            remote_name,
        } => {
            let source = parse_ref(reference)?;
            let target = match remote_name {
                Some(name) => parse_ref(name)?,
                None => source.clone(),
            };
            let client = client(global)?;
            let report =
                runtime()?.block_on(slipway_oci::push(&store, &client, &source, &target))?;
            if let Some(original) = &report.reduced_from {
                eprintln!(
                    "slipway: warning: {source}: the cache lacks {}; pushed an index of the platforms present ({}), not the original {original}",
                    report.absent_platforms.join(", "),
                    report.digest
                );
            }
            println!("{target} {}", report.digest);
        }
        CacheCommand::Rm { refs } => {
            let mut outcome = Outcome::Success;
            for text in refs {
                let name = parse_ref(text)?.to_string();
                if !store.remove_ref(&name)? {
                    eprintln!("slipway: error: {name} is not in the cache");
                    outcome = Outcome::Failure;
                }
            }
            return Ok(outcome);
        }
        CacheCommand::Import { file } => import(&store, file)?,
        CacheCommand::Export {
            reference,
            output,
            format,
            platform,
        } => export(
            &store,
            global,
            reference,
            output,
            *format,
            platform.as_deref(),
        )?,
        CacheCommand::Clean { all } => clean(&store, *all)?,
        CacheCommand::Verify => return verify(&store),
    }
    Ok(Outcome::Success)
}

fn import(store: &Store, file: &str) -> anyhow::Result<()> {
    let report = if file == "-" {
        slipway_oci::import(store, std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
        slipway_oci::import(store, std::io::BufReader::with_capacity(1 << 20, f))
    }
    .with_context(|| format!("importing {file}"))?;
    if report.images.is_empty() {
        eprintln!("slipway: warning: {file} holds no image");
    }
    for (name, d) in &report.images {
        println!("{name} {}", d.digest);
    }
    Ok(())
}

fn export(
    store: &Store,
    global: &GlobalArgs,
    reference: &str,
    output: &str,
    format: ExportFormatArg,
    platform_arg: Option<&str>,
) -> anyhow::Result<()> {
    let reference = parse_ref(reference)?;
    let format = match format {
        ExportFormatArg::Oci => slipway_oci::ExportFormat::Oci,
        ExportFormatArg::Docker => slipway_oci::ExportFormat::Docker,
        ExportFormatArg::Filesystem => {
            return export_filesystem(store, global, &reference, output, platform_arg);
        }
    };
    let platform = match platform_arg {
        Some(p) => Some(Platform::parse(p)?),
        // One platform is all a docker archive can hold: the one built for.
        None if format == slipway_oci::ExportFormat::Docker => Some(platform(global)?),
        None => None,
    };
    let report = if output == "-" {
        let stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let (mut w, report) =
            slipway_oci::export(store, &reference, platform.as_ref(), format, stdout)?;
        std::io::Write::flush(&mut w).context("writing to standard output")?;
        report
    } else {
        // Written beside the target and renamed when complete: never half a file.
        let path = std::path::Path::new(output);
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".slipway-export-")
            // 0666 less the umask, like any file a tool writes.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let writer = std::io::BufWriter::with_capacity(1 << 20, temp);
        let (writer, report) =
            slipway_oci::export(store, &reference, platform.as_ref(), format, writer)?;
        let temp = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {output}"))?;
        temp.persist(path)
            .with_context(|| format!("cannot write {output}"))?;
        report
    };
    if let Some(original) = &report.reduced_from {
        eprintln!(
            "slipway: warning: {reference}: the cache lacks {}; exported an index of the platforms present ({}), not the original {original}",
            report.absent_platforms.join(", "),
            report.root.digest
        );
    }
    eprintln!("slipway: exported {reference} {}", report.root.digest);
    Ok(())
}

/// `cache export --format filesystem`: one platform's layers flattened.
fn export_filesystem(
    store: &Store,
    global: &GlobalArgs,
    reference: &Reference,
    output: &str,
    platform_arg: Option<&str>,
) -> anyhow::Result<()> {
    let platform = match platform_arg {
        Some(p) => Platform::parse(p)?,
        None => platform(global)?,
    };
    let resolved = store
        .resolve(reference, &platform)
        .with_context(|| format!("{reference} for {platform}"))?;
    let image = slipway_assemble::ImageInput {
        name: reference.to_string(),
        resolved,
    };
    // Composed here: the cache reads the image, assemble flattens it,
    // formats writes the tar.
    let write = |w: &mut dyn std::io::Write| {
        slipway_formats::write_entries_tar(w, |sink| image.write_filesystem(store, sink))
    };
    if output == "-" {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        write(&mut w)?;
        std::io::Write::flush(&mut w).context("writing to standard output")?;
    } else {
        slipway_formats::write_file(std::path::Path::new(output), write)?;
    }
    eprintln!(
        "slipway: exported the filesystem of {reference} {}",
        image.resolved.manifest_descriptor.digest
    );
    Ok(())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn clean(store: &Store, all: bool) -> anyhow::Result<()> {
    let report = match store.try_clean(all)? {
        Some(report) => report,
        None => {
            eprintln!("slipway: waiting for the pulls and imports using the cache to finish");
            store.clean(all)?
        }
    };
    for name in &report.removed_refs {
        println!("removed image {name}");
    }
    for digest in &report.removed_blobs {
        println!("removed blob {digest}");
    }
    for path in &report.removed_temp_files {
        println!("removed temporary file {}", path.display());
    }
    if report.removed_segments > 0 {
        println!("removed {} cached segments", report.removed_segments);
    }
    eprintln!(
        "slipway: freed {} ({} blobs, {} temporary files, {} segments)",
        human(report.freed_bytes),
        report.removed_blobs.len(),
        report.removed_temp_files.len(),
        report.removed_segments
    );
    Ok(())
}

fn verify(store: &Store) -> anyhow::Result<Outcome> {
    let report = store.verify()?;
    for digest in &report.corrupt {
        println!("corrupt blob {digest}: deleted");
    }
    for name in &report.dropped_refs {
        println!("image {name}: its manifest is gone; removed from the cache");
    }
    for damaged in &report.incomplete {
        let missing: Vec<String> = damaged.missing.iter().map(ToString::to_string).collect();
        println!(
            "image {}: missing {} (pull it again)",
            damaged.name,
            missing.join(", ")
        );
    }
    for (name, absent) in &report.partial {
        println!("image {name}: platforms not cached: {}", absent.join(", "));
    }
    eprintln!(
        "slipway: checked {} blobs ({})",
        report.checked,
        human(report.checked_bytes)
    );
    Ok(if report.is_sound() {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}
