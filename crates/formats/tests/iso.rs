//! The ISO 9660 writer read back by xorriso, an independent reader: a root
//! filesystem fed through the entry stream comes back file by file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::tree::{EPOCH, feed, noise};
use common::{Obj, Snap, extract, snapshot, xorriso_report};
use slipway_assemble::{EntrySink, Header, Kind};
use slipway_formats::iso::{IsoError, IsoOptions, IsoWriter, Meta};

fn options() -> IsoOptions {
    IsoOptions {
        volume_id: "SLIPWAY_TEST".into(),
        epoch: EPOCH,
        catalog_path: None,
        hybrid_mbr: None,
    }
}

fn write_image(path: &Path) -> BTreeMap<String, Snap> {
    let file = fs::File::create(path).unwrap();
    let mut w = IsoWriter::new(file, options()).unwrap();
    let expect = feed(&mut w, false);
    w.finish().unwrap();
    expect
}

#[test]
fn xorriso_extracts_what_the_entry_stream_fed() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("root.iso");
    let expect = write_image(&iso);
    let out = dir.path().join("out");
    extract(&iso, &out);
    let got = snapshot(&out);
    let missing: Vec<_> = expect.keys().filter(|p| !got.contains_key(*p)).collect();
    let extra: Vec<_> = got.keys().filter(|p| !expect.contains_key(*p)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (path, want) in &expect {
        let mut got = got[path].clone();
        if matches!(got.obj, Obj::Symlink(_)) {
            // xorriso does not restore a symbolic link's own time.
            got.mtime = want.mtime;
        }
        assert_eq!(&got, want, "{path}");
    }
    // One inode for the hard-link group, with its link count.
    let ino = |p: &str| fs::metadata(out.join(p)).unwrap();
    let bb = ino("bin/busybox");
    assert_eq!(bb.nlink(), 4);
    for p in ["bin/sh", "bin/ls", "usr/bin/lone-link"] {
        assert_eq!(ino(p).ino(), bb.ino(), "{p}");
    }
    assert_eq!(ino("etc/motd").nlink(), 1);

    let report = xorriso_report(&iso);
    assert!(report.contains("Volume id    : 'SLIPWAY_TEST'"), "{report}");
    assert!(report.contains("No El Torito information"), "{report}");
}

#[test]
fn the_same_entries_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.iso"), dir.path().join("b.iso"));
    write_image(&a);
    write_image(&b);
    assert_eq!(
        common::sha256_file(&a),
        common::sha256_file(&b),
        "two writes of the same entries differ"
    );
}

#[test]
fn shared_extents_point_into_regions() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("shared.iso");
    let mut w = IsoWriter::new(fs::File::create(&iso).unwrap(), options()).unwrap();
    // A region without a name, and files that are parts of it.
    let blob = noise(9, 5 * 2048 + 100);
    let region = w
        .add_region(&mut Cursor::new(&blob), blob.len() as u64)
        .unwrap();
    let meta = Meta::new(0o644, EPOCH);
    w.add_extent("whole", meta.clone(), region.clone()).unwrap();
    w.add_extent(
        "tail",
        meta.clone(),
        region.slice(2 * 2048, 3 * 2048 + 100).unwrap(),
    )
    .unwrap();
    w.add_extent("middle", meta.clone(), region.slice(2048, 2048).unwrap())
        .unwrap();
    w.add_extent("empty", meta.clone(), region.slice(4096, 0).unwrap())
        .unwrap();
    // A region written through Write + Seek, out of order.
    let mut r = w.region_writer().unwrap();
    use std::io::{Seek, SeekFrom, Write};
    r.seek(SeekFrom::Start(4096)).unwrap();
    r.write_all(b"second").unwrap();
    r.seek(SeekFrom::Start(0)).unwrap();
    r.write_all(b"first").unwrap();
    let written = r.finish().unwrap();
    assert_eq!(written.len(), 4096 + 6);
    w.add_extent("fat/second", meta.clone(), written.slice(4096, 6).unwrap())
        .unwrap();
    w.add_file("after", meta.clone(), &mut Cursor::new(b"after"), 5)
        .unwrap();
    // Unaligned or outside the region: refused.
    assert!(matches!(
        region.slice(100, 10),
        Err(IsoError::Unaligned { offset: 100 })
    ));
    assert!(matches!(
        region.slice(2048, 1 << 20),
        Err(IsoError::OutsideRegion { .. })
    ));
    w.finish().unwrap();

    let out = dir.path().join("out");
    extract(&iso, &out);
    let read = |p: &str| fs::read(out.join(p)).unwrap();
    assert_eq!(read("whole"), blob);
    assert_eq!(read("tail"), &blob[2 * 2048..]);
    assert_eq!(read("middle"), &blob[2048..4096]);
    assert_eq!(read("empty"), b"");
    assert_eq!(read("fat/second"), b"second");
    assert_eq!(read("after"), b"after");
    // The shared names take no space of their own: the image holds the
    // region once.
    let size = fs::metadata(&iso).unwrap().len();
    assert!(size < 20 * 2048 + 3 * 2048 + 8 * 2048 + 6 * 2048, "{size}");
}

#[test]
fn bad_input_is_refused_with_the_path() {
    let mut w = IsoWriter::new(Cursor::new(Vec::new()), options()).unwrap();
    let err = |r: std::io::Result<()>| r.unwrap_err().to_string();
    let e = err(w.entry(
        &Header::new("a/../b", Kind::Dir, 0o755),
        &[],
        &mut std::io::empty(),
    ));
    assert!(e.contains("`a/../b` contains `..`"), "{e}");
    let e = err(w.entry(
        &Header::new(
            "x",
            Kind::Link {
                target: "nowhere".into(),
            },
            0o644,
        ),
        &[],
        &mut std::io::empty(),
    ));
    assert!(e.contains("`x` links to `nowhere`"), "{e}");
    let mut big = Header::new("u", Kind::Dir, 0o755);
    big.uid = 1 << 40;
    let e = err(w.entry(&big, &[], &mut std::io::empty()));
    assert!(e.contains("uid 1099511627776"), "{e}");
    let e = err(w.entry(
        &Header::new("short", Kind::File { size: 10 }, 0o644),
        &[],
        &mut Cursor::new(b"abc"),
    ));
    assert!(e.contains("expected 10 bytes of content, got 3"), "{e}");
    // The writer is not usable after a half-written file.
    assert!(matches!(w.finish(), Err(IsoError::Unfinished)));

    let bad_id = IsoOptions {
        volume_id: "no/slashes".into(),
        ..options()
    };
    assert!(matches!(
        IsoWriter::new(Cursor::new(Vec::new()), bad_id),
        Err(IsoError::VolumeId(_))
    ));
    // A hybrid image needs the BIOS boot image its MBR loads.
    let hybrid = IsoOptions {
        hybrid_mbr: Some(vec![0; 432]),
        ..options()
    };
    let w = IsoWriter::new(Cursor::new(Vec::new()), hybrid).unwrap();
    assert!(matches!(w.finish(), Err(IsoError::HybridWithoutBios)));
    // An abandoned region writer leaves the image unfinished.
    let mut w = IsoWriter::new(Cursor::new(Vec::new()), options()).unwrap();
    w.region_writer().unwrap();
    let mut content = Cursor::new(b"x");
    assert!(matches!(
        w.add_file("x", Meta::new(0o644, 0), &mut content, 1),
        Err(IsoError::Unfinished)
    ));
    let _ = content.read(&mut [0; 1]);
}

/// The catalog with one boot entry of either kind, as xorriso reads it.
#[test]
fn single_boot_entries_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Meta::new(0o444, EPOCH);

    // EFI only: the validation entry names platform EF, the default entry
    // is the FAT image (here any bytes: the catalog does not look inside).
    let efi = dir.path().join("efi.iso");
    let mut w = IsoWriter::new(fs::File::create(&efi).unwrap(), options()).unwrap();
    let image = noise(3, 10_000);
    let region = w.add_region(&mut Cursor::new(&image), 10_000).unwrap();
    w.set_efi_boot(region.clone()).unwrap();
    assert!(matches!(
        w.set_efi_boot(region),
        Err(IsoError::BootTwice("EFI"))
    ));
    w.finish().unwrap();
    let report = xorriso_report(&efi);
    let entry = report
        .lines()
        .find(|l| l.starts_with("El Torito boot img :   1"))
        .unwrap_or_else(|| panic!("{report}"));
    let f: Vec<&str> = entry.split_whitespace().collect();
    assert_eq!(
        &f[6..12],
        ["UEFI", "y", "none", "0x0000", "0x00", "20"],
        "{report}"
    );
    assert!(!report.contains("boot img :   2"), "{report}");

    // BIOS only, no MBR: isolinux.bin with its boot info table.
    let bios = dir.path().join("bios.iso");
    let mut w = IsoWriter::new(fs::File::create(&bios).unwrap(), options()).unwrap();
    let isolinux =
        fs::read("/usr/lib/ISOLINUX/isolinux.bin").expect("isolinux.bin: Debian package isolinux");
    w.add_bios_boot(
        "isolinux.bin",
        meta.clone(),
        &mut Cursor::new(&isolinux),
        isolinux.len() as u64,
    )
    .unwrap();
    let e = w
        .add_bios_boot("again.bin", meta, &mut Cursor::new(&isolinux), 64)
        .unwrap_err();
    assert!(matches!(e, IsoError::BootTwice("BIOS")), "{e}");
    w.finish().unwrap();
    let report = xorriso_report(&bios);
    assert!(
        report.contains("El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4"),
        "{report}"
    );
    assert!(
        report.contains("El Torito img opts :   1  boot-info-table"),
        "{report}"
    );
    assert!(!report.contains("MBR"), "{report}");
}
