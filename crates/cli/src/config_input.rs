//! Reading configuration files (or standard input) and reporting on them.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use slipway_config::{Input, LoadError, Loaded};

use crate::cli::GlobalArgs;
use crate::local_checks;
use crate::report::report_diagnostics;

#[derive(Debug, Args)]
pub struct ConfigFiles {
    /// Configuration files, merged in order; `-` reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
}

fn read_input(arg: &str) -> anyhow::Result<Input> {
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
pub fn load_checked(files: &ConfigFiles) -> anyhow::Result<Result<Loaded, LoadError>> {
    let inputs = files
        .files
        .iter()
        .map(|f| read_input(f))
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
    match load_checked(files)? {
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
