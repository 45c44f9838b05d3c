//! A root filesystem with every kind of entry and every awkward case, fed
//! through the entry stream, and the tree it must read back as.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use slipway_assemble::{EntrySink, Header, Kind};

use super::{Obj, Snap, sha256};

pub const EPOCH: u64 = 1_492_533_000;

pub fn header(path: &str, kind: Kind, mode: u32, uid: u64, gid: u64, mtime: u64) -> Header {
    let mut h = Header::new(path, kind, mode);
    h.uid = uid;
    h.gid = gid;
    h.mtime = mtime;
    h
}

/// Pseudo-random bytes (xorshift), so sector-sized patterns cannot hide
/// an off-by-a-sector extent.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
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
///
/// `big_devices` adds a device whose numbers only Linux reads back (libisofs
/// decodes them as glibc's `dev_t`).
pub fn feed(sink: &mut impl EntrySink, big_devices: bool) -> BTreeMap<String, Snap> {
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
    if big_devices {
        f.entry(
            header(
                "dev/big",
                Kind::Block {
                    major: 259,
                    minor: 70000,
                },
                0o600,
                0,
                0,
                EPOCH,
            ),
            Obj::Block(nix_dev(259, 70000)),
        );
    }
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

pub fn nix_dev(major: u64, minor: u64) -> u64 {
    // glibc's makedev.
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}
