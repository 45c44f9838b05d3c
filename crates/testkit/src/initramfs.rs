//! The test initramfs of the boot tests: the static `slipway-init` as
//! `/init`, Debian's static busybox, runc and crun with their libraries from
//! the host, one onboot bundle (read-write, through its `runtime.json`
//! overlay), one onshutdown bundle and two services, and the kernel modules
//! the tests need from the Debian 6.12 test kernel.
//!
//! Needs cpio, depmod, busybox-static, runc, crun, xz and the kernel that
//! `cargo xtask test` unpacks into `<target>/test-kernel` (or
//! `SLIPWAY_TEST_KERNEL_DIR`). These helpers run inside tests only: a
//! missing piece or a failing step fails the calling test with a message
//! saying how to get it, which is why they panic instead of returning errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

/// How to get what the boot tests need.
pub const SETUP: &str = "run `cargo xtask test` (or `cargo xtask deps --install` as root, then `cargo xtask test-kernel`)";

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// The unpacked test kernel: `vmlinuz`, `version`, `lib/modules/<version>`.
pub fn kernel_dir() -> PathBuf {
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

/// The path of an installed program (also looked for in `/usr/sbin`, `/sbin`).
pub fn need(program: &str) -> PathBuf {
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
pub fn static_init() -> PathBuf {
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

/// What varies between the test images.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Ship the modules decompressed (`.ko`) instead of as the kernel
    /// package has them (`.ko.xz`).
    pub uncompressed_modules: bool,
    /// Include the `zz-poweroff` service, which powers the machine off
    /// (SIGUSR2 to PID 1) once `web` is ready. Without it the machine runs
    /// until it is asked to stop.
    pub self_poweroff: bool,
    /// Give `eth0` qemu's user-network address (10.0.2.15/24) from an
    /// `/etc/init.d` script, so ports published to the guest answer.
    pub network: bool,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            uncompressed_modules: false,
            self_poweroff: true,
            network: false,
        }
    }
}

/// The test initramfs, built under `work`; returns its path (`work/initrd.img`).
pub fn build(work: &Path, spec: Spec) -> PathBuf {
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
    if spec.network {
        fs::write(
            root.join("etc/init.d/001-net"),
            "#!/bin/sh\n/bin/busybox ip link set eth0 up\n/bin/busybox ip addr add 10.0.2.15/24 dev eth0\n",
        )
        .unwrap();
        sh(&format!("chmod 755 {}/etc/init.d/001-net", root.display()));
    }
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
            if spec.uncompressed_modules && path.ends_with(".ko.xz") {
                sh(&format!("xz -d {}", dst.join(path).display()));
            }
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
    if spec.self_poweroff {
        ro_bundle(
            &root.join("containers/services/zz-poweroff"),
            oci_config(
                &["sh", "-c", "echo POWEROFF-SERVICE; sleep 1; kill -USR2 1"],
                true,
                true,
                json!({"org.slipway.console": "true", "org.slipway.after": "web"}),
            ),
        );
    }
    let initrd = work.join("initrd.img");
    sh(&format!(
        "cd {} && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > {}",
        root.display(),
        initrd.display()
    ));
    initrd
}
