//! `cargo:` steps: a binary of the workspace that holds the package,
//! built statically (`+crt-static`, glibc target, symbols stripped) for the image's arch.

use std::path::{Path, PathBuf};
use std::process::Command;

use slipway_reference::Arch;

use crate::def::CargoStep;
use crate::error::PkgError;
use crate::tree::Tree;

/// The Rust target a `cargo:` step builds for `arch`.
pub fn rust_target(arch: Arch) -> &'static str {
    match arch {
        Arch::Amd64 => "x86_64-unknown-linux-gnu",
        Arch::Arm64 => "aarch64-unknown-linux-gnu",
        Arch::Riscv64 => "riscv64gc-unknown-linux-gnu",
        Arch::S390x => "s390x-unknown-linux-gnu",
    }
}

/// The nearest directory at or above `dir` whose `Cargo.toml` has `[workspace]`.
pub fn workspace_root(dir: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(dir).ok()?;
    start.ancestors().find_map(|d| {
        let manifest = std::fs::read_to_string(d.join("Cargo.toml")).ok()?;
        manifest
            .lines()
            .any(|l| l.trim() == "[workspace]")
            .then(|| d.to_path_buf())
    })
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `rustc -V`, which is part of a package's tag when it has `cargo:` steps.
pub fn rustc_version() -> Result<String, PkgError> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-V")
        .output()
        .map_err(|source| PkgError::Spawn {
            step: "cargo",
            program: "rustc -V",
            source,
        })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether the toolchain has the standard library for `target`.
fn target_installed(target: &str) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|dir| {
            dir.join(".").is_dir() && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some())
        })
}

pub fn apply(
    tree: &mut Tree,
    pkg_dir: &Path,
    step: &CargoStep,
    arch: Arch,
) -> Result<(), PkgError> {
    let target = rust_target(arch);
    let ws = workspace_root(pkg_dir).ok_or_else(|| {
        PkgError::step(
            "cargo",
            format!("{} is not inside a Cargo workspace", pkg_dir.display()),
        )
    })?;
    if Arch::host() != Some(arch) || !target_installed(target) {
        return Err(PkgError::step(
            "cargo",
            format!(
                "cannot build {} for {}: the Rust toolchain here builds for {} only (needs the {target} target and its C toolchain); build this package on a {} machine or drop {} from `arches`",
                step.bin,
                arch.as_oci(),
                Arch::host().map_or("nothing", |a| a.as_oci()),
                arch.as_oci(),
                arch.as_oci()
            ),
        ));
    }
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| ws.join("target"), PathBuf::from);
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let mut rustflags = format!(
        "-C target-feature=+crt-static --remap-path-prefix={}=/slipway",
        ws.display()
    );
    if let Some(home) = &cargo_home {
        rustflags.push_str(&format!(" --remap-path-prefix={}=/cargo", home.display()));
    }
    let mut cmd = cargo();
    cmd.current_dir(&ws)
        .args([
            "build",
            "--release",
            "--locked",
            "--package",
            &step.package,
            "--bin",
            &step.bin,
            "--target",
            target,
        ])
        .env("RUSTFLAGS", &rustflags)
        // Symbols stripped (the profile's setting; a -C strip in RUSTFLAGS
        // loses to it): a guest binary is run, not debugged, and they were a
        // fifth of each (the multiplexer: 6.3 MB with them, 5.1 MB without).
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    tracing::info!(
        "cargo: building {} ({}) for {target}",
        step.bin,
        step.package
    );
    let out = cmd.output().map_err(|source| PkgError::Spawn {
        step: "cargo",
        program: "cargo",
        source,
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(PkgError::Failed {
            step: "cargo",
            what: format!("building {}", step.bin),
            status: out.status,
            output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    let binary = target_dir.join(target).join("release").join(&step.bin);
    let file = std::fs::File::open(&binary).map_err(PkgError::io("opening", &binary))?;
    let content = tree.stage(&mut std::io::BufReader::new(file))?;
    tree.add_file(&step.dest, content, 0o755)
}
