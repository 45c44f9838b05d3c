//! VHD (Microsoft's Virtual Hard Disk, format version 1.0), fixed and
//! dynamic, from a raw image. Hand-written: no maintained crate writes VHD
//! (`vhd` 0.1 only reads), and both layouts are a few fixed structures.
//!
//! Every field is big-endian. The 512-byte footer ("conectix") holds the
//! disk's size, a CHS geometry computed as the specification says, the
//! disk type, a unique id (derived from the raw image's digest) and a
//! timestamp (seconds since 2000-01-01, from the caller's time), and a
//! one's-complement checksum of its bytes.
//!
//! The creator application is `qem2`: readers that know VHD's two ways of
//! sizing a disk (Virtual PC's, by CHS geometry, which rounds most sizes
//! down, and Hyper-V's and Azure's, by the footer's current size) take the
//! footer's size for `qem2` (and `win `), while qemu before 10.0 falls back
//! to the geometry for any creator it does not know, which would cut the
//! end (and a GPT's backup header) off the disk.
//!
//! * Fixed: the raw bytes, sparse (holes stay holes), then the footer.
//! * Dynamic: a copy of the footer, the dynamic header ("cxsparse") at 512,
//!   the block allocation table at 1536 (one big-endian sector offset per
//!   2 MiB block, `FFFFFFFF` for blocks never written, padded with `FF` to
//!   a sector), then each block holding a non-zero byte, in guest order:
//!   a 512-byte sector bitmap with every bit set, then the block's 2 MiB;
//!   then the footer.

use std::io::{Seek, Write};

use super::scan::{GRANULE, RawImage};
use super::sink::SparseWriter;
use super::{DiskError, SECTOR, derive};

const BLOCK: u64 = 2 << 20;
const BITMAP: u64 = 512;
/// VHD times count from 2000-01-01T00:00:00Z.
const VHD_EPOCH: u64 = 946_684_800;
const DYNAMIC_HEADER_AT: u64 = 512;
const BAT_AT: u64 = 1536;
/// The dynamic format addresses blocks by 32-bit sector offsets; the
/// specification caps disks at 2040 GiB.
const MAX_SIZE: u64 = 2040 << 30;

/// The geometry the VHD specification's appendix computes for a size.
pub fn chs(size: u64) -> (u16, u8, u8) {
    let total = (size / SECTOR).min(65535 * 16 * 255);
    let (spt, heads, cyl_heads);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cyl_heads = total / spt;
    } else {
        let mut s = 17;
        let mut ch = total / s;
        let mut h = ch.div_ceil(1024).max(4);
        if ch >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            ch = total / s;
        }
        if ch >= h * 1024 {
            s = 63;
            h = 16;
            ch = total / s;
        }
        spt = s;
        heads = h;
        cyl_heads = ch;
    }
    ((cyl_heads / heads) as u16, heads as u8, spt as u8)
}

fn checksum(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(0u32, |s, &b| s.wrapping_add(u32::from(b)))
}

fn footer(raw: &RawImage, mtime: u64, dynamic: bool) -> Result<[u8; 512], DiskError> {
    let size = raw.len();
    let mut f = [0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes());
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    let data_offset = if dynamic { DYNAMIC_HEADER_AT } else { u64::MAX };
    f[16..24].copy_from_slice(&data_offset.to_be_bytes());
    let stamp = mtime.saturating_sub(VHD_EPOCH).min(u64::from(u32::MAX)) as u32;
    f[24..28].copy_from_slice(&stamp.to_be_bytes());
    f[28..32].copy_from_slice(b"qem2");
    f[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    let (c, h, s) = chs(size);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f[58] = h;
    f[59] = s;
    f[60..64].copy_from_slice(&(if dynamic { 3u32 } else { 2 }).to_be_bytes());
    let id = derive("slipway vhd unique id", &[raw.digest()?]);
    f[68..84].copy_from_slice(&id[..16]);
    let sum = checksum(&f);
    f[64..68].copy_from_slice(&sum.to_be_bytes());
    Ok(f)
}

fn check_size(raw: &RawImage) -> Result<(), DiskError> {
    if raw.len() > MAX_SIZE {
        return Err(DiskError::TooLarge {
            format: "VHD",
            reason: format!("{} bytes is more than VHD's 2040 GiB", raw.len()),
        });
    }
    Ok(())
}

/// A fixed VHD: the raw image then the footer, written into an empty
/// seekable output that stays sparse. `mtime` is the footer's time
/// (seconds since the epoch).
pub fn write_fixed<W: Write + Seek>(raw: &RawImage, out: W, mtime: u64) -> Result<W, DiskError> {
    check_size(raw)?;
    let io = DiskError::io("writing VHD");
    let mut sw = SparseWriter::new(out).map_err(&io)?;
    raw.each_chunk(|off, data| {
        sw.skip_to(off).map_err(DiskError::io("writing VHD"))?;
        sw.write_all(data).map_err(DiskError::io("writing VHD"))
    })?;
    sw.skip_to(raw.len()).map_err(&io)?;
    sw.write_all(&footer(raw, mtime, false)?).map_err(&io)?;
    sw.finish().map_err(io)
}

/// A dynamic VHD, written front to back; returns the bytes written.
pub fn write_dynamic<W: Write>(raw: &RawImage, mut out: W, mtime: u64) -> Result<u64, DiskError> {
    check_size(raw)?;
    let io = DiskError::io("writing VHD");
    let blocks = raw.len().div_ceil(BLOCK);
    let per_block = BLOCK / GRANULE;
    let mut used: Vec<u64> = raw.granules().map(|g| g / per_block).collect();
    used.dedup();

    let foot = footer(raw, mtime, true)?;
    out.write_all(&foot).map_err(&io)?;

    let mut h = [0u8; 1024];
    h[0..8].copy_from_slice(b"cxsparse");
    h[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
    h[16..24].copy_from_slice(&BAT_AT.to_be_bytes());
    h[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    h[28..32].copy_from_slice(&(blocks as u32).to_be_bytes());
    h[32..36].copy_from_slice(&(BLOCK as u32).to_be_bytes());
    let sum = checksum(&h);
    h[36..40].copy_from_slice(&sum.to_be_bytes());
    out.write_all(&h).map_err(&io)?;

    let bat_bytes = (blocks * 4).div_ceil(SECTOR) * SECTOR;
    let first_block = BAT_AT + bat_bytes;
    let stride = BITMAP + BLOCK;
    let mut bat = vec![0xffu8; bat_bytes as usize];
    for (k, &b) in used.iter().enumerate() {
        let sector = (first_block + k as u64 * stride) / SECTOR;
        bat[(b * 4) as usize..][..4].copy_from_slice(&(sector as u32).to_be_bytes());
    }
    out.write_all(&bat).map_err(&io)?;
    drop(bat);

    let mut buf = vec![0u8; BLOCK as usize];
    for &b in &used {
        out.write_all(&[0xff; BITMAP as usize]).map_err(&io)?;
        raw.read_at(b * BLOCK, &mut buf)?;
        out.write_all(&buf).map_err(&io)?;
    }
    out.write_all(&foot).map_err(&io)?;
    out.flush().map_err(&io)?;
    Ok(first_block + used.len() as u64 * stride + 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_per_the_specification() {
        // 1 GiB: 63 sectors, 16 heads, 2080 cylinders (1,073,479,680 bytes).
        assert_eq!(chs(1 << 30), (2080, 16, 63));
        // Small disks use 17 sectors and at least 4 heads.
        assert_eq!(chs(10 << 20), (301, 4, 17));
        // The largest geometry for anything over about 127 GiB.
        assert_eq!(chs(2000 << 30), (65535, 16, 255));
    }

    #[test]
    fn checksums_are_ones_complement() {
        assert_eq!(checksum(&[0, 0]), u32::MAX);
        assert_eq!(checksum(&[1, 2, 3]), !6);
    }
}
