//! `slipway report diff A B`: what changed between two builds' size
//! reports (`slipway build --report FILE.html`, or its JSON).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use slipway_report::size::{SizeReport, diff, diff_json};

use crate::Outcome;
use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Compare two size reports: totals, units, images and directories, largest change first
    Diff {
        /// The earlier report (HTML from `build --report`, or its JSON)
        #[arg(value_name = "A")]
        a: PathBuf,
        /// The later report
        #[arg(value_name = "B")]
        b: PathBuf,
        /// Print every change as JSON: totals, units, images and directories
        #[arg(long)]
        json: bool,
    },
}

fn load(path: &PathBuf) -> anyhow::Result<SizeReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SizeReport::parse(&text).with_context(|| format!("reading {}", path.display()))
}

pub fn run(args: &ReportArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    match &args.command {
        ReportCommand::Diff { a, b, json } => {
            let (a, b) = (load(a)?, load(b)?);
            if *json {
                let doc = diff_json(&a, &b);
                crate::output::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                crate::output::write_str(&diff(&a, &b))?;
            }
            Ok(Outcome::Success)
        }
    }
}
