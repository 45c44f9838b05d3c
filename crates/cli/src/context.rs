//! What commands take from the global options: the cache directory, the
//! architecture and platform to build for, a registry client and the async
//! runtime it runs on.

use std::path::PathBuf;

use anyhow::Context as _;
use slipway_oci::{ClientOptions, Mirror, RegistryClient};
use slipway_reference::{Arch, Platform};

use crate::cli::GlobalArgs;

/// Images fetched at once (each with its own blobs in parallel too).
pub const PARALLEL_IMAGES: usize = 4;

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

/// `--arch`, else the host's architecture.
pub fn arch(global: &GlobalArgs) -> anyhow::Result<Arch> {
    match global.arch {
        Some(a) => Ok(a),
        None => Arch::host().context("the host architecture is not supported; pass --arch"),
    }
}

/// The platform to fetch: linux and [`arch`].
pub fn platform(global: &GlobalArgs) -> anyhow::Result<Platform> {
    Ok(Platform::linux(arch(global)?))
}

/// Registry client options from the global flags: `--insecure-registry`,
/// `--mirror` (and `LINUXKIT_MIRROR`, whose value may list several,
/// separated by commas or spaces), `--cert-file`.
fn client_options(global: &GlobalArgs) -> anyhow::Result<ClientOptions> {
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

/// A registry client set up from the global flags.
pub fn client(global: &GlobalArgs) -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::new(client_options(global)?)?)
}

/// The runtime registry calls run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
