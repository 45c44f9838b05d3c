//! GUIDs for GPT: constants for partition types, and identifiers derived from
//! content (RFC 9562 version 8, "custom"), never random.

use std::fmt;

/// A GUID, held in the order it is written as text
/// (`C12A7328-F81F-11D2-BA4B-00A0C93EC93B` is `0xC12A7328F81F11D2BA4B00A0C93EC93B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub u128);

impl Guid {
    pub const fn from_u128(v: u128) -> Guid {
        Guid(v)
    }

    /// A version 8 GUID from the first 16 bytes of `hash`: the version and
    /// variant bits set, the rest taken as is.
    pub fn derived(hash: &[u8; 32]) -> Guid {
        let mut b = [0u8; 16];
        b.copy_from_slice(&hash[..16]);
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(u128::from_be_bytes(b))
    }

    /// The on-disk GPT form: the first three fields little-endian, the last
    /// two as written.
    pub fn to_mixed_endian(self) -> [u8; 16] {
        let b = self.0.to_be_bytes();
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
        out[4..6].copy_from_slice(&[b[5], b[4]]);
        out[6..8].copy_from_slice(&[b[7], b[6]]);
        out[8..16].copy_from_slice(&b[8..16]);
        out
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_disk_forms() {
        let esp = Guid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B);
        assert_eq!(esp.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(
            esp.to_mixed_endian(),
            [
                0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
                0xC9, 0x3B
            ]
        );
    }

    #[test]
    fn derived_guids_are_version_8() {
        let g = Guid::derived(&[0xff; 32]);
        let s = g.to_string();
        assert_eq!(&s[14..15], "8", "{s}");
        assert!(matches!(&s[19..20], "8" | "9" | "A" | "B"), "{s}");
        assert_ne!(Guid::derived(&[1; 32]), Guid::derived(&[2; 32]));
    }
}
