//! `slipway timeline FILE`: a saved boot timeline (the JSON `slipway run
//! --timeline` or the guest's `/run/slipway/timeline.json` holds, or a
//! console transcript) as text, and with `--svg OUT` as a boot chart. Also
//! what `run --timeline` and `run --boot-chart` save.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use slipway_contract::timeline::{Entry, parse_transcript};

use crate::Outcome;
use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// A timeline: JSON (`slipway run --timeline`, the guest's timeline.json) or a console transcript
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Draw it as an SVG boot chart in OUT
    #[arg(long, value_name = "OUT")]
    pub svg: Option<PathBuf>,
}

/// The entries of a saved timeline: a JSON array of entries, else the
/// `slipway: <ms> ms ...` lines of a console transcript.
pub fn read(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a timeline (a JSON array of entries)",
                path.display()
            )
        });
    }
    let entries = parse_transcript(&text);
    if entries.is_empty() {
        anyhow::bail!(
            "{} has no timeline: neither a JSON array of entries nor console lines `slipway: <ms> ms <event>`",
            path.display()
        );
    }
    Ok(entries)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    slipway_formats::write_file(path, |w| {
        w.write_all(bytes)
            .map_err(|source| slipway_formats::FormatError::Io {
                what: "writing",
                path: path.to_path_buf(),
                source,
            })
    })
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Saves `entries` as JSON and/or as a boot chart titled after `what`.
pub fn save(
    entries: &[Entry],
    json: Option<&Path>,
    svg: Option<&Path>,
    what: &str,
) -> anyhow::Result<()> {
    if let Some(path) = json {
        let mut bytes =
            serde_json::to_vec_pretty(entries).context("writing the timeline as JSON")?;
        bytes.push(b'\n');
        write(path, &bytes)?;
    }
    if let Some(path) = svg {
        let chart = slipway_report::chart::svg(entries, &format!("boot of {what}"));
        write(path, chart.as_bytes())?;
    }
    Ok(())
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
