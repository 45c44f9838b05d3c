//! A deterministic PAX tar writer.
//!
//! Hand-written rather than the `tar` crate's `Builder`: that one writes
//! long names as GNU `L` entries and has no way to put arbitrary PAX records
//! (LinuxKit's `LINUXKIT.*`) on every entry. Every entry here gets a PAX
//! extended header (as Go's `tar.FormatPAX` does when records are set),
//! records sorted by key, then a ustar header; names too long for ustar go in
//! the `path`/`linkpath` records, numbers too large in `size`/`uid`/`gid`.

use std::io::{self, Read, Write};

use slipway_assemble::{EntrySink, Header, Kind};

const BLOCK: usize = 512;

fn octal(field: &mut [u8], value: u64) -> bool {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    true
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // "%d %s=%s\n", where the length counts itself.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len += 1;
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn ustar(
    name: &str,
    link: &str,
    typeflag: u8,
    h: &Header,
    size: u64,
    pax: &mut Vec<(String, Vec<u8>)>,
) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let put = |b: &mut [u8; BLOCK], at: usize, len: usize, s: &[u8]| {
        let n = s.len().min(len);
        b[at..at + n].copy_from_slice(&s[..n]);
    };
    if name.len() > 100 || !name.is_ascii() {
        pax.push(("path".into(), name.as_bytes().to_vec()));
    }
    if link.len() > 100 || !link.is_ascii() {
        pax.push(("linkpath".into(), link.as_bytes().to_vec()));
    }
    put(&mut b, 0, 100, name.as_bytes());
    octal(&mut b[100..108], u64::from(h.mode & 0o7777));
    if !octal(&mut b[108..116], h.uid) {
        pax.push(("uid".into(), h.uid.to_string().into_bytes()));
        octal(&mut b[108..116], 0);
    }
    if !octal(&mut b[116..124], h.gid) {
        pax.push(("gid".into(), h.gid.to_string().into_bytes()));
        octal(&mut b[116..124], 0);
    }
    if !octal(&mut b[124..136], size) {
        pax.push(("size".into(), size.to_string().into_bytes()));
        octal(&mut b[124..136], 0);
    }
    if !octal(&mut b[136..148], h.mtime) {
        pax.push(("mtime".into(), h.mtime.to_string().into_bytes()));
        octal(&mut b[136..148], 0);
    }
    b[156] = typeflag;
    put(&mut b, 157, 100, link.as_bytes());
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    let (major, minor) = match &h.kind {
        Kind::Char { major, minor } | Kind::Block { major, minor } => (*major, *minor),
        _ => (0, 0),
    };
    octal(&mut b[329..337], u64::from(major));
    octal(&mut b[337..345], u64::from(minor));
    b
}

fn checksum(b: &mut [u8; BLOCK]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let text = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(text.as_bytes());
}

/// The header blocks (PAX extended header, then ustar) of one entry.
pub fn header_bytes(h: &Header) -> Vec<u8> {
    let (typeflag, link, size) = match &h.kind {
        Kind::File { size } => (b'0', "", *size),
        Kind::Dir => (b'5', "", 0),
        Kind::Symlink { target } => (b'2', target.as_str(), 0),
        Kind::Link { target } => (b'1', target.as_str(), 0),
        Kind::Char { .. } => (b'3', "", 0),
        Kind::Block { .. } => (b'4', "", 0),
        Kind::Fifo => (b'6', "", 0),
    };
    let mut pax = h.pax.clone();
    let mut main = ustar(&h.path, link, typeflag, h, size, &mut pax);
    checksum(&mut main);
    let mut out = Vec::with_capacity(BLOCK * 3);
    if !pax.is_empty() {
        pax.sort();
        let mut data = Vec::new();
        for (k, v) in &pax {
            pax_record(&mut data, k, v);
        }
        let (dir, file) = match h.path.trim_end_matches('/').rsplit_once('/') {
            Some((d, f)) => (format!("{d}/"), f),
            None => (String::new(), h.path.as_str()),
        };
        let xname = format!("{dir}PaxHeaders.0/{file}");
        let xheader = Header::new(xname.clone(), Kind::File { size: 0 }, 0);
        let mut ignored = Vec::new();
        let mut x = ustar(&xname, "", b'x', &xheader, data.len() as u64, &mut ignored);
        octal(&mut x[136..148], 0);
        checksum(&mut x);
        out.extend_from_slice(&x);
        out.extend_from_slice(&data);
        pad(&mut out, data.len() as u64);
    }
    out.extend_from_slice(&main);
    out
}

fn pad(out: &mut Vec<u8>, len: u64) {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.extend(std::iter::repeat_n(0u8, BLOCK - rem));
    }
}

/// Copies exactly `size` bytes of `content` to `out`, or fails.
pub(crate) fn copy_exact(
    content: &mut dyn Read,
    out: &mut dyn Write,
    size: u64,
    path: &str,
) -> io::Result<()> {
    let n = io::copy(&mut content.take(size), out)?;
    if n != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("`{path}`: expected {size} bytes of content, got {n}"),
        ));
    }
    Ok(())
}

/// Writes entries as tar, without the end-of-archive marker (so segments
/// concatenate); [`finish`] writes the marker.
#[derive(Debug)]
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter { out, written: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn one(&mut self, h: &Header, content: &mut dyn Read) -> io::Result<()> {
        let head = header_bytes(h);
        self.out.write_all(&head)?;
        let size = h.kind.size();
        copy_exact(content, &mut self.out, size, &h.path)?;
        let mut padding = Vec::new();
        pad(&mut padding, size);
        self.out.write_all(&padding)?;
        self.written += head.len() as u64 + size + padding.len() as u64;
        Ok(())
    }
}

impl<W: Write> EntrySink for TarWriter<W> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        self.one(header, content)?;
        for link in links {
            self.one(link, &mut io::empty())?;
        }
        Ok(())
    }
}

/// The end-of-archive marker: two zero blocks.
pub fn finish(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(&[0u8; BLOCK * 2])
}
