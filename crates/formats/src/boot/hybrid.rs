//! ISO images that boot: the hybrid one (`iso-bios`, `iso-efi` and every
//! BIOS disk format) and the EFI-only one with LinuxKit's names
//! (`iso-efi-initrd`).
//!
//! The hybrid image: isolinux is the El Torito BIOS entry and its
//! isohybrid MBR makes the image a bootable disk too; with a kernel that
//! has an EFI stub, a FAT image holding `EFI/BOOT/BOOTX64.EFI` (the UKI)
//! is the El Torito EFI entry and MBR partition 2, so UEFI firmware boots
//! it from a CD or a disk. isolinux loads `/boot/kernel` and
//! `/boot/initrd.img`, which are the UKI's `.linux` and `.initrd` bytes
//! inside the FAT image: stored once.

use std::cell::RefCell;
use std::io::{Read, Seek, SeekFrom, Write};

use super::{BootError, BootFiles, BootLoader, EFI_BOOT_PATH, LoaderFile};
use crate::disk::{DiskError, FatBuilder, FatOptions};
use crate::iso::{Extent, IsoOptions, IsoWriter, Meta};
use crate::uki::{UkiChecksum, UkiError, UkiLayout};

/// The volume id (label) of the boot ISOs.
pub const VOLUME_ID: &str = "SLIPWAY";
/// The El Torito EFI image's FAT label.
const EFI_LABEL: &str = "EFIBOOT";
/// FAT clusters of one ISO sector: every file in the FAT image, so the
/// UKI, starts on a sector an ISO 9660 extent can point at.
const FAT_CLUSTER: u32 = 2048;

/// isolinux's configuration: straight to the kernel, no prompt, no menu.
fn isolinux_cfg(cmdline: &str) -> String {
    format!(
        "DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /boot/kernel\n  INITRD /boot/initrd.img\n  APPEND {cmdline}\n"
    )
}

/// Writes a FAT image holding the UKI as `EFI/BOOT/BOOTX64.EFI` into a new
/// region of `iso` and makes it the El Torito EFI entry. Returns the UKI's
/// extent in the image and its layout.
fn add_efi_image<W: Write + Seek>(
    iso: &mut IsoWriter<W>,
    boot: &BootFiles,
    loader: &BootLoader,
    meta: &Meta,
) -> Result<(Extent, UkiLayout), BootError> {
    let uki = boot.plan_uki(loader)?;
    let layout = uki.layout().clone();
    let mut kernel = boot.kernel_file()?;
    let mut files = boot.initrd_files()?;
    let checksum: RefCell<Option<UkiChecksum>> = RefCell::new(None);
    let failure: RefCell<Option<UkiError>> = RefCell::new(None);
    let mut fat = FatBuilder::new(FatOptions {
        cluster_size: FAT_CLUSTER,
        label: Some(EFI_LABEL.into()),
        mtime: boot.epoch,
        ..FatOptions::default()
    });
    fat.file_written(EFI_BOOT_PATH, layout.size, |w| {
        let mut pieces: Vec<&mut dyn Read> = files.iter_mut().map(|f| f as &mut dyn Read).collect();
        match uki.stream(w, &mut kernel, &mut pieces) {
            Ok(c) => {
                *checksum.borrow_mut() = Some(c);
                Ok(())
            }
            Err(e) => {
                *failure.borrow_mut() = Some(e);
                Err(DiskError::Invalid("the UKI could not be written".into()))
            }
        }
    })?;
    let image = fat.build()?;
    let at = image
        .files()
        .iter()
        .find(|f| f.path == EFI_BOOT_PATH)
        .map(|f| f.offset)
        .ok_or_else(|| DiskError::Invalid("the FAT image lost its UKI".into()))?;
    let mut region = iso.region_writer()?;
    // The region is new, so what the volume leaves zero can stay a hole.
    let written = image.write_sparse(&mut region).map(drop);
    if let Some(e) = failure.take() {
        return Err(e.into());
    }
    written?;
    let c = checksum
        .take()
        .ok_or_else(|| DiskError::Invalid("the UKI was not written".into()))?;
    region
        .seek(SeekFrom::Start(at + c.offset))
        .and_then(|_| region.write_all(&c.bytes))
        .map_err(DiskError::io("the EFI boot image"))?;
    let fat_extent = region.finish()?;
    iso.set_efi_boot(fat_extent.clone())?;
    let uki_extent = fat_extent.slice(at, layout.size)?;
    iso.add_extent(EFI_BOOT_PATH, meta.clone(), uki_extent.clone())?;
    Ok((uki_extent, layout))
}

/// Names the UKI's `.linux` and `.initrd` bytes as `kernel` and `initrd`.
fn name_parts<W: Write + Seek>(
    iso: &mut IsoWriter<W>,
    uki: &Extent,
    layout: &UkiLayout,
    meta: &Meta,
    kernel: &str,
    initrd: &str,
) -> Result<(), BootError> {
    let part = |r: &std::ops::Range<u64>| uki.slice(r.start, r.end - r.start);
    iso.add_extent(kernel, meta.clone(), part(&layout.linux)?)?;
    iso.add_extent(initrd, meta.clone(), part(&layout.initrd)?)?;
    Ok(())
}

/// The hybrid ISO, written into `out` (empty). With `efi` the UKI is added
/// for EFI firmware (check the kernel with [`BootFiles::check_efi`]
/// first); without, the image boots by BIOS only and the kernel and initrd
/// are plain files. Returns the output and the image's size.
pub fn write_hybrid_iso<W: Write + Seek>(
    out: W,
    boot: &BootFiles,
    loader: &BootLoader,
    efi: bool,
) -> Result<(W, u64), BootError> {
    let options = IsoOptions {
        volume_id: VOLUME_ID.into(),
        epoch: boot.epoch,
        catalog_path: Some("isolinux/boot.cat".into()),
        hybrid_mbr: Some(loader.get(LoaderFile::Isohdpfx)?.to_vec()),
    };
    let mut iso = IsoWriter::new(out, options)?;
    let meta = Meta::new(0o444, boot.epoch);
    let isolinux = loader.get(LoaderFile::Isolinux)?;
    iso.add_bios_boot(
        "isolinux/isolinux.bin",
        meta.clone(),
        &mut &isolinux[..],
        isolinux.len() as u64,
    )?;
    let ldlinux = loader.get(LoaderFile::Ldlinux)?;
    iso.add_file(
        "isolinux/ldlinux.c32",
        meta.clone(),
        &mut &ldlinux[..],
        ldlinux.len() as u64,
    )?;
    let cfg = isolinux_cfg(&boot.cmdline);
    iso.add_file(
        "isolinux/isolinux.cfg",
        meta.clone(),
        &mut cfg.as_bytes(),
        cfg.len() as u64,
    )?;
    if efi {
        let (uki, layout) = add_efi_image(&mut iso, boot, loader, &meta)?;
        name_parts(
            &mut iso,
            &uki,
            &layout,
            &meta,
            "boot/kernel",
            "boot/initrd.img",
        )?;
    } else {
        let len = boot.kernel_len()?;
        iso.add_file("boot/kernel", meta.clone(), &mut boot.kernel_file()?, len)?;
        let len = boot.initrd_len()?;
        iso.add_file(
            "boot/initrd.img",
            meta.clone(),
            &mut boot.initrd_reader()?,
            len,
        )?;
    }
    let written = iso.finish()?;
    Ok((written.out, written.size))
}

/// `iso-efi-initrd`: an EFI-only ISO (no isolinux, no MBR) whose El Torito
/// EFI image holds the UKI, with `/kernel` and `/initrd.img` at the root
/// where LinuxKit puts them (extents inside the UKI). The boot catalog is
/// hidden, as LinuxKit's. Returns the output and the image's size.
pub fn write_efi_iso<W: Write + Seek>(
    out: W,
    boot: &BootFiles,
    loader: &BootLoader,
) -> Result<(W, u64), BootError> {
    let options = IsoOptions {
        volume_id: VOLUME_ID.into(),
        epoch: boot.epoch,
        catalog_path: None,
        hybrid_mbr: None,
    };
    let mut iso = IsoWriter::new(out, options)?;
    let meta = Meta::new(0o444, boot.epoch);
    let (uki, layout) = add_efi_image(&mut iso, boot, loader, &meta)?;
    name_parts(&mut iso, &uki, &layout, &meta, "kernel", "initrd.img")?;
    let written = iso.finish()?;
    Ok((written.out, written.size))
}
