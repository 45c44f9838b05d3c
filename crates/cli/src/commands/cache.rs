//! `slipway cache`: the image cache (an OCI layout shared with `linuxkit cache`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use slipway_oci::{ClientOptions, Puller, RegistryClient, Store, cache_name};
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
        /// Registry reached over plain HTTP (loopback registries always are)
        #[arg(long = "insecure-registry", value_name = "HOST")]
        insecure: Vec<String>,
    },
    /// Push a cached image to its registry, or to --remote-name
    Push {
        #[arg(value_name = "REF")]
        reference: String,
        /// Push under this name instead
        #[arg(long, value_name = "REF")]
        remote_name: Option<String>,
        /// Registry reached over plain HTTP (loopback registries always are)
        #[arg(long = "insecure-registry", value_name = "HOST")]
        insecure: Vec<String>,
    },
    /// Remove images from the cache's index (their blobs stay until `clean`)
    Rm {
        #[arg(required = true, value_name = "REF")]
        refs: Vec<String>,
    },
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

fn platform(global: &GlobalArgs) -> anyhow::Result<Platform> {
    let arch = match &global.arch {
        Some(a) => Arch::parse(a)?,
        None => Arch::host().context("the host architecture is not supported; pass --arch")?,
    };
    Ok(Platform::linux(arch))
}

fn parse_ref(text: &str) -> anyhow::Result<Reference> {
    Ok(cache_name(&Reference::parse(text)?))
}

fn client(insecure: &[String]) -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::new(ClientOptions {
        insecure_registries: insecure.to_vec(),
        ..ClientOptions::default()
    })?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
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
        CacheCommand::Pull { refs, insecure } => {
            let platform = platform(global)?;
            let client = client(insecure)?;
            let puller = Puller::new(&store, &client);
            let rt = runtime()?;
            for text in refs {
                let reference = parse_ref(text)?;
                let images =
                    rt.block_on(puller.pull(&reference, std::slice::from_ref(&platform)))?;
                for image in images {
                    println!("{} {}", image.reference, image.digest());
                }
            }
        }
        CacheCommand::Push {
            reference,
            remote_name,
            insecure,
        } => {
            let source = parse_ref(reference)?;
            let target = match remote_name {
                Some(name) => parse_ref(name)?,
                None => source.clone(),
            };
            let client = client(insecure)?;
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
    }
    Ok(Outcome::Success)
}
