//! Boot media made by the ISO and UKI writers, checked by xorriso, sfdisk
//! and fdisk, then booted under qemu (TCG) to the initramfs's marker: one
//! boot per chain.
//!
//! The hybrid ISO carries isolinux for BIOS and an El Torito FAT image
//! holding a UKI for EFI. `/boot/kernel` and `/boot/initrd.img`, which
//! isolinux loads, are the `.linux` and `.initrd` bytes of that UKI inside
//! the FAT image: the image stores them once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::tree::feed;
use common::{
    Obj, efi_fat, extract, kernel_dir, marker_initrd, need, ovmf, qemu, read_at, run, sha256_file,
    write_uki, xorriso_report,
};
use slipway_formats::iso::{IsoOptions, IsoWriter, Meta};
use slipway_formats::uki::UkiLayout;

const MARKER: &str = "SLIPWAY-BOOT-MARKER";
const EPOCH: u64 = 1_492_533_000;
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const ISOLINUX: &str = "/usr/lib/ISOLINUX/isolinux.bin";
const ISOHDPFX: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
const LDLINUX: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";
/// Larger than the 32 MiB an El Torito sector count can state.
const FAT_MIB: u64 = 40;

const ISOLINUX_CFG: &str = "DEFAULT linux
PROMPT 0
TIMEOUT 0
SERIAL 0 115200
LABEL linux
  KERNEL /boot/kernel
  APPEND initrd=/boot/initrd.img console=ttyS0 quiet
";

struct Hybrid {
    iso: PathBuf,
    initrd: PathBuf,
    uki: PathBuf,
    fat: PathBuf,
    /// (byte offset, length) of the FAT image in the ISO.
    fat_extent: (u64, u64),
    layout: UkiLayout,
    uki_in_fat: u64,
}

fn file(path: &str) -> (fs::File, u64) {
    let f = fs::File::open(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (Debian packages isolinux, syslinux-common)"));
    let len = f.metadata().unwrap().len();
    (f, len)
}

/// The hybrid ISO: isolinux for BIOS (CD and disk), a FAT image with the
/// UKI for EFI, kernel and initrd shared with the UKI.
fn hybrid(work: &Path) -> Hybrid {
    let initrd = marker_initrd(work, MARKER);
    let uki = work.join("uki.efi");
    let layout = write_uki(&uki, &initrd, "console=ttyS0 quiet");
    let fat = work.join("efiboot.img");
    let uki_in_fat = efi_fat(&fat, &uki, FAT_MIB);
    assert_eq!(uki_in_fat % 2048, 0);
    let mut h = Hybrid {
        iso: work.join("hybrid.iso"),
        initrd,
        uki,
        fat,
        fat_extent: (0, 0),
        layout,
        uki_in_fat,
    };
    h.fat_extent = write_hybrid(&h);
    h
}

/// Writes `h.iso` from the other files of `h`; returns the FAT image's
/// place in it.
fn write_hybrid(h: &Hybrid) -> (u64, u64) {
    let (iso, fat, uki, layout) = (&h.iso, &h.fat, &h.uki, &h.layout);
    let options = IsoOptions {
        volume_id: "SLIPWAY".into(),
        epoch: EPOCH,
        catalog_path: Some("isolinux/boot.cat".into()),
        hybrid_mbr: Some(fs::read(ISOHDPFX).expect("isohdpfx.bin: Debian package isolinux")),
    };
    let mut w = IsoWriter::new(fs::File::create(iso).unwrap(), options).unwrap();
    let meta = Meta::new(0o444, EPOCH);
    let (mut f, len) = file(ISOLINUX);
    w.add_bios_boot("isolinux/isolinux.bin", meta.clone(), &mut f, len)
        .unwrap();
    let (mut f, len) = file(LDLINUX);
    w.add_file("isolinux/ldlinux.c32", meta.clone(), &mut f, len)
        .unwrap();
    w.add_file(
        "isolinux/isolinux.cfg",
        meta.clone(),
        &mut ISOLINUX_CFG.as_bytes(),
        ISOLINUX_CFG.len() as u64,
    )
    .unwrap();
    let mut f = fs::File::open(fat).unwrap();
    let fat_len = f.metadata().unwrap().len();
    let region = w.add_region(&mut f, fat_len).unwrap();
    w.set_efi_boot(region.clone()).unwrap();
    w.add_extent("boot/efiboot.img", meta.clone(), region.clone())
        .unwrap();
    let uki_len = fs::metadata(uki).unwrap().len();
    let uki_extent = region.slice(h.uki_in_fat, uki_len).unwrap();
    w.add_extent("EFI/BOOT/BOOTX64.EFI", meta.clone(), uki_extent.clone())
        .unwrap();
    let part = |r: &std::ops::Range<u64>| uki_extent.slice(r.start, r.end - r.start).unwrap();
    w.add_extent("boot/kernel", meta.clone(), part(&layout.linux))
        .unwrap();
    w.add_extent("boot/initrd.img", meta, part(&layout.initrd))
        .unwrap();
    let written = w.finish().unwrap();
    assert_eq!(written.size, fs::metadata(iso).unwrap().len());
    (region.start(), region.len())
}

#[test]
fn hybrid_iso_reads_back_with_xorriso_and_sfdisk() {
    let dir = tempfile::tempdir().unwrap();
    let h = hybrid(dir.path());
    let size = fs::metadata(&h.iso).unwrap().len();

    // El Torito: BIOS isolinux with its boot info table, EFI the FAT image
    // (sector count 0: the image is larger than 32 MiB).
    let report = xorriso_report(&h.iso);
    let line = |prefix: &str| {
        report
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{report}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let bios = line("El Torito boot img :   1");
    assert_eq!(
        &bios[5..11],
        ["1", "BIOS", "y", "none", "0x0000", "0x00"],
        "{report}"
    );
    assert_eq!(bios[11], "4");
    let efi = line("El Torito boot img :   2");
    assert_eq!(&efi[6..10], ["UEFI", "y", "none", "0x0000"], "{report}");
    assert_eq!(efi[11], "0");
    assert_eq!(efi[12].parse::<u64>().unwrap() * 2048, h.fat_extent.0);
    let opts = line("El Torito img opts :   1");
    assert!(opts.contains(&"boot-info-table".to_owned()), "{report}");
    assert!(opts.contains(&"isohybrid-suitable".to_owned()), "{report}");
    assert!(
        report.contains("El Torito cat path : /isolinux/boot.cat"),
        "{report}"
    );
    assert!(
        report.contains("System area summary: MBR isohybrid cyl-align-on"),
        "{report}"
    );
    assert_eq!(size % (1 << 20), 0, "not padded to whole MiB");

    // The partition table as sfdisk reads it.
    let dump = run(Command::new(need("sfdisk")).arg("--dump").arg(&h.iso));
    let parts: Vec<&str> = dump.lines().filter(|l| l.contains(" : start=")).collect();
    assert_eq!(parts.len(), 2, "{dump}");
    let normal = |l: &str| {
        l.split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<String>()
    };
    assert_eq!(
        normal(parts[0]),
        format!("start=0,size={},type=0,bootable", size / 512)
    );
    assert_eq!(
        normal(parts[1]),
        format!(
            "start={},size={},type=ef",
            h.fat_extent.0 / 512,
            h.fat_extent.1 / 512
        )
    );
    // isohdpfx.bin's code is there, and the sector of isolinux.bin.
    let mbr = read_at(&h.iso, 0, 512);
    assert_eq!(&mbr[..432], &fs::read(ISOHDPFX).unwrap()[..432]);
    assert_eq!(&mbr[510..], [0x55, 0xAA]);

    // Every file reads back; the kernel and initrd are the UKI's sections.
    let out = dir.path().join("out");
    extract(&h.iso, &out);
    let same = |inside: &str, outside: &Path| {
        assert_eq!(
            sha256_file(&out.join(inside)),
            sha256_file(outside),
            "{inside}"
        );
    };
    same("boot/kernel", &kernel_dir().join("vmlinuz"));
    same("boot/initrd.img", &h.initrd);
    same("EFI/BOOT/BOOTX64.EFI", &h.uki);
    same("boot/efiboot.img", &h.fat);
    same("isolinux/ldlinux.c32", Path::new(LDLINUX));
    let isolinux = fs::read(out.join("isolinux/isolinux.bin")).unwrap();
    let original = fs::read(ISOLINUX).unwrap();
    assert_eq!(isolinux.len(), original.len());
    assert_eq!(&isolinux[..8], &original[..8]);
    assert_eq!(&isolinux[64..], &original[64..]);
    assert_eq!(
        &isolinux[8..12],
        &16u32.to_le_bytes(),
        "boot info table: PVD sector"
    );
    // Stored once: the image is the FAT image plus isolinux and metadata,
    // rounded up to a MiB.
    assert!(
        size <= h.fat_extent.1 + (2 << 20),
        "{size} bytes: something is stored twice"
    );

    // Deterministic: the same inputs, the same bytes.
    let again = Hybrid {
        iso: dir.path().join("again.iso"),
        ..h
    };
    write_hybrid(&again);
    assert_eq!(
        sha256_file(&again.iso),
        sha256_file(&dir.path().join("hybrid.iso"))
    );
}

fn booted(console: &str, chain: &str) {
    assert!(
        console.contains(&format!("{MARKER}-42")),
        "{chain}: no marker on the console:\n{console}"
    );
}

#[test]
fn boots_from_cdrom_with_seabios() {
    let dir = tempfile::tempdir().unwrap();
    let h = hybrid(dir.path());
    let console = qemu(
        &["-cdrom".into(), h.iso.display().to_string()],
        BOOT_TIMEOUT,
    );
    booted(&console, "SeaBIOS, -cdrom, isolinux");
}

#[test]
fn boots_from_disk_with_seabios() {
    let dir = tempfile::tempdir().unwrap();
    let h = hybrid(dir.path());
    let console = qemu(
        &[
            "-drive".into(),
            format!("file={},format=raw", h.iso.display()),
        ],
        BOOT_TIMEOUT,
    );
    booted(&console, "SeaBIOS, raw disk, isohybrid MBR");
}

#[test]
fn boots_from_cdrom_with_ovmf() {
    let dir = tempfile::tempdir().unwrap();
    let h = hybrid(dir.path());
    let mut args = ovmf(dir.path());
    args.extend(["-cdrom".into(), h.iso.display().to_string()]);
    booted(&qemu(&args, BOOT_TIMEOUT), "OVMF, -cdrom, El Torito EFI");
}

#[test]
fn boots_from_disk_with_ovmf() {
    let dir = tempfile::tempdir().unwrap();
    let h = hybrid(dir.path());
    let mut args = ovmf(dir.path());
    args.extend([
        "-drive".into(),
        format!("file={},format=raw", h.iso.display()),
    ]);
    booted(&qemu(&args, BOOT_TIMEOUT), "OVMF, raw disk, MBR ESP");
}

#[test]
fn uki_boots_as_qemu_kernel_with_ovmf() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = marker_initrd(dir.path(), MARKER);
    let uki = dir.path().join("uki.efi");
    write_uki(&uki, &initrd, "console=ttyS0 quiet");
    let mut args = ovmf(dir.path());
    args.extend(["-kernel".into(), uki.display().to_string()]);
    booted(&qemu(&args, BOOT_TIMEOUT), "OVMF, -kernel UKI");
}

#[test]
fn uki_boots_from_a_gpt_esp_with_ovmf() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = marker_initrd(dir.path(), MARKER);
    let uki = dir.path().join("uki.efi");
    write_uki(&uki, &initrd, "console=ttyS0 quiet");
    // A GPT disk whose one partition is an ESP with the UKI as the
    // default boot file, as test-environment.md makes it.
    let disk = dir.path().join("disk.img");
    let mib: u64 = 64;
    fs::File::create(&disk).unwrap().set_len(mib << 20).unwrap();
    let mut sfdisk = Command::new(need("sfdisk"))
        .arg("-q")
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: gpt\nstart=2048, size=, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"ESP\"\n")
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    let blocks = ((mib << 20) / 512 - 2048 - 33) / 2;
    run(Command::new(need("mkfs.vfat"))
        .args(["-F", "32", "-n", "ESP", "--offset", "2048"])
        .arg(&disk)
        .arg(blocks.to_string()));
    let image = format!("{}@@1M", disk.display());
    run(Command::new(need("mmd")).args(["-i", &image, "::/EFI", "::/EFI/BOOT"]));
    run(Command::new(need("mcopy"))
        .args(["-i", &image])
        .arg(&uki)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
    let mut args = ovmf(dir.path());
    args.extend([
        "-drive".into(),
        format!("file={},format=raw,if=virtio", disk.display()),
    ]);
    booted(
        &qemu(&args, BOOT_TIMEOUT),
        "OVMF, GPT disk, ESP with the UKI",
    );
}

/// An initramfs that loads virtio_blk, cdrom and isofs, mounts `/dev/vda`
/// as ISO 9660 and prints what Linux reads: `S|path|mode|uid|gid|links|
/// mtime|major|minor` for every path, `H|hash  path` for files, `L|path|
/// target` for links.
fn lister_initrd(work: &Path) -> PathBuf {
    let root = work.join("lister");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("dev")).unwrap();
    fs::create_dir_all(root.join("m")).unwrap();
    fs::copy(need("busybox"), root.join("bin/busybox")).unwrap();
    let kdir = kernel_dir();
    let version = fs::read_to_string(kdir.join("version")).unwrap();
    let modules = kdir.join("lib/modules").join(version.trim()).join("kernel");
    for (name, path) in [
        ("virtio_blk", "drivers/block/virtio_blk.ko.xz"),
        ("cdrom", "drivers/cdrom/cdrom.ko.xz"),
        ("isofs", "fs/isofs/isofs.ko.xz"),
    ] {
        // busybox's insmod hands the kernel the bytes as they are.
        let out = Command::new(need("xz"))
            .arg("-dc")
            .arg(modules.join(path))
            .output()
            .unwrap();
        assert!(out.status.success(), "xz -dc {path}");
        fs::write(root.join("m").join(format!("{name}.ko")), out.stdout).unwrap();
    }
    let init = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /mnt
$B mount -t proc proc /proc
$B mount -t devtmpfs dev /dev
for m in virtio_blk cdrom isofs; do $B insmod /m/$m.ko || $B echo "INSMOD-FAILED $m"; done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do $B sleep 0.1; n=$((n+1)); done
$B mount -t iso9660 -o ro /dev/vda /mnt || $B echo MOUNT-FAILED
cd /mnt
$B echo LIST-BEGIN
$B find . -mindepth 1 | $B xargs $B stat -c 'S|%n|%f|%u|%g|%h|%Y|%t|%T'
$B find . -type f | $B xargs $B sha256sum | $B sed 's/^/H|/'
$B find . -type l | while read -r l; do $B echo "L|$l|$($B readlink "$l")"; done
$B echo "LISTED-$((6*7))"
$B poweroff -f
"#;
    fs::write(root.join("init"), init).unwrap();
    run(Command::new("chmod").arg("755").arg(root.join("init")));
    let initrd = work.join("lister.gz");
    run(Command::new("sh").arg("-ec").arg(format!(
        "cd {} && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > {}",
        root.display(),
        initrd.display()
    )));
    initrd
}

/// Linux itself mounts an image of the whole test tree and reads back
/// every name, mode, owner, link count, time, device number, link target
/// and content: Rock Ridge as the kernel (the reader of an ISO root)
/// understands it.
#[test]
fn linux_reads_the_rock_ridge_tree() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("tree.iso");
    let options = IsoOptions {
        volume_id: "TREE".into(),
        epoch: EPOCH,
        catalog_path: None,
        hybrid_mbr: None,
    };
    let mut w = IsoWriter::new(fs::File::create(&iso).unwrap(), options).unwrap();
    let expect = feed(&mut w, true);
    w.finish().unwrap();
    let initrd = lister_initrd(dir.path());
    let console = qemu(
        &[
            "-kernel".into(),
            kernel_dir().join("vmlinuz").display().to_string(),
            "-initrd".into(),
            initrd.display().to_string(),
            "-append".into(),
            "console=ttyS0 quiet loglevel=1".into(),
            "-drive".into(),
            format!("file={},format=raw,if=virtio,readonly=on", iso.display()),
        ],
        BOOT_TIMEOUT,
    );
    assert!(
        console.contains("LISTED-42"),
        "the guest did not finish:\n{console}"
    );
    assert!(!console.contains("FAILED"), "{console}");

    let mut stat = BTreeMap::new();
    let mut hash = BTreeMap::new();
    let mut link = BTreeMap::new();
    let listing = console
        .split_once("LIST-BEGIN")
        .map_or("", |(_, rest)| rest);
    for line in listing.lines().map(|l| l.trim_end_matches('\r')) {
        let field: Vec<&str> = line.split('|').collect();
        let path = |p: &str| p.trim_start_matches("./").to_owned();
        match field[..] {
            ["S", p, mode, uid, gid, links, mtime, major, minor] => {
                let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
                let num = |s: &str| s.parse::<u64>().unwrap();
                stat.insert(
                    path(p),
                    [
                        hex(mode),
                        num(uid),
                        num(gid),
                        num(links),
                        num(mtime),
                        hex(major),
                        hex(minor),
                    ],
                );
            }
            ["H", rest] => {
                let (h, p) = rest.split_once("  ").unwrap();
                hash.insert(path(p), h.to_owned());
            }
            ["L", p, target] => {
                link.insert(path(p), target.to_owned());
            }
            _ => {}
        }
    }
    let names: Vec<&String> = stat.keys().collect();
    let want: Vec<&String> = expect.keys().collect();
    assert_eq!(names, want);
    let subdirs = |dir: &str| {
        expect
            .iter()
            .filter(|(p, s)| s.obj == Obj::Dir && Path::new(p).parent() == Some(Path::new(dir)))
            .count() as u64
    };
    let group = ["bin/busybox", "bin/sh", "bin/ls", "usr/bin/lone-link"];
    for (p, snap) in &expect {
        let [mode, uid, gid, links, mtime, major, minor] = stat[p];
        let (kind, want_links, dev) = match &snap.obj {
            Obj::File(h) => {
                assert_eq!(&hash[p], h, "{p}");
                (
                    0o100000,
                    if group.contains(&p.as_str()) { 4 } else { 1 },
                    None,
                )
            }
            Obj::Dir => (0o040000, 2 + subdirs(p), None),
            Obj::Symlink(t) => {
                assert_eq!(&link[p], t, "{p}");
                (0o120000, 1, None)
            }
            Obj::Char(d) => (0o020000, 1, Some(*d)),
            Obj::Block(d) => (0o060000, 1, Some(*d)),
            Obj::Fifo => (0o010000, 1, None),
        };
        assert_eq!(mode, kind | u64::from(snap.mode), "{p}: mode");
        assert_eq!(
            (uid, gid),
            (u64::from(snap.uid), u64::from(snap.gid)),
            "{p}: owner"
        );
        assert_eq!(links, want_links, "{p}: links");
        assert_eq!(mtime as i64, snap.mtime, "{p}: time");
        if let Some(d) = dev {
            let want = (
                ((d >> 8) & 0xfff) | ((d >> 32) & !0xfff),
                (d & 0xff) | ((d >> 12) & !0xff),
            );
            assert_eq!((major, minor), want, "{p}: device");
        }
    }
}
