//! ECMA-119 field encodings: both-byte-order numbers, dates, padded strings.

/// 2048-byte logical sectors (ECMA-119 allows others; every reader expects this).
pub(crate) const SECTOR: u64 = 2048;

/// A 32-bit number in both byte orders (ECMA-119 7.3.3, "733").
pub(crate) fn both32(v: u32) -> [u8; 8] {
    let mut b = [0; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

/// A 16-bit number in both byte orders (ECMA-119 7.2.3, "723").
pub(crate) fn both16(v: u16) -> [u8; 4] {
    let mut b = [0; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

/// Rounds `n` up to a multiple of `to` (a power of two).
pub(crate) fn align(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// The civil date of a Unix time, UTC: (year, month, day, hour, minute, second).
/// Hinnant's days-to-civil algorithm; no calendar crate needed for this.
pub(crate) fn civil(unix: u64) -> (u64, u8, u8, u8, u8, u8) {
    let days = unix / 86_400;
    let rem = unix % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u8,
        (rem % 3600 / 60) as u8,
        (rem % 60) as u8,
    )
}

/// The last second a 7-byte date can hold: 2155-12-31T23:59:59Z.
pub(crate) const MAX_DATE7: u64 = 5_869_583_999;

/// The 7-byte date of directory records and Rock Ridge TF (ECMA-119 9.1.5):
/// years since 1900, month, day, hour, minute, second, UTC offset 0. Times
/// past 2155 are clamped to its last second.
pub(crate) fn date7(unix: u64) -> [u8; 7] {
    let (y, mo, d, h, mi, s) = civil(unix.min(MAX_DATE7));
    [(y - 1900) as u8, mo, d, h, mi, s, 0]
}

/// The 17-byte date of volume descriptors (ECMA-119 8.4.26.1):
/// `YYYYMMDDHHMMSScc` in digits and a UTC offset of 0.
pub(crate) fn date17(unix: u64) -> [u8; 17] {
    let (y, mo, d, h, mi, s) = civil(unix.min(253_402_300_799));
    let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}00");
    let mut b = [0; 17];
    b[..16].copy_from_slice(text.as_bytes());
    b
}

/// "Not specified" in a 17-byte date field.
pub(crate) const NO_DATE17: [u8; 17] = *b"0000000000000000\0";

/// `text` padded with spaces to `len` bytes (truncated if longer).
pub(crate) fn padded(text: &str, len: usize) -> Vec<u8> {
    let mut b: Vec<u8> = text.bytes().take(len).collect();
    b.resize(len, b' ');
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        // LinuxKit's fixed time.
        assert_eq!(civil(1_492_533_000), (2017, 4, 18, 16, 30, 0));
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(date7(1_492_533_000), [117, 4, 18, 16, 30, 0, 0]);
        assert_eq!(date7(u64::MAX), [255, 12, 31, 23, 59, 59, 0]);
        assert_eq!(&date17(1_492_533_000), b"2017041816300000\0");
    }

    #[test]
    fn numbers() {
        assert_eq!(both32(0x0102_0304), [4, 3, 2, 1, 1, 2, 3, 4]);
        assert_eq!(both16(0x0102), [2, 1, 1, 2]);
        assert_eq!(align(0, 2048), 0);
        assert_eq!(align(1, 2048), 2048);
        assert_eq!(align(2048, 2048), 2048);
    }
}
