//! Real boots under qemu (TCG) of a test initramfs: the static
//! `slipway-init` as `/init`, Debian's static busybox, runc and crun with
//! their libraries from the host, one onboot bundle (read-write, through
//! its `runtime.json` overlay), one onshutdown bundle and two services.
//!
//! Needs qemu-system-x86_64, cpio, depmod, busybox-static, runc, crun and
//! the Debian 6.12 kernel that `cargo xtask test` unpacks into
//! `<target>/test-kernel` (or `SLIPWAY_TEST_KERNEL_DIR`). A missing piece
//! fails the test with a message saying how to get it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::json;
use slipway_layout::timeline::{Entry, Event};
use slipway_run::{Accel, Boot, Options, run};

const SETUP: &str = "run `cargo xtask test` (or `cargo xtask deps --install` as root, then `cargo xtask test-kernel`)";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn kernel_dir() -> PathBuf {
    let dir = std::env::var_os("SLIPWAY_TEST_KERNEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("test-kernel"));
    assert!(
        dir.join("vmlinuz").is_file() && dir.join("version").is_file(),
        "the test kernel is missing from {}: {SETUP}",
        dir.display()
    );
    dir
}

fn need(program: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("{program} is not installed: {SETUP}"))
}

fn sh(script: &str) {
    let status = Command::new("sh").args(["-ec", script]).status().unwrap();
    assert!(status.success(), "`{script}` failed: {status}");
}

/// Build the static init, as `pkg/init` ships it.
fn static_init() -> PathBuf {
    let dir = target_dir().join("static-init");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "x86_64-unknown-linux-gnu",
            "-p",
            "slipway-init",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", &dir)
        .status()
        .unwrap();
    assert!(status.success(), "building the static slipway-init failed");
    dir.join("x86_64-unknown-linux-gnu/release/slipway-init")
}

fn oci_config(
    args: &[&str],
    readonly: bool,
    host_pid: bool,
    annotations: serde_json::Value,
) -> String {
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_NET_BIND_SERVICE",
    ];
    let mut namespaces = vec![
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
    ];
    if !host_pid {
        namespaces.push(json!({"type": "pid"}));
    }
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": readonly},
        "hostname": "box",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=1m"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}
        ],
        "linux": {"namespaces": namespaces},
        "annotations": annotations
    });
    serde_json::to_string_pretty(&config).unwrap()
}

fn busybox_root(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    for dir in ["proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::copy(need("busybox"), root.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "sleep", "kill", "httpd", "cat"] {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
}

/// A read-only bundle: the image is `rootfs/`.
fn ro_bundle(dir: &Path, config: String) {
    busybox_root(&dir.join("rootfs"));
    fs::write(dir.join("config.json"), config).unwrap();
}

/// A read-write bundle as LinuxKit lays it out: `lower/`, `tmp/`, an empty
/// `rootfs/`, and a `runtime.json` whose mounts make the overlay.
fn rw_bundle(dir: &Path, guest_dir: &str, config: String, mkdir: &[&str]) {
    busybox_root(&dir.join("lower"));
    fs::create_dir_all(dir.join("tmp")).unwrap();
    fs::create_dir_all(dir.join("rootfs")).unwrap();
    fs::write(dir.join("config.json"), config).unwrap();
    let runtime = json!({
        "mounts": [
            {"type": "tmpfs", "source": "tmpfs", "destination": format!("{guest_dir}/tmp")},
            {"destination": format!("{guest_dir}/tmp"), "options": ["remount", "private"]},
            {"type": "overlay", "source": "overlay", "destination": format!("{guest_dir}/rootfs"),
             "options": [format!("lowerdir={guest_dir}/lower"), format!("upperdir={guest_dir}/tmp/upper"), format!("workdir={guest_dir}/tmp/work")]}
        ],
        "mkdir": mkdir,
        "cgroups": ["slipway-test/onboot"],
        "interfaces": [],
        "bindNS": {"net": "/run/netns/hello"}
    });
    fs::write(
        dir.join("runtime.json"),
        serde_json::to_string_pretty(&runtime).unwrap(),
    )
    .unwrap();
}

const MODULES: &[&str] = &[
    "overlay",
    "button",
    "evdev",
    "pvpanic",
    "pvpanic_pci",
    "virtio_net",
    "veth",
];

/// The test initramfs; returns its path.
fn initramfs(work: &Path) -> PathBuf {
    let kdir = kernel_dir();
    let version = fs::read_to_string(kdir.join("version"))
        .unwrap()
        .trim()
        .to_owned();
    let root = work.join("root");
    for dir in [
        "usr/bin",
        "lib/x86_64-linux-gnu",
        "lib64",
        "etc/init.d",
        "bin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::copy(static_init(), root.join("init")).unwrap();
    symlink("/init", root.join("usr/bin/service")).unwrap();
    symlink("/usr/bin/service", root.join("etc/init.d/010-onboot")).unwrap();
    fs::copy(need("busybox"), root.join("bin/busybox")).unwrap();
    symlink("busybox", root.join("bin/sh")).unwrap();
    fs::write(
        root.join("etc/init.d/000-issue"),
        "#!/bin/sh\necho ISSUE-SCRIPT-RAN\n",
    )
    .unwrap();
    sh(&format!(
        "chmod 755 {}/etc/init.d/000-issue",
        root.display()
    ));
    fs::copy(need("runc"), root.join("usr/bin/runc")).unwrap();
    fs::copy(need("crun"), root.join("usr/bin/crun")).unwrap();
    sh(&format!(
        "for lib in $(ldd {runc} {crun} | awk '/=> \\//{{print $3}}' | sort -u); do cp -L \"$lib\" {root}/lib/x86_64-linux-gnu/; done; \
         cp -L /lib64/ld-linux-x86-64.so.2 {root}/lib64/",
        runc = need("runc").display(),
        crun = need("crun").display(),
        root = root.display()
    ));
    // The kernel modules the test needs, with a fresh index.
    let src = kdir.join("lib/modules").join(&version);
    let dst = root.join("lib/modules").join(&version);
    fs::create_dir_all(&dst).unwrap();
    let dep = fs::read_to_string(src.join("modules.dep")).unwrap();
    for line in dep.lines() {
        let path = line.split(':').next().unwrap();
        let name = path
            .rsplit('/')
            .next()
            .unwrap()
            .split(".ko")
            .next()
            .unwrap()
            .replace('-', "_");
        let needed = MODULES.contains(&name.as_str())
            || ["net_failover", "failover"].contains(&name.as_str());
        if needed {
            fs::create_dir_all(dst.join(path).parent().unwrap()).unwrap();
            fs::copy(src.join(path), dst.join(path)).unwrap();
        }
    }
    for meta in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        fs::copy(src.join(meta), dst.join(meta)).unwrap();
    }
    fs::write(dst.join("modules.load"), "overlay\n").unwrap();
    let status = Command::new(need("depmod"))
        .arg("-b")
        .arg(&root)
        .arg(&version)
        .status()
        .unwrap();
    assert!(status.success(), "depmod failed");

    let onboot = root.join("containers/onboot/000-hello");
    rw_bundle(
        &onboot,
        "/containers/onboot/000-hello",
        oci_config(
            &[
                "sh",
                "-c",
                "echo HELLO-FROM-ONBOOT > /dev/stderr; echo written > /written; cat /written",
            ],
            false,
            false,
            json!({}),
        ),
        &["/run/made-by-runtime-json", "made-in-rootfs"],
    );
    ro_bundle(
        &root.join("containers/onshutdown/000-bye"),
        oci_config(&["echo", "BYE-FROM-ONSHUTDOWN"], true, false, json!({})),
    );
    ro_bundle(
        &root.join("containers/services/web"),
        oci_config(
            &["sh", "-c", "echo SERVICE-UP; exec httpd -f -p 8080 -h /"],
            true,
            false,
            json!({"org.slipway.console": "true", "org.slipway.ready": "tcp:8080"}),
        ),
    );
    ro_bundle(
        &root.join("containers/services/zz-poweroff"),
        oci_config(
            &["sh", "-c", "echo POWEROFF-SERVICE; sleep 1; kill -USR2 1"],
            true,
            true,
            json!({"org.slipway.console": "true", "org.slipway.after": "web"}),
        ),
    );
    let initrd = work.join("initrd.img");
    sh(&format!(
        "cd {} && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > {}",
        root.display(),
        initrd.display()
    ));
    initrd
}

fn ms(timeline: &[Entry], event: Event, name: Option<&str>) -> u64 {
    timeline
        .iter()
        .find(|e| e.event == event && (name.is_none() || e.name.as_deref() == name))
        .unwrap_or_else(|| panic!("no {event} {name:?} in the timeline"))
        .ms
}

fn boot_with(runtime: &str) {
    let qemu = need("qemu-system-x86_64");
    need("cpio");
    let work = tempfile::tempdir().unwrap();
    let initrd = initramfs(work.path());
    let boot = Boot::Kernel {
        kernel: kernel_dir().join("vmlinuz"),
        initrd,
        // no_timer_check: a loaded host makes TCG fail the IO-APIC timer check;
        // panic=-1: a panic ends the run at once (and is seen on the console).
        cmdline: format!("console=ttyS0 quiet no_timer_check panic=-1 slipway.runtime={runtime}"),
    };
    let mut options = Options::new(work.path().join("state"));
    options.qemu = qemu;
    options.accel = Accel::Tcg;
    options.mem_mb = 512;
    options.echo = false;
    options.timeout = Some(Duration::from_secs(180));
    let outcome = run(
        &boot,
        &options,
        &AtomicBool::new(false),
        Duration::from_secs(10),
    )
    .unwrap();
    let console = &outcome.console;
    println!("{console}");
    assert!(!outcome.timed_out, "the boot did not finish in time");
    assert!(outcome.success(), "the boot failed: {outcome:?}");
    for marker in [
        "ISSUE-SCRIPT-RAN",
        "HELLO-FROM-ONBOOT",
        "written",
        "web: SERVICE-UP",
        "zz-poweroff: POWEROFF-SERVICE",
        "BYE-FROM-ONSHUTDOWN",
        "reboot: Power down",
    ] {
        assert!(console.contains(marker), "{marker} is not on the console");
    }
    let timeline = outcome.timeline();
    let names: Vec<String> = timeline
        .iter()
        .map(|e| {
            format!("{} {}", e.event, e.name.clone().unwrap_or_default())
                .trim()
                .to_owned()
        })
        .collect();
    for expected in [
        "init-start",
        "root-done",
        "onboot-exit 000-hello",
        "onboot-done",
        "service-start web",
        "service-ready web",
        "service-start zz-poweroff",
        "services-started",
        "shutdown",
        "onshutdown-start 000-bye",
        "poweroff",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("onboot-failed") || n.starts_with("service-failed")),
        "{names:?}"
    );
    // Order from the timeline's own stamps: `after` waited for readiness.
    assert!(
        ms(&timeline, Event::ServiceReady, Some("web"))
            <= ms(&timeline, Event::ServiceStart, Some("zz-poweroff"))
    );
    let root = timeline
        .iter()
        .find(|e| e.event == Event::RootDone)
        .unwrap();
    assert_eq!(root.detail.as_deref(), Some("bind"));

    // The numbers for the report (printed, never asserted).
    let init = ms(&timeline, Event::InitStart, None);
    let onboot_start = ms(&timeline, Event::OnbootStart, Some("000-hello"));
    let onboot_exit = ms(&timeline, Event::OnbootExit, Some("000-hello"));
    let onboot_done = ms(&timeline, Event::OnbootDone, None);
    let last_start = ms(&timeline, Event::ServiceStart, Some("web"));
    eprintln!(
        "TIMELINE {runtime}: kernel->init {init} ms; init->onboot done {} ms (container {} ms); onboot done->service web started {} ms; init overhead before onboot {} ms (root {} ms, mounts {} ms, modules {} ms)",
        onboot_done - init,
        onboot_exit - onboot_start,
        last_start - onboot_done,
        onboot_start - init,
        ms(&timeline, Event::RootDone, None) - init,
        ms(&timeline, Event::MountsDone, None) - ms(&timeline, Event::RootDone, None),
        ms(&timeline, Event::ModulesDone, None) - ms(&timeline, Event::MountsDone, None),
    );
}

#[test]
fn boots_with_crun() {
    boot_with("crun");
}

#[test]
fn boots_with_runc() {
    boot_with("runc");
}
