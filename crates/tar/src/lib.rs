//! slipway's one tar writer, used for image outputs, package layers and
//! cache exports alike.
//!
//! Hand-written rather than the `tar` crate's `Builder`, which writes
//! different header bytes than LinuxKit's Go `archive/tar` (an unnamed PAX
//! header, NUL numeric fields), puts long names in GNU `L` entries, stores
//! large numbers in GNU base-256, copies whatever a reader yields whatever
//! the size in the header, and always ends an archive with its end marker
//! (segments must concatenate without one).
//!
//! The rules that make the bytes depend on the entries alone:
//!
//! - Every header field comes from the [`Entry`]: no user or group names, no
//!   access or change times, device numbers zero but for devices.
//! - An entry with PAX records gets one PAX extended header before its ustar
//!   header, as Go's `tar.FormatPAX` writes it: named
//!   `<dir>/PaxHeaders.0/<file>`, mode, owner and time zero, records sorted
//!   by key (then value).
//! - A name or link target longer than 100 bytes or not ASCII goes in a
//!   `path`/`linkpath` record (the ustar field keeps its first 100 bytes);
//!   an owner, size or time too large for its octal field goes in a
//!   `uid`/`gid`/`size`/`mtime` record (the field is zero). Never a GNU
//!   extension, never the ustar prefix field.
//! - A file's content is exactly its size: a shorter or longer reader is an
//!   error, not a corrupt archive.
//! - The end-of-archive marker is written only when asked ([`TarWriter::finish`],
//!   [`end_of_archive`]), so archives written piecewise concatenate.

use std::io::{self, Read, Write};

/// The tar block size.
pub const BLOCK: usize = 512;

/// What kind of filesystem object an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A regular file of `size` bytes; its content follows the header.
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: &'a str,
    },
    /// A hard link to the earlier entry `target`.
    Link {
        target: &'a str,
    },
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One entry's header.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// The name as written (a directory may end in `/`).
    pub path: &'a str,
    pub kind: Kind<'a>,
    /// Permission bits with set-uid, set-gid and sticky; higher bits are dropped.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
    /// Extra PAX records, in any order (written sorted).
    pub pax: &'a [(String, Vec<u8>)],
}

impl<'a> Entry<'a> {
    /// An entry owned by root with no PAX records.
    pub fn new(path: &'a str, kind: Kind<'a>, mode: u32, mtime: u64) -> Entry<'a> {
        Entry {
            path,
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime,
            pax: &[],
        }
    }

    /// The content size: a file's, else zero.
    pub fn size(&self) -> u64 {
        match self.kind {
            Kind::File { size } => size,
            _ => 0,
        }
    }
}

/// Writes `value` as zero-padded octal filling all but the last byte of
/// `field`, then NUL; `false` (field untouched) if it does not fit.
fn octal(field: &mut [u8], value: u64) -> bool {
    let Some(digits) = field.len().checked_sub(1) else {
        return false;
    };
    if digits < 22 && value >> (3 * digits) != 0 {
        return false;
    }
    let mut v = value;
    for b in field[..digits].iter_mut().rev() {
        *b = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    field[digits] = 0;
    true
}

/// Appends one PAX record: `"%d %s=%s\n"`, where the length counts itself.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while decimal_digits(len) + rest != len {
        len += 1;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn decimal_digits(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

fn too_large(what: &str, path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("`{path}`: its {what} does not fit a tar header"),
    )
}

/// Fills a ustar header block; values that do not fit go to `records`.
#[allow(clippy::too_many_arguments)]
fn ustar(
    block: &mut [u8; BLOCK],
    name: &str,
    link: &str,
    typeflag: u8,
    (mode, uid, gid, size, mtime): (u32, u64, u64, u64, u64),
    device: (u32, u32),
    records: &mut Vec<(&'static str, Vec<u8>)>,
) -> io::Result<()> {
    *block = [0; BLOCK];
    if name.len() > 100 || !name.is_ascii() {
        records.push(("path", name.as_bytes().to_vec()));
    }
    if link.len() > 100 || !link.is_ascii() {
        records.push(("linkpath", link.as_bytes().to_vec()));
    }
    let put = |block: &mut [u8; BLOCK], at: usize, s: &[u8]| {
        let n = s.len().min(100);
        block[at..at + n].copy_from_slice(&s[..n]);
    };
    put(block, 0, name.as_bytes());
    octal(&mut block[100..108], u64::from(mode & 0o7777));
    for (range, value, key) in [
        (108..116, uid, "uid"),
        (116..124, gid, "gid"),
        (124..136, size, "size"),
        (136..148, mtime, "mtime"),
    ] {
        if !octal(&mut block[range.clone()], value) {
            records.push((key, value.to_string().into_bytes()));
            octal(&mut block[range], 0);
        }
    }
    block[156] = typeflag;
    put(block, 157, link.as_bytes());
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    if !octal(&mut block[329..337], u64::from(device.0))
        || !octal(&mut block[337..345], u64::from(device.1))
    {
        return Err(too_large("device number", name));
    }
    // The checksum: six octal digits, NUL, space (as Go writes it).
    block[148..156].copy_from_slice(b"        ");
    let sum: u64 = block.iter().map(|&x| u64::from(x)).sum();
    octal(&mut block[148..155], sum);
    block[154] = 0;
    block[155] = b' ';
    Ok(())
}

/// Appends the header blocks of `entry` (PAX extended header if needed,
/// then ustar) to `out`.
fn write_header(entry: &Entry<'_>, out: &mut Vec<u8>) -> io::Result<()> {
    let (typeflag, link, device) = match entry.kind {
        Kind::File { .. } => (b'0', "", (0, 0)),
        Kind::Dir => (b'5', "", (0, 0)),
        Kind::Symlink { target } => (b'2', target, (0, 0)),
        Kind::Link { target } => (b'1', target, (0, 0)),
        Kind::Char { major, minor } => (b'3', "", (major, minor)),
        Kind::Block { major, minor } => (b'4', "", (major, minor)),
        Kind::Fifo => (b'6', "", (0, 0)),
    };
    let mut main = [0u8; BLOCK];
    let mut records = Vec::new();
    ustar(
        &mut main,
        entry.path,
        link,
        typeflag,
        (entry.mode, entry.uid, entry.gid, entry.size(), entry.mtime),
        device,
        &mut records,
    )?;
    if !records.is_empty() || !entry.pax.is_empty() {
        let mut all: Vec<(&str, &[u8])> = entry
            .pax
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .chain(records.iter().map(|(k, v)| (*k, v.as_slice())))
            .collect();
        all.sort_unstable();
        let mut data = Vec::new();
        for (k, v) in all {
            pax_record(&mut data, k, v);
        }
        // Go's name for the extended header: `<dir>/PaxHeaders.0/<file>`.
        let trimmed = entry.path.trim_end_matches('/');
        let xname = match trimmed.rsplit_once('/') {
            Some((dir, file)) => format!("{dir}/PaxHeaders.0/{file}"),
            None => format!("PaxHeaders.0/{trimmed}"),
        };
        let mut x = [0u8; BLOCK];
        // A long extended header name is cut, never described by a record.
        ustar(
            &mut x,
            &xname,
            "",
            b'x',
            (0, 0, 0, data.len() as u64, 0),
            (0, 0),
            &mut Vec::new(),
        )?;
        out.extend_from_slice(&x);
        out.extend_from_slice(&data);
        out.extend_from_slice(padding(data.len() as u64));
    }
    out.extend_from_slice(&main);
    Ok(())
}

/// The header blocks (PAX extended header if any, then ustar) of `entry`.
pub fn header_bytes(entry: &Entry<'_>) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(BLOCK * 3);
    write_header(entry, &mut out)?;
    Ok(out)
}

/// The zeros that pad `len` bytes to a whole block.
fn padding(len: u64) -> &'static [u8] {
    const ZEROS: [u8; BLOCK] = [0; BLOCK];
    let rem = (len % BLOCK as u64) as usize;
    if rem == 0 { &[] } else { &ZEROS[rem..] }
}

/// Writes entries as tar, without the end-of-archive marker until
/// [`TarWriter::finish`].
#[derive(Debug)]
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
    head: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter {
            out,
            written: 0,
            head: Vec::with_capacity(BLOCK * 3),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The output, without an end marker.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes the end-of-archive marker and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        end_of_archive(&mut self.out)?;
        Ok(self.out)
    }

    /// Writes one entry; `content` must yield exactly its size.
    pub fn append(&mut self, entry: &Entry<'_>, content: &mut dyn Read) -> io::Result<()> {
        self.head.clear();
        write_header(entry, &mut self.head)?;
        self.out.write_all(&self.head)?;
        let size = entry.size();
        let copied = io::copy(&mut content.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "`{}`: expected {size} bytes of content, got {copied}",
                    entry.path
                ),
            ));
        }
        // Reading on to the end also lets a verifying reader check its digest.
        if content.read(&mut [0u8; 1])? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "`{}`: more than the {size} bytes of content announced",
                    entry.path
                ),
            ));
        }
        let pad = padding(size);
        self.out.write_all(pad)?;
        self.written += self.head.len() as u64 + size + pad.len() as u64;
        Ok(())
    }
}

/// The end-of-archive marker, two zero blocks: after archives written
/// piecewise and concatenated.
pub fn end_of_archive(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(&[0u8; BLOCK * 2])
}
