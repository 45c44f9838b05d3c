//! `slipway timeline FILE`: a saved boot timeline (the JSON `slipway run
//! --timeline` or the guest's `/run/slipway/timeline.json` holds, or a
//! console transcript) as text, and with `--svg OUT` as a boot chart.

use std::path::PathBuf;

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::timeline_files::{read, save};

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// A timeline: JSON (`slipway run --timeline`, the guest's timeline.json) or a console transcript
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Draw it as an SVG boot chart in OUT
    #[arg(long, value_name = "OUT")]
    pub svg: Option<PathBuf>,
}

pub fn run(args: &TimelineArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let entries = read(&args.file)?;
    let name = args
        .file
        .file_stem()
        .map_or_else(|| "timeline".into(), |s| s.to_string_lossy().into_owned());
    save(&entries, None, args.svg.as_deref(), &name)?;
    crate::output::write_str(&slipway_report::chart::text(&entries))?;
    Ok(Outcome::Success)
}
