//! CRC-32C (Castagnoli), for the erofs superblock checksum. Twenty lines
//! are cheaper than a dependency; the lockfile has only CRC-32 (IEEE).

const POLY: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// The kernel's `crc32c(seed, data)`: no final inversion (the standard
/// CRC-32C of `data` is `!raw(!0, data)`).
pub(crate) fn raw(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_value() {
        // The CRC-32C check value of "123456789".
        assert_eq!(!super::raw(!0, b"123456789"), 0xE306_9283);
    }
}
