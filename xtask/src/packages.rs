//! `cargo xtask packages`: build every package in `pkg/` into the slipway
//! cache with `slipway pkg build`, timing each one and the whole set.
//!
//! slipway itself is compiled first (debug by default, which is what the
//! tests use; `--release` for the release build) and not timed. Packages
//! with `cargo:` steps compile workspace binaries while they build; the
//! summary gives the total with and without them. `--force` rebuilds
//! packages the cache has already; `--locked` refuses to change any
//! `debs.lock`. Downloads go to the usual download cache
//! (`$SLIPWAY_DEBS_CACHE`, else `$XDG_CACHE_HOME/slipway/debs`), so a
//! second run measures a warm download cache.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const USAGE: &str =
    "usage: cargo xtask packages [--release] [--force] [--locked] [--cache DIR] [PKG...]";

struct Options {
    release: bool,
    force: bool,
    locked: bool,
    cache: Option<PathBuf>,
    only: Vec<String>,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        release: false,
        force: false,
        locked: false,
        cache: None,
        only: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--release" => o.release = true,
            "--force" => o.force = true,
            "--locked" => o.locked = true,
            "--cache" => {
                let dir = it
                    .next()
                    .with_context(|| format!("--cache needs a value\n{USAGE}"))?;
                o.cache = Some(PathBuf::from(dir));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => bail!("unknown option {flag:?}\n{USAGE}"),
            name => o
                .only
                .push(name.trim_start_matches("pkg/").trim_end_matches('/').into()),
        }
    }
    Ok(o)
}

/// Every directory of `pkg/` with a `build.yml`, sorted by name.
fn package_dirs(root: &Path, only: &[String]) -> Result<Vec<PathBuf>> {
    let pkg = root.join("pkg");
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(&pkg).with_context(|| format!("reading {}", pkg.display()))? {
        let path = e
            .with_context(|| format!("reading {}", pkg.display()))?
            .path();
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        if path.join("build.yml").is_file()
            && (only.is_empty() || name.as_ref().is_some_and(|n| only.contains(n)))
        {
            dirs.push(path);
        }
    }
    dirs.sort();
    for name in only {
        if !dirs.iter().any(|d| d.ends_with(name)) {
            bail!("there is no package pkg/{name} (no pkg/{name}/build.yml)");
        }
    }
    Ok(dirs)
}

fn has_cargo_step(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("build.yml"))
        .is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("- cargo:")))
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

pub fn command(args: &[String]) -> Result<()> {
    let o = options(args)?;
    let root = crate::workspace_root();
    let dirs = package_dirs(&root, &o.only)?;
    let profile = if o.release { "release" } else { "debug" };
    let mut build = crate::cargo();
    build.args(["build", "--quiet", "--package", "slipway"]);
    if o.release {
        build.arg("--release");
    }
    crate::run_checked(build)?;
    let slipway = crate::target_dir().join(profile).join("slipway");
    eprintln!(
        "xtask: building {} packages with the {profile} slipway ({})",
        dirs.len(),
        slipway.display()
    );
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let all = Instant::now();
    for dir in &dirs {
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().to_string());
        let mut cmd = Command::new(&slipway);
        cmd.current_dir(&root);
        if let Some(cache) = &o.cache {
            cmd.arg("--cache").arg(cache);
        }
        cmd.args(["pkg", "build"]);
        if o.force {
            cmd.arg("--force");
        }
        if o.locked {
            cmd.arg("--locked");
        }
        cmd.arg(dir);
        let start = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("could not start {}", slipway.display()))?;
        let took = start.elapsed();
        let cargo = has_cargo_step(dir);
        if out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let reference = stdout.split_whitespace().next().unwrap_or("").to_string();
            eprintln!("{name:>16}  {:>7}  {reference}", secs(took));
        } else {
            eprintln!("{name:>16}  {:>7}  FAILED ({})", secs(took), out.status);
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            failed.push(name.clone());
        }
        rows.push((name, took, cargo));
    }
    let total = all.elapsed();
    let without: Duration = rows.iter().filter(|r| !r.2).map(|r| r.1).sum();
    let with_cargo: Vec<&str> = rows.iter().filter(|r| r.2).map(|r| r.0.as_str()).collect();
    eprintln!(
        "xtask: {} packages in {} ({profile} slipway); {} without the packages that compile workspace binaries ({})",
        rows.len(),
        secs(total),
        secs(without),
        if with_cargo.is_empty() {
            "none".to_string()
        } else {
            with_cargo.join(", ")
        }
    );
    if !failed.is_empty() {
        bail!("{} failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}
