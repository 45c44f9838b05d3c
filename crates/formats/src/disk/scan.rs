//! A raw disk image read for re-encoding: which 64 KiB granules hold
//! anything but zeros, and a digest of them.
//!
//! The scan asks the filesystem for data extents (`SEEK_DATA`/`SEEK_HOLE`)
//! so holes cost nothing, then reads the data extents and checks each
//! granule for zeros: whether a zero granule is a hole or written zeros
//! depends on the host filesystem, so only the zero check decides what the
//! containers allocate, and every encoding is the same on every host. The
//! result is a list of runs of non-zero granules (a few bytes per run,
//! whatever the disk size) and, when a container asks for it to derive its
//! ids from (VHD, VMDK; qcow2 has none), a SHA-256 over each non-zero
//! granule's offset and bytes.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::{Whence, lseek};
use sha2::{Digest as _, Sha256};

use super::sink::is_zero;
use super::{DiskError, SECTOR};

/// The scan's unit: a qcow2 cluster and a VMDK grain; VHD blocks hold 32.
pub const GRANULE: u64 = 64 * 1024;
/// Granules read per system call.
const CHUNK: u64 = 16;

/// An opened, scanned raw disk image.
#[derive(Debug)]
pub struct RawImage {
    file: File,
    name: String,
    len: u64,
    /// Runs of non-zero granules, `[start, end)` granule indices, ascending.
    runs: Vec<(u64, u64)>,
    /// Computed on first use: hashing the image costs more than the scan.
    digest: std::sync::OnceLock<[u8; 32]>,
}

impl RawImage {
    /// Opens and scans the image at `path`.
    pub fn open(path: &Path) -> Result<RawImage, DiskError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(DiskError::io(format!("opening {name}")))?;
        RawImage::from_file(file, &name)
    }

    /// Scans an open image; `name` is used in errors.
    pub fn from_file(file: File, name: &str) -> Result<RawImage, DiskError> {
        let io = DiskError::io(format!("reading {name}"));
        let len = file.metadata().map_err(io)?.len();
        if len == 0 || len % SECTOR != 0 {
            return Err(DiskError::RawImage {
                path: name.to_string(),
                reason: format!("{len} bytes is not a whole, non-zero number of 512-byte sectors"),
            });
        }
        let mut image = RawImage {
            file,
            name: name.to_string(),
            len,
            runs: Vec::new(),
            digest: std::sync::OnceLock::new(),
        };
        image.scan()?;
        Ok(image)
    }

    /// The virtual disk size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// SHA-256 over the size and every non-zero granule's offset and bytes.
    pub fn digest(&self) -> Result<&[u8; 32], DiskError> {
        if let Some(d) = self.digest.get() {
            return Ok(d);
        }
        let mut hash = Sha256::new();
        hash.update(b"slipway raw image\0");
        hash.update(self.len.to_le_bytes());
        self.each_chunk(|off, data| {
            for (k, granule) in data.chunks(GRANULE as usize).enumerate() {
                hash.update((off / GRANULE + k as u64).to_le_bytes());
                hash.update(granule);
            }
            Ok(())
        })?;
        Ok(self.digest.get_or_init(|| hash.finalize().into()))
    }

    /// Runs of non-zero granules, `[start, end)` granule indices.
    pub fn runs(&self) -> &[(u64, u64)] {
        &self.runs
    }

    /// Bytes in non-zero granules.
    pub fn allocated(&self) -> u64 {
        self.runs
            .iter()
            .map(|&(a, b)| (b * GRANULE).min(self.len) - a * GRANULE)
            .sum()
    }

    /// The granules holding data, one by one.
    pub fn granules(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|&(a, b)| a..b)
    }

    fn err(&self) -> impl FnOnce(io::Error) -> DiskError + use<> {
        DiskError::io(format!("reading {}", self.name))
    }

    /// Fills `buf` from `offset`; past the end of the image, zeros.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let inside = self.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.file
            .read_exact_at(&mut buf[..inside], offset)
            .map_err(self.err())?;
        buf[inside..].fill(0);
        Ok(())
    }

    /// Data extents as the filesystem reports them: `(data, hole)` from `pos`.
    fn next_extent(&self, pos: u64) -> Option<(u64, u64)> {
        if pos >= self.len {
            return None;
        }
        let data = match lseek(&self.file, pos as i64, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(Errno::ENXIO) => return None,
            // No SEEK_DATA here: everything left is data.
            Err(_) => return Some((pos, self.len)),
        };
        if data >= self.len {
            return None;
        }
        let hole = match lseek(&self.file, data as i64, Whence::SeekHole) {
            Ok(h) if (h as u64) > data => (h as u64).min(self.len),
            _ => self.len,
        };
        Some((data, hole))
    }

    fn scan(&mut self) -> Result<(), DiskError> {
        let mut buf = vec![0u8; (CHUNK * GRANULE) as usize];
        let granules = self.len.div_ceil(GRANULE);
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut next = 0;
        while let Some((data, hole)) = self.next_extent(next * GRANULE) {
            let mut g = (data / GRANULE).max(next);
            let end = hole.div_ceil(GRANULE).min(granules);
            while g < end {
                let n = (end - g).min(CHUNK);
                let off = g * GRANULE;
                let bytes = (n * GRANULE).min(self.len - off) as usize;
                self.read_at(off, &mut buf[..bytes])?;
                for (k, granule) in buf[..bytes].chunks(GRANULE as usize).enumerate() {
                    if is_zero(granule) {
                        continue;
                    }
                    let index = g + k as u64;
                    match runs.last_mut() {
                        Some(run) if run.1 == index => run.1 += 1,
                        _ => runs.push((index, index + 1)),
                    }
                }
                g += n;
            }
            next = end.max(next + 1);
        }
        self.runs = runs;
        Ok(())
    }

    /// Calls `f(offset, bytes)` for the non-zero granules, in order, at most
    /// `CHUNK` granules at a time and never across runs. The image's last
    /// granule may be short.
    pub fn each_chunk(
        &self,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), DiskError>,
    ) -> Result<(), DiskError> {
        let mut buf = vec![0u8; (CHUNK * GRANULE) as usize];
        for &(a, b) in &self.runs {
            let mut g = a;
            while g < b {
                let n = (b - g).min(CHUNK);
                let off = g * GRANULE;
                let bytes = (n * GRANULE).min(self.len - off) as usize;
                self.read_at(off, &mut buf[..bytes])?;
                f(off, &buf[..bytes])?;
                g += n;
            }
        }
        Ok(())
    }

    /// The whole image as a stream: non-zero granules read from the file,
    /// zeros for the rest without reading.
    pub fn reader(&self) -> RawReader<'_> {
        RawReader {
            image: self,
            pos: 0,
            run: 0,
        }
    }
}

/// See [`RawImage::reader`].
#[derive(Debug)]
pub struct RawReader<'a> {
    image: &'a RawImage,
    pos: u64,
    /// The first run not wholly before `pos`.
    run: usize,
}

impl Read for RawReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let image = self.image;
        if self.pos >= image.len || buf.is_empty() {
            return Ok(0);
        }
        while self.run < image.runs.len() && image.runs[self.run].1 * GRANULE <= self.pos {
            self.run += 1;
        }
        let (start, end) = match image.runs.get(self.run) {
            Some(&(a, b)) => (a * GRANULE, (b * GRANULE).min(image.len)),
            None => (image.len, image.len),
        };
        let n = if self.pos < start {
            let n = (start - self.pos).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            n
        } else {
            let n = (end - self.pos).min(buf.len() as u64) as usize;
            image.file.read_exact_at(&mut buf[..n], self.pos)?;
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn image(chunks: &[(u64, &[u8])], len: u64) -> RawImage {
        let mut f = tempfile::tempfile().unwrap();
        f.set_len(len).unwrap();
        for (at, data) in chunks {
            f.write_all_at(data, *at).unwrap();
        }
        f.flush().unwrap();
        RawImage::from_file(f, "test").unwrap()
    }

    #[test]
    fn runs_skip_holes_and_written_zeros() {
        let len = 64 * GRANULE;
        let img = image(
            &[
                (0, b"boot"),
                (GRANULE * 3 - 1, b"xy"),
                (GRANULE * 10, &vec![0u8; 3 * GRANULE as usize]),
                (GRANULE * 63 + 5, b"end"),
            ],
            len,
        );
        assert_eq!(img.runs(), &[(0, 1), (2, 4), (63, 64)]);
        assert_eq!(img.allocated(), 4 * GRANULE);
        let mut all = Vec::new();
        img.reader().read_to_end(&mut all).unwrap();
        assert_eq!(all.len() as u64, len);
        assert_eq!(&all[..4], b"boot");
        assert_eq!(&all[(GRANULE * 3 - 1) as usize..][..2], b"xy");
        assert_eq!(&all[(GRANULE * 63 + 5) as usize..][..3], b"end");
        assert_eq!(all.iter().filter(|&&b| b != 0).count(), 9);
        let mut seen = Vec::new();
        img.each_chunk(|off, data| {
            seen.push((off, data.len()));
            Ok(())
        })
        .unwrap();
        let g = GRANULE as usize;
        assert_eq!(seen, [(0, g), (2 * GRANULE, 2 * g), (63 * GRANULE, g)]);
    }

    #[test]
    fn digests_depend_on_bytes_not_holes() {
        let a = image(&[(GRANULE, b"a")], 4 * GRANULE);
        let zeros = vec![0u8; 4 * GRANULE as usize];
        let b = image(&[(0, &zeros), (GRANULE, b"a")], 4 * GRANULE);
        let c = image(&[(GRANULE, b"b")], 4 * GRANULE);
        assert_eq!(a.digest().unwrap(), b.digest().unwrap());
        assert_ne!(a.digest().unwrap(), c.digest().unwrap());
        let short = image(&[(0, b"x")], 1024);
        assert_eq!(short.runs(), &[(0, 1)]);
        let mut all = Vec::new();
        short.reader().read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 1024);
        let bad = tempfile::tempfile().unwrap();
        bad.set_len(1000).unwrap();
        assert!(RawImage::from_file(bad, "bad").is_err());
    }
}
