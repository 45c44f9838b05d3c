//! The formats that boot: the kernel and initrd files, the UKI, the ISOs,
//! the raw disks and their re-encodings, written from one build's kernel
//! parts and initrd segments.

use slipway_contract::errors::chain;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::format::{Boot, Output};
use super::patch::PatchFile;
use super::root::{with_root, write_root_image, write_small_initrd};
use super::spare;
use super::stage::{Staged, io_at, stage, stage_file};
use super::{Built, OutputOptions, copy_file, suffixed};
use crate::boot::{
    BootError, BootFiles, BootLoader, LoaderFile, write_efi_disk, write_efi_iso, write_hybrid_iso,
    write_uki,
};
use crate::disk::{MIB, RawImage, gcp, qcow2, vhd, vmdk};
use crate::error::FormatError;
use crate::tar::{TarWriter, finish};
use slipway_assemble::{BlobSource, EntrySink, Header, Kind, Unit};

/// The scratch raw disk a re-encoding format reads, beside the outputs.
const SCRATCH_DISK: &str = ".slipway-disk-";

/// GCP imports raw disks whose size is a whole number of GiB.
const GIB: u64 = 1 << 30;

/// The raw disk formats first: a re-encoded format reads one of them.
pub(super) fn in_writing_order(outputs: &[Output]) -> Vec<Output> {
    let raw = |o: &Output| matches!(o, Output::RawBios | Output::Aws | Output::RawEfi);
    let mut ordered: Vec<Output> = outputs.iter().copied().filter(raw).collect();
    ordered.extend(outputs.iter().copied().filter(|o| !raw(o)));
    ordered
}

fn failed(format: Output) -> impl FnOnce(BootError) -> FormatError {
    move |source| FormatError::Boot {
        format: format.name(),
        source,
    }
}

/// A raw disk image to re-encode: a staged output or a scratch file.
struct Raw {
    path: PathBuf,
    /// Kept as a spare when dropped, for the next build's scratch disk.
    _scratch: Option<ScratchDisk>,
}

/// A scratch raw disk; dropped, it becomes the spare of `key` (a name no
/// output has), so the next build writes its disk over this one's.
struct ScratchDisk {
    held: Option<tempfile::TempPath>,
    key: PathBuf,
}

impl Drop for ScratchDisk {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            spare::keep(held, &self.key);
        }
    }
}

pub(super) struct Writer<'a> {
    built: &'a Built,
    boot: Option<&'a BootFiles>,
    options: &'a OutputOptions<'a>,
    base: &'a Path,
    /// Whether the kernel boots from a UKI, or why not.
    efi: Result<(), String>,
    bios_raw: Option<Raw>,
    efi_raw: Option<Raw>,
    /// The units, for the root filesystem images and their small initrd.
    units: &'a [&'a Unit],
    /// The kernel+initrd output's initrd, when it was written as the
    /// units were encoded.
    pub(super) early_initrd: Option<Staged>,
    blobs: &'a dyn BlobSource,
}

impl<'a> Writer<'a> {
    pub(super) fn new(
        built: &'a Built,
        boot: Option<&'a BootFiles>,
        options: &'a OutputOptions<'a>,
        base: &'a Path,
        units: &'a [&'a Unit],
        blobs: &'a dyn BlobSource,
    ) -> Result<Writer<'a>, FormatError> {
        let efi = match boot {
            Some(b) => b.check_efi().map_err(|e| chain(&e)),
            None => Err("the kernel image has no kernel".into()),
        };
        Ok(Writer {
            built,
            boot,
            options,
            base,
            efi,
            bios_raw: None,
            efi_raw: None,
            units,
            blobs,
            early_initrd: None,
        })
    }

    fn name(&self, suffix: &str) -> PathBuf {
        suffixed(self.base, suffix)
    }

    fn boot(&self, format: Output) -> Result<&'a BootFiles, FormatError> {
        self.boot.ok_or_else(|| FormatError::NoKernel {
            format: format.name().into(),
        })
    }

    fn loader(&self, format: Output) -> Result<&'a BootLoader, FormatError> {
        self.options.bootloader.ok_or(FormatError::NoBootLoader {
            format: format.name(),
        })
    }

    /// Whether the BIOS images of this build also boot by EFI.
    fn hybrid_efi(&self) -> bool {
        self.efi.is_ok()
    }

    /// Refuses, before anything is written, what cannot be made: a kernel
    /// that cannot boot the way a format boots, missing boot loader files,
    /// a GCP disk of a size GCP does not import.
    pub(super) fn check(&self, outputs: &[Output]) -> Result<(), FormatError> {
        for &o in outputs {
            match o.boot() {
                Boot::Efi => {
                    self.boot(o)?;
                    if let Err(reason) = &self.efi {
                        return Err(FormatError::Refused {
                            format: o.name(),
                            reason: reason.clone(),
                        });
                    }
                    self.loader(o)?
                        .get(LoaderFile::EfiStub)
                        .map_err(failed(o))?;
                }
                Boot::Bios => {
                    self.boot(o)?;
                    let loader = self.loader(o)?;
                    let mut files = vec![
                        LoaderFile::Isolinux,
                        LoaderFile::Isohdpfx,
                        LoaderFile::Ldlinux,
                    ];
                    if self.hybrid_efi() {
                        files.push(LoaderFile::EfiStub);
                    }
                    for f in files {
                        loader.get(f).map_err(failed(o))?;
                    }
                }
                Boot::Root => {
                    self.boot(o)?;
                }
                Boot::Files | Boot::None => {}
            }
            if o == Output::Gcp && !self.options.disk_size.is_multiple_of(GIB) {
                return Err(FormatError::Refused {
                    format: o.name(),
                    reason: format!(
                        "GCP imports disks of whole GiB; --size is {} MiB",
                        self.options.disk_size / MIB
                    ),
                });
            }
        }
        Ok(())
    }

    /// The hybrid ISO grown to `--size`, into `file` (empty).
    fn bios_disk(&self, file: &mut PatchFile<'_>, format: Output) -> Result<(), FormatError> {
        let (boot, loader) = (self.boot(format)?, self.loader(format)?);
        let (_, size) = write_hybrid_iso(&mut *file, boot, loader, self.hybrid_efi())
            .map_err(failed(format))?;
        let disk = self.options.disk_size;
        if size > disk {
            return Err(failed(format)(BootError::DiskTooSmall {
                size: disk,
                needed: size.div_ceil(MIB) * MIB,
            }));
        }
        file.set_len(disk).map_err(io_at("growing", &self.name("")))
    }

    fn efi_disk(&self, file: &mut PatchFile<'_>, format: Output) -> Result<(), FormatError> {
        let (boot, loader) = (self.boot(format)?, self.loader(format)?);
        write_efi_disk(&mut *file, boot, loader, self.options.disk_size).map_err(failed(format))?;
        Ok(())
    }

    /// A raw disk for a re-encoding format: a raw output already staged,
    /// else a scratch file beside the outputs.
    fn raw(&mut self, format: Output, efi: bool) -> Result<RawImage, FormatError> {
        let have = if efi { &self.efi_raw } else { &self.bios_raw };
        if have.is_none() {
            let dir = self
                .base
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let key = self.name(if efi { "-efi-disk" } else { "-bios-disk" });
            let (tmp, old) = spare::take(&key, dir, SCRATCH_DISK, None)
                .map_err(io_at("creating a temporary file in", dir))?;
            let mut disk = PatchFile::over(tmp.as_file(), old);
            if efi {
                self.efi_disk(&mut disk, format)?;
            } else {
                self.bios_disk(&mut disk, format)?;
            }
            disk.finish().map_err(io_at("writing", tmp.path()))?;
            let path = tmp.into_temp_path();
            let raw = Raw {
                path: path.to_path_buf(),
                _scratch: Some(ScratchDisk {
                    held: Some(path),
                    key,
                }),
            };
            if efi {
                self.efi_raw = Some(raw);
            } else {
                self.bios_raw = Some(raw);
            }
        }
        let have = if efi { &self.efi_raw } else { &self.bios_raw };
        let path = have.as_ref().map(|r| r.path.clone()).unwrap_or_default();
        RawImage::open(&path).map_err(|e| failed(format)(e.into()))
    }

    /// Writes `output`'s files into `staged`.
    pub(super) fn write(
        &mut self,
        output: Output,
        staged: &mut Vec<Staged>,
    ) -> Result<(), FormatError> {
        let epoch = self
            .boot
            .map_or(slipway_assemble::DEFAULT_MTIME, |b| b.epoch);
        match output {
            Output::KernelInitrd => self.kernel_initrd(staged),
            Output::TarKernelInitrd => self.tar_kernel_initrd(staged, epoch),
            Output::Uki => {
                let (boot, loader) = (self.boot(output)?, self.loader(output)?);
                staged.push(stage_file(&self.name(".efi"), |f| {
                    write_uki(f, boot, loader).map(drop).map_err(failed(output))
                })?);
                Ok(())
            }
            Output::IsoBios | Output::IsoEfi => {
                let (boot, loader) = (self.boot(output)?, self.loader(output)?);
                let efi = self.hybrid_efi();
                staged.push(stage_file(&self.name(output.suffixes()[0]), |f| {
                    write_hybrid_iso(f, boot, loader, efi)
                        .map(drop)
                        .map_err(failed(output))
                })?);
                Ok(())
            }
            Output::IsoEfiInitrd => {
                let (boot, loader) = (self.boot(output)?, self.loader(output)?);
                staged.push(stage_file(&self.name(output.suffixes()[0]), |f| {
                    write_efi_iso(f, boot, loader)
                        .map(drop)
                        .map_err(failed(output))
                })?);
                Ok(())
            }
            Output::RawBios | Output::Aws => {
                let s = stage_file(&self.name(output.suffixes()[0]), |f| {
                    self.bios_disk(f, output)
                })?;
                if self.bios_raw.is_none() {
                    self.bios_raw = Some(Raw {
                        path: s.tmp.path().to_path_buf(),
                        _scratch: None,
                    });
                }
                staged.push(s);
                Ok(())
            }
            Output::RawEfi => {
                let s = stage_file(&self.name(output.suffixes()[0]), |f| {
                    self.efi_disk(f, output)
                })?;
                if self.efi_raw.is_none() {
                    self.efi_raw = Some(Raw {
                        path: s.tmp.path().to_path_buf(),
                        _scratch: None,
                    });
                }
                staged.push(s);
                Ok(())
            }
            Output::Qcow2Bios | Output::Qcow2Efi => {
                let raw = self.raw(output, output == Output::Qcow2Efi)?;
                staged.push(stage(&self.name(output.suffixes()[0]), |w| {
                    qcow2::write(&raw, w)
                        .map(drop)
                        .map_err(|e| failed(output)(e.into()))
                })?);
                Ok(())
            }
            Output::Vhd => {
                let raw = self.raw(output, false)?;
                staged.push(stage_file(&self.name(".vhd"), |f| {
                    vhd::write_fixed(&raw, f, epoch)
                        .map(drop)
                        .map_err(|e| failed(output)(e.into()))
                })?);
                Ok(())
            }
            Output::DynamicVhd => {
                let raw = self.raw(output, false)?;
                staged.push(stage(&self.name(".vhd"), |w| {
                    vhd::write_dynamic(&raw, w, epoch)
                        .map(drop)
                        .map_err(|e| failed(output)(e.into()))
                })?);
                Ok(())
            }
            Output::Vmdk => {
                let raw = self.raw(output, false)?;
                let path = self.name(".vmdk");
                let extent = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                staged.push(stage(&path, |w| {
                    vmdk::write(&raw, w, &extent)
                        .map(drop)
                        .map_err(|e| failed(output)(e.into()))
                })?);
                Ok(())
            }
            Output::Gcp => {
                let raw = self.raw(output, false)?;
                staged.push(stage(&self.name(".img.tar.gz"), |w| {
                    gcp::write(&raw, w, epoch)
                        .map(drop)
                        .map_err(|e| failed(output)(e.into()))
                })?);
                Ok(())
            }
            Output::KernelSquashfs | Output::KernelErofs | Output::KernelIso => {
                self.root_image(output, staged, epoch)
            }
            Output::Tar | Output::Docker => Ok(()),
        }
    }

    fn kernel_initrd(&mut self, staged: &mut Vec<Staged>) -> Result<(), FormatError> {
        if let Some(k) = &self.built.kernel {
            staged.push(stage(&self.name("-kernel"), |w| copy_file(k, w))?);
        }
        match self.early_initrd.take() {
            Some(initrd) => staged.push(initrd),
            None => staged.push(stage(&self.name("-initrd.img"), |w| {
                self.built.write_initrd(w)
            })?),
        }
        if let Some(c) = &self.built.cmdline {
            staged.push(stage(&self.name("-cmdline"), |w| copy_file(c, w))?);
        }
        Ok(())
    }

    /// The kernel, the small initrd, the command line naming the root
    /// device, and the root filesystem image.
    fn root_image(
        &self,
        output: Output,
        staged: &mut Vec<Staged>,
        epoch: u64,
    ) -> Result<(), FormatError> {
        let boot = self.boot(output)?;
        if let Some(k) = &self.built.kernel {
            staged.push(stage(&self.name("-kernel"), |w| copy_file(k, w))?);
        }
        let cmdline = with_root(&boot.cmdline, output);
        let path = self.name("-cmdline");
        staged.push(stage(&path, |w| {
            w.write_all(cmdline.as_bytes())
                .map_err(io_at("writing", &path))
        })?);
        staged.push(stage(&self.name("-initrd.img"), |w| {
            write_small_initrd(self.units, self.blobs, self.options.compression, output, w)
        })?);
        let path = self.name(output.suffixes()[3]);
        staged.push(stage_file(&path, |f| {
            write_root_image(output, self.units, self.blobs, epoch, f, &path)
        })?);
        Ok(())
    }

    /// A tar of kernel, initrd.img, cmdline and ucode.cpio.
    fn tar_kernel_initrd(&self, staged: &mut Vec<Staged>, mtime: u64) -> Result<(), FormatError> {
        let dir = self
            .built
            .segments
            .first()
            .and_then(|(p, _)| p.parent())
            .map_or_else(std::env::temp_dir, Path::to_path_buf);
        let initrd_tmp =
            tempfile::NamedTempFile::new_in(&dir).map_err(io_at("creating a file in", &dir))?;
        {
            let mut w = std::io::BufWriter::new(initrd_tmp.as_file());
            self.built.write_initrd(&mut w)?;
            w.flush().map_err(io_at("writing", initrd_tmp.path()))?;
        }
        let parts: Vec<(&str, Option<&Path>)> = vec![
            ("kernel", self.built.kernel.as_deref()),
            ("initrd.img", Some(initrd_tmp.path())),
            ("cmdline", self.built.cmdline.as_deref()),
            ("ucode.cpio", self.built.ucode.as_deref()),
        ];
        staged.push(stage(&self.name("-initrd.tar"), |w| {
            let mut tw = TarWriter::new(&mut *w);
            for (n, p) in parts {
                let Some(p) = p else { continue };
                let size = fs::metadata(p).map_err(io_at("reading", p))?.len();
                let mut h = Header::new(n, Kind::File { size }, 0o644);
                h.mtime = mtime;
                let mut f = File::open(p).map_err(io_at("reading", p))?;
                EntrySink::entry(&mut tw, &h, &[], &mut f).map_err(io_at("writing", p))?;
            }
            finish(w).map_err(io_at("writing", Path::new("the end of the tar")))
        })?);
        Ok(())
    }
}
