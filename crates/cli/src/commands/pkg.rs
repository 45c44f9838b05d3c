//! `slipway pkg`: build package directories into the cache, without Docker.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use slipway_oci::{ClientOptions, RegistryClient, Store};
use slipway_pkg::{BuildOptions, PkgError};
use slipway_reference::Arch;

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::commands::cache::cache_dir;

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
        #[arg(long = "platforms", value_delimiter = ',', value_name = "ARCH")]
        platforms: Vec<String>,
        /// Push the built image to its registry through the cache
        #[arg(long)]
        push: bool,
        /// Where downloaded .debs are kept [default: $XDG_CACHE_HOME/slipway/debs]
        #[arg(long, env = "SLIPWAY_DEBS_CACHE", value_name = "DIR")]
        debs_cache: Option<PathBuf>,
    },
    /// Print the image reference a package builds (its tag is a hash of its inputs)
    ShowTag {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

fn render(err: PkgError) -> anyhow::Error {
    anyhow::anyhow!("{err}")
}

pub fn run(args: &PkgArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    match &args.command {
        PkgCommand::ShowTag { dir } => {
            let reference = slipway_pkg::show_tag(dir).map_err(render)?;
            println!("{reference}");
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
        } => {
            let store = Store::open(cache_dir(global)?)?;
            let mut arches = Vec::new();
            for p in platforms {
                arches.push(Arch::parse(p.trim_start_matches("linux/"))?);
            }
            if arches.is_empty()
                && let Some(a) = &global.arch
            {
                arches.push(Arch::parse(a)?);
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
            for dir in dirs {
                let built = slipway_pkg::build(dir, &store, &opts)
                    .map_err(render)
                    .with_context(|| format!("building package {}", dir.display()))?;
                for w in &built.warnings {
                    crate::report::warn(&format!("{}: {w}", dir.display()));
                }
                if built.cached {
                    eprintln!("slipway: {} is up to date in the cache", built.reference);
                }
                println!("{} {}", built.reference, built.index.digest);
                if *push {
                    let client = RegistryClient::new(ClientOptions {
                        insecure_registries: global.insecure_registry.clone(),
                        ..ClientOptions::default()
                    })?;
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()?;
                    let report = rt.block_on(slipway_oci::push(
                        &store,
                        &client,
                        &built.reference,
                        &built.reference,
                    ))?;
                    eprintln!("slipway: pushed {} {}", built.reference, report.digest);
                }
            }
            Ok(Outcome::Success)
        }
    }
}
