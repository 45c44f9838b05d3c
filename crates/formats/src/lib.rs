//! Output writers: tar (PAX, through slipway-tar), newc cpio initramfs
//! (gzip, zstd or none), the segments units become and their cache, ISO
//! 9660, FAT, MBR/GPT disks and their re-encodings, UKIs, squashfs and
//! erofs, and the output files of every `--format`.

pub mod boot;
pub mod cpio;
pub mod disk;
pub mod erofs;
pub mod error;
pub mod fstree;
pub mod iso;
pub mod outputs;
pub mod segments;
pub mod squashfs;
pub mod tar;
pub mod uki;

pub use cpio::{CpioWriter, TooLarge};
pub use error::FormatError;
pub use outputs::{
    Boot, NOT_YET, Output, OutputFile, OutputOptions, RequestedFormat, UnknownOutput, clash,
    write_entries_tar, write_file, write_outputs, write_tar, write_tar_file,
};
pub use segments::{
    Compression, SegmentCache, UnitReport, UnknownCompression, Writer, build_units,
};
pub use tar::TarWriter;
