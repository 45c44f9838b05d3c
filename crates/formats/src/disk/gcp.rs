//! Google Compute Engine's image format (LinuxKit's `gcp`,
//! `NAME.img.tar.gz`): the raw disk as the one member `disk.raw` of a
//! gzipped tar.
//!
//! The member is a plain regular file, written by the project's tar writer
//! (ustar; a PAX `size` record past 8 GiB), mode 0644, owner 0:0, the
//! caller's time. GCP's documentation builds the archive with
//! `tar --format=oldgnu -Sczf`, where `-S` turns holes into GNU sparse
//! members; that only saves gzip work, since a run of zeros compresses
//! about a thousandfold, and it needs the importer to understand GNU's
//! sparse headers, while every tar reader reads a regular file. So holes are
//! stored as zeros (fed to gzip without reading the holes). The gzip header
//! has no name and time 0.

use std::io::Write;

use flate2::{Compression, GzBuilder};
use slipway_assemble::{EntrySink as _, Header, Kind};

use super::DiskError;
use super::scan::RawImage;
use crate::tar::{TarWriter, finish};

/// The member GCP requires.
pub const MEMBER: &str = "disk.raw";
/// gzip level for the archive.
pub const LEVEL: u32 = 6;

/// Writes `raw` as `disk.raw` in a gzipped tar to `out`, the member's time
/// `mtime` (seconds since the epoch); returns `out`.
pub fn write<W: Write>(raw: &RawImage, out: W, mtime: u64) -> Result<W, DiskError> {
    let io = DiskError::io("writing the GCP image");
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(out, Compression::new(LEVEL));
    let mut tar = TarWriter::new(gz);
    let mut header = Header::new(MEMBER, Kind::File { size: raw.len() }, 0o644);
    header.mtime = mtime;
    tar.entry(&header, &[], &mut raw.reader()).map_err(&io)?;
    let mut gz = tar.into_inner();
    finish(&mut gz).map_err(&io)?;
    gz.finish().map_err(io)
}
