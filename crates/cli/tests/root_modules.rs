//! A root format built with a kernel that lacks what finds or mounts its
//! root: the build says which modules are missing and names the kernel
//! image, before any file is written. A missing filesystem, or no driver
//! for any device the root can be on, is an error; one way to the device
//! missing (virtio, or the IDE/SATA disk) is a warning and the build goes
//! on. The kernels are images on a loopback registry whose `kernel.tar`
//! holds only module index files and the modules they list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use assert_cmd::Command;
use slipway_testkit::image::{pseudo_random_bytes, tar_bytes};
use slipway_testkit::{Artifact, Entry, ImageBuilder, PushTarget, Registry};

/// Every root-device module, where `modules.dep` puts it.
const ALL: &[(&str, &str)] = &[
    ("virtio_blk", "kernel/drivers/block/virtio_blk.ko"),
    ("ahci", "kernel/drivers/ata/ahci.ko"),
    ("ata_piix", "kernel/drivers/ata/ata_piix.ko"),
    ("sd_mod", "kernel/drivers/scsi/sd_mod.ko"),
    ("sr_mod", "kernel/drivers/scsi/sr_mod.ko"),
    ("squashfs", "kernel/fs/squashfs/squashfs.ko"),
    ("erofs", "kernel/fs/erofs/erofs.ko"),
    ("isofs", "kernel/fs/isofs/isofs.ko"),
];

/// A kernel image whose modules are [`ALL`] less `without`; `builtin`
/// ones are listed in `modules.builtin` instead of being modules.
fn kernel(without: &[&str], builtin: &[&str]) -> ImageBuilder {
    let release = "lib/modules/6.6.0";
    let mut dep = String::new();
    let mut builtins = String::new();
    let mut entries = vec![Entry::dir(release)];
    for (name, path) in ALL {
        if without.contains(name) {
            continue;
        }
        if builtin.contains(name) {
            builtins.push_str(&format!("{path}\n"));
        } else {
            dep.push_str(&format!("{path}:\n"));
            entries.push(Entry::file(format!("{release}/{path}"), "\x7fELF module"));
        }
    }
    let alias = "alias fs-squashfs squashfs\nalias fs-erofs erofs\nalias fs-iso9660 isofs\n";
    entries.push(Entry::file(format!("{release}/modules.dep"), dep));
    entries.push(Entry::file(format!("{release}/modules.alias"), alias));
    entries.push(Entry::file(format!("{release}/modules.builtin"), builtins));
    ImageBuilder::new().layer([
        Entry::file("kernel", pseudo_random_bytes(7, 5000)),
        Entry::file("kernel.tar", tar_bytes(&entries).unwrap()),
    ])
}

fn push(registry: &Registry, repo: &str, builder: ImageBuilder) {
    let artifact: Artifact = builder.arch("amd64").build().unwrap().into();
    PushTarget::new(registry, repo)
        .push(&artifact, Some("1"))
        .unwrap();
}

struct Fixture {
    registry: Registry,
    work: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let registry = Registry::start().unwrap();
        push(
            &registry,
            "test/init",
            ImageBuilder::new().layer([Entry::executable("init", "#!/bin/sh\n")]),
        );
        // Squashfs missing; erofs built in.
        push(
            &registry,
            "test/no-squashfs",
            kernel(&["squashfs"], &["erofs"]),
        );
        // No virtio disk driver.
        push(&registry, "test/no-virtio", kernel(&["virtio_blk"], &[]));
        // No block driver at all, the filesystems there.
        push(
            &registry,
            "test/no-block",
            kernel(&["virtio_blk", "ahci", "ata_piix"], &[]),
        );
        Fixture {
            registry,
            work: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// `slipway build --format FORMAT` of a config with kernel `repo`,
    /// into `DIR/out`.
    fn build(&self, repo: &str, format: &str, dir: &Path) -> assert_cmd::assert::Assert {
        let config = self.work.path().join(format!("{repo}.yml"));
        std::fs::write(
            &config,
            format!(
                "kernel:\n  image: example.org/test/{repo}:1\n  cmdline: console=ttyS0\ninit:\n  - example.org/test/init:1\n"
            ),
        )
        .unwrap();
        Command::new(assert_cmd::cargo::cargo_bin("slipway"))
            .arg("--cache")
            .arg(self.cache.path())
            .args(["--arch", "amd64", "--mirror"])
            .arg(format!("example.org=http://{}", self.registry.host()))
            .args(["build", "--format", format, "--name", "out", "--dir"])
            .arg(dir)
            .arg(&config)
            .env_remove("SLIPWAY_CACHE")
            .env_remove("LINUXKIT_MIRROR")
            .env_remove("SOURCE_DATE_EPOCH")
            .assert()
    }
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_kernel_without_the_roots_filesystem_fails_before_writing() {
    let fx = Fixture::new();
    let dir = fx.work.path().join("squashfs");
    let a = fx.build("no-squashfs", "kernel+squashfs", &dir).failure();
    let err = stderr(&a);
    assert!(err.contains("kernel+squashfs"), "{err}");
    assert!(err.contains("fs-squashfs"), "{err}");
    assert!(err.contains("example.org/test/no-squashfs:1"), "{err}");
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));

    // The same kernel has erofs built in: nothing to say.
    let dir = fx.work.path().join("erofs");
    let a = fx.build("no-squashfs", "kernel+erofs", &dir).success();
    let err = stderr(&a);
    assert!(!err.contains("warning"), "{err}");
    assert!(dir.join("out-erofs.img").is_file());
}

#[test]
fn a_kernel_without_virtio_warns_and_builds() {
    let fx = Fixture::new();
    let dir = fx.work.path().join("out");
    let a = fx.build("no-virtio", "kernel+iso", &dir).success();
    let err = stderr(&a);
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains("virtio_blk"), "{err}");
    assert!(err.contains("example.org/test/no-virtio:1"), "{err}");
    assert!(!err.contains("sr_mod"), "{err}");
    for suffix in ["-kernel", "-initrd.img", "-cmdline", ".iso"] {
        assert!(dir.join(format!("out{suffix}")).is_file(), "{suffix}");
    }
}

#[test]
fn a_kernel_without_any_block_driver_fails_naming_them() {
    let fx = Fixture::new();
    let dir = fx.work.path().join("out");
    let a = fx.build("no-block", "kernel+erofs", &dir).failure();
    let err = stderr(&a);
    assert!(err.contains("virtio_blk, ahci, ata_piix"), "{err}");
    assert!(err.contains("example.org/test/no-block:1"), "{err}");
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
    // A format that boots from its initrd needs none of them.
    fx.build("no-block", "kernel+initrd", &dir).success();
}
