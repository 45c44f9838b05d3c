//! `cargo xtask chaos`: the crash campaign (`crates/cli/tests/chaos.rs`)
//! at full size: every command killed at least N times (default 50) at
//! seeded random moments, builds and a pull racing on one cache, and a
//! full disk mid-pull and mid-build. `--quick` is the size the test suite
//! runs it at (3 kills each).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::{cargo, deps};

pub fn command(args: &[String]) -> Result<()> {
    let mut kills = "50".to_string();
    let mut races = "5".to_string();
    let mut seed = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<String> {
            let v = it
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            v.parse::<u64>()
                .with_context(|| format!("{name} {v:?}: not a number"))?;
            Ok(v.clone())
        };
        match arg.as_str() {
            "--quick" => {
                kills = "3".into();
                races = "1".into();
            }
            "--kills" => kills = value("--kills")?,
            "--races" => races = value("--races")?,
            "--seed" => seed = Some(value("--seed")?),
            other => {
                bail!("unknown chaos option {other:?} (--quick, --kills N, --races N, --seed S)")
            }
        }
    }
    deps::ensure_tools()?;
    deps::ensure()?;
    let mut nextest = cargo();
    nextest.args(["nextest", "run", "-p", "slipway", "--test", "chaos"]);
    // One test at a time: each kill's moment is drawn from a command's
    // own duration, which a neighbour would stretch.
    nextest.args(["--no-capture", "--no-fail-fast"]);
    nextest.env("SLIPWAY_CHAOS_KILLS", &kills);
    nextest.env("SLIPWAY_CHAOS_RACES", &races);
    if let Some(seed) = &seed {
        nextest.env("SLIPWAY_CHAOS_SEED", seed);
    }
    nextest.stdout(Stdio::piped());
    eprintln!("xtask: running {nextest:?}");
    let mut child = nextest.spawn().context("could not start cargo nextest")?;
    let stdout = child.stdout.take().context("nextest's output")?;
    let mut tallies = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading nextest's output")?;
        println!("{line}");
        if let Some(tally) = line.strip_prefix("CHAOS ") {
            tallies.push(tally.to_string());
        }
    }
    let status = child.wait().context("waiting for cargo nextest")?;
    println!("\nchaos campaign ({kills} kills a command, {races} races):");
    for t in &tallies {
        println!("  {t}");
    }
    if !status.success() {
        bail!("the campaign failed ({status}): see the test output above");
    }
    Ok(())
}
