//! A root on a device (`root=` on the kernel command line): the kernel
//! modules that find and mount it. The builder keeps them, with everything
//! they depend on, in the small initrd of the `kernel+squashfs`,
//! `kernel+erofs` and `kernel+iso` images; the init loads those the
//! machine's devices and the root's filesystem need.
//!
//! Names as `modules.dep` spells them, `-` written `_`.

/// Block device drivers, chosen by the devices present (their PCI or
/// virtio `modalias` matching the driver's aliases): virtio disks (`vdX`,
/// qemu's `if=virtio`), AHCI (q35's SATA disks `sdX` and CD `srN`), PIIX
/// IDE (the same behind `-machine pc`).
pub const BLOCK_DRIVERS: &[&str] = &["virtio_blk", "ahci", "ata_piix"];

/// The SCSI upper drivers that give the disks the ATA drivers find their
/// names: `sd_mod` (`sdX`) and `sr_mod` (`srN`, with `cdrom`).
pub const SCSI_DRIVERS: &[&str] = &["sd_mod", "sr_mod"];

/// The filesystems a root device may hold.
pub const FILESYSTEMS: &[&str] = &["squashfs", "erofs", "iso9660"];

/// The alias under which a filesystem's module is found, as the kernel
/// itself asks for it (`request_module("fs-%s")`): `fs-iso9660` is `isofs`.
pub fn fs_alias(fstype: &str) -> String {
    format!("fs-{fstype}")
}

/// Every module name and alias a root device may need: the drivers and
/// the filesystems' aliases.
pub fn wanted() -> Vec<String> {
    BLOCK_DRIVERS
        .iter()
        .chain(SCSI_DRIVERS)
        .map(|m| (*m).to_owned())
        .chain(FILESYSTEMS.iter().map(|f| fs_alias(f)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystems_by_alias() {
        assert_eq!(fs_alias("iso9660"), "fs-iso9660");
        let all = wanted();
        assert_eq!(all.len(), 8);
        assert!(all.contains(&"fs-erofs".to_owned()));
        assert!(all.contains(&"sr_mod".to_owned()));
    }
}
