//! Bootable images of the kernel, its command line and the initrd the
//! build made: the hybrid ISO (isolinux for BIOS, a UKI in an El Torito
//! FAT image for EFI, one isohybrid image that also boots as a disk), an
//! EFI-only ISO with LinuxKit's file names, a GPT disk whose EFI system
//! partition holds the UKI, and the UKI alone.
//!
//! The initrd is read from the segment files the build cached (microcode
//! first, then each unit's compressed archives), never recompressed: a
//! rebuild after one unit changed copies the cached segments into the new
//! image. Every image stores the kernel and the initrd once: in the hybrid
//! ISO, `/boot/kernel` and `/boot/initrd.img` are ISO 9660 extents inside
//! the UKI inside the FAT image.
//!
//! A UKI inside a FAT volume is written as the volume streams past it, its
//! PE checksum patched afterwards through the seekable output.

mod efi_disk;
mod hybrid;
mod loader;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use efi_disk::write_efi_disk;
pub use hybrid::{VOLUME_ID, write_efi_iso, write_hybrid_iso};
pub use loader::{BootLoader, LoaderFile};

use crate::disk::DiskError;
use crate::iso::IsoError;
use crate::uki::{Uki, UkiError, UkiParts, check_kernel};

/// The `.osrel` section of every UKI slipway writes (systemd-boot shows
/// `PRETTY_NAME` in its menu).
pub const OS_RELEASE: &str = "NAME=slipway\nID=slipway\nPRETTY_NAME=\"slipway\"\n";
/// Where firmware looks for the boot loader of an x86-64 EFI system
/// partition or El Torito EFI image.
pub const EFI_BOOT_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// How much of the kernel [`check_kernel`] reads.
const KERNEL_HEAD: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Iso(#[from] IsoError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Uki(#[from] UkiError),
    #[error(
        "the boot loader image {image} has no `{path}`; it must hold Debian's isolinux, syslinux-common and systemd-boot-efi files"
    )]
    LoaderFile { image: String, path: &'static str },
    #[error(
        "the image needs a disk of at least {} MiB ({needed} bytes); --size is {} MiB ({size} bytes)",
        needed.div_ceil(1 << 20), size / (1 << 20)
    )]
    DiskTooSmall { size: u64, needed: u64 },
}

fn io_at(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BootError + use<> {
    let path = path.to_path_buf();
    move |source| BootError::Io { what, path, source }
}

/// What a bootable image is made of: files the build wrote (the kernel
/// part and the initrd's segments, in the segment cache).
#[derive(Clone, Debug)]
pub struct BootFiles {
    pub kernel: PathBuf,
    /// The kernel command line (`kernel.cmdline` of the YAML).
    pub cmdline: String,
    /// The initrd: these files concatenated.
    pub initrd: Vec<PathBuf>,
    /// The time of the images' files and volumes (`SOURCE_DATE_EPOCH` or
    /// LinuxKit's fixed time).
    pub epoch: u64,
}

impl BootFiles {
    fn len_of(path: &Path) -> Result<u64, BootError> {
        Ok(std::fs::metadata(path)
            .map_err(io_at("reading", path))?
            .len())
    }

    pub fn kernel_len(&self) -> Result<u64, BootError> {
        BootFiles::len_of(&self.kernel)
    }

    pub fn initrd_len(&self) -> Result<u64, BootError> {
        self.initrd
            .iter()
            .try_fold(0, |n, p| Ok(n + BootFiles::len_of(p)?))
    }

    fn kernel_file(&self) -> Result<File, BootError> {
        File::open(&self.kernel).map_err(io_at("reading", &self.kernel))
    }

    fn initrd_files(&self) -> Result<Vec<File>, BootError> {
        self.initrd
            .iter()
            .map(|p| File::open(p).map_err(io_at("reading", p)))
            .collect()
    }

    /// The initrd as one reader.
    fn initrd_reader(&self) -> Result<Box<dyn Read>, BootError> {
        let mut r: Box<dyn Read> = Box::new(io::empty());
        for f in self.initrd_files()? {
            r = Box::new(r.chain(f));
        }
        Ok(r)
    }

    /// Whether the kernel can boot from a UKI (an EFI stub new enough for
    /// systemd-stub), read from its first bytes; the error says why not.
    pub fn check_efi(&self) -> Result<(), BootError> {
        let mut head = Vec::new();
        self.kernel_file()?
            .take(KERNEL_HEAD)
            .read_to_end(&mut head)
            .map_err(io_at("reading", &self.kernel))?;
        Ok(check_kernel(&head)?)
    }

    /// The UKI of these files, laid out.
    fn plan_uki(&self, loader: &BootLoader) -> Result<Uki, BootError> {
        let parts = UkiParts {
            os_release: OS_RELEASE.as_bytes(),
            cmdline: self.cmdline.as_bytes(),
            uname: None,
            kernel_len: self.kernel_len()?,
            initrd_len: self.initrd_len()?,
        };
        Ok(Uki::plan(loader.get(LoaderFile::EfiStub)?, &parts)?)
    }
}

/// The UKI alone (`uki`): systemd's stub, os-release, the command line,
/// the kernel and the initrd.
pub fn write_uki<W: io::Write + io::Seek>(
    out: &mut W,
    boot: &BootFiles,
    loader: &BootLoader,
) -> Result<u64, BootError> {
    let uki = boot.plan_uki(loader)?;
    let mut kernel = boot.kernel_file()?;
    let mut files = boot.initrd_files()?;
    let mut pieces: Vec<&mut dyn Read> = files.iter_mut().map(|f| f as &mut dyn Read).collect();
    uki.write(out, &mut kernel, &mut pieces)?;
    Ok(uki.layout().size)
}
