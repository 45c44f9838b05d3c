//! VMDK streamOptimized (VMware's Virtual Disk Format 5.0, "stream-optimized
//! compressed sparse extent") from a raw image, written front to back.
//! Hand-written: no crate writes VMDK (imago only reads it).
//!
//! Everything little-endian, in 512-byte sectors:
//!
//! * sector 0: the sparse extent header ("KDMV", version 3, flags: valid
//!   newline test, compressed grains, markers; 64 KiB grains, 512 entries
//!   per grain table, deflate, the grain directory "at end");
//! * sectors 1-20: the embedded descriptor (text, zero-padded), its CID
//!   derived from the raw image's digest;
//! * from sector 128: for each 64 KiB grain holding a non-zero byte, in guest
//!   order, a grain marker (its first sector, the compressed length) and
//!   its zlib stream (level 6, compressed on all cores: each grain is a
//!   stream of its own), padded to a sector; after the grains of each
//!   32 MiB span that has any, a grain-table marker and the 4-sector grain
//!   table (the sector of each grain's marker, 0 for zero grains);
//! * a grain-directory marker and the directory (each table's sector, 0 for
//!   spans without data), a footer marker and the footer (the header again,
//!   with the directory's sector), and the end-of-stream marker.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;

use super::scan::{GRANULE, RawImage};
use super::{DiskError, SECTOR, derive};

const GRAIN_SECTORS: u64 = GRANULE / SECTOR;
const GT_ENTRIES: u64 = 512;
const GT_SECTORS: u64 = GT_ENTRIES * 4 / SECTOR;
const DESCRIPTOR_AT: u64 = 1;
const DESCRIPTOR_SECTORS: u64 = 20;
/// The first grain's sector: the header and descriptor, rounded to a grain.
const OVERHEAD: u64 = GRAIN_SECTORS;
const GD_AT_END: u64 = u64::MAX;
const FLAGS: u32 = 1 | 1 << 16 | 1 << 17;
const MARKER_EOS: u32 = 0;
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;
/// The zlib level of each grain (qemu's and zlib's default).
pub const LEVEL: u32 = 6;

fn header(capacity: u64, gd_offset: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[0..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&3u32.to_le_bytes());
    h[8..12].copy_from_slice(&FLAGS.to_le_bytes());
    h[12..20].copy_from_slice(&capacity.to_le_bytes());
    h[20..28].copy_from_slice(&GRAIN_SECTORS.to_le_bytes());
    h[28..36].copy_from_slice(&DESCRIPTOR_AT.to_le_bytes());
    h[36..44].copy_from_slice(&DESCRIPTOR_SECTORS.to_le_bytes());
    h[44..48].copy_from_slice(&(GT_ENTRIES as u32).to_le_bytes());
    // 48: no redundant grain directory.
    h[56..64].copy_from_slice(&gd_offset.to_le_bytes());
    h[64..72].copy_from_slice(&OVERHEAD.to_le_bytes());
    // 72: clean shutdown; then the newline-corruption test characters.
    h[73..77].copy_from_slice(b"\n \r\n");
    h[77..79].copy_from_slice(&1u16.to_le_bytes());
    h
}

fn marker(sectors: u64, kind: u32) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[0..8].copy_from_slice(&sectors.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

/// The embedded descriptor. `extent` names the file itself.
fn descriptor(raw: &RawImage, extent: &str) -> Result<Vec<u8>, DiskError> {
    let h = derive("slipway vmdk cid", &[raw.digest()?]);
    let mut cid = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    // ffffffff means "no parent" and fffffffe is reserved.
    if cid >= 0xffff_fffe {
        cid = 0x1234_5678;
    }
    let sectors = raw.len() / SECTOR;
    let cylinders = (sectors / (16 * 63)).min(65535);
    let text = format!(
        "# Disk DescriptorFile\n\
         version=1\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"streamOptimized\"\n\
         \n\
         # Extent description\n\
         RW {sectors} SPARSE \"{extent}\"\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"16\"\n\
         ddb.geometry.sectors = \"63\"\n\
         ddb.adapterType = \"ide\"\n"
    );
    let mut out = text.into_bytes();
    out.resize((DESCRIPTOR_SECTORS * SECTOR) as usize, 0);
    Ok(out)
}

/// Counts what goes out, to know each structure's sector.
struct Counter<W> {
    out: W,
    at: u64,
}

impl<W: Write> Counter<W> {
    fn put(&mut self, b: &[u8]) -> Result<(), DiskError> {
        self.out
            .write_all(b)
            .map_err(DiskError::io("writing VMDK"))?;
        self.at += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<(), DiskError> {
        let rem = self.at % SECTOR;
        if rem != 0 {
            self.put(&[0u8; SECTOR as usize][..(SECTOR - rem) as usize])?;
        }
        Ok(())
    }

    fn sector(&self) -> u64 {
        self.at / SECTOR
    }
}

/// Grains compressed at a time, spread over the cores: each grain is its own
/// zlib stream, so the bytes do not depend on the number of threads.
const BATCH: usize = 32;

struct Grain {
    index: u64,
    bytes: Vec<u8>,
    compressed: Vec<u8>,
}

fn deflate(grain: &mut Grain) -> std::io::Result<()> {
    let mut z = ZlibEncoder::new(
        Vec::with_capacity(GRANULE as usize / 2),
        Compression::new(LEVEL),
    );
    z.write_all(&grain.bytes)?;
    grain.compressed = z.finish()?;
    Ok(())
}

fn compress(batch: &mut [Grain], threads: usize) -> Result<(), DiskError> {
    let err = DiskError::io("compressing a VMDK grain");
    let per = batch.len().div_ceil(threads.max(1)).max(1);
    if per >= batch.len() {
        return batch.iter_mut().try_for_each(deflate).map_err(err);
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = batch
            .chunks_mut(per)
            .map(|chunk| s.spawn(move || chunk.iter_mut().try_for_each(deflate)))
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => done.map_err(&err)?,
                Err(_) => {
                    return Err(DiskError::Invalid(
                        "a VMDK compression thread failed".into(),
                    ));
                }
            }
        }
        Ok(())
    })
}

/// The grains and grain tables as they are streamed.
struct Stream<W> {
    w: Counter<W>,
    gd: Vec<u32>,
    gt: Vec<u32>,
    /// The grain table being filled.
    table: Option<u64>,
}

impl<W: Write> Stream<W> {
    /// Writes compressed grains (in guest order), each table after its grains.
    fn grains(&mut self, batch: &mut Vec<Grain>) -> Result<(), DiskError> {
        for grain in batch.drain(..) {
            let g = grain.index;
            if self.table.is_some_and(|t| t != g / GT_ENTRIES) {
                self.end_table()?;
            }
            self.table = Some(g / GT_ENTRIES);
            self.gt[(g % GT_ENTRIES) as usize] = self.w.sector() as u32;
            let mut head = [0u8; 12];
            head[0..8].copy_from_slice(&(g * GRAIN_SECTORS).to_le_bytes());
            head[8..12].copy_from_slice(&(grain.compressed.len() as u32).to_le_bytes());
            self.w.put(&head)?;
            self.w.put(&grain.compressed)?;
            self.w.pad()?;
        }
        Ok(())
    }

    fn end_table(&mut self) -> Result<(), DiskError> {
        if let Some(t) = self.table.take() {
            self.w.put(&marker(GT_SECTORS, MARKER_GT))?;
            self.gd[t as usize] = self.w.sector() as u32;
            let bytes: Vec<u8> = self.gt.iter().flat_map(|e| e.to_le_bytes()).collect();
            self.w.put(&bytes)?;
            self.gt.fill(0);
        }
        Ok(())
    }
}

/// Writes `raw` as a streamOptimized VMDK named `extent` (the file name
/// the descriptor gives, e.g. `disk.vmdk`); returns the bytes written.
pub fn write<W: Write>(raw: &RawImage, out: W, extent: &str) -> Result<u64, DiskError> {
    if extent.is_empty() || extent.contains(['"', '\n', '\r', '\0']) {
        return Err(DiskError::Invalid(format!(
            "VMDK extent name {extent:?} cannot be quoted in a descriptor"
        )));
    }
    let capacity = raw.len() / SECTOR;
    let grains = raw.len().div_ceil(GRANULE);
    let tables = grains.div_ceil(GT_ENTRIES);
    // Tables address sectors with 32 bits: the file must stay under 2 TiB
    // even if no grain compresses (a marker sector more per grain).
    let stored = raw.granules().count() as u64;
    let worst = OVERHEAD + stored * (GRAIN_SECTORS + 2) + tables * (GT_SECTORS + 2) + 8;
    if worst > u64::from(u32::MAX) {
        return Err(DiskError::TooLarge {
            format: "VMDK",
            reason: format!("{} bytes is more than a sparse extent addresses", raw.len()),
        });
    }
    let mut w = Counter { out, at: 0 };
    w.put(&header(capacity, GD_AT_END))?;
    w.put(&descriptor(raw, extent)?)?;
    w.put(&vec![
        0u8;
        ((OVERHEAD - 1 - DESCRIPTOR_SECTORS) * SECTOR) as usize
    ])?;

    let mut stream = Stream {
        w,
        gd: vec![0u32; tables as usize],
        gt: vec![0u32; GT_ENTRIES as usize],
        table: None,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut batch: Vec<Grain> = Vec::with_capacity(BATCH);
    raw.each_chunk(|off, data| {
        for (k, chunk) in data.chunks(GRANULE as usize).enumerate() {
            // A short last grain is compressed as a whole one, zero-padded.
            let mut bytes = chunk.to_vec();
            bytes.resize(GRANULE as usize, 0);
            batch.push(Grain {
                index: off / GRANULE + k as u64,
                bytes,
                compressed: Vec::new(),
            });
            if batch.len() == BATCH {
                compress(&mut batch, threads)?;
                stream.grains(&mut batch)?;
            }
        }
        Ok(())
    })?;
    compress(&mut batch, threads)?;
    stream.grains(&mut batch)?;
    stream.end_table()?;
    let Stream { mut w, gd, .. } = stream;

    let gd_sectors = (tables * 4).div_ceil(SECTOR);
    w.put(&marker(gd_sectors, MARKER_GD))?;
    let gd_offset = w.sector();
    let bytes: Vec<u8> = gd.iter().flat_map(|e| e.to_le_bytes()).collect();
    w.put(&bytes)?;
    w.pad()?;
    w.put(&marker(1, MARKER_FOOTER))?;
    w.put(&header(capacity, gd_offset))?;
    w.put(&marker(0, MARKER_EOS))?;
    w.out.flush().map_err(DiskError::io("writing VMDK"))?;
    Ok(w.at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::FileExt;

    #[test]
    fn compression_does_not_depend_on_threads() {
        let batch = || -> Vec<Grain> {
            (0..9u64)
                .map(|i| Grain {
                    index: i,
                    bytes: (0..GRANULE).map(|b| (b * i / 7) as u8).collect(),
                    compressed: Vec::new(),
                })
                .collect()
        };
        let (mut one, mut four) = (batch(), batch());
        compress(&mut one, 1).unwrap();
        compress(&mut four, 4).unwrap();
        assert!(
            one.iter()
                .zip(&four)
                .all(|(a, b)| a.compressed == b.compressed)
        );
        assert!(one.iter().all(|g| !g.compressed.is_empty()));
    }

    #[test]
    fn grains_can_be_found_from_the_footer() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"first", 0).unwrap();
        f.write_all_at(b"far", 40 << 20).unwrap();
        let raw = RawImage::from_file(f, "t").unwrap();
        let mut out = Vec::new();
        let n = write(&raw, &mut out, "disk.vmdk").unwrap();
        assert_eq!(n as usize, out.len());
        let le64 = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
        let le32 = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap());
        let footer = &out[out.len() - 1024..];
        assert_eq!(&footer[..4], b"KDMV");
        let gd = le64(&footer[56..]) as usize * 512;
        // Two spans of 32 MiB, both with data.
        let tables = [le32(&out[gd..]), le32(&out[gd + 4..])];
        let gt1 = tables[1] as usize * 512;
        // 40 MiB is grain 640, entry 128 of the second table.
        let marker = le32(&out[gt1 + 128 * 4..]) as usize * 512;
        assert_eq!(le64(&out[marker..]), 640 * 128);
        let len = le32(&out[marker + 8..]) as usize;
        let mut grain = Vec::new();
        flate2::read::ZlibDecoder::new(&out[marker + 12..marker + 12 + len])
            .read_to_end(&mut grain)
            .unwrap();
        assert_eq!(grain.len(), 65536);
        assert_eq!(&grain[..3], b"far");
        let text = String::from_utf8_lossy(&out[512..1024]);
        assert!(text.contains("RW 131072 SPARSE \"disk.vmdk\""), "{text}");
        assert!(write(&raw, Vec::new(), "a\"b").is_err());
    }
}
