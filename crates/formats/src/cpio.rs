//! A newc (`070701`) cpio writer for initramfs images.
//!
//! Hand-written (about as long as the glue a crate would need) for full
//! control of what matters here: inode numbers are counted from 721 in each
//! archive, as LinuxKit does, so a segment's bytes do not depend on where it
//! lands; a hard-link group shares one inode with the right link count and
//! its data on the last member, the order GNU cpio's reader expects (the
//! kernel accepts it too); sizes over newc's 32-bit fields are an error, not
//! silent loss.

use std::fmt;
use std::io::{self, Read, Write};

use slipway_assemble::{EntrySink, Header, Kind};

/// Copies exactly `size` bytes of `content` to `out`, or fails.
fn copy_exact(
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

/// The first inode number of every archive (LinuxKit's choice).
pub const FIRST_INODE: u32 = 721;
const TRAILER: &str = "TRAILER!!!";

/// A file newc cannot hold: its size (or id, or time) needs more than 32 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub path: String,
    pub what: &'static str,
    pub value: u64,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.what == "size" {
            write!(
                f,
                "`{}` is {} bytes; an initrd (newc cpio) holds files of at most 4 GiB - 1. \
                 Use another format for this image (tar, or a disk format such as kernel+squashfs)",
                self.path, self.value
            )
        } else {
            write!(
                f,
                "`{}`: its {} ({}) does not fit newc cpio's 32-bit field",
                self.path, self.what, self.value
            )
        }
    }
}

impl std::error::Error for TooLarge {}

fn field(path: &str, what: &'static str, value: u64) -> io::Result<u32> {
    u32::try_from(value).map_err(|_| {
        io::Error::other(TooLarge {
            path: path.to_string(),
            what,
            value,
        })
    })
}

/// Writes entries as one newc archive; [`CpioWriter::finish`] adds the trailer.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: W,
    next_inode: u32,
    written: u64,
    /// Drop `boot/...` entries (the kernel, cmdline and microcode are
    /// written beside the initrd, as LinuxKit does).
    skip_boot: bool,
}

fn type_bits(kind: &Kind) -> u32 {
    match kind {
        Kind::File { .. } | Kind::Link { .. } => 0o100000,
        Kind::Dir => 0o040000,
        Kind::Symlink { .. } => 0o120000,
        Kind::Char { .. } => 0o020000,
        Kind::Block { .. } => 0o060000,
        Kind::Fifo => 0o010000,
    }
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W, skip_boot: bool) -> CpioWriter<W> {
        CpioWriter {
            out,
            next_inode: FIRST_INODE,
            written: 0,
            skip_boot,
        }
    }

    /// Bytes written so far (uncompressed).
    pub fn written(&self) -> u64 {
        self.written
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        h: &Header,
        nlink: u32,
        size: u64,
    ) -> io::Result<()> {
        let size = field(name, "size", size)?;
        let uid = field(name, "uid", h.uid)?;
        let gid = field(name, "gid", h.gid)?;
        let mtime = field(name, "modification time", h.mtime)?;
        let (rmaj, rmin) = match &h.kind {
            Kind::Char { major, minor } | Kind::Block { major, minor } => (*major, *minor),
            _ => (0, 0),
        };
        let namesize = name.len() + 1;
        let text = format!(
            "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}{:08x}{:08x}{rmaj:08x}{rmin:08x}{namesize:08x}{:08x}",
            3, 1, 0
        );
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        let used = 110 + namesize;
        self.pad(used as u64)?;
        self.written += used as u64;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % 4) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; 3][..4 - rem])?;
            self.written += (4 - rem) as u64;
        }
        Ok(())
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let h = Header::new(TRAILER, Kind::File { size: 0 }, 0);
        let mut t = h;
        t.mtime = 0;
        self.header(TRAILER, 0, 0, &t, 1, 0)?;
        Ok(self.out)
    }
}

impl<W: Write> EntrySink for CpioWriter<W> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        let skip = |h: &Header| h.path.starts_with("boot/");
        if self.skip_boot && skip(header) && links.iter().all(skip) {
            io::copy(content, &mut io::sink())?;
            return Ok(());
        }
        let ino = self.next_inode;
        self.next_inode = self.next_inode.wrapping_add(1);
        let perms = header.mode & 0o7777;
        match &header.kind {
            Kind::File { size } => {
                let members: Vec<&Header> = std::iter::once(header)
                    .chain(links.iter())
                    .filter(|h| !(self.skip_boot && skip(h)))
                    .collect();
                let nlink = field(&header.path, "link count", members.len() as u64)?;
                // Check the size before writing anything of the group.
                field(&header.path, "size", *size)?;
                for (i, m) in members.iter().enumerate() {
                    let last = i + 1 == members.len();
                    let mode = perms | 0o100000;
                    let s = if last { *size } else { 0 };
                    self.header(&m.path, ino, mode, m, nlink, s)?;
                    if last {
                        copy_exact(content, &mut self.out, *size, &m.path)?;
                        self.written += size;
                        self.pad(*size)?;
                    }
                }
                if members.is_empty() {
                    io::copy(content, &mut io::sink())?;
                }
            }
            Kind::Symlink { target } => {
                let mode = perms | type_bits(&header.kind);
                self.header(&header.path, ino, mode, header, 1, target.len() as u64)?;
                self.out.write_all(target.as_bytes())?;
                self.written += target.len() as u64;
                self.pad(target.len() as u64)?;
            }
            Kind::Link { target } => {
                return Err(io::Error::other(format!(
                    "`{}`: a hard link to `{target}` outside its group cannot be written as newc",
                    header.path
                )));
            }
            kind => {
                let nlink = if kind.is_dir() { 2 } else { 1 };
                let mode = perms | type_bits(kind);
                self.header(&header.path, ino, mode, header, nlink, 0)?;
            }
        }
        Ok(())
    }
}
