//! Reading configuration files (or standard input) and reporting on them.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use slipway_config::{Input, LoadError, Loaded};

use crate::cli::GlobalArgs;
use crate::context;
use crate::local_checks;
use crate::report::report_diagnostics;

#[derive(Debug, Args)]
pub struct ConfigFiles {
    /// Configuration files, merged in order; `-` reads standard input, an
    /// `http://` or `https://` URL is downloaded
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
}

/// Whether a command-line argument names a configuration by URL.
pub fn is_url(arg: &str) -> bool {
    arg.starts_with("http://") || arg.starts_with("https://")
}

/// Downloads a configuration named by URL, with the registries' TLS
/// options (`--cert-file`) and the files' size limit. Its `files[].source`
/// paths stay relative to the working directory, as LinuxKit's do.
fn fetch_input(url: &str, global: &GlobalArgs) -> anyhow::Result<Input> {
    let client = context::client(global)?;
    let limit = slipway_config::yaml::MAX_FILE_BYTES as u64;
    // A small runtime of its own: nothing else runs while configurations load.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bytes = runtime.block_on(client.download(url, limit))?;
    Ok(Input {
        name: url.to_string(),
        base_dir: std::env::current_dir().context("finding the working directory")?,
        bytes,
    })
}

fn read_input(arg: &str, global: &GlobalArgs) -> anyhow::Result<Input> {
    if is_url(arg) {
        return fetch_input(arg, global);
    }
    if arg == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the configuration from standard input")?;
        let cwd = std::env::current_dir().context("finding the working directory")?;
        return Ok(Input {
            name: "<stdin>".into(),
            base_dir: cwd,
            bytes,
        });
    }
    let path = Path::new(arg);
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {arg}"))?;
    if meta.is_dir() {
        anyhow::bail!("{arg} is a directory, not a configuration file");
    }
    let limit = slipway_config::yaml::MAX_FILE_BYTES as u64;
    if meta.len() > limit {
        anyhow::bail!(
            "{arg} is {} bytes; configuration files are limited to {limit} bytes",
            meta.len()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {arg}"))?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Input {
        name: arg.to_string(),
        base_dir,
        bytes,
    })
}

/// Load and validate, including the checks of local paths (`@pkg:`
/// directories, `files[].source`); nothing is printed.
pub fn load_checked(
    files: &ConfigFiles,
    global: &GlobalArgs,
) -> anyhow::Result<Result<Loaded, LoadError>> {
    let inputs = files
        .files
        .iter()
        .map(|f| read_input(f, global))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let loaded = match slipway_config::load(inputs) {
        Ok(loaded) => loaded,
        Err(err) => return Ok(Err(err)),
    };
    let cwd = std::env::current_dir().context("finding the working directory")?;
    let local = local_checks::check(&loaded, &cwd);
    if !local.has_errors() {
        return Ok(Ok(loaded));
    }
    let mut diagnostics = loaded.warnings;
    diagnostics.extend(local);
    Ok(Err(LoadError {
        sources: loaded.sources,
        diagnostics: diagnostics.sorted(),
    }))
}

/// Load and validate; diagnostics are printed. `None` when there were errors.
pub fn load_config(files: &ConfigFiles, global: &GlobalArgs) -> anyhow::Result<Option<Loaded>> {
    match load_checked(files, global)? {
        Ok(loaded) => {
            if global.level() > 0 {
                report_diagnostics(&loaded.sources, &loaded.warnings);
            }
            Ok(Some(loaded))
        }
        Err(err) => {
            report_diagnostics(&err.sources, &err.diagnostics);
            eprintln!("slipway: {err}");
            Ok(None)
        }
    }
}
