//! What the checks, the test suite and the demo need, and installing it:
//! Debian packages, and cargo tools built from crates.io.
//!
//! As root (CI, a fresh machine) missing packages are installed; otherwise the
//! exact commands are printed and the task stops. Cargo tools need no root:
//! `cargo install` puts them in `$CARGO_HOME/bin`, where later runs find them.

use std::path::{Path, PathBuf};
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
        name: "qemu-system-x86",
        suite: Suite::Backports,
        why: "boot tests under TCG (slipway run, the init)",
    },
    Package {
        name: "busybox-static",
        suite: Suite::Main,
        why: "static userland for test images and containers",
    },
    Package {
        name: "runc",
        suite: Suite::Main,
        why: "OCI runtime copied into test initramfs images",
    },
    Package {
        name: "crun",
        suite: Suite::Main,
        why: "OCI runtime copied into test initramfs images",
    },
    Package {
        name: "containerd",
        suite: Suite::Main,
        why: "the service manager's containerd backend tests run services in it",
    },
    Package {
        name: "kmod",
        suite: Suite::Main,
        why: "depmod for the test kernel's modules",
    },
    Package {
        name: "docker-registry",
        suite: Suite::Main,
        why: "real registry for pull/push tests",
    },
    Package {
        name: "time",
        suite: Suite::Main,
        why: "peak memory (wait4) in cargo xtask bench assemble",
    },
    Package {
        name: "xz-utils",
        suite: Suite::Main,
        why: "xz kernels (with the x86 filter) for --decompress-kernel tests",
    },
    Package {
        name: "zstd",
        suite: Suite::Main,
        why: "independent zstd decoder of the test kernel's payload",
    },
    Package {
        name: "qemu-user",
        suite: Suite::Backports,
        why: "qemu-x86_64 -cpu qemu64: builds on a CPU without SSE4.2/AVX2/PCLMUL give the same bytes",
    },
    Package {
        name: "squashfs-tools",
        suite: Suite::Main,
        why: "unsquashfs extracts the squashfs writer's images for comparison",
    },
    Package {
        name: "erofs-utils",
        suite: Suite::Main,
        why: "fsck.erofs and dump.erofs check the erofs writer's images",
    },
    Package {
        name: "attr",
        suite: Suite::Main,
        why: "getfattr reads the extended attributes of extracted and mounted images",
    },
    Package {
        name: "python3-venv",
        suite: Suite::Main,
        why: "a venv for grpcio, the independent gRPC client of the multiplexer tests",
    },
    Package {
        name: "skopeo",
        suite: Suite::Main,
        why: "independent client for OCI interop tests",
    },
    Package {
        name: "dosfstools",
        suite: Suite::Main,
        why: "fsck.fat: FAT oracle for disk image tests",
    },
    Package {
        name: "mtools",
        suite: Suite::Main,
        why: "mdir/mcopy read FAT volumes back in disk image tests",
    },
    Package {
        name: "fdisk",
        suite: Suite::Main,
        why: "sfdisk --dump/--verify: MBR and GPT oracle",
    },
    Package {
        name: "gdisk",
        suite: Suite::Main,
        why: "sgdisk -v: GPT oracle (CRCs, backup header)",
    },
    Package {
        name: "qemu-utils",
        suite: Suite::Backports,
        why: "qemu-img check/compare/info: qcow2, VHD and VMDK oracle",
    },
    Package {
        name: "xorriso",
        suite: Suite::Main,
        why: "ISO 9660 oracle: El Torito and system area reports, extraction",
    },
    Package {
        name: "isolinux",
        suite: Suite::Main,
        why: "isolinux.bin and isohdpfx.bin for the BIOS-booting ISO tests",
    },
    Package {
        name: "syslinux-common",
        suite: Suite::Main,
        why: "ldlinux.c32, which isolinux loads",
    },
    Package {
        name: "ovmf",
        suite: Suite::Main,
        why: "UEFI firmware for the EFI boot tests",
    },
    Package {
        name: "systemd-boot-efi",
        suite: Suite::Main,
        why: "linuxx64.efi.stub, the EFI stub of unified kernel images",
    },
    Package {
        name: "sbsigntool",
        suite: Suite::Main,
        why: "sbsign/sbverify: a UKI signed with a throwaway key verifies",
    },
    Package {
        name: "openssl",
        suite: Suite::Main,
        why: "the throwaway signing key and certificate of the UKI test",
    },
    Package {
        name: "binutils",
        suite: Suite::Main,
        why: "objdump/objcopy read and write PE sections (UKI oracle)",
    },
    Package {
        name: "librsvg2-bin",
        suite: Suite::Main,
        why: "rsvg-convert renders the boot chart SVG to PNG in tests and for docs/",
    },
    Package {
        name: "chromium",
        suite: Suite::Main,
        why: "headless browser: the size report's page (--dump-dom, screenshots for docs/)",
    },
    Package {
        name: "fonts-dejavu-core",
        suite: Suite::Main,
        why: "a font for rsvg-convert and chromium to draw the charts' text with",
    },
    Package {
        name: "e2fsprogs",
        suite: Suite::Main,
        why: "mkfs.ext4: a filesystem image slipway run must refuse",
    },
];

/// A cargo subcommand the checks use, installed from crates.io at a fixed
/// version.
#[derive(Debug)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
    pub why: &'static str,
}

/// Every cargo tool the checks use. cargo-nextest comes with the machine.
pub const TOOLS: &[Tool] = &[Tool {
    name: "cargo-machete",
    version: "0.9.2",
    why: "unused dependencies (.ci/run); about 2.5 CPU minutes to build, once",
}];

/// Whether `tool` answers `--version` with its pinned version.
fn tool_installed(tool: &Tool) -> bool {
    Command::new(tool.name)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains(tool.version))
        .unwrap_or(false)
}

/// Builds and installs the missing cargo tools (`cargo install --locked`).
pub fn ensure_tools() -> Result<()> {
    for tool in TOOLS.iter().filter(|t| !tool_installed(t)) {
        eprintln!(
            "xtask: installing {} {} ({})",
            tool.name, tool.version, tool.why
        );
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(["install", "--locked", "--version", tool.version, tool.name]);
        let status = cmd.status().context("could not start cargo install")?;
        if !status.success() {
            bail!(
                "cargo install {} {} failed with {status}",
                tool.name,
                tool.version
            );
        }
    }
    Ok(())
}

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
    for t in TOOLS {
        let state = if tool_installed(t) { "ok" } else { "missing" };
        let from = format!("crates.io {}", t.version);
        println!("{:<8} {:<22} {:<20} {}", state, t.name, from, t.why);
    }
    if install {
        ensure_tools()?;
        ensure()
    } else {
        Ok(())
    }
}

/// The environment variable through which tests find the test venv's Python.
pub const TEST_PYTHON_ENV: &str = "SLIPWAY_TEST_PYTHON";

/// PyPI packages the tests use as implementations independent of ours:
/// the multiplexer's gRPC client (gRPC's C core, Google's protobuf), a
/// JSON Schema validator with a YAML reader for `slipway schema`, and the
/// SPDX project's own validator (`pyspdxtools`) for the SBOMs.
const PYTHON_TEST: &[&str] = &[
    "grpcio==1.85.3",
    "grpcio-reflection==1.85.1",
    "protobuf==7.36.2",
    "jsonschema==4.26.0",
    "PyYAML==6.0.4",
    "spdx-tools==0.8.5",
];

/// A venv in `<target>/python-test` with [`PYTHON_TEST`]; its python.
/// Does nothing when it is already there.
pub fn test_python(target: &Path) -> Result<PathBuf> {
    let dir = target.join("python-test");
    let python = dir.join("bin/python3");
    let stamp = dir.join("requirements.txt");
    let wanted = PYTHON_TEST.join("\n");
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(python);
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "xtask: creating {} with {}",
        dir.display(),
        PYTHON_TEST.join(" ")
    );
    let status = Command::new("/usr/bin/python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .context("could not run /usr/bin/python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed ({status})", dir.display());
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON_TEST)
        .status()
        .context("could not run pip")?;
    if !status.success() {
        bail!("pip install {} failed ({status})", PYTHON_TEST.join(" "));
    }
    std::fs::write(&stamp, wanted).context("writing the venv's requirements")?;
    Ok(python)
}

/// The environment variable through which tests find the test kernel.
pub const TEST_KERNEL_ENV: &str = "SLIPWAY_TEST_KERNEL_DIR";

/// Debian's 6.12 backports kernel, unpacked into `<target>/test-kernel`:
/// `vmlinuz`, `version` and `lib/modules/<version>/` with its `modules.dep`.
/// Needs bookworm-backports enabled ([`ensure`] does that with qemu). Does
/// nothing when the kernel is already there.
pub fn test_kernel(target: &Path) -> Result<PathBuf> {
    let dir = target.join("test-kernel");
    if dir.join("vmlinuz").is_file() && dir.join("version").is_file() {
        return Ok(dir);
    }
    let out = Command::new("apt-cache")
        .args(["depends", "linux-image-amd64/bookworm-backports"])
        .output()
        .context("could not run apt-cache")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let package = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-6"))
        .map(str::to_owned)
        .context("apt-cache does not know linux-image-amd64 in bookworm-backports: enable backports (cargo xtask deps --install as root)")?;
    let version = package.trim_start_matches("linux-image-").to_owned();
    let download = target.join("test-kernel.download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download).context("creating the kernel download directory")?;
    let script = format!(
        "apt-get download -q {package} 2>&1 | grep -v 'unsandboxed' || true; \
         ls {package}_*.deb >/dev/null; \
         dpkg-deb -x {package}_*.deb kroot; \
         depmod -b kroot {version}; \
         mkdir -p out/lib/modules; \
         mv kroot/boot/vmlinuz-{version} out/vmlinuz; \
         mv kroot/lib/modules/{version} out/lib/modules/; \
         echo {version} > out/version"
    );
    eprintln!("xtask: fetching the test kernel {package}");
    let status = Command::new("sh")
        .args(["-ec", &script])
        .current_dir(&download)
        .status()
        .context("could not start sh")?;
    if !status.success() {
        bail!("fetching the test kernel {package} failed ({status})");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(download.join("out"), &dir).context("moving the test kernel into place")?;
    let _ = std::fs::remove_dir_all(&download);
    Ok(dir)
}
