//! Output writers: tar (PAX), newc cpio initramfs (gzip, zstd or none), the
//! segments units become and their cache, and the output files of
//! `tar`, `kernel+initrd`, `tar-kernel-initrd` and `docker`.

pub mod cpio;
pub mod iso;
pub mod outputs;
pub mod segments;
pub mod tar;
pub mod uki;

pub use cpio::{CpioWriter, TooLarge};
pub use outputs::{
    Output, OutputFile, write_image_filesystem, write_image_filesystem_file, write_outputs,
    write_tar, write_tar_file,
};
pub use segments::{Compression, FormatError, SegmentCache, UnitReport, Writer, build_units};
pub use tar::TarWriter;
