//! `cargo xtask fuzz`: every fuzz target in turn, coverage-guided, with
//! cargo-fuzz on the nightly toolchain (libFuzzer needs `-Z` flags).
//!
//! One target runs at a time, on one core. Each starts from its checked-in
//! seeds (`fuzz/seeds/<target>/`) and a working corpus kept under
//! `target/fuzz/corpus/` between runs; a crash input is written into the
//! seeds directory, where the seed replay (`slipway-fuzz`'s tests, part of
//! `cargo xtask test`) fails on it until it is fixed.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// The targets, as `fuzz/Cargo.toml` lists them.
pub const TARGETS: &[&str] = &[
    "config",
    "label",
    "layer",
    "writers",
    "oci_json",
    "pkg_def",
    "debian",
    "cmdline",
    "runtime_json",
    "modules",
];

/// What one run did.
struct Run {
    target: String,
    execs: u64,
    /// libFuzzer's own average (a crash ends a run early).
    rate: u64,
    crashes: Vec<String>,
}

fn fuzz_cmd(sub: &str) -> Command {
    // rustup's `cargo`, which understands `+nightly`: not $CARGO, the
    // stable toolchain's own binary `cargo xtask` runs under.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root())
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd.args(["+nightly", "fuzz", sub, "--sanitizer", "none"]);
    cmd.args(["--features", "libfuzzer", "--target-dir", "target/fuzz"]);
    // Thin LTO of the release profile triples the build for nothing here.
    cmd.env("CARGO_PROFILE_RELEASE_LTO", "false");
    cmd
}

fn check_tools() -> Result<()> {
    let fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !fuzz.is_ok_and(|s| s.success()) {
        bail!(
            "cargo fuzz on the nightly toolchain is needed: \
             `rustup toolchain install nightly` and `cargo install cargo-fuzz`"
        );
    }
    Ok(())
}

pub fn command(args: &[String]) -> Result<()> {
    let mut minutes: f64 = 10.0;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--minutes" => {
                let value = it.next().context("--minutes needs a number")?;
                minutes = value
                    .parse()
                    .with_context(|| format!("--minutes {value:?}"))?;
            }
            name if TARGETS.contains(&name) => targets.push(name.to_string()),
            other => bail!("unknown fuzz target or option {other:?} (targets: {TARGETS:?})"),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    check_tools()?;
    crate::run_checked(fuzz_cmd("build"))?;
    let seconds = (minutes * 60.0).round().max(1.0) as u64;
    let mut runs = Vec::new();
    for target in &targets {
        runs.push(run(target, seconds)?);
    }
    println!(
        "\n{:<14} {:>14} {:>10} {:>8}",
        "target", "executions", "exec/s", "crashes"
    );
    for r in &runs {
        println!(
            "{:<14} {:>14} {:>10} {:>8}",
            r.target,
            r.execs,
            r.rate,
            r.crashes.len()
        );
        for c in &r.crashes {
            println!("    {c}");
        }
    }
    let total: u64 = runs.iter().map(|r| r.execs).sum();
    println!(
        "total: {total} executions in {} s",
        seconds * runs.len() as u64
    );
    if runs.iter().any(|r| !r.crashes.is_empty()) {
        bail!("crash inputs were written into fuzz/seeds/: the seed replay now fails on them");
    }
    Ok(())
}

fn run(target: &str, seconds: u64) -> Result<Run> {
    let root = workspace_root();
    let corpus = root.join("target/fuzz/corpus").join(target);
    let seeds = root.join("fuzz/seeds").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| corpus.display().to_string())?;
    let before = listing(&seeds)?;
    let mut cmd = fuzz_cmd("run");
    cmd.arg(target).arg(&corpus).arg(&seeds).arg("--");
    cmd.arg(format!("-max_total_time={seconds}"));
    cmd.arg(format!("-artifact_prefix={}/", seeds.display()));
    cmd.args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"]);
    // A crash stops the run; the rest of its time is not spent on it.
    cmd.stderr(Stdio::piped());
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let out = cmd
        .output()
        .with_context(|| format!("could not start cargo fuzz for {target}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    // libFuzzer's own output, for a closer look (crash stacks).
    let logs = root.join("target/fuzz/logs");
    std::fs::create_dir_all(&logs).with_context(|| logs.display().to_string())?;
    let log_file = logs.join(format!("{target}.log"));
    std::fs::write(&log_file, out.stderr.as_slice())
        .with_context(|| log_file.display().to_string())?;
    let stat = |name: &str| {
        log.lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .next_back()
            .unwrap_or(0)
    };
    let execs = stat("stat::number_of_executed_units:");
    let rate = stat("stat::average_exec_per_sec:");
    let crashes: Vec<String> = listing(&seeds)?
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if !out.status.success() && crashes.is_empty() {
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "cargo fuzz run {target} failed ({}):\n{}",
            log_file.display(),
            tail.join("\n")
        );
    }
    Ok(Run {
        target: target.to_string(),
        execs,
        rate,
        crashes,
    })
}

fn listing(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}
