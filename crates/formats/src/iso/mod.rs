//! An ISO 9660 image writer with Rock Ridge, El Torito and an isohybrid MBR.
//!
//! Content is written once, as it arrives, into *regions* of the image
//! (2048-byte sectors); a file's directory record points at an [`Extent`]:
//! a whole region or a sector-aligned part of one. So several names can
//! share bytes: hard links, or `/boot/initrd.img` pointing at the initrd
//! inside the UKI inside the El Torito FAT image. Only names and metadata
//! are kept in memory; the directory tree, its Rock Ridge entries and the
//! path tables are written after the data, and the volume descriptors, the
//! boot catalog and the MBR, in the first sectors, last.
//!
//! Written by hand: the ISO crates that write (hadris-iso) build an image
//! from a tree of in-memory files, which can neither stream entries in
//! the order a root filesystem arrives nor point a name at bytes inside
//! another file.
//!
//! Layout, in sectors of 2048 bytes:
//!
//! | sectors | what |
//! |---|---|
//! | 0-15 | system area: zero, or the isohybrid MBR |
//! | 16 | primary volume descriptor |
//! | 17 | El Torito boot record (when booting), else the terminator |
//! | 18 | terminator (when booting) |
//! | 19 | El Torito boot catalog (when booting) |
//! | 20- | regions, in the order they were written |
//! | then | directories (breadth first), Rock Ridge continuation areas, the L and M path tables |
//! | then | zeros up to a whole MiB for an isohybrid image |

mod eltorito;
mod encode;
mod hybrid;
mod layout;
mod names;
mod sink;
mod susp;
mod tree;
mod writer;

use std::io;

pub use writer::{IsoWriter, RegionWriter, Written};

/// Permissions, owner and modification time of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits with set-uid, set-gid and sticky (`0o7777`); the
    /// file type comes from the kind of entry.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch (dates past 2155 are written as its end).
    pub mtime: u64,
}

impl Meta {
    /// Owned by root.
    pub fn new(mode: u32, mtime: u64) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime,
        }
    }
}

/// Bytes already in the image: `len` bytes from byte `start`, a multiple
/// of 2048. A region returned by the writer is one; [`Extent::slice`]
/// takes a part of it for a file that shares those bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Extent {
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl Extent {
    /// Byte offset in the image.
    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first sector (logical block address).
    pub fn lba(&self) -> u32 {
        (self.start / encode::SECTOR) as u32
    }

    /// `len` bytes from `offset` within this extent; `offset` must be a
    /// multiple of 2048 (a directory record can only point at a sector).
    pub fn slice(&self, offset: u64, len: u64) -> Result<Extent, IsoError> {
        if !offset.is_multiple_of(encode::SECTOR) {
            return Err(IsoError::Unaligned { offset });
        }
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(IsoError::OutsideRegion {
                offset,
                len,
                region: self.len,
            });
        }
        Ok(Extent {
            start: if len == 0 { 0 } else { self.start + offset },
            len,
        })
    }
}

/// What the image looks like beyond its files.
#[derive(Clone, Debug)]
pub struct IsoOptions {
    /// The volume identifier (what `blkid` shows as the label): at most 32
    /// of `A-Z a-z 0-9 _ - .` and space.
    pub volume_id: String,
    /// The volume's creation and modification time, and the time of
    /// directories that only appear as parents of entries (seconds since
    /// the epoch: `SOURCE_DATE_EPOCH`, or LinuxKit's 2017-04-18T16:30:00Z).
    pub epoch: u64,
    /// Where the El Torito boot catalog appears in the tree (e.g.
    /// `isolinux/boot.cat`), or hidden. Only used when the image boots.
    pub catalog_path: Option<String>,
    /// The isohybrid MBR code (Debian's `isohdpfx.bin`, its first 432
    /// bytes are used): the image also boots as a disk. Needs a BIOS boot
    /// image.
    pub hybrid_mbr: Option<Vec<u8>>,
}

/// A device node's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Char,
    Block,
}

#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("writing the ISO image")]
    Io(#[from] io::Error),
    #[error("`{path}` {reason}")]
    Path { path: String, reason: String },
    #[error("`{path}`: expected {expected} bytes of content, got {got}")]
    ShortContent {
        path: String,
        expected: u64,
        got: u64,
    },
    #[error("volume id {0:?}: at most 32 characters, each one of A-Z a-z 0-9 _ - . or a space")]
    VolumeId(String),
    #[error("an extent at byte {offset} of its region does not start on a 2048-byte sector")]
    Unaligned { offset: u64 },
    #[error("{len} bytes at byte {offset} lie outside their region of {region} bytes")]
    OutsideRegion { offset: u64, len: u64, region: u64 },
    #[error(
        "the BIOS boot image `{path}` is {len} bytes; one with a boot info table needs 64 bytes to 4 GiB"
    )]
    BootImageSize { path: String, len: u64 },
    #[error("the image already has a {0} El Torito boot entry")]
    BootTwice(&'static str),
    #[error("an isohybrid image needs a BIOS boot image (isolinux.bin) for its MBR to start")]
    HybridWithoutBios,
    #[error("isohybrid MBR code must be 432 to 512 bytes (isohdpfx.bin is 432), got {0}")]
    HybridCode(usize),
    #[error("{0} directories; ISO 9660 path tables number at most 65535")]
    TooManyDirectories(usize),
    #[error("the image would be {0} bytes; ISO 9660 addresses at most 8 TiB")]
    TooLarge(u64),
    #[error("`{path}`: {what} {value} does not fit Rock Ridge's 32-bit field")]
    IdTooLarge {
        path: String,
        what: &'static str,
        value: u64,
    },
    #[error("a region writer was dropped before finish(): the image is incomplete")]
    Unfinished,
}

impl IsoError {
    pub(crate) fn path(path: &str, reason: impl Into<String>) -> IsoError {
        IsoError::Path {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// As an I/O error (what an entry sink returns), keeping I/O errors as
    /// they are.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            IsoError::Io(e) => e,
            e => io::Error::other(e),
        }
    }
}

#[cfg(test)]
mod tests;
