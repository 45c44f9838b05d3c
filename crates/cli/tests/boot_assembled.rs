//! An image assembled by `slipway build --format kernel+initrd` from images
//! made here and pushed to the real registry on loopback boots under qemu
//! (TCG): the kernel image carries the Debian test kernel, the init image
//! Debian's static busybox and a `/init` script that checks what the build
//! placed (a `files:` entry, a bundle's config.json and root, a hard link,
//! the kernel's `kernel.tar`, the microcode archive prepended uncompressed),
//! prints a marker and powers off.
//!
//! Needs the test kernel (`SLIPWAY_TEST_KERNEL_DIR`), busybox-static
//! (`/bin/busybox`) and qemu-system-x86_64.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use slipway_run::{Accel, Boot, Interrupt, Options, run};
use slipway_testkit::initramfs::{kernel_dir, need};
use slipway_testkit::{Artifact, Entry, ImageBuilder, PushTarget, Registry};

const MARKER: &str = "ASSEMBLED-INITRD-CHECKS-PASSED";

/// Runs as PID 1 through the `bin/sh` hard link to busybox. Each check
/// prints what failed; the marker only when none did.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin
fail=0
check() { if ! eval "$1"; then echo "CHECK FAILED: $1"; fail=1; fi; }
check '[ "$(cat /etc/assembled)" = "from the files section" ]'
check '[ "$(stat -c %a /etc/assembled)" = 640 ]'
check 'grep -q "\"ociVersion\"" /containers/onboot/000-probe/config.json'
check 'grep -q "/bin/probe" /containers/onboot/000-probe/config.json'
check '[ -f /containers/onboot/000-probe/runtime.json ]'
check '[ "$(cat /containers/onboot/000-probe/lower/bin/probe)" = probe-binary ]'
check '[ "$(stat -c %i /bin/sh)" = "$(stat -c %i /bin/busybox)" ]'
check '[ "$(stat -c %h /bin/busybox)" = 2 ]'
check '[ "$(cat /lib/modules/from-kernel-tar)" = modules ]'
check '[ ! -e /boot/kernel ]'
check '[ "$(cat /kernel/x86/microcode/GenuineIntel.bin)" = early-microcode ]'
if [ "$fail" = 0 ]; then echo "ASSEMBLED-INITRD-CHECKS-PASSED"; fi
poweroff -f
"#;

fn push(registry: &Registry, repo: &str, builder: ImageBuilder) {
    let artifact: Artifact = builder.arch("amd64").build().unwrap().into();
    PushTarget::new(registry, repo)
        .push(&artifact, Some("1"))
        .unwrap();
}

/// An early-microcode archive made by GNU cpio (its content is not real
/// microcode: the vCPU is not an Intel one, so the kernel's loader skips it,
/// and the unpacker puts it in the root like any archive).
fn microcode_cpio() -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    let dir = src.path().join("kernel/x86/microcode");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("GenuineIntel.bin"), "early-microcode").unwrap();
    let mut child = std::process::Command::new(need("cpio"))
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(src.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"kernel\nkernel/x86\nkernel/x86/microcode\nkernel/x86/microcode/GenuineIntel.bin\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Pushes the images; returns the microcode archive the kernel image holds.
fn seed(registry: &Registry) -> Vec<u8> {
    let vmlinuz = std::fs::read(kernel_dir().join("vmlinuz")).unwrap();
    let microcode = microcode_cpio();
    let modules = slipway_testkit::image::tar_bytes(&[
        Entry::dir("lib"),
        Entry::dir("lib/modules"),
        Entry::file("lib/modules/from-kernel-tar", "modules"),
    ])
    .unwrap();
    push(
        registry,
        "test/kernel",
        ImageBuilder::new().layer([
            Entry::file("kernel", vmlinuz),
            Entry::file("kernel.tar", modules),
            Entry::file("intel-ucode.cpio", &microcode),
        ]),
    );
    let busybox = std::fs::read(need("busybox")).unwrap();
    push(
        registry,
        "test/init",
        ImageBuilder::new().layer([
            Entry::dir("bin"),
            Entry::executable("bin/busybox", busybox),
            Entry::hard_link("bin/sh", "bin/busybox"),
            Entry::symlink("bin/cat", "busybox"),
            Entry::symlink("bin/grep", "busybox"),
            Entry::symlink("bin/stat", "busybox"),
            Entry::symlink("bin/poweroff", "busybox"),
            Entry::dir("dev"),
            Entry::char_device("dev/console", 5, 1).with_mode(0o600),
            Entry::executable("init", INIT),
        ]),
    );
    push(
        registry,
        "test/probe",
        ImageBuilder::new()
            .layer([
                Entry::dir("bin"),
                Entry::executable("bin/probe", "probe-binary"),
            ])
            .cmd(["/bin/probe"]),
    );
    microcode
}

const CONFIG: &str = r#"kernel:
  image: example.org/test/kernel:1
  cmdline: console=ttyS0 quiet no_timer_check panic=-1
  ucode: intel-ucode.cpio
init:
  - example.org/test/init:1
onboot:
  - name: probe
    image: example.org/test/probe:1
files:
  - path: etc/assembled
    contents: from the files section
    mode: "0640"
"#;

#[test]
fn an_assembled_initrd_boots_and_its_init_finds_what_the_build_placed() {
    need("qemu-system-x86_64");
    let registry = Registry::start().unwrap();
    let microcode = seed(&registry);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("assembled.yml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = work.path().join("out");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("--cache")
        .arg(work.path().join("cache"))
        .args(["--arch", "amd64", "--mirror"])
        .arg(format!("example.org=http://{}", registry.host()))
        .args(["build", "--format", "kernel+initrd", "--dir"])
        .arg(&out)
        .arg(&config)
        .env_remove("SLIPWAY_CACHE")
        .env_remove("LINUXKIT_MIRROR")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "slipway build: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = |suffix: &str| out.join(format!("assembled{suffix}"));
    // The initrd starts with the microcode archive, as it was.
    let initrd = std::fs::read(file("-initrd.img")).unwrap();
    assert!(initrd.starts_with(&microcode));
    assert_eq!(&initrd[microcode.len()..microcode.len() + 2], &[0x1f, 0x8b]);
    // The kernel is the image's `kernel`, byte for byte.
    assert_eq!(
        std::fs::read(file("-kernel")).unwrap(),
        std::fs::read(kernel_dir().join("vmlinuz")).unwrap()
    );
    let cmdline = std::fs::read_to_string(file("-cmdline")).unwrap();
    assert_eq!(cmdline, "console=ttyS0 quiet no_timer_check panic=-1");

    let outcome = boot(
        work.path(),
        &file("-kernel"),
        &file("-initrd.img"),
        &cmdline,
    );
    println!("{}", outcome.console);
    assert!(!outcome.timed_out, "the boot did not finish in time");
    assert!(
        !outcome.console.contains("CHECK FAILED"),
        "a check inside the guest failed"
    );
    assert!(outcome.console.contains(MARKER), "no marker on the console");
    assert!(outcome.console.contains("reboot: Power down"));
    assert!(outcome.success(), "the boot failed: {outcome:?}");
}

fn boot(work: &Path, kernel: &Path, initrd: &Path, cmdline: &str) -> slipway_run::Outcome {
    let boot = Boot::Kernel {
        kernel: kernel.to_path_buf(),
        initrd: initrd.to_path_buf(),
        cmdline: cmdline.to_string(),
    };
    let mut options = Options::new(work.join("state"));
    options.qemu = need("qemu-system-x86_64");
    options.accel = Accel::Tcg;
    options.cpus = 1;
    options.mem_mb = 512;
    options.echo = false;
    options.timeout = Some(Duration::from_secs(180));
    options.grace = Duration::from_secs(10);
    run(&boot, &options, &Interrupt::new()).unwrap()
}
