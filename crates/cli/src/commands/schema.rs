//! `slipway schema`: the configuration language as a JSON Schema (draft-07),
//! for editors with a YAML language server (`# yaml-language-server:
//! $schema=...` or the editor's schema settings).

use std::io::Write;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct SchemaArgs {}

pub fn run(_: &SchemaArgs) -> anyhow::Result<()> {
    let schema = slipway_config::json_schema();
    let mut text = serde_json::to_string_pretty(&schema).context("writing the schema")?;
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing the schema to standard output")
}
