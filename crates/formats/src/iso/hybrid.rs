//! The isohybrid MBR: what lets the same image boot from a disk or USB
//! stick, as xorriso's `-isohybrid-mbr` writes it.
//!
//! Bytes 0-431 are the MBR code (`isohdpfx.bin`). It reads the 32-bit
//! number at byte 432, the boot image's (isolinux.bin's) first 512-byte
//! sector, loads it and jumps to its hybrid entry point; isolinux then
//! finds itself through its boot info table. Bytes 440-443 are the disk
//! signature, 446-509 the partition table, 510-511 `55 AA`.
//!
//! Partition 1 is active and covers the whole image from sector 0. With an
//! EFI boot image, partition 2 (type `EF`) is that FAT image, so UEFI
//! firmware booting the disk finds its ESP; partition 1 then has type 0
//! (as xorriso writes it) because EDK II rejects an MBR whose partitions
//! overlap, and skips type 0 entries in that check. Without one it has
//! type `17`, isohybrid's. The geometry is 64 heads, 32 sectors per track,
//! the one isohybrid uses and the reason the image is padded to whole MiB.

pub(crate) const HEADS: u64 = 64;
pub(crate) const SECTORS: u64 = 32;
/// The image is padded to whole cylinders.
pub(crate) const CYLINDER: u64 = HEADS * SECTORS * 512;
pub(crate) const CODE_LEN: usize = 432;

/// CHS address of 512-byte sector `lba`, or the "beyond CHS" value.
fn chs(lba: u64) -> [u8; 3] {
    let cyl = lba / (HEADS * SECTORS);
    if cyl > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let head = (lba / SECTORS) % HEADS;
    let sector = lba % SECTORS + 1;
    [
        head as u8,
        (sector as u8) | (((cyl >> 8) as u8) << 6),
        cyl as u8,
    ]
}

fn partition(active: bool, kind: u8, start: u64, count: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = if active { 0x80 } else { 0 };
    p[1..4].copy_from_slice(&chs(start));
    p[4] = kind;
    p[5..8].copy_from_slice(&chs(start + count.max(1) - 1));
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    p[8..12].copy_from_slice(&clamp(start).to_le_bytes());
    p[12..16].copy_from_slice(&clamp(count).to_le_bytes());
    p
}

/// The MBR for an image of `size` bytes whose boot image starts at CD
/// sector `boot_lba`, with the EFI FAT image at (byte offset, length).
pub(crate) fn mbr(
    code: &[u8],
    boot_lba: u32,
    size: u64,
    efi: Option<(u64, u64)>,
    signature: u32,
) -> [u8; 512] {
    let mut m = [0u8; 512];
    let n = code.len().min(CODE_LEN);
    m[..n].copy_from_slice(&code[..n]);
    m[432..436].copy_from_slice(&boot_lba.wrapping_mul(4).to_le_bytes());
    m[440..444].copy_from_slice(&signature.to_le_bytes());
    let whole = size / 512;
    let kind = if efi.is_some() { 0x00 } else { 0x17 };
    m[446..462].copy_from_slice(&partition(true, kind, 0, whole));
    if let Some((start, len)) = efi {
        m[462..478].copy_from_slice(&partition(false, 0xEF, start / 512, len.div_ceil(512)));
    }
    m[510] = 0x55;
    m[511] = 0xAA;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_xorriso_for_a_28_mib_image() {
        // xorriso -isohybrid-mbr wrote these for a 57344-sector image.
        let p = partition(true, 0x17, 0, 57344);
        assert_eq!(
            p,
            [
                0x80, 0, 1, 0, 0x17, 0x3F, 0x20, 0x1B, 0, 0, 0, 0, 0, 0xE0, 0, 0
            ]
        );
        let m = mbr(
            &[0xEB; 432],
            7511,
            57344 * 512,
            Some((136 * 512, 29908 * 512)),
            7,
        );
        assert_eq!(&m[432..436], &30044u32.to_le_bytes());
        assert_eq!(m[446 + 4], 0);
        assert_eq!(m[462 + 4], 0xEF);
        assert_eq!(&m[462 + 8..462 + 16], &[136, 0, 0, 0, 0xD4, 0x74, 0, 0]);
        assert_eq!(&m[510..], &[0x55, 0xAA]);
        assert_eq!(chs(u64::MAX / 2), [0xFE, 0xFF, 0xFF]);
    }
}
