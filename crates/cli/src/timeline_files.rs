//! Boot timelines as files: read from JSON or a console transcript, saved
//! as JSON and as an SVG boot chart. `slipway timeline` and `slipway run
//! --timeline/--boot-chart` both use them.

use std::path::Path;

use anyhow::Context as _;
use slipway_contract::timeline::{Entry, parse_transcript};

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
        crate::output::write_file(path, &bytes)?;
    }
    if let Some(path) = svg {
        let chart = slipway_report::chart::svg(entries, &format!("boot of {what}"));
        crate::output::write_file(path, chart.as_bytes())?;
    }
    Ok(())
}
