//! The GUID partition table: a primary header at LBA 1 and its 128-entry
//! array at LBA 2-33, a backup array in the 32 sectors before the last one
//! and the backup header in the last sector, each header carrying the
//! CRC32 of itself and of its array.
//!
//! Hand-written rather than gptman 3.1: the table is two 92-byte headers
//! and 128-byte entries, while gptman brings wincode and crc (and nix by
//! default), derives the layout from the length of an already-sized device,
//! writes the array one entry per seek, and truncates long partition names
//! without an error. GUIDs here are always given by the caller (derived
//! from content by [`super::raw`]).

use super::guid::Guid;
use super::{DiskError, SECTOR};

pub const ENTRIES: usize = 128;
pub const ENTRY_SIZE: usize = 128;
/// Sectors of one partition entry array.
pub const ARRAY_SECTORS: u64 = (ENTRIES * ENTRY_SIZE) as u64 / SECTOR;
/// The first sector a partition may use: after the MBR, header and array.
pub const FIRST_USABLE: u64 = 2 + ARRAY_SECTORS;
/// The attribute bit legacy BIOS boot code looks for.
pub const LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

/// Sectors at the end of the disk the backup array and header take.
pub const BACKUP_SECTORS: u64 = ARRAY_SECTORS + 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptEntry {
    pub type_guid: Guid,
    pub guid: Guid,
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
    pub attributes: u64,
    /// At most 36 UTF-16 units.
    pub name: String,
}

/// The partition entry array (128 entries, unused ones zero).
pub fn array(entries: &[GptEntry]) -> Result<Vec<u8>, DiskError> {
    if entries.len() > ENTRIES {
        return Err(DiskError::Table(format!(
            "a GPT holds {ENTRIES} partitions, not {}",
            entries.len()
        )));
    }
    let mut out = vec![0u8; ENTRIES * ENTRY_SIZE];
    for (e, b) in entries.iter().zip(out.chunks_mut(ENTRY_SIZE)) {
        let name: Vec<u16> = e.name.encode_utf16().collect();
        if name.len() > 36 {
            return Err(DiskError::Table(format!(
                "GPT partition name `{}` is longer than 36 UTF-16 units",
                e.name
            )));
        }
        b[0..16].copy_from_slice(&e.type_guid.to_mixed_endian());
        b[16..32].copy_from_slice(&e.guid.to_mixed_endian());
        b[32..40].copy_from_slice(&e.first_lba.to_le_bytes());
        b[40..48].copy_from_slice(&e.last_lba.to_le_bytes());
        b[48..56].copy_from_slice(&e.attributes.to_le_bytes());
        for (u, at) in name.iter().zip((56..128).step_by(2)) {
            b[at..at + 2].copy_from_slice(&u.to_le_bytes());
        }
    }
    Ok(out)
}

/// A header sector: the primary one (at LBA 1, its array at LBA 2) or the
/// backup (at the last LBA, its array just before it).
pub fn header(disk_guid: Guid, disk_sectors: u64, primary: bool, array: &[u8]) -> [u8; 512] {
    let last = disk_sectors - 1;
    let (mine, other, array_lba) = if primary {
        (1, last, 2)
    } else {
        (last, 1, last - ARRAY_SECTORS)
    };
    let mut b = [0u8; 512];
    b[0..8].copy_from_slice(b"EFI PART");
    b[8..12].copy_from_slice(&[0, 0, 1, 0]);
    b[12..16].copy_from_slice(&92u32.to_le_bytes());
    b[24..32].copy_from_slice(&mine.to_le_bytes());
    b[32..40].copy_from_slice(&other.to_le_bytes());
    b[40..48].copy_from_slice(&FIRST_USABLE.to_le_bytes());
    b[48..56].copy_from_slice(&(last - BACKUP_SECTORS).to_le_bytes());
    b[56..72].copy_from_slice(&disk_guid.to_mixed_endian());
    b[72..80].copy_from_slice(&array_lba.to_le_bytes());
    b[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
    b[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
    b[88..92].copy_from_slice(&crc32fast::hash(array).to_le_bytes());
    let crc = crc32fast::hash(&b[..92]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_checksum_themselves_and_their_array() {
        let e = GptEntry {
            type_guid: Guid(1),
            guid: Guid(2),
            first_lba: 2048,
            last_lba: 4095,
            attributes: LEGACY_BIOS_BOOTABLE,
            name: "ESP".into(),
        };
        let a = array(std::slice::from_ref(&e)).unwrap();
        assert_eq!(a.len(), 16384);
        assert_eq!(&a[56..62], &[b'E', 0, b'S', 0, b'P', 0]);
        let h = header(Guid(3), 2097152, true, &a);
        let mut zeroed = h;
        zeroed[16..20].fill(0);
        assert_eq!(
            u32::from_le_bytes(h[16..20].try_into().unwrap()),
            crc32fast::hash(&zeroed[..92])
        );
        let b = header(Guid(3), 2097152, false, &a);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 2097151);
        assert_eq!(
            u64::from_le_bytes(b[72..80].try_into().unwrap()),
            2097151 - 32
        );
        assert_eq!(
            u64::from_le_bytes(h[48..56].try_into().unwrap()),
            2097151 - 33
        );
        let long = GptEntry {
            name: "x".repeat(37),
            ..e
        };
        assert!(array(&[long]).is_err());
    }
}
