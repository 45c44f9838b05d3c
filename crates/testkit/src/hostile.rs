//! A corpus of hostile images: layers that try to write outside the root,
//! loop, lie about sizes, inflate without end or carry names no filesystem
//! API would produce.
//!
//! Every case is generated here, deterministically (same bytes, same
//! digests, every run), with a tar writer of its own: the `tar` crate
//! refuses to write most of these headers, which is the point of them.
//! Each case says what a correct consumer does with it: contain it (the
//! image is built as Docker or containerd would unpack it, nothing outside
//! the root) or refuse it naming the entry.
//!
//! Paths outside the root point into [`OUTSIDE`]`/<case>`, so a test can
//! check that no write ever landed there.

use std::io::Write;

use crate::TestkitError;
use crate::image::{Blob, Format, ImageBuilder, Layer, media, sha256_digest};

/// Where the escaping names of case `name` point: `OUTSIDE/name/...`.
pub const OUTSIDE: &str = "/tmp/slipway-hostile";

/// What a correct consumer does with a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Built like any image; `present` are paths (relative to the root)
    /// the flattened image holds.
    Contained { present: Vec<String> },
    /// Refused, the error naming this text (an entry's path, or the limit).
    Refused { naming: String },
}

/// One hostile image.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub what: &'static str,
    /// Bottom layer first.
    pub layers: Vec<Layer>,
    pub expect: Expect,
    /// Only refused below this `--max-layer-size` (the slow cases carry one
    /// so a test bounds its run time, not just its memory).
    pub max_layer_size: Option<&'static str>,
}

impl Case {
    /// The image: the case's layers, linux/amd64, OCI media types.
    pub fn image(&self) -> Result<crate::Image, TestkitError> {
        let mut builder = ImageBuilder::new().format(Format::Oci);
        for layer in &self.layers {
            builder = builder.prebuilt_layer(layer.clone());
        }
        builder.build()
    }
}

/// One raw tar header and its data, written as given.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev: (u32, u32),
    pub data: Vec<u8>,
    /// The size field as written, when it is not `data`'s length.
    pub size_field: Option<Vec<u8>>,
    /// PAX records written in an `x` header before this one.
    pub pax: Vec<(String, Vec<u8>)>,
    /// Names longer than 100 bytes go in a GNU `L` (and `K`) header rather
    /// than in PAX records.
    pub gnu_long: bool,
}

impl RawEntry {
    fn new(name: impl AsRef<[u8]>, typeflag: u8) -> RawEntry {
        RawEntry {
            name: name.as_ref().to_vec(),
            typeflag,
            link: Vec::new(),
            mode: if typeflag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 0,
            dev: (0, 0),
            data: Vec::new(),
            size_field: None,
            pax: Vec::new(),
            gnu_long: false,
        }
    }

    pub fn file(name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> RawEntry {
        RawEntry {
            data: data.as_ref().to_vec(),
            ..RawEntry::new(name, b'0')
        }
    }

    pub fn dir(name: impl AsRef<[u8]>) -> RawEntry {
        RawEntry::new(name, b'5')
    }

    pub fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> RawEntry {
        RawEntry {
            link: target.as_ref().to_vec(),
            mode: 0o777,
            ..RawEntry::new(name, b'2')
        }
    }

    pub fn hard_link(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> RawEntry {
        RawEntry {
            link: target.as_ref().to_vec(),
            ..RawEntry::new(name, b'1')
        }
    }

    pub fn device(name: impl AsRef<[u8]>, typeflag: u8, major: u32, minor: u32) -> RawEntry {
        RawEntry {
            dev: (major, minor),
            mode: 0o666,
            ..RawEntry::new(name, typeflag)
        }
    }

    fn mode(mut self, mode: u32) -> RawEntry {
        self.mode = mode;
        self
    }

    pub fn pax(mut self, key: &str, value: impl AsRef<[u8]>) -> RawEntry {
        self.pax.push((key.to_string(), value.as_ref().to_vec()));
        self
    }
}

fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}", width = field.len() - 1);
    if text.len() < field.len() {
        field[..text.len()].copy_from_slice(text.as_bytes());
    } else {
        // GNU base-256 for what octal cannot hold.
        field.fill(0);
        field[0] = 0x80;
        let bytes = value.to_be_bytes();
        let n = bytes.len().min(field.len() - 1);
        let len = field.len();
        field[len - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    }
}

fn header(name: &[u8], typeflag: u8, size: &[u8], e: &RawEntry, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(e.mode));
    octal(&mut h[108..116], e.uid);
    octal(&mut h[116..124], e.gid);
    let s = size.len().min(12);
    h[124..124 + s].copy_from_slice(&size[..s]);
    octal(&mut h[136..148], e.mtime);
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], u64::from(e.dev.0));
    octal(&mut h[337..345], u64::from(e.dev.1));
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    h
}

fn size_field(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    octal(&mut f, len as u64);
    f
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// A PAX record `"<len> key=value\n"`, its length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + body.to_string().len();
    if len.to_string().len() != body.to_string().len() {
        len += 1;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

fn append_meta(out: &mut Vec<u8>, typeflag: u8, name: &[u8], data: &[u8]) {
    let meta = RawEntry {
        mode: 0o644,
        ..RawEntry::new(name, typeflag)
    };
    out.extend_from_slice(&header(name, typeflag, &size_field(data.len()), &meta, b""));
    out.extend_from_slice(data);
    pad(out);
}

/// The tar archive of `entries`, byte for byte as described, with its end
/// marker.
pub fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut pax = e.pax.clone();
        if e.name.len() > 100 || e.link.len() > 100 {
            if e.gnu_long {
                if e.link.len() > 100 {
                    let mut l = e.link.clone();
                    l.push(0);
                    append_meta(&mut out, b'K', b"././@LongLink", &l);
                }
                if e.name.len() > 100 {
                    let mut n = e.name.clone();
                    n.push(0);
                    append_meta(&mut out, b'L', b"././@LongLink", &n);
                }
            } else {
                if e.name.len() > 100 {
                    pax.push(("path".into(), e.name.clone()));
                }
                if e.link.len() > 100 {
                    pax.push(("linkpath".into(), e.link.clone()));
                }
            }
        }
        if !pax.is_empty() {
            let records: Vec<u8> = pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            append_meta(&mut out, b'x', b"PaxHeaders/entry", &records);
        }
        let size = e
            .size_field
            .clone()
            .unwrap_or_else(|| size_field(e.data.len()));
        out.extend_from_slice(&header(&e.name, e.typeflag, &size, e, &e.link));
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// A gzip layer of `entries`.
pub fn layer(entries: &[RawEntry]) -> Layer {
    let tar = raw_tar(entries);
    Layer {
        diff_id: sha256_digest(&tar),
        blob: Blob::new(media::OCI_LAYER_GZIP, gzip(&tar)),
    }
}

/// A gzip layer holding one file `name` of `gib` GiB of zeros, written as
/// concatenated gzip members of one compressed 64 MiB block: about a
/// thousandth of the size it inflates to, built in a fraction of a second.
/// Its `diff_id` is not the digest of its tar (computing that means
/// inflating it), which nothing checks before reading it.
pub fn gzip_bomb(name: &str, gib: u64) -> Layer {
    let size = gib << 30;
    let e = RawEntry::file(name, []);
    let head = header(name.as_bytes(), b'0', &size_field_u64(size), &e, b"");
    let mut blob = gzip(&head);
    let block = gzip(&vec![0u8; 64 << 20]);
    for _ in 0..(size >> 26) {
        blob.extend_from_slice(&block);
    }
    blob.extend_from_slice(&gzip(&[0u8; 1024]));
    Layer {
        diff_id: sha256_digest(&blob),
        blob: Blob::new(media::OCI_LAYER_GZIP, blob),
    }
}

fn size_field_u64(n: u64) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    octal(&mut f, n);
    f
}

fn out(case: &str, rest: &str) -> String {
    format!("{OUTSIDE}/{case}/{rest}")
}

/// `../` enough times to climb out of any output directory, then `rest`.
fn up(case: &str, rest: &str) -> String {
    format!(
        "{}{}",
        "../".repeat(24),
        out(case, rest).trim_start_matches('/')
    )
}

fn contained(present: &[&str]) -> Expect {
    Expect::Contained {
        present: present.iter().map(|p| p.to_string()).collect(),
    }
}

fn refused(naming: &str) -> Expect {
    Expect::Refused {
        naming: naming.to_string(),
    }
}

fn case(name: &'static str, what: &'static str, layers: Vec<Layer>, expect: Expect) -> Case {
    Case {
        name,
        what,
        layers,
        expect,
        max_layer_size: None,
    }
}

/// Inside the image, where `OUTSIDE/case/rest` lands once clamped at the root.
fn inside(case: &str, rest: &str) -> String {
    out(case, rest).trim_start_matches('/').to_string()
}

/// Every case but the slow ones (see [`slow_cases`]).
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |c: Case| cases.push(c);
    let base = || RawEntry::dir("etc");

    add(case(
        "dotdot-file",
        "a file named ../../…/tmp/slipway-hostile/dotdot-file/pwned",
        vec![layer(&[RawEntry::file(up("dotdot-file", "pwned"), "x")])],
        contained(&[&inside("dotdot-file", "pwned")]),
    ));
    add(case(
        "dotdot-middle",
        "a file whose name climbs out from inside a directory",
        vec![layer(&[
            RawEntry::dir("a"),
            RawEntry::file(format!("a/b/../../{}", up("dotdot-middle", "pwned")), "x"),
        ])],
        contained(&[&inside("dotdot-middle", "pwned")]),
    ));
    add(case(
        "absolute-file",
        "a file with an absolute name",
        vec![layer(&[RawEntry::file(out("absolute-file", "pwned"), "x")])],
        contained(&[&inside("absolute-file", "pwned")]),
    ));
    add(case(
        "dotdot-dir",
        "a directory named .. and a file below it",
        vec![layer(&[
            RawEntry::dir(".."),
            RawEntry::file("../pwned-dotdot-dir", "x"),
        ])],
        contained(&["pwned-dotdot-dir"]),
    ));
    add(case(
        "symlink-absolute-parent",
        "a symlink to an absolute directory outside, then a file written through it",
        vec![layer(&[
            RawEntry::symlink("evil", out("symlink-absolute-parent", "")),
            RawEntry::file("evil/pwned", "x"),
        ])],
        contained(&["evil", &inside("symlink-absolute-parent", "pwned")]),
    ));
    add(case(
        "symlink-relative-parent",
        "a symlink climbing out with ../, then a file written through it",
        vec![layer(&[
            RawEntry::symlink("evil", up("symlink-relative-parent", "")),
            RawEntry::file("evil/pwned", "x"),
        ])],
        contained(&["evil", &inside("symlink-relative-parent", "pwned")]),
    ));
    add(case(
        "symlink-parent-next-layer",
        "a symlink outside in one layer, a file through it in the next",
        vec![
            layer(&[RawEntry::symlink(
                "evil",
                out("symlink-parent-next-layer", ""),
            )]),
            layer(&[RawEntry::file("evil/pwned", "x")]),
        ],
        contained(&["evil", &inside("symlink-parent-next-layer", "pwned")]),
    ));
    add(case(
        "symlink-chain",
        "a -> b -> c -> outside, then a/pwned",
        vec![layer(&[
            RawEntry::symlink("a", "b"),
            RawEntry::symlink("b", "./c"),
            RawEntry::symlink("c", up("symlink-chain", "")),
            RawEntry::file("a/pwned", "x"),
        ])],
        contained(&[&inside("symlink-chain", "pwned")]),
    ));
    add(case(
        "symlink-dotdot-chain",
        "d/up -> .. repeated through itself, then a file below",
        vec![layer(&[
            RawEntry::dir("d"),
            RawEntry::symlink("d/up", ".."),
            RawEntry::file(
                format!("d/up/d/up/d/up/{}", up("symlink-dotdot-chain", "pwned")),
                "x",
            ),
        ])],
        contained(&[&inside("symlink-dotdot-chain", "pwned")]),
    ));
    add(case(
        "symlink-loop",
        "a -> b, b -> a, then a file below a",
        vec![layer(&[
            RawEntry::symlink("a", "b"),
            RawEntry::symlink("b", "a"),
            RawEntry::file("a/pwned", "x"),
        ])],
        refused("a/pwned"),
    ));
    add(case(
        "symlink-self",
        "a -> ./a/., then a file below it",
        vec![layer(&[
            RawEntry::symlink("a", "./a/."),
            RawEntry::file("a/f", "x"),
        ])],
        refused("a/f"),
    ));
    add(case(
        "symlink-empty",
        "a symlink with an empty target, then a file below it",
        vec![layer(&[
            RawEntry::symlink("empty-link", ""),
            RawEntry::file("empty-link/f", "x"),
        ])],
        refused("empty-link"),
    ));
    add(case(
        "symlink-resolv-conf",
        "etc/resolv.conf a symlink to the host's /etc/shadow",
        vec![layer(&[
            base(),
            RawEntry::symlink("etc/resolv.conf", "/etc/shadow"),
        ])],
        contained(&["etc/resolv.conf"]),
    ));
    add(case(
        "hardlink-absolute-missing",
        "a hard link to the host's /etc/shadow, which the image lacks",
        vec![layer(&[RawEntry::hard_link("shadow", "/etc/shadow")])],
        refused("shadow"),
    ));
    add(case(
        "hardlink-dotdot-missing",
        "a hard link to ../../…/etc/passwd, which the image lacks",
        vec![layer(&[RawEntry::hard_link(
            "passwd",
            format!("{}etc/passwd", "../".repeat(24)),
        )])],
        refused("passwd"),
    ));
    add(case(
        "hardlink-dotdot-present",
        "a hard link to ../../…/etc/motd, which the image has",
        vec![layer(&[
            base(),
            RawEntry::file("etc/motd", "in the image"),
            RawEntry::hard_link("motd", format!("{}etc/motd", "../".repeat(24))),
        ])],
        contained(&["motd", "etc/motd"]),
    ));
    add(case(
        "hardlink-through-symlink",
        "a hard link whose target's parent is a symlink outside",
        vec![layer(&[
            RawEntry::dir("real"),
            RawEntry::file("real/f", "x"),
            RawEntry::symlink("s", "/real"),
            RawEntry::hard_link("h", "s/f"),
        ])],
        contained(&["h", "real/f"]),
    ));
    add(case(
        "hardlink-to-escaping-symlink",
        "a hard link to a symlink that points outside, then a file below the link",
        vec![layer(&[
            RawEntry::symlink("s", out("hardlink-to-escaping-symlink", "x")),
            RawEntry::hard_link("h", "s"),
            RawEntry::file("h/pwned", "x"),
        ])],
        // The link is a copy of the symlink; a later entry below it makes
        // it a directory (containerd would write through it, inside the root).
        contained(&["s", "h/pwned"]),
    ));
    add(case(
        "hardlink-to-dir",
        "a hard link to a directory",
        vec![layer(&[RawEntry::dir("d"), RawEntry::hard_link("h", "d")])],
        refused("h"),
    ));
    add(case(
        "hardlink-to-root",
        "a hard link to the root directory",
        vec![layer(&[RawEntry::hard_link("h", "/")])],
        refused("h"),
    ));
    add(case(
        "hardlink-forward",
        "a hard link before the file it names, in the same layer",
        vec![layer(&[
            RawEntry::hard_link("h", "f"),
            RawEntry::file("f", "x"),
        ])],
        contained(&["h", "f"]),
    ));
    add(case(
        "devices",
        "character and block devices (/dev/mem, a disk), a FIFO",
        vec![layer(&[
            RawEntry::dir("dev"),
            RawEntry::device("dev/mem", b'3', 1, 1),
            RawEntry::device("dev/sda", b'4', 8, 0),
            RawEntry::device("dev/kmsg", b'3', 1, 11),
            RawEntry::device("fifo", b'6', 0, 0),
        ])],
        contained(&["dev/mem", "dev/sda", "fifo"]),
    ));
    add(case(
        "device-escaping",
        "a device node with an absolute name outside",
        vec![layer(&[RawEntry::device(
            out("device-escaping", "mem"),
            b'3',
            1,
            1,
        )])],
        contained(&[&inside("device-escaping", "mem")]),
    ));
    add(case(
        "setuid",
        "setuid and setgid root files, a sticky world-writable directory",
        vec![layer(&[
            RawEntry::file("suid", "#!/bin/sh\n").mode(0o4755),
            RawEntry::file("sgid", "#!/bin/sh\n").mode(0o2755),
            RawEntry::dir("tmp").mode(0o1777),
        ])],
        contained(&["suid", "sgid", "tmp"]),
    ));
    add(case(
        "pax-huge-record",
        "a PAX header of 4 MiB (one comment record)",
        vec![layer(&[
            RawEntry::file("f", "x").pax("comment", vec![b'a'; 4 << 20])
        ])],
        contained(&["f"]),
    ));
    add(case(
        "pax-path-escape",
        "a PAX path record climbing out, over a harmless ustar name",
        vec![layer(&[
            RawEntry::file("harmless", "x").pax("path", up("pax-path-escape", "pwned"))
        ])],
        contained(&[&inside("pax-path-escape", "pwned")]),
    ));
    add(case(
        "pax-linkpath-escape",
        "a PAX linkpath outside on a symlink, then a write through it",
        vec![layer(&[
            RawEntry::symlink("evil", "harmless").pax("linkpath", out("pax-linkpath-escape", "")),
            RawEntry::file("evil/pwned", "x"),
        ])],
        contained(&[&inside("pax-linkpath-escape", "pwned")]),
    ));
    add(case(
        "pax-nul-linkpath",
        "a PAX linkpath holding NUL bytes, on a symlink named through it",
        vec![layer(&[
            RawEntry::symlink("evil-nul", "harmless").pax("linkpath", b"/tmp/a\0\0/b".as_slice())
        ])],
        refused("evil-nul"),
    ));
    add(case(
        "pax-size-lies",
        "a PAX size record far beyond the data that follows",
        vec![layer(&[
            RawEntry::file("f", "x").pax("size", "1099511627776"),
            RawEntry::file("g", "y"),
        ])],
        refused("layer"),
    ));
    add(case(
        "pax-owner-huge",
        "a PAX uid beyond the octal field, a negative gid and mtime",
        vec![layer(&[RawEntry::file("f", "x")
            .pax("uid", "4000000000")
            .pax("gid", "-1")
            .pax("mtime", "-100.5")])],
        contained(&["f"]),
    ));
    let long: String = (0..12)
        .map(|i| format!("{}{i:02}/", "n".repeat(250)))
        .collect();
    add(case(
        "gnu-long-name",
        "a 3 KiB name (components of 252 bytes) in a GNU long-name header",
        vec![layer(&[RawEntry {
            gnu_long: true,
            ..RawEntry::file(format!("{long}f"), "x")
        }])],
        contained(&[&format!("{long}f")]),
    ));
    add(case(
        "gnu-long-link-escape",
        "a symlink whose GNU long link name climbs out, then a write through it",
        vec![layer(&[
            RawEntry {
                gnu_long: true,
                ..RawEntry::symlink("evil", up("gnu-long-link-escape", ""))
            },
            RawEntry::file("evil/pwned", "x"),
        ])],
        contained(&[&inside("gnu-long-link-escape", "pwned")]),
    ));
    let deep: String = (0..400).map(|i| format!("d{i:02}/")).collect();
    add(case(
        "deep-path",
        "a file 400 directories deep, none of them listed",
        vec![layer(&[RawEntry::file(format!("{deep}f"), "x")])],
        contained(&[&format!("{deep}f")]),
    ));
    add(case(
        "gnu-sparse",
        "a GNU sparse file (old format): 3 data bytes of a 1 MiB file",
        vec![Layer {
            diff_id: String::new(),
            blob: Blob::new(media::OCI_LAYER_GZIP, Vec::new()),
        }],
        contained(&["sparse"]),
    ));
    add(case(
        "size-lies-truncated",
        "a header claiming 8 GiB, then 1 KiB of data and the end of the stream",
        vec![{
            let mut tar = raw_tar(&[RawEntry {
                size_field: Some(size_field_u64(8 << 30)),
                ..RawEntry::file("big", [])
            }]);
            tar.truncate(512);
            tar.extend_from_slice(&[7u8; 1024]);
            Layer {
                diff_id: sha256_digest(&tar),
                blob: Blob::new(media::OCI_LAYER_GZIP, gzip(&tar)),
            }
        }],
        refused("layer"),
    ));
    add(case(
        "size-field-garbage",
        "a size field that is not a number",
        vec![layer(&[RawEntry {
            size_field: Some(b"zzzzzzzzzzz\0".to_vec()),
            ..RawEntry::file("f", [])
        }])],
        refused("layer"),
    ));
    add(case(
        "duplicates",
        "the same file twice with different content, a file and a directory of one name",
        vec![layer(&[
            RawEntry::file("f", "first"),
            RawEntry::file("f", "second"),
            RawEntry::dir("d"),
            RawEntry::file("d/x", "x"),
            RawEntry::file("d", "a file now"),
        ])],
        contained(&["f", "d/x"]),
    ));
    add(case(
        "duplicate-across-layers",
        "a directory replaced by a symlink outside in the next layer, then written into",
        vec![
            layer(&[RawEntry::dir("d"), RawEntry::file("d/x", "x")]),
            layer(&[
                RawEntry::symlink("d", out("duplicate-across-layers", "")),
                RawEntry::file("d/pwned", "x"),
            ]),
        ],
        contained(&["d", &inside("duplicate-across-layers", "pwned")]),
    ));
    add(case(
        "whiteout-root",
        "whiteouts of / : an opaque root, .wh. with no name, ../.wh..",
        vec![
            layer(&[base(), RawEntry::file("etc/keep", "lower")]),
            layer(&[
                RawEntry::file(".wh..wh..opq", []),
                RawEntry::file(".wh.", []),
                RawEntry::file("../.wh..", []),
                RawEntry::file("/.wh..wh..opq", []),
                RawEntry::file("upper", "x"),
            ]),
        ],
        contained(&["upper"]),
    ));
    add(case(
        "whiteout-missing",
        "whiteouts of paths no layer has, and one below a missing directory",
        vec![
            layer(&[RawEntry::file("keep", "x")]),
            layer(&[
                RawEntry::file(".wh.nothing", []),
                RawEntry::file("no/such/.wh.dir", []),
                RawEntry::file(".wh..wh..wh..opq", []),
            ]),
        ],
        contained(&["keep"]),
    ));
    add(case(
        "whiteout-escape",
        "a whiteout climbing out of the root and one through a symlink outside",
        vec![
            layer(&[
                RawEntry::symlink("s", out("whiteout-escape", "")),
                RawEntry::file("keep", "x"),
            ]),
            layer(&[
                RawEntry::file(format!("{}.wh.keep-outside", "../".repeat(24)), []),
                RawEntry::file("s/.wh.victim", []),
            ]),
        ],
        contained(&["keep", "s"]),
    ));
    add(case(
        "non-utf8-name",
        "a file whose name is not UTF-8",
        vec![layer(&[RawEntry::file(
            b"bad-\xff\xfe-name".as_slice(),
            "x",
        )])],
        refused("bad-"),
    ));
    add(case(
        "non-utf8-link",
        "a symlink whose target is not UTF-8",
        vec![layer(&[RawEntry::symlink(
            "link-bad",
            b"t-\xff".as_slice(),
        )])],
        refused("link-bad"),
    ));
    add(case(
        "odd-types",
        "a global PAX header, an unknown type, a GNU volume label, a contiguous file",
        vec![layer(&[
            RawEntry::file("g", "9 a=b\n").mode(0o644),
            RawEntry {
                typeflag: b'g',
                data: pax_record("comment", b"global"),
                ..RawEntry::new("global", b'g')
            },
            RawEntry::new("unknown", b'Z'),
            RawEntry::new("label", b'V'),
            RawEntry {
                typeflag: b'7',
                data: b"contiguous".to_vec(),
                ..RawEntry::new("contig", b'7')
            },
        ])],
        contained(&["g", "contig"]),
    ));
    add(case(
        "file-over-dir-through-dotdot",
        "a/b/.. as a file name (replacing directory a), a backslash name",
        vec![layer(&[
            RawEntry::dir("a"),
            RawEntry::file("a/b", "x"),
            RawEntry::file("a/b/..", "now a file"),
            RawEntry::file("..\\..\\evil", "x"),
        ])],
        contained(&["a", "..\\..\\evil"]),
    ));

    // The GNU sparse case needs its own header layout.
    for c in &mut cases {
        if c.name == "gnu-sparse" {
            c.layers = vec![gnu_sparse_layer()];
        }
    }
    cases
}

/// A GNU sparse file (type `S`, old format): 1 MiB, data "abc" at 512 KiB.
fn gnu_sparse_layer() -> Layer {
    let e = RawEntry::file("sparse", []);
    let mut h = header(b"sparse", b'S', &size_field(3), &e, b"");
    h[257..265].copy_from_slice(b"ustar  \0");
    // Sparse map at 386: (offset, numbytes) pairs of 12-byte octal fields;
    // real size at 483.
    octal(&mut h[386..398], 512 << 10);
    octal(&mut h[398..410], 3);
    // GNU tar ends the map with an empty chunk at the real size.
    octal(&mut h[410..422], 1 << 20);
    octal(&mut h[422..434], 0);
    octal(&mut h[483..495], 1 << 20);
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = h.to_vec();
    let mut data = b"abc".to_vec();
    data.resize(512, 0);
    tar.extend_from_slice(&data);
    tar.extend_from_slice(&[0u8; 1024]);
    Layer {
        diff_id: sha256_digest(&tar),
        blob: Blob::new(media::OCI_LAYER_GZIP, gzip(&tar)),
    }
}

/// The cases whose layers inflate to many GiB: a gzip bomb of `gib` GiB,
/// refused past the `--max-layer-size` the case carries.
pub fn slow_cases(gib: u64) -> Vec<Case> {
    vec![Case {
        name: "gzip-bomb",
        what: "a gzip layer of a few MiB inflating to many GiB of zeros",
        layers: vec![gzip_bomb("bomb", gib)],
        expect: refused("inflates to more than"),
        max_layer_size: Some("256M"),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests() -> Vec<String> {
        cases()
            .iter()
            .map(|c| c.image().map(|i| i.manifest.digest().to_string()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_corpus_is_deterministic_with_unique_names() {
        let (a, b) = (digests(), digests());
        assert_eq!(a, b);
        assert!(a.len() >= 30, "{} cases", a.len());
        let names: std::collections::BTreeSet<_> = cases().iter().map(|c| c.name).collect();
        assert_eq!(names.len(), a.len(), "case names are unique");
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for len in [0, 1, 5, 90, 95, 96, 97, 1000] {
            let r = pax_record("k", &vec![b'v'; len]);
            let n: usize =
                std::str::from_utf8(&r[..r.iter().position(|b| *b == b' ').unwrap_or(0)])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            assert_eq!(n, r.len(), "{len}");
        }
    }
}
