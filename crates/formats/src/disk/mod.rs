//! Disk images: FAT volumes, MBR and GPT partition tables, raw disks written
//! sparsely, and the containers a raw disk is re-encoded into (qcow2, VHD
//! fixed and dynamic, VMDK streamOptimized, the GCP `disk.raw` tarball).
//!
//! Every writer here is hand-written: the layouts are small fixed structures,
//! and the crates that write them either cannot place data where we need it
//! (fatfs), decide ids or allocation order themselves, or pull a serializer
//! stack in for a few hundred bytes of headers. Each module says why.
//!
//! Everything is deterministic: no clock, no randomness. Times come from the
//! caller, ids (volume ids, disk signatures, GUIDs, VHD unique ids, VMDK
//! CIDs) are derived from the content with SHA-256. Content is streamed from
//! readers to the output; only metadata (directory trees, run lists,
//! allocation tables of a few KiB per GiB) is held in memory.

pub mod fat;
pub mod gcp;
pub mod gpt;
pub mod guid;
pub mod mbr;
pub mod qcow2;
pub mod raw;
pub mod scan;
pub mod sink;
pub mod size;
pub mod vhd;
pub mod vmdk;

use std::io;

pub use fat::{FatBuilder, FatFile, FatImage, FatOptions, FatType};
pub use guid::Guid;
pub use raw::{
    Disk, DiskLayout, DiskReport, FnContent, PartitionContent, PartitionReport, PartitionSize,
    PartitionSpec, PartitionType, Placement, ReaderContent, Table,
};
pub use scan::RawImage;
pub use sink::{DenseWriter, Region, Sink, SparseWriter};
pub use size::{DEFAULT_SIZE, parse_size};

/// The sector size of every disk and volume written here.
pub const SECTOR: u64 = 512;
/// Partitions start on, and computed disk sizes round up to, 1 MiB.
pub const MIB: u64 = 1 << 20;

/// What can go wrong writing a disk image.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid disk size `{text}`: {reason}")]
    BadSize { text: String, reason: &'static str },
    #[error(
        "the disk is {} ({size} bytes) but its partitions need at least {} ({needed} bytes)",
        mib(*size), mib(*needed)
    )]
    DoesNotFit { size: u64, needed: u64 },
    #[error(
        "partition `{name}` is {size} bytes but its content needs at least {needed} bytes ({})",
        mib(*needed)
    )]
    PartitionTooSmall {
        name: String,
        size: u64,
        needed: u64,
    },
    #[error("partition table: {0}")]
    Table(String),
    #[error("FAT `{path}`: {reason}")]
    FatName { path: String, reason: String },
    #[error("FAT: {0}")]
    FatLayout(String),
    #[error("`{path}`: expected {expected} bytes of content, got {got}")]
    ShortContent {
        path: String,
        expected: u64,
        got: u64,
    },
    #[error("raw image {path}: {reason}")]
    RawImage { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{format}: {reason}")]
    TooLarge {
        format: &'static str,
        reason: String,
    },
}

impl DiskError {
    /// An error mapper naming what was being done.
    pub(crate) fn io(what: impl Into<String>) -> impl Fn(io::Error) -> DiskError {
        let what = what.into();
        move |source| DiskError::Io {
            what: what.clone(),
            source,
        }
    }
}

/// `n` bytes as whole MiB, rounded up, for messages.
fn mib(n: u64) -> String {
    format!("{} MiB", n.div_ceil(MIB))
}

/// `value` rounded up to a multiple of `to` (a power of two or not).
pub(crate) fn round_up(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

/// SHA-256 of a domain tag and the given parts, each length-prefixed so that
/// no two different lists hash alike.
pub(crate) fn derive(domain: &str, parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update((domain.len() as u64).to_le_bytes());
    h.update(domain.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}
