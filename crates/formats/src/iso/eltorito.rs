//! El Torito: the boot record volume descriptor, the boot catalog, and the
//! boot info table isolinux reads to find itself.

use super::encode::SECTOR;

/// Platform ids of the boot catalog.
const PLATFORM_X86: u8 = 0;
const PLATFORM_EFI: u8 = 0xEF;
/// A bootable entry with no emulation.
const BOOTABLE: u8 = 0x88;
/// A section header that is the last one.
const LAST_SECTION: u8 = 0x91;

/// 512-byte sectors the BIOS loads of a no-emulation image: isolinux loads
/// the rest itself, and 4 (one CD sector) is what every BIOS handles.
pub(crate) const BIOS_LOAD_SECTORS: u16 = 4;

/// A boot entry: the image's first sector and its 512-byte sector count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub lba: u32,
    pub sectors: u16,
}

/// The sector count of an EFI image of `len` bytes: its size in 512-byte
/// sectors when that fits 16 bits, else 0, which firmware (EDK II, so
/// OVMF) reads as "up to the end of the medium": the FAT filesystem inside
/// then says how much of it is its own. A count cut at 65535 would cut
/// the image.
pub(crate) fn efi_sectors(len: u64) -> u16 {
    u16::try_from(len.div_ceil(512)).unwrap_or(0)
}

/// The boot record volume descriptor pointing at the catalog in `catalog`.
pub(crate) fn boot_record(catalog: u32) -> [u8; SECTOR as usize] {
    let mut d = [0u8; SECTOR as usize];
    d[0] = 0;
    d[1..6].copy_from_slice(b"CD001");
    d[6] = 1;
    let id = b"EL TORITO SPECIFICATION";
    d[7..7 + id.len()].copy_from_slice(id);
    d[0x47..0x4B].copy_from_slice(&catalog.to_le_bytes());
    d
}

fn entry(e: Entry) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = BOOTABLE;
    // Media type 0 (no emulation), load segment 0 (the default 0x7C0),
    // system type 0.
    b[6..8].copy_from_slice(&e.sectors.to_le_bytes());
    b[8..12].copy_from_slice(&e.lba.to_le_bytes());
    b
}

/// The boot catalog: a validation entry, the default entry (BIOS if there
/// is one, else EFI) and, with both, a last section header for EFI and its
/// entry.
pub(crate) fn catalog(bios: Option<Entry>, efi: Option<Entry>) -> [u8; SECTOR as usize] {
    let mut c = [0u8; SECTOR as usize];
    let (platform, default, section) = match (bios, efi) {
        (Some(b), efi) => (PLATFORM_X86, Some(b), efi),
        (None, Some(e)) => (PLATFORM_EFI, Some(e), None),
        (None, None) => (PLATFORM_X86, None, None),
    };
    c[0] = 1;
    c[1] = platform;
    c[30] = 0x55;
    c[31] = 0xAA;
    // The 16-bit words of the validation entry sum to zero.
    let sum = c[..32].chunks(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    c[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    if let Some(d) = default {
        c[32..64].copy_from_slice(&entry(d));
    }
    if let Some(e) = section {
        c[64] = LAST_SECTION;
        c[65] = PLATFORM_EFI;
        c[66..68].copy_from_slice(&1u16.to_le_bytes());
        c[96..128].copy_from_slice(&entry(e));
    }
    c
}

/// The boot info table isolinux expects at bytes 8..64 of itself: the
/// primary volume descriptor's sector, its own sector and length, and the
/// sum of its 32-bit little-endian words from byte 64 on.
pub(crate) fn info_table(pvd: u32, lba: u32, len: u32, checksum: u32) -> [u8; 56] {
    let mut t = [0u8; 56];
    t[0..4].copy_from_slice(&pvd.to_le_bytes());
    t[4..8].copy_from_slice(&lba.to_le_bytes());
    t[8..12].copy_from_slice(&len.to_le_bytes());
    t[12..16].copy_from_slice(&checksum.to_le_bytes());
    t
}

/// The boot info table checksum, fed the image in pieces of any size.
#[derive(Debug, Default)]
pub(crate) struct InfoChecksum {
    offset: u64,
    word: [u8; 4],
    filled: usize,
    pub sum: u32,
}

impl InfoChecksum {
    pub fn update(&mut self, mut data: &[u8]) {
        if self.offset < 64 {
            let skip = (64 - self.offset).min(data.len() as u64) as usize;
            self.offset += skip as u64;
            data = &data[skip..];
        }
        self.offset += data.len() as u64;
        for &b in data {
            self.word[self.filled] = b;
            self.filled += 1;
            if self.filled == 4 {
                self.sum = self.sum.wrapping_add(u32::from_le_bytes(self.word));
                self.filled = 0;
            }
        }
    }

    /// The sum, a last partial word counted as if padded with zeros.
    pub fn finish(mut self) -> u32 {
        if self.filled > 0 {
            self.word[self.filled..].fill(0);
            self.sum = self.sum.wrapping_add(u32::from_le_bytes(self.word));
        }
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_entry_sums_to_zero() {
        for (bios, efi) in [
            (
                Some(Entry {
                    lba: 20,
                    sectors: 4,
                }),
                None,
            ),
            (
                None,
                Some(Entry {
                    lba: 30,
                    sectors: 0,
                }),
            ),
            (
                Some(Entry {
                    lba: 20,
                    sectors: 4,
                }),
                Some(Entry {
                    lba: 30,
                    sectors: 100,
                }),
            ),
        ] {
            let c = catalog(bios, efi);
            let sum = c[..32].chunks(2).fold(0u16, |s, w| {
                s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
            });
            assert_eq!(sum, 0);
            assert_eq!(&c[30..32], &[0x55, 0xAA]);
        }
    }

    #[test]
    fn checksum_in_pieces() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let whole = {
            let mut c = InfoChecksum::default();
            c.update(&data);
            c.finish()
        };
        let mut c = InfoChecksum::default();
        for piece in data.chunks(3) {
            c.update(piece);
        }
        assert_eq!(c.finish(), whole);
        let mut expect = 0u32;
        for w in data[64..].chunks(4) {
            let mut b = [0u8; 4];
            b[..w.len()].copy_from_slice(w);
            expect = expect.wrapping_add(u32::from_le_bytes(b));
        }
        assert_eq!(whole, expect);
        assert_eq!(efi_sectors(1024), 2);
        assert_eq!(efi_sectors(65535 * 512), 65535);
        assert_eq!(efi_sectors(65535 * 512 + 1), 0);
    }
}
