//! The squashfs and erofs writers, checked by extracting their images with
//! the formats' own tools (`unsquashfs -d`, `fsck.erofs --extract`, as root
//! so owners and devices are kept) and comparing every file with the tree
//! the entries describe: type, content hash, mode, owner, mtime, link
//! target, device number, hard links sharing an inode, extended attributes.
//!
//! Needs squashfs-tools, erofs-utils and attr (getfattr); run as root.

#![allow(
    clippy::disallowed_methods,
    reason = "boot deadlines and timings read the clock"
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Seek;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};
use slipway_assemble::{EntrySink, Header, Kind};
use slipway_formats::erofs::{ErofsOptions, ErofsWriter};
use slipway_formats::fstree::Summary;
use slipway_formats::squashfs::{Compressor, SquashfsOptions, SquashfsWriter};

const BUILD_TIME: u64 = 1_700_000_000;
const BLOCK: usize = 128 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
enum What {
    Dir,
    File(String),
    Symlink(String),
    Char(u64),
    Block(u64),
    Fifo,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Expect {
    what: What,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// The entries, and the tree they should give, written side by side.
#[derive(Default)]
struct Spec {
    entries: Vec<(Header, Vec<Header>, Vec<u8>)>,
    tree: BTreeMap<String, Expect>,
    /// Names that must share one inode.
    groups: Vec<BTreeSet<String>>,
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn dev(major: u64, minor: u64) -> u64 {
    // glibc's makedev, what stat reports.
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

/// Bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
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

fn header(path: &str, kind: Kind, mode: u32, owner: (u64, u64), mtime: u64) -> Header {
    let mut h = Header::new(path, kind, mode);
    h.uid = owner.0;
    h.gid = owner.1;
    h.mtime = mtime;
    h
}

impl Spec {
    fn expect(&mut self, path: &str, what: What, h: &Header) {
        self.tree.insert(
            path.to_string(),
            Expect {
                what,
                mode: h.mode,
                uid: h.uid as u32,
                gid: h.gid as u32,
                mtime: h.mtime as i64,
                xattrs: h
                    .pax
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix("SCHILY.xattr.")
                            .map(|n| (n.to_string(), v.clone()))
                    })
                    .collect(),
            },
        );
    }

    /// A directory the writer must create: 0755, root, the build's time.
    fn implicit(&mut self, path: &str) {
        let h = header(path, Kind::Dir, 0o755, (0, 0), BUILD_TIME);
        self.expect(path, What::Dir, &h);
    }

    fn push(&mut self, h: Header, data: &[u8]) {
        let path = slipway_assemble::path::clean(&h.path);
        let what = match &h.kind {
            Kind::Dir => What::Dir,
            Kind::File { .. } => What::File(sha(data)),
            Kind::Symlink { target } => What::Symlink(target.clone()),
            Kind::Char { major, minor } => What::Char(dev((*major).into(), (*minor).into())),
            Kind::Block { major, minor } => What::Block(dev((*major).into(), (*minor).into())),
            Kind::Fifo => What::Fifo,
            Kind::Link { .. } => unreachable!(),
        };
        self.expect(&path, what, &h);
        self.entries.push((h, Vec::new(), data.to_vec()));
    }

    fn dir(&mut self, path: &str, mode: u32, owner: (u64, u64), mtime: u64) {
        self.push(header(path, Kind::Dir, mode, owner, mtime), b"");
    }

    fn file(&mut self, path: &str, data: &[u8], mode: u32, mtime: u64) {
        let h = header(
            path,
            Kind::File {
                size: data.len() as u64,
            },
            mode,
            (0, 0),
            mtime,
        );
        self.push(h, data);
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let h = header(
            path,
            Kind::Symlink {
                target: target.into(),
            },
            0o777,
            (0, 0),
            1_600_000_000,
        );
        self.push(h, b"");
    }

    /// A file with other names, as one group.
    fn group(&mut self, h: Header, names: &[&str], data: &[u8]) {
        let links: Vec<Header> = names
            .iter()
            .map(|n| {
                let mut l = h.clone();
                l.path = n.to_string();
                l.kind = Kind::Link {
                    target: h.path.clone(),
                };
                l
            })
            .collect();
        let what = What::File(sha(data));
        self.expect(&h.path, what.clone(), &h);
        for n in names {
            self.expect(n, what.clone(), &h);
        }
        let mut g: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
        g.insert(h.path.clone());
        self.groups.push(g);
        self.entries.push((h, links, data.to_vec()));
    }

    fn feed(&self, sink: &mut dyn EntrySink) {
        for (h, links, data) in &self.entries {
            sink.entry(h, links, &mut &data[..]).unwrap();
        }
    }
}

/// Every kind of entry, with the cases that need care; `many` files in one
/// directory.
fn spec(many: usize) -> Spec {
    let mut s = Spec::default();
    let t = 1_650_000_000;
    // kernel.tar names: `./`, `./lib/...`
    s.dir("./", 0o755, (0, 0), t);
    s.dir("./lib", 0o755, (0, 0), t + 1);
    s.dir("./lib/modules", 0o755, (0, 0), t + 2);
    s.file("./lib/modules/m.ko", &noise(5000, 1), 0o644, t + 3);
    s.dir("etc", 0o755, (0, 0), t + 4);
    s.file("etc/motd", b"hello\n", 0o644, t + 5);
    s.file("etc/empty", b"", 0o600, t + 6);
    s.file(
        "etc/hostname",
        b"first version, longer than the second",
        0o644,
        t,
    );
    s.file("etc/hostname", b"second\n", 0o640, t + 7);
    s.dir("data", 0o755, (0, 0), t);
    s.file("data/block", &noise(BLOCK, 2), 0o644, t + 8);
    s.file("data/two-blocks", &noise(2 * BLOCK, 3), 0o644, t + 8);
    s.file("data/large", &noise(3 * BLOCK + 1234, 4), 0o644, t + 9);
    s.file("data/page", &noise(4096, 5), 0o644, t + 9);
    s.file("data/page-and-one", &noise(4097, 6), 0o644, t + 9);
    let mut sparse = vec![0u8; 2 * BLOCK + 100];
    sparse.extend_from_slice(b"end of a sparse-looking file");
    sparse.extend(vec![0u8; BLOCK]);
    s.file("data/sparse", &sparse, 0o644, t + 10);
    s.file("data/zeros", &vec![0u8; BLOCK], 0o644, t + 10);
    let text: Vec<u8> = (0..200_000)
        .flat_map(|i: u32| format!("line {i}\n").into_bytes())
        .collect();
    s.file("data/text", &text, 0o644, t + 11);
    s.dir("bin", 0o755, (0, 0), t);
    let bb = header(
        "bin/busybox",
        Kind::File { size: 9000 },
        0o755,
        (0, 0),
        t + 12,
    );
    s.group(bb, &["bin/sh", "sbin/init"], &noise(9000, 7));
    s.implicit("sbin");
    let su = header("bin/su", Kind::File { size: 3 }, 0o4755, (0, 0), t + 13);
    s.push(su, b"su\n");
    let wall = header("bin/wall", Kind::File { size: 4 }, 0o2755, (0, 5), t + 13);
    s.push(wall, b"wall");
    s.dir("tmp", 0o1777, (0, 0), t + 14);
    s.dir("home/user", 0o700, (1000, 1000), t + 15);
    s.implicit("home");
    let mut owned = header(
        "home/user/notes",
        Kind::File { size: 5 },
        0o600,
        (1000, 1000),
        t + 16,
    );
    owned.set_pax("LINUXKIT.source", "test");
    s.push(owned, b"notes");
    let big_ids = header(
        "home/big-ids",
        Kind::File { size: 1 },
        0o644,
        (100_000, 4_000_000),
        t,
    );
    s.push(big_ids, b"x");
    s.symlink("etc/mtab", "/proc/mounts");
    s.symlink("bin/relative", "../etc/motd");
    let long_target = "x/".repeat(1000);
    s.symlink("etc/long-link", &long_target);
    for (p, k) in [
        ("dev/null", Kind::Char { major: 1, minor: 3 }),
        (
            "dev/vda",
            Kind::Block {
                major: 254,
                minor: 0,
            },
        ),
        (
            "dev/big-minor",
            Kind::Char {
                major: 240,
                minor: 300_000,
            },
        ),
        ("run/fifo", Kind::Fifo),
    ] {
        let h = header(p, k, 0o620, (0, 6), t + 17);
        s.push(h, b"");
    }
    s.implicit("dev");
    s.implicit("run");
    let deep: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
    let deep = deep.join("/");
    s.file(&format!("{deep}/leaf"), b"deep", 0o644, t + 18);
    let mut p = String::new();
    for part in deep.split('/') {
        if !p.is_empty() {
            p.push('/');
        }
        p.push_str(part);
        s.implicit(&p);
    }
    let long = "n".repeat(255);
    s.file(&format!("etc/{long}"), b"long name", 0o644, t + 19);
    s.file("etc/ünïcødé-名前", "non-ASCII".as_bytes(), 0o644, t + 20);
    // A directory whose parent comes later, and metadata replaced later.
    s.dir("opt/implicit/child", 0o750, (0, 0), t + 21);
    s.implicit("opt");
    s.implicit("opt/implicit");
    s.dir("opt/implicit", 0o711, (2, 2), t + 22);
    s.dir("etc", 0o751, (0, 0), t + 23);
    // A symbolic link replaced by a file, a file by a directory.
    s.symlink("etc/replaced", "motd");
    s.file("etc/replaced", b"now a file", 0o644, t + 24);
    s.file("etc/was-file", b"gone", 0o644, t);
    s.dir("etc/was-file", 0o755, (0, 0), t + 25);
    // A later hard link to an earlier file (another unit's tar link).
    let link = header(
        "usr/bin/bb",
        Kind::Link {
            target: "bin/busybox".into(),
        },
        0o755,
        (0, 0),
        t,
    );
    s.entries.push((link, Vec::new(), Vec::new()));
    s.implicit("usr");
    s.implicit("usr/bin");
    let bb = s.tree["bin/busybox"].clone();
    s.tree.insert("usr/bin/bb".into(), bb);
    s.groups[0].insert("usr/bin/bb".into());
    // Extended attributes.
    let mut cap = header("bin/ping", Kind::File { size: 4 }, 0o755, (0, 0), t + 26);
    cap.set_pax(
        "SCHILY.xattr.security.capability",
        vec![
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    cap.set_pax("SCHILY.xattr.user.comment", "pings");
    s.push(cap, b"ping");
    let mut xdir = header("srv", Kind::Dir, 0o755, (0, 0), t + 27);
    xdir.set_pax("SCHILY.xattr.user.dir", "yes");
    s.push(xdir, b"");
    // A directory of many blocks of entries (squashfs: several listing
    // headers, the extended directory inode; erofs: a multi-block
    // directory), and an empty one.
    s.dir("many", 0o755, (0, 0), t + 29);
    for i in 0..many {
        s.file(
            &format!("many/entry-with-a-longish-name-{i:05}"),
            format!("{i}").as_bytes(),
            0o644,
            t,
        );
    }
    s.dir("many/empty", 0o755, (0, 0), t + 30);
    // boot/ is left out of root filesystem images (the directory stays).
    s.dir("boot", 0o755, (0, 0), t + 28);
    let k = header("boot/kernel", Kind::File { size: 6 }, 0o644, (0, 0), t);
    s.entries.push((k, Vec::new(), b"kernel".to_vec()));
    s
}

/// The tree under `root` as the expectations describe one, and the groups
/// of names sharing an inode.
fn read_tree(root: &Path) -> Listed {
    let mut tree = BTreeMap::new();
    let mut inodes: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let full = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let m = fs::symlink_metadata(&full).unwrap();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            for e in fs::read_dir(&full).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                stack.push(if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                });
            }
            What::Dir
        } else if ft.is_file() {
            inodes.entry(m.ino()).or_default().insert(rel.clone());
            What::File(sha(&fs::read(&full).unwrap()))
        } else if ft.is_symlink() {
            What::Symlink(fs::read_link(&full).unwrap().to_str().unwrap().to_string())
        } else if ft.is_char_device() {
            What::Char(m.rdev())
        } else if ft.is_block_device() {
            What::Block(m.rdev())
        } else if ft.is_fifo() {
            What::Fifo
        } else {
            panic!("{rel}: unexpected type {ft:?}");
        };
        tree.insert(
            rel.clone(),
            Expect {
                what,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: m.mtime(),
                xattrs: BTreeMap::new(),
            },
        );
    }
    for (path, x) in xattrs(root) {
        tree.get_mut(&path).unwrap().xattrs = x;
    }
    let groups = inodes.into_values().filter(|g| g.len() > 1).collect();
    (tree, groups)
}

/// Every extended attribute under `root`, by relative path, from one
/// `getfattr -R -d -m - -e hex` (not following symbolic links).
fn xattrs(root: &Path) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let out = Command::new("getfattr")
        .args([
            "-R",
            "-P",
            "-h",
            "-d",
            "-m",
            "-",
            "-e",
            "hex",
            "--absolute-names",
        ])
        .arg(root)
        .output()
        .expect("getfattr (apt-get install attr)");
    let mut all: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut current = String::new();
    let prefix = format!("{}/", root.display());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(file) = line.strip_prefix("# file: ") {
            current = file.strip_prefix(&prefix).unwrap_or("").to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            all.entry(current.clone()).or_default().insert(
                k.to_string(),
                hex::decode(v.trim_start_matches("0x")).unwrap(),
            );
        }
    }
    all
}

/// Compares the tree extracted under `dir` with the spec's; `exact` false
/// leaves out what the extractor cannot restore (xattrs, set-id bits,
/// hard links).
fn compare(spec: &Spec, dir: &Path, what: &str, exact: bool) {
    let (got, groups) = read_tree(dir);
    compare_trees(spec, got, groups, what, exact);
    if exact {
        let nlink = fs::symlink_metadata(dir.join("bin/busybox"))
            .unwrap()
            .nlink();
        assert_eq!(nlink, 4, "{what}: link count of a group of four names");
    }
}

fn compare_trees(
    spec: &Spec,
    mut got: BTreeMap<String, Expect>,
    groups: Vec<BTreeSet<String>>,
    what: &str,
    exact: bool,
) {
    let mut want = spec.tree.clone();
    for t in [&mut got, &mut want] {
        for e in t.values_mut() {
            if !exact {
                e.xattrs.clear();
                e.mode &= 0o1777;
            }
        }
    }
    // Symbolic links' own modes are not kept by every extractor: Linux has
    // no lchmod. Their owners and times are.
    for (p, w) in &mut want {
        if let What::Symlink(_) = w.what
            && let Some(g) = got.get(p)
        {
            w.mode = g.mode;
        }
    }
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, unexpected {extra:?}"
    );
    for (p, w) in &want {
        assert_eq!(&got[p], w, "{what}: `{p}` differs");
    }
    if exact {
        assert_eq!(groups, spec.groups, "{what}: hard-link groups");
    }
}

/// `dump.erofs --path`: the inode's nid and link count.
fn erofs_inode(img: &Path, path: &str) -> (u64, u64) {
    let out = run(Command::new("dump.erofs")
        .arg(format!("--path=/{path}"))
        .arg(img));
    let field = |name: &str| -> u64 {
        let at = out.find(name).unwrap_or_else(|| panic!("{name} in {out}")) + name.len();
        out[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("NID:"), field("Links:"))
}

fn need_root() {
    let uid = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1);
    assert_eq!(
        uid, 0,
        "these tests extract device nodes and owners: run as root"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn squashfs(spec: &Spec, opts: SquashfsOptions, path: &Path) -> Summary {
    let file = fs::File::create(path).unwrap();
    let mut w = SquashfsWriter::new(std::io::BufWriter::new(file), opts).unwrap();
    spec.feed(&mut w);
    let (out, summary) = w.finish().unwrap();
    let mut file = out.into_inner().unwrap();
    assert_eq!(file.stream_position().unwrap(), summary.bytes);
    summary
}

fn erofs(spec: &Spec, opts: ErofsOptions, path: &Path) -> Summary {
    let file = fs::File::create(path).unwrap();
    let mut w = ErofsWriter::new(std::io::BufWriter::new(file), opts).unwrap();
    spec.feed(&mut w);
    let (_, summary) = w.finish().unwrap();
    summary
}

fn squashfs_options(c: Compressor) -> SquashfsOptions {
    let mut o = SquashfsOptions::new(c, BUILD_TIME);
    o.skip_boot = true;
    o.threads = 2;
    o
}

fn check_summary(summary: &Summary) {
    assert_eq!(
        summary.replaced_bytes,
        ("first version, longer than the second".len() + "gone".len()) as u64
    );
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
}

#[test]
fn squashfs_extracts_to_the_tree_the_entries_describe() {
    need_root();
    let spec = spec(3000);
    let work = tempfile::tempdir().unwrap();
    for (c, name) in [
        (Compressor::Gzip, "gzip"),
        (Compressor::Zstd, "zstd"),
        (Compressor::Xz, "xz"),
    ] {
        for fragments in [true, false] {
            let img = work.path().join(format!("{name}-{fragments}.sqfs"));
            let mut opts = squashfs_options(c);
            opts.fragments = fragments;
            let summary = squashfs(&spec, opts, &img);
            check_summary(&summary);
            let stat = run(Command::new("unsquashfs").arg("-s").arg(&img));
            assert!(stat.contains(&format!("Compression {name}")), "{stat}");
            assert!(stat.contains("Block size 131072"), "{stat}");
            assert!(
                stat.contains(&format!("Number of inodes {}", summary.inodes)),
                "{stat}"
            );
            let out = work.path().join(format!("{name}-{fragments}"));
            run(Command::new("unsquashfs")
                .args(["-no-progress", "-d"])
                .arg(&out)
                .arg(&img));
            compare(
                &spec,
                &out,
                &format!("unsquashfs {name}, fragments {fragments}"),
                true,
            );
        }
    }
}

#[test]
fn erofs_extracts_to_the_tree_the_entries_describe() {
    need_root();
    let spec = spec(3000);
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("root.erofs");
    let mut opts = ErofsOptions::new(BUILD_TIME);
    opts.skip_boot = true;
    let summary = erofs(&spec, opts, &img);
    check_summary(&summary);
    run(Command::new("fsck.erofs").arg(&img));
    let out = work.path().join("tree");
    run(Command::new("fsck.erofs")
        .arg(format!("--extract={}", out.display()))
        .arg(&img));
    // fsck.erofs 1.5 extracts no extended attributes, and chowns after its
    // chmod, which clears set-uid and set-gid (mkfs.erofs's images too);
    // the boot test reads both through the kernel.
    compare(&spec, &out, "fsck.erofs --extract", false);
    // Nor does it make hard links: dump.erofs shows the inodes.
    for group in &spec.groups {
        let inodes: BTreeSet<(u64, u64)> = group.iter().map(|p| erofs_inode(&img, p)).collect();
        assert_eq!(inodes.len(), 1, "{group:?} share one inode: {inodes:?}");
        let (_, links) = inodes.into_iter().next().unwrap();
        assert_eq!(links, group.len() as u64, "{group:?}");
    }
    let (_, links) = erofs_inode(&img, "etc");
    assert_eq!(links, 2 + 1, "etc holds one directory");
}

#[test]
fn images_are_deterministic_whatever_the_thread_count() {
    let spec = spec(3000);
    let work = tempfile::tempdir().unwrap();
    for c in [Compressor::Gzip, Compressor::Zstd] {
        let mut images = Vec::new();
        for threads in [1, 2, 3] {
            let img = work.path().join(format!("{threads}.sqfs"));
            let mut opts = squashfs_options(c);
            opts.threads = threads;
            squashfs(&spec, opts, &img);
            images.push(fs::read(&img).unwrap());
        }
        assert!(images.windows(2).all(|w| w[0] == w[1]), "{c:?}");
    }
    let mut images = Vec::new();
    for i in 0..2 {
        let img = work.path().join(format!("{i}.erofs"));
        erofs(&spec, ErofsOptions::new(BUILD_TIME), &img);
        images.push(fs::read(&img).unwrap());
    }
    assert_eq!(images[0], images[1]);
}

#[test]
fn short_content_is_an_error() {
    let work = tempfile::tempdir().unwrap();
    let h = Header::new("f", Kind::File { size: 10 }, 0o644);
    let file = fs::File::create(work.path().join("s")).unwrap();
    let mut w = SquashfsWriter::new(file, squashfs_options(Compressor::Gzip)).unwrap();
    let err = w.entry(&h, &[], &mut &b"short"[..]).unwrap_err();
    assert!(err.to_string().contains("`f`"), "{err}");
    let file = fs::File::create(work.path().join("e")).unwrap();
    let mut w = ErofsWriter::new(file, ErofsOptions::new(0)).unwrap();
    let err = w.entry(&h, &[], &mut &b"short"[..]).unwrap_err();
    assert!(err.to_string().contains("`f`"), "{err}");
}

#[test]
fn unstorable_entries_are_reported() {
    let work = tempfile::tempdir().unwrap();
    let file = fs::File::create(work.path().join("s")).unwrap();
    let mut w = SquashfsWriter::new(file, squashfs_options(Compressor::Gzip)).unwrap();
    let mut h = Header::new("a", Kind::File { size: 1 }, 0o644);
    h.set_pax("SCHILY.xattr.system.posix_acl_access", vec![2, 0, 0, 0]);
    w.entry(&h, &[], &mut &b"a"[..]).unwrap();
    w.entry(
        &Header::new("a/b", Kind::File { size: 0 }, 0o644),
        &[],
        &mut std::io::empty(),
    )
    .unwrap();
    let l = Header::new(
        "c",
        Kind::Link {
            target: "missing".into(),
        },
        0o644,
    );
    w.entry(&l, &[], &mut std::io::empty()).unwrap();
    let (_, summary) = w.finish().unwrap();
    let paths: Vec<&str> = summary.skipped.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["a", "a/b", "c"], "{:?}", summary.skipped);
}

/// The guest's `/init`: loads the modules, mounts each image read-only,
/// lists every file (stat, sha256sum, link targets, xattrs) into a file it
/// copies to the last disk, prints a file read from an image, powers off.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_blk squashfs crc32c_generic libcrc32c erofs; do
  insmod /lib/modules/$m.ko || echo "ROOTFS-FAIL insmod $m"
done
n=0
while [ ! -b /dev/vde ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done
out=/tmp/listing
: > $out
for img in "vda squashfs sq-gzip" "vdb squashfs sq-zstd" "vdc squashfs sq-xz" "vdd erofs erofs"; do
  set -- $img
  mkdir -p /mnt/$3
  if mount -t $2 -o ro /dev/$1 /mnt/$3; then
    cd /mnt/$3
    find . -print0 | xargs -0 stat -c "S|$3|%f|%u|%g|%Y|%h|%i|%t|%T|%n" >> $out
    find . -type f -print0 | xargs -0 sha256sum | sed "s/^/H|$3|/" >> $out
    find . -type l -print0 | xargs -0 stat -c "L|$3|%N" >> $out
    getfattr -R -P -h -d -m - -e hex . | sed "s/^/X|$3|/" >> $out
    cd /
    echo "ROOTFS-MOUNTED $3 $(cat /mnt/$3/etc/motd)"
  else
    echo "ROOTFS-FAIL mount $3"
  fi
done
dd if=$out of=/dev/vde bs=64k conv=fsync 2>/dev/null
sync
echo "ROOTFS-LISTED $(wc -c < $out)"
poweroff -f
"#;

fn sh(script: &str) {
    let status = Command::new("sh").args(["-ec", script]).status().unwrap();
    assert!(status.success(), "`{script}` failed: {status}");
}

/// The test initramfs: static busybox, getfattr with its libraries, the
/// modules the mounts need (decompressed for busybox's insmod).
fn initramfs(work: &Path) -> std::path::PathBuf {
    use slipway_testkit::initramfs::{kernel_dir, need};
    let kdir = kernel_dir();
    let version = fs::read_to_string(kdir.join("version")).unwrap();
    let modules = kdir.join("lib/modules").join(version.trim());
    let root = work.join("initramfs");
    for d in [
        "bin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "mnt",
        "lib/modules",
        "lib64",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(need("busybox"), root.join("bin/busybox")).unwrap();
    fs::copy(need("getfattr"), root.join("bin/getfattr")).unwrap();
    fs::write(root.join("init"), INIT).unwrap();
    sh(&format!(
        "cd {root}; chmod 755 init; for a in $(bin/busybox --list); do [ -e bin/$a ] || ln -s busybox bin/$a; done; \
         for lib in $(ldd bin/getfattr | awk '/=> \\//{{print $3}}'); do mkdir -p .$(dirname $lib); cp -L $lib .$lib; done; \
         cp -L /lib64/ld-linux-x86-64.so.2 lib64/; \
         for m in drivers/block/virtio_blk fs/squashfs/squashfs crypto/crc32c_generic lib/libcrc32c fs/erofs/erofs; do \
           xz -dc {modules}/kernel/$m.ko.xz > lib/modules/$(basename $m).ko; done; \
         find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > ../initrd.gz",
        root = root.display(),
        modules = modules.display(),
    ));
    work.join("initrd.gz")
}

/// Boots the test kernel with the images as read-only virtio disks and a
/// scratch disk; returns the console and the scratch disk's bytes.
fn boot(work: &Path, images: &[std::path::PathBuf]) -> (String, Vec<u8>) {
    use slipway_testkit::boot::TCG_APPEND;
    use slipway_testkit::initramfs::{kernel_dir, need};
    let initrd = initramfs(work);
    let scratch = work.join("scratch.img");
    fs::write(&scratch, vec![0u8; 64 << 20]).unwrap();
    let mut cmd = Command::new(need("qemu-system-x86_64"));
    cmd.args(["-accel", "tcg", "-m", "512", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel_dir().join("vmlinuz"))
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(format!("console=ttyS0 quiet {}", TCG_APPEND.join(" ")));
    for img in images {
        cmd.arg("-drive").arg(format!(
            "file={},format=raw,if=virtio,readonly=on",
            img.display()
        ));
    }
    cmd.arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", scratch.display()));
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "the guest did not power off within 300 s:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let console = reader.join().unwrap();
    (console, fs::read(&scratch).unwrap())
}

/// A tree as listed, and its groups of names sharing an inode.
type Listed = (BTreeMap<String, Expect>, Vec<BTreeSet<String>>);

/// The trees the guest listed, by image.
fn parse_listing(text: &str) -> BTreeMap<String, Listed> {
    let rel = |p: &str| {
        p.strip_prefix("./")
            .unwrap_or(if p == "." { "" } else { p })
            .to_string()
    };
    let mut trees: BTreeMap<String, BTreeMap<String, Expect>> = BTreeMap::new();
    let mut inodes: BTreeMap<String, BTreeMap<u64, BTreeSet<String>>> = BTreeMap::new();
    let mut xattr_file = String::new();
    for line in text.lines() {
        let mut f = line.splitn(3, '|');
        let (Some(kind), Some(img), Some(rest)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let tree = trees.entry(img.to_string()).or_default();
        match kind {
            "S" => {
                let v: Vec<&str> = rest.splitn(9, '|').collect();
                let raw = u32::from_str_radix(v[0], 16).unwrap();
                let num = |i: usize| -> u64 { v[i].parse().unwrap() };
                let hexn = |i: usize| -> u64 { u64::from_str_radix(v[i], 16).unwrap() };
                let path = rel(v[8]);
                if path == "bin/busybox" {
                    assert_eq!(num(4), 4, "{img}: link count of a group of four names");
                }
                let what = match raw & 0o170000 {
                    0o040000 => What::Dir,
                    0o100000 => {
                        inodes
                            .entry(img.to_string())
                            .or_default()
                            .entry(num(5))
                            .or_default()
                            .insert(path.clone());
                        What::File(String::new())
                    }
                    0o120000 => What::Symlink(String::new()),
                    0o020000 => What::Char(dev(hexn(6), hexn(7))),
                    0o060000 => What::Block(dev(hexn(6), hexn(7))),
                    0o010000 => What::Fifo,
                    t => panic!("{path}: type {t:o}"),
                };
                tree.insert(
                    path,
                    Expect {
                        what,
                        mode: raw & 0o7777,
                        uid: num(1) as u32,
                        gid: num(2) as u32,
                        mtime: num(3) as i64,
                        xattrs: BTreeMap::new(),
                    },
                );
            }
            "H" => {
                let (hash, path) = rest.split_once("  ").unwrap();
                tree.get_mut(&rel(path)).unwrap().what = What::File(hash.to_string());
            }
            "L" => {
                let (name, target) = rest.split_once("' -> '").unwrap();
                let name = rel(name.trim_start_matches('\''));
                let target = target.strip_suffix('\'').unwrap();
                tree.get_mut(&name).unwrap().what = What::Symlink(target.to_string());
            }
            "X" => {
                if let Some(file) = rest.strip_prefix("# file: ") {
                    xattr_file = rel(file);
                } else if let Some((k, v)) = rest.split_once('=') {
                    tree.get_mut(&xattr_file).unwrap().xattrs.insert(
                        k.to_string(),
                        hex::decode(v.trim_start_matches("0x")).unwrap(),
                    );
                }
            }
            _ => {}
        }
    }
    trees
        .into_iter()
        .map(|(img, t)| {
            let groups = inodes
                .remove(&img)
                .unwrap_or_default()
                .into_values()
                .filter(|g| g.len() > 1)
                .collect();
            (img, (t, groups))
        })
        .collect()
}

/// The kernel (Debian's 6.12 test kernel, under TCG) mounts every image
/// from a read-only virtio disk and sees the tree the entries describe,
/// set-id bits, hard links and xattrs included, which the erofs tools
/// cannot check.
#[test]
fn the_kernel_mounts_the_images() {
    need_root();
    let spec = spec(300);
    let work = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    for (c, name) in [
        (Compressor::Gzip, "gzip"),
        (Compressor::Zstd, "zstd"),
        (Compressor::Xz, "xz"),
    ] {
        let img = work.path().join(format!("{name}.sqfs"));
        squashfs(&spec, squashfs_options(c), &img);
        images.push(img);
    }
    let img = work.path().join("root.erofs");
    let mut opts = ErofsOptions::new(BUILD_TIME);
    opts.skip_boot = true;
    erofs(&spec, opts, &img);
    images.push(img);
    let (console, scratch) = boot(work.path(), &images);
    assert!(!console.contains("ROOTFS-FAIL"), "{console}");
    for name in ["sq-gzip", "sq-zstd", "sq-xz", "erofs"] {
        assert!(
            console.contains(&format!("ROOTFS-MOUNTED {name} hello")),
            "{name} was not mounted and read:\n{console}"
        );
    }
    let len: usize = console
        .split("ROOTFS-LISTED ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no listing:\n{console}"));
    let listing = String::from_utf8(scratch[..len].to_vec()).unwrap();
    let trees = parse_listing(&listing);
    assert_eq!(trees.len(), 4, "{console}");
    for (name, (tree, groups)) in trees {
        compare_trees(&spec, tree, groups, &format!("kernel, {name}"), true);
    }
}
