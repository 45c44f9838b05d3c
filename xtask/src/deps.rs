//! The Debian packages the test suite and the demo need, and installing them.
//!
//! As root (CI, a fresh machine) missing packages are installed; otherwise the
//! exact commands are printed and the task stops.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Where a package comes from. qemu must come from bookworm-backports: the
/// preinstalled qemu-utils is the backports build, and installing
/// qemu-system-x86 from main would remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    Main,
    Backports,
}

#[derive(Debug)]
pub struct Package {
    pub name: &'static str,
    pub suite: Suite,
    pub why: &'static str,
}

/// Every package the tests use. Add a line when a test starts needing one.
pub const PACKAGES: &[Package] = &[
    Package {
        name: "cpio",
        suite: Suite::Main,
        why: "newc oracle for initrd tests",
    },
    Package {
        name: "docker-registry",
        suite: Suite::Main,
        why: "real registry for pull/push tests",
    },
    Package {
        name: "skopeo",
        suite: Suite::Main,
        why: "independent client for OCI interop tests",
    },
];

fn installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn missing() -> Vec<&'static Package> {
    PACKAGES.iter().filter(|p| !installed(p.name)).collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

const BACKPORTS_SOURCES: &str = "/etc/apt/sources.list.d/slipway-backports.sources";

/// The shell lines that install `packages`, as the README shows them.
fn install_script(packages: &[&Package]) -> Vec<String> {
    let mut lines = Vec::new();
    let main: Vec<&str> = packages
        .iter()
        .filter(|p| p.suite == Suite::Main)
        .map(|p| p.name)
        .collect();
    let backports: Vec<&str> = packages
        .iter()
        .filter(|p| p.suite == Suite::Backports)
        .map(|p| p.name)
        .collect();
    if !backports.is_empty() {
        // Same mirror and keyring as the machine's first Debian source.
        lines.push(format!(
            "grep -v '^#' /etc/apt/sources.list.d/debian.sources | awk 'BEGIN{{RS=\"\"}} NR==1' \
             | sed 's/^Suites:.*/Suites: bookworm-backports/' > {BACKPORTS_SOURCES}"
        ));
    }
    lines.push("apt-get update".to_string());
    if !backports.is_empty() {
        lines.push(format!(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
             -t bookworm-backports {}",
            backports.join(" ")
        ));
    }
    if !main.is_empty() {
        lines.push(format!(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
            main.join(" ")
        ));
    }
    lines
}

/// Make sure every package is there: install as root, else explain and stop.
pub fn ensure() -> Result<()> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    let script = install_script(&missing);
    if !is_root() {
        let mut msg = String::from("some Debian packages are missing; as root, run:\n");
        for line in &script {
            msg.push_str("    ");
            msg.push_str(line);
            msg.push('\n');
        }
        bail!("{msg}");
    }
    for line in &script {
        eprintln!("xtask: $ {line}");
        let status = Command::new("sh")
            .args(["-ec", line])
            .status()
            .context("could not start sh")?;
        if !status.success() {
            bail!("`{line}` failed with {status}");
        }
    }
    Ok(())
}

/// `cargo xtask deps [--install]`.
pub fn command(install: bool) -> Result<()> {
    for p in PACKAGES {
        let state = if installed(p.name) { "ok" } else { "missing" };
        let suite = match p.suite {
            Suite::Main => "bookworm",
            Suite::Backports => "bookworm-backports",
        };
        println!("{:<8} {:<22} {:<20} {}", state, p.name, suite, p.why);
    }
    if install { ensure() } else { Ok(()) }
}
