//! The master boot record: 440 bytes of boot code, a disk signature, four
//! partition entries and `55 AA`; and GPT's protective MBR.
//!
//! Hand-written rather than mbrman 0.6: the record is one sector of fixed
//! fields, and mbrman would bring bincode 2, bitvec and serde for it (see
//! [`super::gpt`] for the GPT side of this choice).

use super::{DiskError, SECTOR};

/// One primary partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbrEntry {
    /// The active flag (0x80), which a classic MBR boot code boots from.
    pub bootable: bool,
    /// The partition type byte (0x0C FAT32 LBA, 0xEF EFI system, 0x83 Linux...).
    pub kind: u8,
    pub start_lba: u64,
    pub sectors: u64,
}

/// Cylinder/head/sector of `lba` in the usual 255-head, 63-sector
/// geometry; `None` past cylinder 1023.
fn chs(lba: u64) -> Option<[u8; 3]> {
    let c = lba / (255 * 63);
    if c > 1023 {
        return None;
    }
    let h = (lba / 63) % 255;
    let s = lba % 63 + 1;
    Some([h as u8, (s as u8) | (((c >> 2) & 0xc0) as u8), c as u8])
}

fn entry(out: &mut [u8], bootable: bool, kind: u8, start: u64, sectors: u64, far: [u8; 3]) {
    let last = start + sectors.max(1) - 1;
    out[0] = if bootable { 0x80 } else { 0 };
    out[1..4].copy_from_slice(&chs(start).unwrap_or(far));
    out[4] = kind;
    out[5..8].copy_from_slice(&chs(last).unwrap_or(far));
    out[8..12].copy_from_slice(&(start.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    out[12..16].copy_from_slice(&(sectors.min(u64::from(u32::MAX)) as u32).to_le_bytes());
}

/// An MBR holding `entries` (at most four, each within 2 TiB).
pub fn mbr(
    boot_code: &[u8; 440],
    signature: u32,
    entries: &[MbrEntry],
) -> Result<[u8; SECTOR as usize], DiskError> {
    if entries.len() > 4 {
        return Err(DiskError::Table(format!(
            "an MBR holds four partitions, not {}",
            entries.len()
        )));
    }
    let mut b = [0u8; SECTOR as usize];
    b[..440].copy_from_slice(boot_code);
    b[440..444].copy_from_slice(&signature.to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        if e.start_lba + e.sectors > u64::from(u32::MAX) {
            return Err(DiskError::Table(format!(
                "MBR partition {} ends past 2 TiB, which an MBR cannot address",
                i + 1
            )));
        }
        let at = 446 + 16 * i;
        entry(
            &mut b[at..at + 16],
            e.bootable,
            e.kind,
            e.start_lba,
            e.sectors,
            [0xfe, 0xff, 0xff],
        );
    }
    b[510] = 0x55;
    b[511] = 0xaa;
    Ok(b)
}

/// GPT's protective MBR: one 0xEE partition over the whole disk (capped at
/// 2 TiB), after `boot_code`.
pub fn protective(boot_code: &[u8; 440], disk_sectors: u64) -> [u8; SECTOR as usize] {
    let mut b = [0u8; SECTOR as usize];
    b[..440].copy_from_slice(boot_code);
    // The UEFI specification: CHS 0/0/2 to the last sector's CHS, or FF FF FF.
    entry(
        &mut b[446..462],
        false,
        0xee,
        1,
        disk_sectors - 1,
        [0xff, 0xff, 0xff],
    );
    b[510] = 0x55;
    b[511] = 0xaa;
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_values() {
        assert_eq!(chs(0), Some([0, 1, 0]));
        assert_eq!(chs(2048), Some([32, 33, 0]));
        assert_eq!(chs(2097151), Some([138, 8, 130]));
        assert_eq!(chs(1024 * 255 * 63), None);
    }

    #[test]
    fn records() {
        let e = MbrEntry {
            bootable: true,
            kind: 0x0c,
            start_lba: 2048,
            sectors: 4096,
        };
        let b = mbr(&[0x90; 440], 0x1234_5678, &[e]).unwrap();
        assert_eq!(&b[440..446], &[0x78, 0x56, 0x34, 0x12, 0, 0]);
        assert_eq!(
            &b[446..462],
            &[0x80, 32, 33, 0, 0x0c, 97, 33, 0, 0, 8, 0, 0, 0, 16, 0, 0]
        );
        assert_eq!(&b[510..], &[0x55, 0xaa]);
        assert!(mbr(&[0; 440], 0, &[e; 5]).is_err());
        let far = MbrEntry {
            start_lba: u64::from(u32::MAX),
            ..e
        };
        assert!(mbr(&[0; 440], 0, &[far]).is_err());
        let p = protective(&[0; 440], 2097152);
        assert_eq!(
            &p[446..462],
            &[
                0, 0, 2, 0, 0xee, 138, 8, 130, 1, 0, 0, 0, 0xff, 0xff, 0x1f, 0
            ]
        );
    }
}
