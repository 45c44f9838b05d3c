//! `slipway pkg`: build package directories into the cache, without Docker.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use slipway_oci::Store;
use slipway_pkg::def::BUILD_YML;
use slipway_pkg::{BuildOptions, PkgError};
use slipway_reference::{Arch, Reference};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::context::{arch, cache_dir, client, runtime};
use crate::output::outln;

#[derive(Debug, Args)]
pub struct PkgArgs {
    #[command(subcommand)]
    pub command: PkgCommand,
}

#[derive(Debug, Subcommand)]
pub enum PkgCommand {
    /// Build packages (directories with a build.yml) into the cache
    Build {
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Re-resolve every Debian package from the current mirror and rewrite debs.lock
        #[arg(long, conflicts_with = "locked")]
        update_lock: bool,
        /// Fail rather than change debs.lock
        #[arg(long)]
        locked: bool,
        /// Build even if the cache has the image
        #[arg(long)]
        force: bool,
        /// Architectures to build, comma-separated [default: build.yml's, else the host's]
        #[arg(long = "platforms", value_delimiter = ',', value_name = "ARCH",
              value_parser = platform_arch)]
        platforms: Vec<Arch>,
        /// Push the built image through the cache: to its own name, or with
        /// `--push=REGISTRY/REPO[:TAG]` there (under the package's tag unless TAG is given)
        #[arg(long, value_name = "REPO", num_args = 0..=1, require_equals = true, default_missing_value = "")]
        push: Option<String>,
        /// Where downloaded .debs are kept [default: $XDG_CACHE_HOME/slipway/debs]
        #[arg(long, env = "SLIPWAY_DEBS_CACHE", value_name = "DIR")]
        debs_cache: Option<PathBuf>,
        /// Print the packages built as JSON: each image's reference, digest,
        /// platforms, and whether it was built or already cached
        #[arg(long)]
        json: bool,
    },
    /// Print the image reference a package builds for --arch (its tag is a hash of its inputs)
    ShowTag {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Print the reference, its parts and the architecture as JSON
        #[arg(long)]
        json: bool,
    },
}

/// `--platforms`: an architecture, or `linux/ARCH`.
fn platform_arch(text: &str) -> Result<Arch, slipway_reference::PlatformError> {
    text.trim_start_matches("linux/").parse()
}

/// A `build.yml` with problems is shown as a config is, each problem with
/// its snippet; other errors as their message.
fn render(err: PkgError) -> anyhow::Error {
    if let PkgError::Definition {
        count,
        sources,
        diagnostics,
        ..
    } = &err
    {
        crate::report::report_diagnostics(sources, diagnostics);
        return anyhow::anyhow!(
            "{BUILD_YML} has {count} error{}",
            if *count == 1 { "" } else { "s" }
        );
    }
    anyhow::Error::new(err)
}

pub fn run(args: &PkgArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    match &args.command {
        PkgCommand::ShowTag { dir, json } => {
            let arch = arch(global)?;
            let reference = slipway_pkg::show_tag(dir, arch).map_err(render)?;
            if *json {
                let doc = serde_json::json!({
                    "package": dir.display().to_string(),
                    "reference": reference.to_string(),
                    "repository": format!("{}/{}", reference.domain(), reference.repository()),
                    "tag": reference.tag(),
                    "platform": format!("linux/{}", arch.as_oci()),
                });
                outln!("{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                outln!("{reference}")?;
            }
            if let Some(epoch) = slipway_pkg::tag::epoch_in_tags()
                && global.level() > 0
            {
                // Standard output stays the tag alone, for scripts.
                eprintln!(
                    "slipway: note: this tag includes SOURCE_DATE_EPOCH={epoch:?}; without it, or with another value, the tag differs"
                );
            }
            Ok(Outcome::Success)
        }
        PkgCommand::Build {
            dirs,
            update_lock,
            locked,
            force,
            platforms,
            push,
            debs_cache,
            json,
        } => {
            let targets = push_targets(push.as_deref(), dirs.len())?;
            let store = Store::open(cache_dir(global)?)?;
            let mut arches = platforms.clone();
            if arches.is_empty()
                && let Some(a) = global.arch
            {
                arches.push(a);
            }
            let mut opts = BuildOptions {
                update_lock: *update_lock,
                locked: *locked,
                force: *force,
                arches: (!arches.is_empty()).then_some(arches),
                ..BuildOptions::default()
            };
            if let Some(d) = debs_cache {
                opts.debs_cache = d.clone();
            }
            let mut listed = Vec::new();
            for dir in dirs {
                let built = slipway_pkg::build(dir, &store, &opts)
                    .map_err(render)
                    .with_context(|| format!("building package {}", dir.display()))?;
                for w in &built.warnings {
                    crate::report::warn(&format!("{}: {w}", dir.display()));
                }
                for image in &built.images {
                    if image.cached {
                        eprintln!("slipway: {} is up to date in the cache", image.reference);
                    }
                    if *json {
                        listed.push(built_json(dir, image));
                    } else {
                        outln!("{} {}", image.reference, image.index.digest)?;
                    }
                }
                if let Some(target) = &targets {
                    for image in &built.images {
                        let target = target.for_package(&image.reference)?;
                        let client = client(global)?;
                        let report = runtime()?.block_on(slipway_oci::push(
                            &store,
                            &client,
                            &image.reference,
                            &target,
                        ))?;
                        eprintln!("slipway: pushed {target} {}", report.digest);
                    }
                }
            }
            if *json {
                let doc = serde_json::json!({ "images": listed });
                outln!("{}", serde_json::to_string_pretty(&doc)?)?;
            }
            Ok(Outcome::Success)
        }
    }
}

/// One image of `pkg build --json`.
fn built_json(dir: &std::path::Path, image: &slipway_pkg::BuiltImage) -> serde_json::Value {
    let platforms: Vec<String> = image
        .arches
        .iter()
        .map(|a| format!("linux/{}", a.as_oci()))
        .collect();
    serde_json::json!({
        "package": dir.display().to_string(),
        "reference": image.reference.to_string(),
        "digest": image.index.digest.to_string(),
        "platforms": platforms,
        "cached": image.cached,
    })
}

/// Where `--push` sends the built images.
enum PushTarget {
    /// Each image to its own name.
    Own,
    /// `REGISTRY/REPO`, under each package's tag, or with its own tag.
    To(Reference),
}

/// `--push` (empty: each image's own name) or `--push=REGISTRY/REPO[:TAG]`.
fn push_targets(push: Option<&str>, packages: usize) -> anyhow::Result<Option<PushTarget>> {
    let Some(text) = push else { return Ok(None) };
    if text.is_empty() {
        return Ok(Some(PushTarget::Own));
    }
    let target = Reference::parse(text).with_context(|| format!("--push={text}"))?;
    if target.digest().is_some() {
        anyhow::bail!("--push={text}: push to a repository or a tag, not a digest");
    }
    if target.tag().is_some() && packages > 1 {
        anyhow::bail!(
            "--push={text} names one tag for {packages} packages; leave the tag out to push each under its own"
        );
    }
    Ok(Some(PushTarget::To(target)))
}

impl PushTarget {
    fn for_package(&self, built: &Reference) -> anyhow::Result<Reference> {
        Ok(match self {
            PushTarget::Own => built.clone(),
            PushTarget::To(to) if to.tag().is_some() => to.clone(),
            PushTarget::To(to) => to.with_tag(built.tag().unwrap_or("latest"))?,
        })
    }
}
