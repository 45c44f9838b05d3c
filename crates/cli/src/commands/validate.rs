//! `slipway validate FILE...`: silent on success, warnings on standard error,
//! every error with its file, line and column; `--json` prints them all as
//! one JSON document on standard output instead.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use slipway_config::{Diagnostics, SourceMap};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::config_input::{ConfigFiles, load_checked, load_config};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub files: ConfigFiles,

    /// Print the result as JSON on standard output: `valid`, the counts and
    /// every diagnostic with file, line, column, severity, code, message, hint
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ValidateArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    if args.json {
        return match load_checked(&args.files, global)? {
            Ok(loaded) => print_json(&loaded.sources, &loaded.warnings),
            Err(err) => print_json(&err.sources, &err.diagnostics),
        };
    }
    match load_config(&args.files, global)? {
        Some(_) => Ok(Outcome::Success),
        None => Ok(Outcome::Failure),
    }
}

fn print_json(sources: &SourceMap, diagnostics: &Diagnostics) -> anyhow::Result<Outcome> {
    let errors = diagnostics.error_count();
    let doc = serde_json::json!({
        "valid": errors == 0,
        "errors": errors,
        "warnings": diagnostics.len() - errors,
        "diagnostics": diagnostics.iter().map(|d| d.to_json(sources)).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&doc).context("writing the result")?;
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing the result to standard output")?;
    Ok(if errors == 0 {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}
