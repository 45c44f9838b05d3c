//! System Use Sharing Protocol (SUSP 1.12) and Rock Ridge (RRIP 1.10/1.12)
//! entries: what lets a Linux reader see POSIX names, modes, owners, times,
//! symbolic links and device numbers on an ISO 9660 image.

use super::encode::{both32, date7};

/// An entry is at most 255 bytes long (its length is one byte).
const MAX_ENTRY: usize = 255;
/// The size of a `CE` entry, which points at the next continuation area.
pub(crate) const CE_LEN: usize = 28;

fn entry(sig: &[u8; 2], body: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(4 + body.len());
    e.extend_from_slice(sig);
    e.push((4 + body.len()) as u8);
    e.push(1);
    e.extend_from_slice(body);
    e
}

/// `SP`: SUSP is in use, no bytes skipped; first entry of the root's `.`.
pub(crate) fn sp() -> Vec<u8> {
    entry(b"SP", &[0xBE, 0xEF, 0])
}

/// `ER`: the Rock Ridge extension is in use. Linux enables Rock Ridge only
/// when it finds this in the root directory's `.` record (or its
/// continuation). The identifier is RRIP 1.10's, the form every reader
/// knows; the texts are the ones that specification gives.
pub(crate) fn er() -> Vec<u8> {
    const ID: &[u8] = b"RRIP_1991A";
    const DES: &[u8] =
        b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
    const SRC: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";
    let mut body = vec![ID.len() as u8, DES.len() as u8, SRC.len() as u8, 1];
    body.extend_from_slice(ID);
    body.extend_from_slice(DES);
    body.extend_from_slice(SRC);
    entry(b"ER", &body)
}

/// `PX`: mode (with the file type bits), link count, owner, group and the
/// file serial number. The serial (RRIP 1.12's fifth field, which readers
/// of 1.10 images accept as well) lets xorriso and libisofs restore hard
/// links; Linux ignores it.
pub(crate) fn px(mode: u32, nlink: u32, uid: u32, gid: u32, serial: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(40);
    for v in [mode, nlink, uid, gid, serial] {
        body.extend_from_slice(&both32(v));
    }
    entry(b"PX", &body)
}

/// `TF`: modification, access and attribute-change times, all `mtime`.
pub(crate) fn tf(mtime: u64) -> Vec<u8> {
    let mut body = vec![0x0E];
    for _ in 0..3 {
        body.extend_from_slice(&date7(mtime));
    }
    entry(b"TF", &body)
}

/// `PN`: device numbers. RRIP stores a 64-bit `dev_t` in two words, and
/// readers decode it differently: Linux reads a high word of 0 as the old
/// 16-bit `major << 8 | minor` and anything else as (major, minor);
/// libisofs (xorriso) reads the words as glibc's `dev_t`. For majors below
/// 4096 and minors below 256 (the usual devices) the old form means the
/// same to both; other numbers are written as (major, minor), which Linux
/// reads right (except major 0 with a minor above 255, which its format
/// cannot hold).
pub(crate) fn pn(major: u32, minor: u32) -> Vec<u8> {
    let (high, low) = if major < 4096 && minor < 256 {
        (0, (major << 8) | minor)
    } else {
        (major, minor)
    };
    let mut body = Vec::with_capacity(16);
    body.extend_from_slice(&both32(high));
    body.extend_from_slice(&both32(low));
    entry(b"PN", &body)
}

/// `CE`: the rest of the entries are `len` bytes at `offset` in sector `lba`.
pub(crate) fn ce(lba: u32, offset: u32, len: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(24);
    for v in [lba, offset, len] {
        body.extend_from_slice(&both32(v));
    }
    entry(b"CE", &body)
}

/// `NM`: the POSIX name, in as many entries as it takes (flag 1: continued).
pub(crate) fn nm(name: &[u8]) -> Vec<Vec<u8>> {
    let room = MAX_ENTRY - 5;
    let chunks: Vec<&[u8]> = name.chunks(room).collect();
    let last = chunks.len().saturating_sub(1);
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut body = vec![u8::from(i != last)];
            body.extend_from_slice(chunk);
            entry(b"NM", &body)
        })
        .collect()
}

/// `SL`: a symbolic link's target as component records (flags: 1 continued
/// in the next record, 2 `.`, 4 `..`, 8 the root), packed into as many
/// entries as it takes (entry flag 1: the target continues in the next).
pub(crate) fn sl(target: &[u8]) -> Vec<Vec<u8>> {
    // Component records: [flags, len, bytes...], at most 2 + 248 bytes so
    // that one always fits in an entry.
    const PIECE: usize = MAX_ENTRY - 5 - 2;
    let mut records: Vec<Vec<u8>> = Vec::new();
    if target.first() == Some(&b'/') {
        records.push(vec![8, 0]);
    }
    for part in target.split(|&c| c == b'/').filter(|p| !p.is_empty()) {
        match part {
            b"." => records.push(vec![2, 0]),
            b".." => records.push(vec![4, 0]),
            _ => {
                let pieces: Vec<&[u8]> = part.chunks(PIECE).collect();
                let last = pieces.len() - 1;
                for (i, piece) in pieces.iter().enumerate() {
                    let mut r = vec![u8::from(i != last), piece.len() as u8];
                    r.extend_from_slice(piece);
                    records.push(r);
                }
            }
        }
    }
    // Pack the records into entries of at most 255 bytes.
    let mut groups: Vec<Vec<u8>> = vec![Vec::new()];
    for r in records {
        let current = groups.last_mut().expect("one group at least");
        if 5 + current.len() + r.len() > MAX_ENTRY {
            groups.push(r);
        } else {
            current.extend_from_slice(&r);
        }
    }
    let last = groups.len() - 1;
    groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let mut body = vec![u8::from(i != last)];
            body.extend_from_slice(&g);
            entry(b"SL", &body)
        })
        .collect()
}

/// Where a record's entries go: those that fit in the record itself, and
/// continuation areas (each at most one sector, as Linux requires) for the
/// rest. A `CE` entry (filled in later, when the areas have their place)
/// ends every part that is followed by another.
#[derive(Debug, Default)]
pub(crate) struct Split {
    pub inline: Vec<u8>,
    pub areas: Vec<Vec<u8>>,
}

/// Splits `entries` so at most `room` bytes stay in the record and each
/// continuation area is at most `area` bytes, `CE` entries included.
pub(crate) fn split(entries: &[Vec<u8>], room: usize, area: usize) -> Split {
    let total: usize = entries.iter().map(Vec::len).sum();
    if total <= room {
        return Split {
            inline: entries.concat(),
            areas: Vec::new(),
        };
    }
    let mut parts: Vec<Vec<u8>> = vec![Vec::new()];
    let mut limit = room;
    let mut rest: usize = total;
    for e in entries {
        let current = parts.last_mut().expect("one part at least");
        // The entries left after this one need a CE here unless they all fit.
        let fits_all = current.len() + rest <= limit;
        if !fits_all && current.len() + e.len() + CE_LEN > limit {
            parts.push(Vec::new());
            limit = area;
        }
        parts
            .last_mut()
            .expect("one part at least")
            .extend_from_slice(e);
        rest -= e.len();
    }
    let mut parts = parts.into_iter();
    Split {
        inline: parts.next().unwrap_or_default(),
        areas: parts.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes SL entries back to a target, as Linux's rock.c does.
    fn read_sl(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut continued = false;
        for e in entries {
            assert_eq!(&e[..2], b"SL");
            assert_eq!(e[2] as usize, e.len());
            assert!(e.len() <= 255);
            let mut rest = &e[5..];
            while !rest.is_empty() {
                let (flags, len) = (rest[0], rest[1] as usize);
                let text = &rest[2..2 + len];
                if !continued && !out.is_empty() && out != b"/" {
                    out.push(b'/');
                }
                match flags & !1 {
                    8 => out.push(b'/'),
                    2 => out.push(b'.'),
                    4 => out.extend_from_slice(b".."),
                    _ => out.extend_from_slice(text),
                }
                continued = flags & 1 != 0;
                rest = &rest[2 + len..];
            }
        }
        out
    }

    #[test]
    fn symlink_targets_round_trip() {
        let long = "x".repeat(600);
        for target in [
            "busybox",
            "/usr/lib/os-release",
            "../lib/./a",
            &format!("/a/{long}/b/{long}"),
            &format!("{}end", "dir/".repeat(300)),
        ] {
            let entries = sl(target.as_bytes());
            assert_eq!(String::from_utf8(read_sl(&entries)).unwrap(), target);
        }
    }

    /// Linux's reading of PN (fs/isofs/rock.c) gives back the numbers.
    #[test]
    fn device_numbers_as_linux_reads_them() {
        for (major, minor) in [
            (1, 3),
            (8, 0),
            (0, 7),
            (4, 64),
            (259, 70000),
            (4095, 255),
            (4096, 1),
        ] {
            let e = pn(major, minor);
            let high = u32::from_le_bytes(e[4..8].try_into().unwrap());
            let low = u32::from_le_bytes(e[12..16].try_into().unwrap());
            let read = if low & !0xff != 0 && high == 0 {
                (low >> 8, low & 0xff)
            } else {
                (high, low)
            };
            assert_eq!(read, (major, minor));
        }
    }

    #[test]
    fn long_names_continue() {
        let name = vec![b'n'; 600];
        let entries = nm(&name);
        assert_eq!(entries.len(), 3);
        let mut back = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            assert!(e.len() <= 255);
            assert_eq!(e[4], u8::from(i != 2));
            back.extend_from_slice(&e[5..]);
        }
        assert_eq!(back, name);
    }

    #[test]
    fn split_keeps_entries_whole_and_leaves_room_for_ce() {
        let entries: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 100]).collect();
        let s = split(&entries, 150, 2048);
        assert_eq!(s.inline.len(), 100);
        assert_eq!(s.areas.len(), 2);
        assert_eq!(s.areas[0].len(), 2000);
        assert_eq!(s.areas[1].len(), 1900);
        // Everything fits: no areas.
        let s = split(&entries[..1], 150, 2048);
        assert_eq!((s.inline.len(), s.areas.len()), (100, 0));
        // The last entry fits without a CE after it.
        let s = split(&entries[..2], 200, 2048);
        assert_eq!((s.inline.len(), s.areas.len()), (200, 0));
    }
}
