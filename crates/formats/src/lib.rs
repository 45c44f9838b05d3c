//! Output writers: tar (PAX, through slipway-tar), newc cpio initramfs (gzip, zstd or none), the
//! segments units become and their cache, and the output files of
//! `tar`, `kernel+initrd`, `tar-kernel-initrd` and `docker`.

pub mod cpio;
pub mod error;
pub mod outputs;
pub mod segments;
pub mod tar;

pub use cpio::{CpioWriter, TooLarge};
pub use error::FormatError;
pub use outputs::{
    NOT_YET, Output, OutputFile, RequestedFormat, UnknownOutput, write_entries_tar, write_file,
    write_outputs, write_tar, write_tar_file,
};
pub use segments::{
    Compression, SegmentCache, UnitReport, UnknownCompression, Writer, build_units,
};
pub use tar::TarWriter;
