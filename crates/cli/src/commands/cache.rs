//! `slipway cache`: the image cache (an OCI layout shared with `linuxkit cache`).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use indicatif::BinaryBytes;
use slipway_oci::{Puller, Store, cache_name};
use slipway_reference::{Platform, Reference};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::context::{PARALLEL_IMAGES, cache_dir, client, platform, runtime};
use crate::output::outln;
use crate::progress::ProgressDisplay;
use crate::report::chain;

/// The scratch name of an export being written beside its file.
const EXPORT_SCRATCH: &str = ".slipway-export-";

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
        /// Print the images pulled (and the references that failed) as JSON
        #[arg(long)]
        json: bool,
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
        /// Print the images imported as JSON
        #[arg(long)]
        json: bool,
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
        platform: Option<Platform>,
    },
    /// Remove blobs no cached image uses, stale temporary files and cached
    /// segments; with --all, every image
    Clean {
        /// Empty the cache completely
        #[arg(long)]
        all: bool,
        /// Print what was removed as JSON
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every blob; delete the corrupt ones and report damaged images
    /// (exit status 1 if anything was wrong)
    Verify {
        /// Print every image's state, the corrupt blobs and a summary as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormatArg {
    Oci,
    Docker,
    /// The image's layers flattened into one tar of its filesystem
    Filesystem,
}

fn parse_ref(text: &str) -> anyhow::Result<Reference> {
    Ok(cache_name(&Reference::parse(text)?))
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
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                let width = refs.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
                outln!("{:<width$}  DIGEST", "IMAGE")?;
                for (name, d) in &refs {
                    outln!("{name:<width$}  {}", d.digest)?;
                }
            }
        }
        CacheCommand::Pull { refs, json } => {
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
            let mut pulled = Vec::new();
            let mut failed = Vec::new();
            for (reference, result) in references.iter().zip(results) {
                match result {
                    Ok(images) => {
                        for image in images {
                            if *json {
                                pulled.push(serde_json::json!({
                                    "reference": image.reference.to_string(),
                                    "digest": image.digest().to_string(),
                                }));
                            } else {
                                outln!("{} {}", image.reference, image.digest())?;
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("slipway: error: {}", chain(&e));
                        failed.push(serde_json::json!({
                            "reference": reference.to_string(),
                            "error": chain(&e),
                        }));
                        outcome = Outcome::Failure;
                    }
                }
            }
            if *json {
                let doc = serde_json::json!({ "pulled": pulled, "failed": failed });
                outln!("{}", serde_json::to_string_pretty(&doc)?)?;
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
            outln!("{target} {}", report.digest)?;
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
        CacheCommand::Import { file, json } => import(&store, file, *json)?,
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
            platform.as_ref(),
        )?,
        CacheCommand::Clean { all, json } => clean(&store, *all, *json)?,
        CacheCommand::Verify { json } => return verify(&store, *json),
    }
    Ok(Outcome::Success)
}

fn import(store: &Store, file: &str, json: bool) -> anyhow::Result<()> {
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
    if json {
        let images: Vec<serde_json::Value> = report
            .images
            .iter()
            .map(|(name, d)| serde_json::json!({ "name": name, "digest": d.digest.to_string() }))
            .collect();
        let doc = serde_json::json!({ "imported": images });
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    for (name, d) in &report.images {
        outln!("{name} {}", d.digest)?;
    }
    Ok(())
}

fn export(
    store: &Store,
    global: &GlobalArgs,
    reference: &str,
    output: &str,
    format: ExportFormatArg,
    platform_arg: Option<&Platform>,
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
        Some(p) => Some(p.clone()),
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
        // 0666 less the umask, like any file a tool writes; what a killed
        // export left beside it goes first.
        let temp = slipway_scratch::file_in(dir, EXPORT_SCRATCH, Some(0o666))
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let writer = std::io::BufWriter::with_capacity(1 << 20, temp);
        let (writer, report) =
            slipway_oci::export(store, &reference, platform.as_ref(), format, writer)?;
        let temp = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {output}"))?;
        // On disk before it has its name: a power cut leaves the old file.
        temp.as_file()
            .sync_all()
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
    platform_arg: Option<&Platform>,
) -> anyhow::Result<()> {
    let platform = match platform_arg {
        Some(p) => p.clone(),
        None => platform(global)?,
    };
    let resolved = store
        .resolve(reference, &platform)
        .with_context(|| format!("{reference} for {platform}"))?;
    let image = slipway_assemble::ImageInput {
        name: reference.to_string(),
        resolved,
        max_layer_size: global.max_layer_size,
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

fn clean(store: &Store, all: bool, json: bool) -> anyhow::Result<()> {
    let report = match store.try_clean(all)? {
        Some(report) => report,
        None => {
            eprintln!("slipway: waiting for the pulls and imports using the cache to finish");
            store.clean(all)?
        }
    };
    if json {
        let blobs: Vec<String> = report
            .removed_blobs
            .iter()
            .map(ToString::to_string)
            .collect();
        let temp: Vec<String> = report
            .removed_temp_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let doc = serde_json::json!({
            "removedImages": report.removed_refs,
            "removedBlobs": blobs,
            "removedTempFiles": temp,
            "removedSegments": report.removed_segments,
            "freedBytes": report.freed_bytes,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    for name in &report.removed_refs {
        outln!("removed image {name}")?;
    }
    for digest in &report.removed_blobs {
        outln!("removed blob {digest}")?;
    }
    for path in &report.removed_temp_files {
        outln!("removed temporary file {}", path.display())?;
    }
    if report.removed_segments > 0 {
        outln!("removed {} cached segments", report.removed_segments)?;
    }
    eprintln!(
        "slipway: freed {} ({} blobs, {} temporary files, {} segments)",
        BinaryBytes(report.freed_bytes),
        report.removed_blobs.len(),
        report.removed_temp_files.len(),
        report.removed_segments
    );
    Ok(())
}

fn verify(store: &Store, json: bool) -> anyhow::Result<Outcome> {
    let report = store.verify()?;
    let outcome = if report.is_sound() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    if json {
        let doc = verify_json(&report, &store.refs()?);
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(outcome);
    }
    for digest in &report.corrupt {
        outln!("corrupt blob {digest}: deleted")?;
    }
    for name in &report.dropped_refs {
        outln!("image {name}: its manifest is gone; removed from the cache")?;
    }
    for damaged in &report.incomplete {
        let missing: Vec<String> = damaged.missing.iter().map(ToString::to_string).collect();
        outln!(
            "image {}: missing {} (pull it again)",
            damaged.name,
            missing.join(", ")
        )?;
    }
    for (name, absent) in &report.partial {
        outln!("image {name}: platforms not cached: {}", absent.join(", "))?;
    }
    eprintln!(
        "slipway: checked {} blobs ({})",
        report.checked,
        BinaryBytes(report.checked_bytes)
    );
    Ok(outcome)
}

/// `cache verify --json`: every image named in the cache with its state
/// (`ok`, `incomplete` with the blobs it lacks, `partial` with the platforms
/// not cached, `removed` when its manifest was gone), the corrupt blobs
/// (deleted) and the totals.
fn verify_json(
    report: &slipway_oci::VerifyReport,
    refs: &[(String, slipway_oci::Descriptor)],
) -> serde_json::Value {
    let mut images: Vec<serde_json::Value> = refs
        .iter()
        .map(|(name, d)| {
            let mut image = serde_json::json!({
                "name": name,
                "digest": d.digest.to_string(),
                "status": "ok",
            });
            if let Some(damaged) = report.incomplete.iter().find(|x| &x.name == name) {
                image["status"] = "incomplete".into();
                image["missing"] = damaged
                    .missing
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .into();
            } else if let Some((_, absent)) = report.partial.iter().find(|(n, _)| n == name) {
                image["status"] = "partial".into();
                image["absentPlatforms"] = absent.clone().into();
            }
            image
        })
        .collect();
    images.extend(
        report
            .dropped_refs
            .iter()
            .map(|name| serde_json::json!({ "name": name, "status": "removed" })),
    );
    let corrupt: Vec<String> = report.corrupt.iter().map(ToString::to_string).collect();
    serde_json::json!({
        "images": images,
        "corruptBlobs": corrupt,
        "checkedBlobs": report.checked,
        "checkedBytes": report.checked_bytes,
        "sound": report.is_sound(),
    })
}
