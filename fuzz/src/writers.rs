//! The tar and newc cpio writers, round-tripped: entries as the flattener
//! yields them are written, then read back by readers that share no code
//! with the writers (the `tar` crate; a newc reader written here), and
//! must come back as they went in. A writer may refuse an entry (a uid
//! newc cannot hold); what it writes must read back.

use std::io::Read;

use slipway_assemble::entry::{EntrySink, Header, Kind};
use slipway_formats::{CpioWriter, TarWriter};

/// One entry with the other names of its content (a hard-link group).
#[derive(Debug, Clone)]
pub struct Group {
    pub header: Header,
    pub links: Vec<Header>,
    pub content: Vec<u8>,
}

/// Rebuilds the groups of a collected stream: each hard link follows the
/// entry it names.
pub fn groups(entries: &[(Header, Vec<u8>)]) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for (h, content) in entries {
        if let (Kind::Link { .. }, Some(last)) = (&h.kind, out.last_mut()) {
            last.links.push(h.clone());
            continue;
        }
        out.push(Group {
            header: h.clone(),
            links: Vec::new(),
            content: content.clone(),
        });
    }
    out
}

/// Writes `entries` both ways and reads them back.
pub fn round_trip(entries: &[(Header, Vec<u8>)]) {
    let groups = groups(entries);
    let complete = groups.iter().all(|g| match g.header.kind {
        Kind::File { size } => size == g.content.len() as u64,
        _ => true,
    });
    if complete {
        tar_round_trip(&groups);
        cpio_round_trip(&groups);
    }
}

fn write_all(sink: &mut dyn EntrySink, groups: &[Group]) -> bool {
    groups.iter().all(|g| {
        sink.entry(&g.header, &g.links, &mut g.content.as_slice())
            .is_ok()
    })
}

fn tar_round_trip(groups: &[Group]) {
    // The tar crate splits PAX records at newlines rather than by their
    // lengths, so a name holding one reads back cut (Python's tarfile and
    // GNU tar read slipway's record whole): such entries are not compared.
    let newline = |h: &Header| {
        h.path.contains('\n')
            || matches!(&h.kind, Kind::Symlink { target } | Kind::Link { target } if target.contains('\n'))
    };
    if groups
        .iter()
        .any(|g| newline(&g.header) || g.links.iter().any(newline))
    {
        return;
    }
    let mut writer = TarWriter::new(Vec::new());
    if !write_all(&mut writer, groups) {
        return;
    }
    let mut bytes = writer.into_inner();
    if slipway_formats::tar::finish(&mut bytes).is_err() {
        return;
    }
    let expected: Vec<(&Header, &[u8])> = groups
        .iter()
        .flat_map(|g| {
            std::iter::once((&g.header, g.content.as_slice()))
                .chain(g.links.iter().map(|l| (l, &[][..])))
        })
        .collect();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut read = 0;
    let entries = archive
        .entries()
        .unwrap_or_else(|e| panic!("tar crate cannot read slipway's tar: {e}"));
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.unwrap_or_else(|e| panic!("entry {i}: {e}"));
        let Some((h, content)) = expected.get(i) else {
            panic!("more entries than written: {i}")
        };
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        assert_eq!(path.trim_end_matches('/'), h.path, "entry {i}");
        let header = entry.header();
        let want = match &h.kind {
            Kind::File { .. } => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink { .. } => tar::EntryType::Symlink,
            Kind::Link { .. } => tar::EntryType::Link,
            Kind::Char { .. } => tar::EntryType::Char,
            Kind::Block { .. } => tar::EntryType::Block,
            Kind::Fifo => tar::EntryType::Fifo,
        };
        assert_eq!(header.entry_type(), want, "{}", h.path);
        let mode = header
            .mode()
            .unwrap_or_else(|e| panic!("{}: mode: {e}", h.path));
        assert_eq!(mode & 0o7777, h.mode & 0o7777, "{}: mode", h.path);
        // Values past the octal fields travel in PAX records, which the
        // tar crate leaves to its caller.
        let pax: Vec<(String, String)> = entry
            .pax_extensions()
            .ok()
            .flatten()
            .map(|records| {
                records
                    .filter_map(Result::ok)
                    .filter_map(|r| Some((r.key().ok()?.to_string(), r.value().ok()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let number = |key: &str, field: std::io::Result<u64>| {
            pax.iter()
                .rev()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.split('.').next()?.parse().ok())
                .or_else(|| field.ok())
        };
        let header = entry.header().clone();
        assert_eq!(number("uid", header.uid()), Some(h.uid), "{}: uid", h.path);
        assert_eq!(number("gid", header.gid()), Some(h.gid), "{}: gid", h.path);
        assert_eq!(
            number("mtime", header.mtime()),
            Some(h.mtime),
            "{}: mtime",
            h.path
        );
        match &h.kind {
            Kind::Symlink { target } | Kind::Link { target } => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
                assert_eq!(link.as_deref(), Some(target.as_str()), "{}: target", h.path);
            }
            Kind::Char { major, minor } | Kind::Block { major, minor } => {
                let dev = |r: std::io::Result<Option<u32>>| r.ok().flatten();
                assert_eq!(dev(header.device_major()), Some(*major), "{}", h.path);
                assert_eq!(dev(header.device_minor()), Some(*minor), "{}", h.path);
            }
            _ => {}
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .unwrap_or_else(|e| panic!("{}: content: {e}", h.path));
        assert_eq!(&data, content, "{}: content", h.path);
        read += 1;
    }
    assert_eq!(read, expected.len(), "entries read back");
}

/// One newc entry as read back.
#[derive(Debug)]
struct Newc {
    name: String,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

/// A newc reader: the format as the kernel's initramfs unpacker reads it.
fn read_newc(mut bytes: &[u8]) -> Vec<Newc> {
    let pad = |n: usize| n.div_ceil(4) * 4;
    let mut out = Vec::new();
    loop {
        assert!(bytes.len() >= 110, "a newc header is cut short");
        assert_eq!(&bytes[..6], b"070701", "newc magic");
        let field = |i: usize| {
            let text = std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap_or_default();
            u32::from_str_radix(text, 16).unwrap_or_else(|e| panic!("field {i} {text:?}: {e}"))
        };
        let (ino, mode, nlink) = (field(0), field(1), field(4));
        let size = field(6) as usize;
        let rdev = (field(9), field(10));
        let namesize = field(11) as usize;
        assert!(namesize >= 1 && 110 + namesize <= bytes.len(), "name size");
        let name_bytes = &bytes[110..110 + namesize];
        assert_eq!(name_bytes.last(), Some(&0), "name ends in NUL");
        let name = String::from_utf8_lossy(&name_bytes[..namesize - 1]).into_owned();
        let start = pad(110 + namesize);
        assert!(start + size <= bytes.len(), "{name}: data cut short");
        let data = bytes[start..start + size].to_vec();
        bytes = &bytes[(start + pad(size)).min(bytes.len())..];
        if name == "TRAILER!!!" {
            assert!(bytes.iter().all(|b| *b == 0), "bytes after the trailer");
            return out;
        }
        out.push(Newc {
            name,
            ino,
            mode,
            nlink,
            rdev,
            data,
        });
    }
}

fn cpio_round_trip(groups: &[Group]) {
    let mut writer = CpioWriter::new(Vec::new(), false);
    if !write_all(&mut writer, groups) {
        return;
    }
    let Ok(bytes) = writer.finish() else { return };
    let read = read_newc(&bytes);
    let mut at = read.iter();
    for g in groups {
        let members: Vec<&Header> = std::iter::once(&g.header).chain(&g.links).collect();
        let n = members.len();
        let mut ino = None;
        for (i, m) in members.iter().enumerate() {
            let e = at
                .next()
                .unwrap_or_else(|| panic!("{}: missing from the cpio", m.path));
            assert_eq!(e.name, m.path);
            assert_eq!(e.mode & 0o7777, g.header.mode & 0o7777, "{}: mode", m.path);
            let kind = e.mode & 0o170000;
            match &g.header.kind {
                Kind::File { .. } => {
                    assert_eq!(kind, 0o100000, "{}", m.path);
                    assert_eq!(e.nlink as usize, n, "{}: nlink", m.path);
                    assert!(ino.is_none_or(|i| i == e.ino), "{}: one inode", m.path);
                    ino = Some(e.ino);
                    let last = i + 1 == n;
                    let want: &[u8] = if last { &g.content } else { &[] };
                    assert_eq!(e.data, want, "{}: content", m.path);
                }
                Kind::Dir => assert_eq!(kind, 0o040000, "{}", m.path),
                Kind::Symlink { target } => {
                    assert_eq!(kind, 0o120000, "{}", m.path);
                    assert_eq!(e.data, target.as_bytes(), "{}: target", m.path);
                }
                Kind::Char { major, minor } | Kind::Block { major, minor } => {
                    let bits = if matches!(g.header.kind, Kind::Char { .. }) {
                        0o020000
                    } else {
                        0o060000
                    };
                    assert_eq!(kind, bits, "{}", m.path);
                    assert_eq!(e.rdev, (*major, *minor), "{}: device", m.path);
                }
                Kind::Fifo => assert_eq!(kind, 0o010000, "{}", m.path),
                Kind::Link { .. } => {}
            }
        }
    }
    assert!(at.next().is_none(), "more entries than written");
}

/// A cursor over fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }

    /// A clean relative path, as the flattener yields.
    fn path(&mut self) -> String {
        let n = usize::from(self.byte() % 160);
        let raw = String::from_utf8_lossy(&self.bytes(n)).replace('\0', "_");
        let clean = slipway_assemble::path::clean(&raw);
        if clean.is_empty() { "x".into() } else { clean }
    }

    /// Numbers at the edges of the fields that hold them.
    fn number(&mut self) -> u64 {
        match self.byte() % 8 {
            0 => 0,
            1 => 0o7777777,
            2 => 0o10000000,
            3 => u64::from(u32::MAX),
            4 => u64::from(u32::MAX) + 1,
            5 => 0o77777777777,
            6 => 0o100000000000,
            _ => u64::from(self.byte()) * 1000,
        }
    }
}

/// Arbitrary entries, written both ways and read back.
pub fn check(data: &[u8]) {
    let mut input = Input(data);
    let mut entries = Vec::new();
    while !input.0.is_empty() && entries.len() < 64 {
        let kind = input.byte() % 7;
        let mode = u32::from(u16::from_le_bytes([input.byte(), input.byte()])) & 0o7777;
        let path = input.path();
        let mut h = Header::new(path.clone(), Kind::Dir, mode);
        h.uid = input.number();
        h.gid = input.number();
        h.mtime = input.number();
        let mut content = Vec::new();
        h.kind = match kind {
            0 | 1 => {
                let n = usize::from(u16::from_le_bytes([input.byte(), input.byte()]) % 4096);
                content = input.bytes(n);
                Kind::File {
                    size: content.len() as u64,
                }
            }
            2 => Kind::Dir,
            3 => {
                let n = usize::from(input.byte());
                let target = String::from_utf8_lossy(&input.bytes(n)).replace('\0', "_");
                Kind::Symlink {
                    target: if target.is_empty() {
                        "t".into()
                    } else {
                        target
                    },
                }
            }
            4 | 5 => {
                let (major, minor) = (input.number() as u32, input.number() as u32);
                if kind == 4 {
                    Kind::Char { major, minor }
                } else {
                    Kind::Block { major, minor }
                }
            }
            _ => Kind::Fifo,
        };
        let links = if matches!(h.kind, Kind::File { .. }) {
            (0..input.byte() % 3)
                .map(|_| {
                    let mut l = h.clone();
                    l.path = input.path();
                    l.kind = Kind::Link {
                        target: path.clone(),
                    };
                    l
                })
                .collect()
        } else {
            Vec::new()
        };
        entries.push((h, content));
        entries.extend(links.into_iter().map(|l| (l, Vec::new())));
    }
    round_trip(&entries);
}
