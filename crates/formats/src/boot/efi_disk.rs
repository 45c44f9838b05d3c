//! `raw-efi`: a GPT disk of `--size` whose one partition, the EFI system
//! partition, fills it: FAT32 holding `EFI/BOOT/BOOTX64.EFI`, the UKI.
//! UEFI firmware boots the removable-media path with no boot entry.

use std::cell::RefCell;
use std::io::{Read, Seek, SeekFrom, Write};

use super::{BootError, BootFiles, BootLoader, EFI_BOOT_PATH};
use crate::disk::{
    Disk, DiskError, FatBuilder, FatOptions, FatType, PartitionContent, PartitionSize,
    PartitionSpec, PartitionType, Placement, Region, Table,
};
use crate::uki::{Uki, UkiChecksum, UkiError};

/// The GPT name of the EFI system partition.
const ESP_NAME: &str = "EFI system partition";
const ESP_LABEL: &str = "ESP";
/// Cluster sizes tried, largest first: FAT32 needs 65525 clusters, so a
/// small partition takes small clusters.
const CLUSTERS: [u32; 4] = [4096, 2048, 1024, 512];

/// The ESP: FAT32 of the partition's size with the UKI streamed into it.
struct Esp<'a> {
    boot: &'a BootFiles,
    uki: &'a Uki,
    epoch: u64,
    /// Where the UKI landed on the disk and its checksum, for the patch.
    done: &'a RefCell<Option<(u64, UkiChecksum)>>,
    failure: &'a RefCell<Option<UkiError>>,
}

impl Esp<'_> {
    fn options(&self, cluster_size: u32, size: Option<u64>) -> FatOptions {
        FatOptions {
            fat_type: Some(FatType::Fat32),
            cluster_size,
            size,
            label: Some(ESP_LABEL.into()),
            mtime: self.epoch,
            ..FatOptions::default()
        }
    }

    /// A builder laid out like the real one, its file empty (for sizes).
    fn sizing(
        &self,
        cluster_size: u32,
        size: Option<u64>,
    ) -> Result<FatBuilder<'static>, DiskError> {
        let mut fat = FatBuilder::new(self.options(cluster_size, size));
        fat.file(EFI_BOOT_PATH, self.uki.layout().size, std::io::empty())?;
        Ok(fat)
    }

    /// The largest cluster size that makes a valid FAT32 volume of `len`.
    fn cluster_for(&self, len: u64) -> Result<u32, DiskError> {
        let mut last = None;
        for c in CLUSTERS {
            match self.sizing(c, Some(len))?.check(len) {
                Ok(()) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| DiskError::Invalid("no cluster size fits".into())))
    }
}

impl PartitionContent for Esp<'_> {
    fn min_len(&self) -> Result<u64, DiskError> {
        self.sizing(512, None)?.min_size()
    }

    fn check(&self, len: u64) -> Result<(), DiskError> {
        self.cluster_for(len).map(drop)
    }

    fn write(self: Box<Self>, out: &mut Region<'_>, place: Placement) -> Result<(), DiskError> {
        let cluster = self.cluster_for(place.len)?;
        let mut opts = self.options(cluster, Some(place.len));
        opts.hidden_sectors = u32::try_from(place.offset / 512).unwrap_or(u32::MAX);
        let (boot, uki) = (self.boot, self.uki);
        let mut kernel = boot
            .kernel_file()
            .map_err(|e| DiskError::Invalid(e.to_string()))?;
        let mut files = boot
            .initrd_files()
            .map_err(|e| DiskError::Invalid(e.to_string()))?;
        let checksum = RefCell::new(None);
        let mut fat = FatBuilder::new(opts);
        fat.file_written(EFI_BOOT_PATH, uki.layout().size, |w| {
            let mut pieces: Vec<&mut dyn Read> =
                files.iter_mut().map(|f| f as &mut dyn Read).collect();
            match uki.stream(w, &mut kernel, &mut pieces) {
                Ok(c) => {
                    *checksum.borrow_mut() = Some(c);
                    Ok(())
                }
                Err(e) => {
                    *self.failure.borrow_mut() = Some(e);
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
            .ok_or_else(|| DiskError::Invalid("the ESP lost its UKI".into()))?;
        image.write_to(out)?;
        out.pad().map_err(DiskError::io("writing the ESP"))?;
        if let Some(c) = checksum.take() {
            *self.done.borrow_mut() = Some((place.offset + at, c));
        }
        Ok(())
    }
}

/// Writes the `raw-efi` disk of `size` bytes into `out` (empty), refusing
/// before writing when the UKI does not fit.
pub fn write_efi_disk<W: Write + Seek>(
    out: W,
    boot: &BootFiles,
    loader: &BootLoader,
    size: u64,
) -> Result<W, BootError> {
    let uki = boot.plan_uki(loader)?;
    let done = RefCell::new(None);
    let failure = RefCell::new(None);
    let esp = Esp {
        boot,
        uki: &uki,
        epoch: boot.epoch,
        done: &done,
        failure: &failure,
    };
    let mut disk = Disk::new(Table::Gpt {
        boot_code: [0; 440],
    });
    disk.size = Some(size);
    disk.partitions.push(PartitionSpec {
        name: ESP_NAME.into(),
        kind: PartitionType::EFI_SYSTEM,
        size: PartitionSize::Rest,
        bootable: false,
        guid: None,
        content: Box::new(esp),
    });
    if let Err(DiskError::DoesNotFit { size, needed }) = disk.layout() {
        return Err(BootError::DiskTooSmall { size, needed });
    }
    let written = disk.write(out);
    if let Some(e) = failure.take() {
        return Err(e.into());
    }
    let (mut out, _) = written?;
    let (at, c) = done
        .take()
        .ok_or_else(|| DiskError::Invalid("the UKI was not written".into()))?;
    out.seek(SeekFrom::Start(at + c.offset))
        .and_then(|_| out.write_all(&c.bytes))
        .and_then(|_| out.flush())
        .map_err(DiskError::io("patching the UKI's checksum"))?;
    Ok(out)
}
