//! The ISO 9660 writer read back by xorriso, an independent reader: a root
//! filesystem fed through the entry stream comes back file by file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{Obj, Snap, extract, sha256, snapshot, xorriso_report};
use slipway_assemble::{EntrySink, Header, Kind};
use slipway_formats::iso::{IsoError, IsoOptions, IsoWriter, Meta};

const EPOCH: u64 = 1_492_533_000;

fn options() -> IsoOptions {
    IsoOptions {
        volume_id: "SLIPWAY_TEST".into(),
        epoch: EPOCH,
        catalog_path: None,
        hybrid_mbr: None,
    }
}

fn header(path: &str, kind: Kind, mode: u32, uid: u64, gid: u64, mtime: u64) -> Header {
    let mut h = Header::new(path, kind, mode);
    h.uid = uid;
    h.gid = gid;
    h.mtime = mtime;
    h
}

/// Pseudo-random bytes (xorshift), so sector-sized patterns cannot hide
/// an off-by-a-sector extent.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Feeds entries and records what the tree must look like afterwards.
struct Feed<'a, S: EntrySink> {
    sink: &'a mut S,
    expect: BTreeMap<String, Snap>,
}

impl<S: EntrySink> Feed<'_, S> {
    fn file(&mut self, path: &str, mode: u32, owner: (u64, u64), mtime: u64, data: &[u8]) {
        let h = header(
            path,
            Kind::File {
                size: data.len() as u64,
            },
            mode,
            owner.0,
            owner.1,
            mtime,
        );
        self.sink.entry(&h, &[], &mut Cursor::new(data)).unwrap();
        self.expect(path, Obj::File(sha256(data)), mode, owner, mtime);
    }

    fn entry(&mut self, h: Header, obj: Obj) {
        self.sink.entry(&h, &[], &mut std::io::empty()).unwrap();
        self.expect(&h.path, obj, h.mode, (h.uid, h.gid), h.mtime);
    }

    fn expect(&mut self, path: &str, obj: Obj, mode: u32, owner: (u64, u64), mtime: u64) {
        let path = path.trim_start_matches("./").trim_end_matches('/');
        let path = if path == "." { "" } else { path };
        // Last wins: anything but a directory replaces a directory and its
        // children; a directory over a directory keeps them.
        if obj != Obj::Dir {
            let prefix = format!("{path}/");
            self.expect.retain(|p, _| !p.starts_with(&prefix));
        }
        self.expect.insert(
            path.to_owned(),
            Snap {
                obj,
                mode,
                uid: owner.0 as u32,
                gid: owner.1 as u32,
                mtime: mtime as i64,
            },
        );
    }

    /// Directories that only appear as parents: root's, 0755, the epoch.
    fn imply_parents(&mut self) {
        let paths: Vec<String> = self.expect.keys().cloned().collect();
        for p in paths {
            let mut parent = Path::new(&p).parent();
            while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                let d = dir.to_string_lossy().into_owned();
                self.expect.entry(d).or_insert(Snap {
                    obj: Obj::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime: EPOCH as i64,
                });
                parent = dir.parent();
            }
        }
    }
}

/// A root filesystem with every kind of entry and every awkward case.
fn feed(sink: &mut impl EntrySink) -> BTreeMap<String, Snap> {
    let mut f = Feed {
        sink,
        expect: BTreeMap::new(),
    };
    let dir = |p: &str, mode, owner: (u64, u64), mtime| {
        header(p, Kind::Dir, mode, owner.0, owner.1, mtime)
    };
    // Children before their directory, deeper than ISO 9660's 8 levels.
    f.file(
        "a/b/c/d/e/f/g/h/i/j/deep.txt",
        0o640,
        (7, 8),
        1_000_000_000,
        b"deep\n",
    );
    f.entry(dir("a", 0o700, (5, 6), 1_100_000_000), Obj::Dir);
    f.entry(dir("./a/b/", 0o750, (0, 0), 1_200_000_000), Obj::Dir);
    f.file("etc/motd", 0o644, (0, 0), EPOCH, b"first\n");
    f.file(
        "etc/passwd",
        0o600,
        (1000, 100),
        2_000_000_000,
        b"root:x:0:0::/root:/bin/sh\n",
    );
    f.file("etc/motd", 0o640, (0, 0), EPOCH + 1, b"second, last wins\n");
    // Sizes around the sector size; a file of several MiB.
    for (i, len) in [0usize, 1, 2047, 2048, 2049, 4096, 3 << 20]
        .into_iter()
        .enumerate()
    {
        f.file(
            &format!("data/size-{len}"),
            0o644,
            (0, 0),
            EPOCH,
            &noise(i as u64, len),
        );
    }
    // A hard-link group as the entry stream delivers it, and a lone link.
    let busybox = b"BUSYBOX".repeat(1000);
    let bb = header(
        "bin/busybox",
        Kind::File {
            size: busybox.len() as u64,
        },
        0o4755,
        0,
        0,
        EPOCH,
    );
    let link = |p: &str| {
        header(
            p,
            Kind::Link {
                target: "bin/busybox".into(),
            },
            0o4755,
            0,
            0,
            EPOCH,
        )
    };
    f.sink
        .entry(
            &bb,
            &[link("bin/sh"), link("bin/ls")],
            &mut Cursor::new(&busybox),
        )
        .unwrap();
    for p in ["bin/busybox", "bin/sh", "bin/ls", "usr/bin/lone-link"] {
        f.expect(p, Obj::File(sha256(&busybox)), 0o4755, (0, 0), EPOCH);
    }
    f.sink
        .entry(&link("usr/bin/lone-link"), &[], &mut std::io::empty())
        .unwrap();
    // Symbolic links: absolute, relative with dots, long (several SL
    // entries, a component longer than one; libisofs reads at most 1024
    // bytes).
    let long_target = format!("/{0}/{0}/end", ["x".repeat(200), "y".repeat(300)].join("/"));
    for (p, t) in [
        ("etc/mtab", "/proc/mounts".to_owned()),
        ("lib/rel", "../usr/./lib".to_owned()),
        ("lib/long", long_target),
    ] {
        let h = header(p, Kind::Symlink { target: t.clone() }, 0o777, 0, 0, EPOCH);
        f.entry(h, Obj::Symlink(t));
    }
    // Devices and a FIFO.
    f.entry(
        header(
            "dev/null",
            Kind::Char { major: 1, minor: 3 },
            0o666,
            0,
            0,
            EPOCH,
        ),
        Obj::Char(nix_dev(1, 3)),
    );
    f.entry(
        header(
            "dev/sda",
            Kind::Block { major: 8, minor: 0 },
            0o660,
            0,
            6,
            EPOCH,
        ),
        Obj::Block(nix_dev(8, 0)),
    );
    f.entry(
        header("run/fifo", Kind::Fifo, 0o620, 0, 0, EPOCH),
        Obj::Fifo,
    );
    // Names: long, not ASCII, equal once upper-cased, dotted.
    f.file(&"n".repeat(250), 0o644, (0, 0), EPOCH, b"long name\n");
    f.file("names/café.txt", 0o644, (0, 0), EPOCH, b"utf-8\n");
    for n in [
        "Foo",
        "foo",
        "FOO",
        "foo.",
        ".foo",
        "foo.tar.gz",
        "foo_tar.gz",
    ] {
        f.file(&format!("names/{n}"), 0o644, (0, 0), EPOCH, n.as_bytes());
    }
    // A directory of several sectors.
    for i in 0..300 {
        f.file(
            &format!("many/file-with-a-longish-name-{i:04}"),
            0o644,
            (0, 0),
            EPOCH,
            &[i as u8],
        );
    }
    // Special permission bits.
    f.entry(dir("srv", 0o2775, (0, 50), EPOCH), Obj::Dir);
    f.entry(dir("tmp", 0o1777, (0, 0), EPOCH), Obj::Dir);
    // Replacements: a file by a directory, a directory (with children) by
    // a file, a symlink by a file.
    f.file("over/file", 0o644, (0, 0), EPOCH, b"gone");
    f.entry(dir("over/file", 0o755, (0, 0), EPOCH), Obj::Dir);
    f.file("over/tree/x/y", 0o644, (0, 0), EPOCH, b"gone");
    f.file("over/tree", 0o644, (0, 0), EPOCH, b"now a file\n");
    f.file("etc/mtab", 0o644, (0, 0), EPOCH, b"a file now\n");
    // The root's own entry.
    f.entry(dir(".", 0o755, (0, 0), EPOCH), Obj::Dir);
    f.expect.remove("");
    f.imply_parents();
    f.expect
}

fn nix_dev(major: u64, minor: u64) -> u64 {
    // glibc's makedev.
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

fn write_image(path: &Path) -> BTreeMap<String, Snap> {
    let file = fs::File::create(path).unwrap();
    let mut w = IsoWriter::new(file, options()).unwrap();
    let expect = feed(&mut w);
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
