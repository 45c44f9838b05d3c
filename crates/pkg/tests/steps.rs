//! The declarative steps that need no network, each checked in the built
//! image: the `ca-certificates` bundle, the `kernel` module subset (from
//! fake modules made here, with real `.modinfo` sections), and a `cargo:`
//! binary (a tiny crate built statically).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use slipway_oci::Store;
use slipway_pkg::BuildOptions;
use slipway_reference::{Arch, Platform, Reference};

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A layer entry: mode, uid, gid, and its bytes (`-> target` for symlinks).
#[derive(Clone, Debug)]
struct Item {
    mode: u32,
    uid: u64,
    gid: u64,
    data: Vec<u8>,
}

fn read_tar(reader: impl Read) -> BTreeMap<String, Item> {
    let mut archive = tar::Archive::new(reader);
    let mut out = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let path = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        if h.entry_type() == tar::EntryType::Symlink {
            data = format!("-> {}", e.link_name().unwrap().unwrap().display()).into_bytes();
        } else {
            e.read_to_end(&mut data).unwrap();
        }
        out.insert(
            path,
            Item {
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                data,
            },
        );
    }
    out
}

fn layer(store: &Store, reference: &Reference) -> BTreeMap<String, Item> {
    let image = store
        .resolve(reference, &Platform::linux(Arch::Amd64))
        .unwrap();
    assert_eq!(image.manifest.layers.len(), 1);
    let blob = store.open_blob(&image.manifest.layers[0].digest).unwrap();
    read_tar(flate2::read::GzDecoder::new(blob))
}

fn build(dir: &Path, store: &Store) -> Reference {
    let built = slipway_pkg::build(dir, store, &BuildOptions::default()).unwrap();
    built.images[0].reference.clone()
}

#[test]
fn ca_certificates_bundle_from_the_shipped_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    write(
        &dir,
        "build.yml",
        b"image: ca\narches: [amd64]\nsteps:\n  - root: rootfs\n  - ca-certificates: {}\n  - ca-certificates:\n      dest: etc/other.pem\n",
    );
    // Sorted by path: mozilla/B before mozilla/a (byte order), then zz.
    write(
        &dir,
        "rootfs/usr/share/ca-certificates/mozilla/a.crt",
        b"-----A-----\n",
    );
    write(
        &dir,
        "rootfs/usr/share/ca-certificates/mozilla/B.crt",
        b"-----B-----",
    );
    write(
        &dir,
        "rootfs/usr/share/ca-certificates/zz/c.crt",
        b"-----C-----\n",
    );
    write(
        &dir,
        "rootfs/usr/share/ca-certificates/mozilla/readme.txt",
        b"not a cert\n",
    );
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let files = layer(&store, &build(&dir, &store));
    let bundle = &files["etc/ssl/certs/ca-certificates.crt"];
    assert_eq!(
        String::from_utf8_lossy(&bundle.data),
        "-----B-----\n-----A-----\n-----C-----\n"
    );
    assert_eq!((bundle.mode, bundle.uid, bundle.gid), (0o644, 0, 0));
    assert_eq!(files["etc/other.pem"].data, bundle.data);

    // Without certificates, the step says what to install.
    let bare = tmp.path().join("bare");
    write(
        &bare,
        "build.yml",
        b"image: bare\narches: [amd64]\nsteps:\n  - ca-certificates: {}\n",
    );
    let err = slipway_pkg::build(&bare, &store, &BuildOptions::default()).unwrap_err();
    assert!(
        slipway_contract::errors::chain(&err).contains("install the `ca-certificates` package"),
        "{err}"
    );
}

/// A minimal ELF64 relocatable object whose `.modinfo` holds `info`
/// (`key=value` strings), as a kernel module carries them.
fn fake_module(info: &[&str]) -> Vec<u8> {
    let mut modinfo = Vec::new();
    for kv in info {
        modinfo.extend_from_slice(kv.as_bytes());
        modinfo.push(0);
    }
    let shstrtab = b"\0.modinfo\0.shstrtab\0";
    let modinfo_off = 64u64;
    let shstrtab_off = modinfo_off + modinfo.len() as u64;
    let shoff = (shstrtab_off + shstrtab.len() as u64).div_ceil(8) * 8;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    out.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    out.extend_from_slice(&62u16.to_le_bytes()); // x86-64
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // entry
    out.extend_from_slice(&0u64.to_le_bytes()); // phoff
    out.extend_from_slice(&shoff.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    out.extend_from_slice(&0u16.to_le_bytes()); // phentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // phnum
    out.extend_from_slice(&64u16.to_le_bytes()); // shentsize
    out.extend_from_slice(&3u16.to_le_bytes()); // shnum
    out.extend_from_slice(&2u16.to_le_bytes()); // shstrndx
    assert_eq!(out.len(), 64);
    out.extend_from_slice(&modinfo);
    out.extend_from_slice(shstrtab);
    out.resize(shoff as usize, 0);
    let section = |out: &mut Vec<u8>, name: u32, kind: u32, off: u64, size: u64| {
        out.extend_from_slice(&name.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // flags
        out.extend_from_slice(&0u64.to_le_bytes()); // addr
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // link
        out.extend_from_slice(&0u32.to_le_bytes()); // info
        out.extend_from_slice(&1u64.to_le_bytes()); // addralign
        out.extend_from_slice(&0u64.to_le_bytes()); // entsize
    };
    section(&mut out, 0, 0, 0, 0);
    section(&mut out, 1, 1, modinfo_off, modinfo.len() as u64);
    section(&mut out, 10, 3, shstrtab_off, shstrtab.len() as u64);
    out
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A fake kernel package: vmlinuz, modules with dependencies, an alias, a
/// soft dependency by alias (two modules provide it), a compressed module, a
/// built-in one, and one not wanted.
fn kernel_fixture(dir: &Path, modules: &str) {
    let v = "rootfs/lib/modules/6.1.0-test";
    write(dir, "rootfs/boot/vmlinuz-6.1.0-test", b"fake bzImage");
    write(dir, "rootfs/usr/share/doc/linux/changelog", b"dropped");
    let m = |rel: &str, info: &[&str]| write(dir, &format!("{v}/kernel/{rel}"), &fake_module(info));
    m("drivers/virtio/virtio.ko", &["license=GPL", "depends="]);
    m(
        "drivers/virtio/virtio_ring.ko",
        &["depends=virtio", "alias=virtio:ring"],
    );
    m(
        "drivers/block/virtio_blk.ko",
        &["depends=virtio_ring,virtio", "alias=virtio:d00000002v*"],
    );
    m("lib/crc16.ko", &["depends="]);
    m("fs/mbcache.ko", &["depends="]);
    m("crypto/crc32c_generic.ko", &["depends=", "alias=crc32c"]);
    m(
        "arch/x86/crypto/crc32c-intel.ko",
        &["depends=", "alias=crc32c", "alias=crypto-crc32c"],
    );
    m("drivers/misc/unused.ko", &["depends=", "alias=unused:*"]);
    write(
        dir,
        &format!("{v}/kernel/fs/ext4/ext4.ko.xz"),
        &xz(&fake_module(&[
            "depends=crc16,mbcache",
            // By the algorithm's alias, as kernels write it.
            "softdep=pre: crc32c",
            "alias=fs-ext4",
        ])),
    );
    write(
        dir,
        &format!("{v}/modules.builtin"),
        b"kernel/fs/fat/vfat.ko\n",
    );
    write(
        dir,
        &format!("{v}/modules.dep"),
        b"stale: shipped, replaced\n",
    );
    write(
        dir,
        "build.yml",
        format!(
            "image: kern\narches: [amd64]\nsteps:\n  - root: rootfs\n  - kernel:\n      modules: {modules}\n      load: [virtio_blk, ext4]\n"
        )
        .as_bytes(),
    );
}

#[test]
fn kernel_module_subset_with_dependencies_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kern");
    kernel_fixture(&dir, "[virtio-blk, ext4, vfat]");
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let files = layer(&store, &build(&dir, &store));
    // Only the kernel and its modules tar are left.
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, ["kernel", "kernel.tar"]);
    assert_eq!(files["kernel"].data, b"fake bzImage");
    assert_eq!(files["kernel"].mode, 0o644);
    let tar = read_tar(files["kernel.tar"].data.as_slice());
    let base = "lib/modules/6.1.0-test/";
    let kept: Vec<&str> = tar
        .keys()
        .filter(|p| p.contains(".ko"))
        .map(|p| &p[base.len()..])
        .collect();
    assert_eq!(
        kept,
        [
            "kernel/crypto/crc32c_generic.ko",
            "kernel/drivers/block/virtio_blk.ko",
            "kernel/drivers/virtio/virtio.ko",
            "kernel/drivers/virtio/virtio_ring.ko",
            "kernel/fs/ext4/ext4.ko.xz",
            "kernel/fs/mbcache.ko",
            "kernel/lib/crc16.ko",
        ]
    );
    for (p, item) in &tar {
        assert_eq!((item.uid, item.gid), (0, 0), "{p}");
    }
    let text = |name: &str| String::from_utf8(tar[&format!("{base}{name}")].data.clone()).unwrap();
    // Dependencies before what needs them; soft pre-dependencies too.
    assert_eq!(
        text("modules.load"),
        "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/block/virtio_blk.ko\n\
         kernel/lib/crc16.ko\nkernel/fs/mbcache.ko\nkernel/crypto/crc32c_generic.ko\nkernel/fs/ext4/ext4.ko.xz\n"
    );
    let dep = text("modules.dep");
    assert!(!dep.contains("stale"), "{dep}");
    let line = |m: &str| {
        dep.lines()
            .find(|l| l.starts_with(&format!("{m}:")))
            .unwrap_or_else(|| panic!("no {m} in {dep}"))
            .to_string()
    };
    let mut blk: Vec<&str> = line("kernel/drivers/block/virtio_blk.ko")
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|s| s.to_string().leak() as &str)
        .collect();
    blk.sort();
    assert_eq!(
        blk,
        [
            "kernel/drivers/virtio/virtio.ko",
            "kernel/drivers/virtio/virtio_ring.ko"
        ]
    );
    assert_eq!(
        line("kernel/drivers/virtio/virtio.ko"),
        "kernel/drivers/virtio/virtio.ko:"
    );
    let alias = text("modules.alias");
    assert!(
        alias.contains("alias virtio:d00000002v* virtio_blk\n"),
        "{alias}"
    );
    assert!(alias.contains("alias fs-ext4 ext4\n"), "{alias}");
    assert!(!alias.contains("unused"), "{alias}");
    assert!(text("modules.softdep").contains("softdep ext4 pre: crc32c\n"));
    assert!(alias.contains("alias crc32c crc32c_generic\n"), "{alias}");
    // The shipped modules.builtin is kept.
    assert_eq!(text("modules.builtin"), "kernel/fs/fat/vfat.ko\n");

    // `modules: all` keeps every module.
    let all = tmp.path().join("all");
    kernel_fixture(&all, "all");
    let files = layer(&store, &build(&all, &store));
    let tar = read_tar(files["kernel.tar"].data.as_slice());
    assert!(tar.contains_key(&format!("{base}kernel/drivers/misc/unused.ko")));

    // A module that is neither a module nor built in is an error.
    let bad = tmp.path().join("bad");
    kernel_fixture(&bad, "[virtio_blk, no_such_module]");
    let err = slipway_pkg::build(&bad, &store, &BuildOptions::default()).unwrap_err();
    assert!(
        slipway_contract::errors::chain(&err)
            .contains("module no_such_module is neither a module of 6.1.0-test nor built in"),
        "{err}"
    );
}

/// A tiny workspace (one crate, no dependencies, a lock) holding a package
/// at `pkg/tiny` whose `cargo:` step builds its binary for `arch`.
fn tiny_workspace(ws: &Path, arch: &str) -> std::path::PathBuf {
    write(
        ws,
        "Cargo.toml",
        b"[workspace]\nmembers = [\"crates/tiny\"]\nresolver = \"3\"\n",
    );
    write(
        ws,
        "crates/tiny/Cargo.toml",
        b"[package]\nname = \"slipway-pkg-tiny\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[[bin]]\nname = \"tiny\"\npath = \"main.rs\"\n",
    );
    write(
        ws,
        "crates/tiny/main.rs",
        b"fn main() { println!(\"tiny\"); }\n",
    );
    write(
        ws,
        "Cargo.lock",
        b"# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 4\n\n[[package]]\nname = \"slipway-pkg-tiny\"\nversion = \"0.1.0\"\n",
    );
    let dir = ws.join("pkg/tiny");
    write(
        &dir,
        "build.yml",
        format!(
            "image: tiny\narches: [{arch}]\nsteps:\n  - cargo:\n      package: slipway-pkg-tiny\n      bin: tiny\n      dest: sbin/tiny\n"
        )
        .as_bytes(),
    );
    dir
}

/// A `cargo:` step builds a binary of the workspace holding the package,
/// statically linked, mode 0755 at its `dest`.
#[test]
fn cargo_step_builds_a_static_binary_of_the_workspace() {
    if Arch::host() != Some(Arch::Amd64) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let dir = tiny_workspace(&ws, "amd64");
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let reference = build(&dir, &store);
    let files = layer(&store, &reference);
    let bin = &files["sbin/tiny"];
    assert_eq!((bin.mode, bin.uid, bin.gid), (0o755, 0, 0));
    let needs =
        slipway_pkg::elf::needs(std::io::Cursor::new(bin.data.clone())).expect("an ELF binary");
    assert_eq!(needs.interpreter, None, "statically linked: no loader");
    assert!(needs.needed.is_empty(), "{:?}", needs.needed);
    // It runs here, with no shared libraries.
    let exe = tmp.path().join("tiny");
    std::fs::write(&exe, &bin.data).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(&exe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tiny\n");

    // The tag follows the workspace's sources.
    let before = slipway_pkg::show_tag(&dir, Arch::Amd64).unwrap();
    write(
        &ws,
        "crates/tiny/main.rs",
        b"fn main() { println!(\"changed\"); }\n",
    );
    assert_ne!(slipway_pkg::show_tag(&dir, Arch::Amd64).unwrap(), before);
}

#[test]
fn cargo_step_for_an_arch_the_toolchain_cannot_build() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_workspace(&tmp.path().join("ws"), "s390x");
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let err = slipway_pkg::build(&dir, &store, &BuildOptions::default()).unwrap_err();
    assert!(
        slipway_contract::errors::chain(&err).contains("cannot build tiny for s390x"),
        "{err}"
    );
    assert!(store.refs().unwrap().is_empty());
}

/// The kernel's `boot/config-*` decides the image's initramfs compression
/// label (only `=y` counts: a module cannot unpack the initramfs); without
/// it there is no label, and `slipway build` keeps gzip.
#[test]
fn kernel_initrd_compression_label_from_the_kernel_config() {
    let label = |config: Option<&[u8]>| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("kern");
        kernel_fixture(&dir, "[virtio-blk]");
        if let Some(config) = config {
            write(&dir, "rootfs/boot/config-6.1.0-test", config);
        }
        let store = Store::open(tmp.path().join("cache")).unwrap();
        let reference = build(&dir, &store);
        let image = store
            .resolve(&reference, &Platform::linux(Arch::Amd64))
            .unwrap();
        let config: serde_json::Value = serde_json::from_slice(
            &store
                .read_blob(&image.manifest.config.digest, "config")
                .unwrap(),
        )
        .unwrap();
        // The config file itself is not kept.
        let names: Vec<String> = layer(&store, &reference).into_keys().collect();
        assert_eq!(names, ["kernel", "kernel.tar"]);
        config["config"]["Labels"][slipway_config::label::INITRD_COMPRESSION_LABEL]
            .as_str()
            .map(str::to_string)
    };
    let debian = b"CONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_GZIP=y\nCONFIG_RD_BZIP2=y\n# CONFIG_RD_LZMA is not set\nCONFIG_RD_XZ=m\nCONFIG_RD_ZSTD=y\n";
    assert_eq!(label(Some(debian)).as_deref(), Some("gzip,bzip2,zstd"));
    assert_eq!(label(Some(b"CONFIG_RD_GZIP=y\n")).as_deref(), Some("gzip"));
    assert_eq!(label(None), None);
}
