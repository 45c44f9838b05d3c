//! `cargo xtask bench boot`: the guest's boot against LinuxKit's init on
//! the same kernel and workload, on guest clock under TCG.
//!
//! It runs the measurement tests that boot the images (they build the
//! packages and the images the way the suite does) and reads the
//! `MEASURE` lines they print:
//!
//! - `control_plane::first_service_output_with_and_without_containerd`:
//!   `tests/guest/first-service.yml` (one trivial onboot task and one
//!   trivial service printing `/proc/uptime`, crun), alone and with
//!   containerd; `/init` → the onboot task's output and → the service's.
//! - with `--examples`, `examples::modules_early_and_deferred`:
//!   `onboot-done` and `services-started` of three examples, booted as
//!   built and with every module loaded before the first container.
//!
//! Medians are printed as ratios to LinuxKit's figures on the same
//! kernel, 1 vCPU, measured 2026-12-04 (docs/performance.md). Boot times
//! under TCG follow the host's load: run it on a quiet machine.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, bail};

pub const USAGE: &str = "usage: cargo xtask bench boot [--runs N] [--examples]";

/// LinuxKit's init, `/init` → the first onboot container's output (ms).
const LINUXKIT_ONBOOT_MS: f64 = 3660.0;
/// LinuxKit's init with containerd, `/init` → the first service's output.
const LINUXKIT_SERVICE_MS: f64 = 7550.0;

pub struct Options {
    runs: usize,
    examples: bool,
}

pub fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        runs: 5,
        examples: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => {
                o.runs = super::positive_runs(it.next(), USAGE)?;
            }
            "--examples" => o.examples = true,
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

/// Run one ignored measurement test; its `MEASURE` lines, split on `|`,
/// without the header line (the one naming no number).
fn measure(test: &str, filter: &str, runs: usize) -> Result<Vec<Vec<String>>> {
    let mut cmd = super::super::cargo();
    cmd.args([
        "nextest",
        "run",
        "--package",
        "slipway",
        "--test",
        test,
        "--run-ignored",
        "only",
        "--no-capture",
        filter,
    ])
    .env("SLIPWAY_TIMELINE_RUNS", runs.to_string());
    let output = run_capturing(cmd)?;
    Ok(output
        .lines()
        .filter_map(|l| l.strip_prefix("MEASURE "))
        .map(|l| {
            l.split('|')
                .map(|f| f.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|fields| fields.iter().any(|f| f.ends_with(" ms")))
        .collect())
}

fn run_capturing(mut cmd: Command) -> Result<String> {
    let output = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{cmd:?}: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

fn ms(field: &str) -> Result<f64> {
    field
        .trim_end_matches(" ms")
        .parse()
        .with_context(|| format!("not a time: {field:?}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn range(values: &[f64]) -> String {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.0}–{hi:.0}")
}

pub fn run(o: &Options) -> Result<()> {
    let lines = measure("control_plane", "first_service", o.runs)?;
    // how | kernel->init | init->onboot output | init->onboot-done |
    // onboot-done->first output | init->first output
    let mut by_how: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for fields in &lines {
        let [how, _, onboot, _, _, first] = fields.as_slice() else {
            bail!("unexpected MEASURE line {fields:?}");
        };
        by_how
            .entry(how.clone())
            .or_default()
            .push((ms(onboot)?, ms(first)?));
    }
    println!(
        "\nboot (TCG, 1 vCPU, guest clock; {} boots each; LinuxKit on the same kernel, 2026-12-04)",
        o.runs
    );
    println!(
        "{:<46} {:>9} {:>13} {:>10} {:>7} {:>6}",
        "figure", "median", "range", "LinuxKit", "ratio", "goal"
    );
    let row = |what: &str, values: Vec<f64>, reference: f64, goal: f64| {
        let spread = range(&values);
        let m = median(values);
        let ratio = m / reference;
        println!(
            "{what:<46} {:>6.0} ms {spread:>10} ms {:>7.2} s {ratio:>7.3} {goal:>5.2}x {}",
            m,
            reference / 1000.0,
            if ratio <= goal { "met" } else { "MISSED" }
        );
    };
    for (how, values) in &by_how {
        if how == "crun" {
            let onboot = values.iter().map(|v| v.0).collect();
            row(
                "/init -> first onboot output",
                onboot,
                LINUXKIT_ONBOOT_MS,
                0.25,
            );
        }
        let first = values.iter().map(|v| v.1).collect();
        let (what, goal) = match how.as_str() {
            "crun" => ("/init -> first service output", 0.25),
            _ => ("/init -> first service output, containerd", 0.5),
        };
        row(what, first, LINUXKIT_SERVICE_MS, goal);
    }
    if o.examples {
        examples(o.runs)?;
    }
    Ok(())
}

/// The examples' milestones, deferred modules against every module early.
fn examples(runs: usize) -> Result<()> {
    let lines = measure("examples", "modules_early_and_deferred", runs)?;
    // example | modules | run | onboot-done | services-started | later done
    let mut by: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for fields in &lines {
        let [example, how, _, onboot, started, _] = fields.as_slice() else {
            bail!("unexpected MEASURE line {fields:?}");
        };
        by.entry((example.clone(), how.clone()))
            .or_default()
            .push((ms(onboot)?, ms(started)?));
    }
    println!(
        "\nexamples: /init -> onboot-done and -> services-started, medians of {runs} boots \
         (deferred: as built; early: slipway.modules=early)"
    );
    println!(
        "{:<16} {:>16} {:>16} {:>9} {:>16} {:>16} {:>9}",
        "example",
        "onboot deferred",
        "onboot early",
        "ratio",
        "started deferred",
        "started early",
        "ratio"
    );
    let examples: Vec<&String> = by.keys().map(|(e, _)| e).collect::<Vec<_>>();
    let mut seen = Vec::new();
    for example in examples {
        if seen.contains(&example) {
            continue;
        }
        seen.push(example);
        let get = |how: &str, pick: fn(&(f64, f64)) -> f64| {
            by.get(&(example.clone(), how.to_owned()))
                .map(|v| median(v.iter().map(pick).collect()))
                .unwrap_or(f64::NAN)
        };
        let (od, oe) = (get("deferred", |v| v.0), get("early", |v| v.0));
        let (sd, se) = (get("deferred", |v| v.1), get("early", |v| v.1));
        println!(
            "{example:<16} {od:>13.0} ms {oe:>13.0} ms {:>9.3} {sd:>13.0} ms {se:>13.0} ms {:>9.3}",
            od / oe,
            sd / se
        );
    }
    Ok(())
}
