//! The `--data` ISO: an ISO 9660 volume labelled `CONFIG` whose root holds
//! one file, `config` (what LinuxKit's `metadata` package reads from a CD).
//!
//! Written here by hand: a volume with one file in its root directory is
//! five sectors of fixed fields ahead of the data, and needs neither Rock
//! Ridge nor Joliet (Linux shows `CONFIG.;1` as `config`). The bytes depend
//! on the data alone: every date is 1970-01-01.
//!
//! | sector | what |
//! |---|---|
//! | 0-15 | system area (zeros) |
//! | 16 | primary volume descriptor |
//! | 17 | volume descriptor set terminator |
//! | 18, 19 | path table, little- and big-endian (the root alone) |
//! | 20 | root directory: `.`, `..`, `CONFIG.;1` |
//! | 21- | the data |

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::RunError;

const SECTOR: usize = 2048;
const PVD: usize = 16;
const PATH_TABLE_L: u32 = 18;
const PATH_TABLE_M: u32 = 19;
const ROOT: u32 = 20;
const DATA: u32 = 21;
/// The file's name on the volume: ISO 9660 level 1, version 1.
const NAME: &[u8] = b"CONFIG.;1";
const VOLUME_ID: &[u8] = b"CONFIG";
/// 1970-01-01 00:00:00 UTC as a directory record's date.
const RECORD_DATE: [u8; 7] = [70, 1, 1, 0, 0, 0, 0];
/// 1970-01-01 00:00:00.00 UTC as a volume descriptor's date.
const VOLUME_DATE: &[u8; 17] = b"1970010100000000\0";
/// "Not specified", as a volume descriptor's date.
const NO_DATE: &[u8; 17] = b"0000000000000000\0";

/// Write `data` as `config` on an ISO image at `path` (through a temporary
/// file and a rename).
pub fn write(path: &Path, data: &[u8]) -> Result<(), RunError> {
    let fail = |reason: String| RunError::Data {
        path: path.display().to_string(),
        reason,
    };
    let bytes = image(data).ok_or_else(|| {
        fail(format!(
            "{} bytes do not fit in one ISO 9660 file (4 GiB at most)",
            data.len()
        ))
    })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.write_all(data)?;
            // The last sector is whole.
            f.write_all(&vec![0; padding(data.len())])?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        fail(e.to_string())
    })
}

fn padding(len: usize) -> usize {
    len.next_multiple_of(SECTOR) - len
}

/// The sectors ahead of the data, or `None` when `data` is too long.
fn image(data: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(data.len()).ok()?;
    let data_sectors = u32::try_from(data.len().div_ceil(SECTOR)).ok()?;
    let total = DATA.checked_add(data_sectors)?;
    let mut out = vec![0u8; DATA as usize * SECTOR];

    let pvd = &mut out[PVD * SECTOR..(PVD + 1) * SECTOR];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[8..40].fill(b' ');
    pvd[40..72].fill(b' ');
    pvd[40..40 + VOLUME_ID.len()].copy_from_slice(VOLUME_ID);
    both32(&mut pvd[80..88], total);
    both16(&mut pvd[120..124], 1);
    both16(&mut pvd[124..128], 1);
    both16(&mut pvd[128..132], SECTOR as u16);
    both32(&mut pvd[132..140], PATH_TABLE_LEN as u32);
    pvd[140..144].copy_from_slice(&PATH_TABLE_L.to_le_bytes());
    pvd[148..152].copy_from_slice(&PATH_TABLE_M.to_be_bytes());
    pvd[156..190].copy_from_slice(&record(ROOT, SECTOR as u32, true, &[0]));
    // Volume set, publisher, preparer and application ids, and the three
    // file ids: blank.
    pvd[190..813].fill(b' ');
    pvd[813..830].copy_from_slice(VOLUME_DATE);
    pvd[830..847].copy_from_slice(VOLUME_DATE);
    pvd[847..864].copy_from_slice(NO_DATE);
    pvd[864..881].copy_from_slice(NO_DATE);
    pvd[881] = 1;

    let terminator = &mut out[(PVD + 1) * SECTOR..(PVD + 2) * SECTOR];
    terminator[0] = 255;
    terminator[1..6].copy_from_slice(b"CD001");
    terminator[6] = 1;

    let at = |lba: u32| lba as usize * SECTOR;
    out[at(PATH_TABLE_L)..at(PATH_TABLE_L) + PATH_TABLE_LEN]
        .copy_from_slice(&path_table(ROOT.to_le_bytes(), 1u16.to_le_bytes()));
    out[at(PATH_TABLE_M)..at(PATH_TABLE_M) + PATH_TABLE_LEN]
        .copy_from_slice(&path_table(ROOT.to_be_bytes(), 1u16.to_be_bytes()));

    let mut dir = Vec::new();
    dir.extend(record(ROOT, SECTOR as u32, true, &[0]));
    dir.extend(record(ROOT, SECTOR as u32, true, &[1]));
    // An empty file has no extent.
    let extent = if len == 0 { 0 } else { DATA };
    dir.extend(record(extent, len, false, NAME));
    out[at(ROOT)..at(ROOT) + dir.len()].copy_from_slice(&dir);
    Some(out)
}

/// One path table entry (the root): both numbers in the table's order.
const PATH_TABLE_LEN: usize = 10;

fn path_table(extent: [u8; 4], parent: [u8; 2]) -> [u8; PATH_TABLE_LEN] {
    let mut entry = [0u8; PATH_TABLE_LEN];
    entry[0] = 1; // the identifier's length
    entry[2..6].copy_from_slice(&extent);
    entry[6..8].copy_from_slice(&parent);
    // The identifier: 0 (the root), then a pad byte to an even length.
    entry
}

/// A directory record.
fn record(extent: u32, len: u32, dir: bool, name: &[u8]) -> Vec<u8> {
    let size = (33 + name.len()).next_multiple_of(2);
    let mut r = vec![0u8; size];
    r[0] = size as u8;
    both32(&mut r[2..10], extent);
    both32(&mut r[10..18], len);
    r[18..25].copy_from_slice(&RECORD_DATE);
    r[25] = if dir { 2 } else { 0 };
    both16(&mut r[28..32], 1);
    r[32] = name.len() as u8;
    r[33..33 + name.len()].copy_from_slice(name);
    r
}

/// ISO 9660's both-endian numbers: little-endian, then big-endian.
fn both32(out: &mut [u8], n: u32) {
    out[..4].copy_from_slice(&n.to_le_bytes());
    out[4..8].copy_from_slice(&n.to_be_bytes());
}

fn both16(out: &mut [u8], n: u16) {
    out[..2].copy_from_slice(&n.to_le_bytes());
    out[2..4].copy_from_slice(&n.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.iso");
        write(&path, b"hello").unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 22 * SECTOR);
        assert_eq!(&bytes[16 * SECTOR + 1..16 * SECTOR + 6], b"CD001");
        assert_eq!(&bytes[21 * SECTOR..21 * SECTOR + 5], b"hello");
        // Same data, same bytes; and an empty file is a valid volume.
        write(&path, b"hello").unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes);
        write(&path, b"").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 21 * SECTOR as u64);
    }
}
