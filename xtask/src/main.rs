//! Developer glue: `cargo xtask demo`, `cargo xtask test`, `cargo xtask deps`.
//!
//! Kept dependency-light on purpose: it runs before anything else is built.

#![allow(
    clippy::disallowed_methods,
    reason = "developer glue: benchmarks measure time, the demo waits on a machine"
)]

mod bench;
mod chaos;
mod demo;
mod deps;
mod fuzz;
mod packages;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo            set up, build the packages and examples/minimal.yml, boot
                  it, fetch a page from it, power it off; show the timeline
  test [ARGS...]  set up what is needed, then run the whole test suite
                  (ARGS go to cargo nextest, e.g. a test name filter)
  test --boot-matrix
                  boot every output format under TCG, each with the firmware
                  it is for, the plain qemu way, then again through slipway
                  run (with the persistent-disk example booted from a disk);
                  about a minute per boot
  deps [--install]
                  list the Debian packages and cargo tools the checks and
                  tests need; install them (packages as root)
  bench [pull|assemble|formats|validate|boot] [OPTIONS]
                  benchmarks (release build); no subcommand runs all
  bench pull [--large-mb N] [--small N] [--small-kb N]
                  time slipway's pulls against skopeo's from a loopback registry
  bench assemble [--runs N] [--keep]
                  time kernel+initrd builds of a large image, cold and warm,
                  against tar + cpio | gzip -6, with peak memory
  bench formats [--runs N] [--keep]
                  time the hybrid ISO and qcow2-bios of that image, cold
                  and warm, against its kernel+initrd, with peak memory
  bench validate [--runs N]
                  time slipway validate of 1, 2 and 4 MiB configurations
  bench boot [--runs N] [--examples]
                  boot the first-service images under TCG (and the examples,
                  modules deferred and early) and print the guest's times
                  as ratios to LinuxKit's init on the same kernel
  chaos [--quick] [--kills N] [--races N] [--seed S]
                  the crash campaign: cache pull, build, pkg build and cache
                  clean each SIGKILLed at N seeded random moments (default
                  50; --quick is the suite's 3), racing builds and a pull,
                  a full disk; every kill leaves a sound cache and whole
                  outputs
  fuzz [--minutes N] [TARGET...]
                  run every fuzz target (or those named) for N minutes each
                  (default 10), one after the other, with cargo-fuzz on the
                  nightly toolchain; crash inputs land in fuzz/seeds/
  packages [--release] [--force] [--locked] [--cache DIR] [PKG...]
                  build every package in pkg/ into the cache, timing each
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    match command.as_deref() {
        Some("demo") => demo::command(),
        Some("test") => test(&rest),
        Some("deps") => {
            let install = rest.iter().any(|a| a == "--install");
            deps::command(install)?;
            if install {
                // The tests' Python tools, from PyPI, beside the Debian packages.
                deps::test_python(&target_dir())?;
            }
            Ok(())
        }
        Some("bench") => bench::command(&rest),
        Some("packages") => packages::command(&rest),
        Some("fuzz") => fuzz::command(&rest),
        Some("chaos") => chaos::command(&rest),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR for the process too; prefer it to
    // the compile-time value, which is stale when a shared target directory
    // hands back a binary built from another checkout.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn run_checked(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed with {status}", cmd.get_program());
    }
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The whole test suite: every test of every crate, doc tests included;
/// or, with `--boot-matrix`, every output format booted, by plain qemu
/// and by `slipway run`.
fn test(extra: &[String]) -> Result<()> {
    deps::ensure_tools()?;
    deps::ensure()?;
    let kernel = deps::test_kernel(&target_dir())?;
    let mut nextest = cargo();
    nextest.env(deps::TEST_KERNEL_ENV, &kernel);
    if extra.iter().any(|a| a == "--boot-matrix") {
        nextest.args(["nextest", "run", "-p", "slipway", "--test", "formats"]);
        // Both matrices, the plain qemu one then the one through
        // `slipway run`, one boot at a time (--no-capture runs the tests
        // one after the other): TCG boots share the cores.
        nextest.args(["--run-ignored", "only", "--no-capture", "--no-fail-fast"]);
        nextest.arg("boot_matrix");
        return run_checked(nextest);
    }
    let python = deps::test_python(&target_dir())?;
    nextest.env(deps::TEST_PYTHON_ENV, &python);
    nextest.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    nextest.args(extra);
    // Snapshots are checked, never written, by the suite.
    nextest.env("INSTA_UPDATE", "no");
    run_checked(nextest)?;
    if extra.is_empty() {
        let mut doc = cargo();
        doc.args(["test", "--workspace", "--doc", "--quiet"]);
        run_checked(doc)?;
    }
    Ok(())
}
