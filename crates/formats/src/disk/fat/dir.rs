//! 32-byte directory entries: short entries, long-name entries, DOS times.

use super::names;

pub const ENTRY: usize = 32;
pub const ATTR_VOLUME_ID: u8 = 0x08;
pub const ATTR_DIRECTORY: u8 = 0x10;
pub const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_LONG_NAME: u8 = 0x0f;

/// A DOS date and time (UTC), clamped to what FAT can hold (1980-2107).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DosTime {
    pub date: u16,
    pub time: u16,
}

impl DosTime {
    pub fn from_unix(secs: u64) -> DosTime {
        const MIN: u64 = 315_532_800; // 1980-01-01T00:00:00Z
        const MAX: u64 = 4_354_819_198; // 2107-12-31T23:59:58Z
        let secs = secs.clamp(MIN, MAX);
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil(days);
        DosTime {
            date: (((y - 1980) as u16) << 9) | ((m as u16) << 5) | d as u16,
            time: (((rem / 3600) as u16) << 11)
                | ((((rem / 60) % 60) as u16) << 5)
                | ((rem % 60) / 2) as u16,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A short (8.3) entry.
pub fn short(name: &[u8; 11], attr: u8, cluster: u32, size: u32, t: DosTime) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    // 12: NT case flags, 13: creation time tenths: 0.
    e[14..16].copy_from_slice(&t.time.to_le_bytes());
    e[16..18].copy_from_slice(&t.date.to_le_bytes());
    e[18..20].copy_from_slice(&t.date.to_le_bytes());
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[22..24].copy_from_slice(&t.time.to_le_bytes());
    e[24..26].copy_from_slice(&t.date.to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// The long-name entries for `name`, in on-disk order (last part first),
/// to be followed by the short entry `short`.
pub fn long(name: &str, short: &[u8; 11]) -> Vec<[u8; ENTRY]> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let sum = names::checksum(short);
    let parts = units.len().div_ceil(13);
    let mut out = Vec::with_capacity(parts);
    for i in (0..parts).rev() {
        let mut chunk = [0xffffu16; 13];
        let from = &units[i * 13..units.len().min(i * 13 + 13)];
        chunk[..from.len()].copy_from_slice(from);
        if from.len() < 13 {
            chunk[from.len()] = 0;
        }
        let mut e = [0u8; ENTRY];
        e[0] = (i + 1) as u8 | if i + 1 == parts { 0x40 } else { 0 };
        e[11] = ATTR_LONG_NAME;
        e[13] = sum;
        let offsets = (1..11)
            .step_by(2)
            .chain((14..26).step_by(2))
            .chain((28..32).step_by(2));
        for (u, at) in chunk.iter().zip(offsets) {
            e[at..at + 2].copy_from_slice(&u.to_le_bytes());
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times() {
        // 2017-04-18T16:30:00Z
        let t = DosTime::from_unix(1_492_533_000);
        assert_eq!(t.date, (37 << 9) | (4 << 5) | 18);
        assert_eq!(t.time, (16 << 11) | (30 << 5));
        assert_eq!(
            DosTime::from_unix(0),
            DosTime {
                date: 0x21,
                time: 0
            }
        );
        let late = DosTime::from_unix(u64::MAX);
        assert_eq!(late.date, (127 << 9) | (12 << 5) | 31);
        assert_eq!(late.time, (23 << 11) | (59 << 5) | 29);
        // 2000-02-29T23:59:59Z: a leap day, odd seconds round down.
        let leap = DosTime::from_unix(951_868_799);
        assert_eq!(leap.date, (20 << 9) | (2 << 5) | 29);
        assert_eq!(leap.time, (23 << 11) | (59 << 5) | 29);
    }

    #[test]
    fn long_entries_layout() {
        let short = *b"LONGNA~1TXT";
        let es = long("long name of e.txt", &short);
        assert_eq!(es.len(), 2);
        assert_eq!(es[0][0], 0x42);
        assert_eq!(es[1][0], 0x01);
        assert!(
            es.iter()
                .all(|e| e[11] == 0x0f && e[13] == names::checksum(&short))
        );
        // Second part: "e.txt", a terminator, then 0xFFFF padding.
        assert_eq!(&es[0][1..3], &[b'e', 0]);
        assert_eq!(&es[0][9..11], &[b't', 0]);
        assert_eq!(&es[0][14..16], &[0, 0]);
        assert_eq!(&es[0][16..18], &[0xff, 0xff]);
        assert_eq!(&es[0][28..32], &[0xff; 4]);
    }
}
