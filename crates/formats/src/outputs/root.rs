//! `kernel+squashfs`, `kernel+erofs` and `kernel+iso`: the kernel, a small
//! initrd that finds and mounts the root (slipway-init and the root
//! device's kernel modules, `slipway_assemble::write_root_initrd`), a
//! command line that names the root device, and the image's filesystem
//! less `boot/` as a read-only root image.

use std::io::{self, Read, Write};
use std::path::Path;

use slipway_assemble::{BlobSource, EntrySink, Header, Unit, write_root_initrd};

use super::format::Output;
use super::patch::PatchFile;
use super::stage::io_at;
use crate::boot::{BootError, VOLUME_ID};
use crate::cpio::CpioWriter;
use crate::erofs::{ErofsOptions, ErofsWriter};
use crate::error::FormatError;
use crate::iso::{IsoOptions, IsoWriter};
use crate::segments::{Compression, GZIP_LEVEL};
use crate::squashfs::{Compressor, SquashfsOptions, SquashfsWriter};

/// The root the command line names: the first disk or CD plain qemu
/// shows (`-drive` is IDE or SATA, `sda`; `-cdrom` is `sr0`), LinuxKit's
/// choices for these formats. `slipway run` passes `root=/dev/vda` for a
/// virtio disk.
fn root_param(output: Output) -> &'static str {
    match output {
        Output::KernelIso => "root=/dev/sr0",
        _ => "root=/dev/sda",
    }
}

/// The command line with `root=` added, unless it names one.
pub(super) fn with_root(cmdline: &str, output: Output) -> String {
    let cmdline = cmdline.trim();
    if cmdline.split_whitespace().any(|p| p.starts_with("root=")) {
        cmdline.to_string()
    } else if cmdline.is_empty() {
        root_param(output).to_string()
    } else {
        format!("{cmdline} {}", root_param(output))
    }
}

/// Passes every entry but `boot/` and what is under it, which is written
/// beside the root image.
struct SkipBoot<'a> {
    inner: &'a mut dyn EntrySink,
}

fn in_boot(path: &str) -> bool {
    let p = path.trim_start_matches("./").trim_start_matches('/');
    p == "boot" || p.starts_with("boot/")
}

impl EntrySink for SkipBoot<'_> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        if in_boot(&header.path) {
            io::copy(content, &mut io::sink())?;
            return Ok(());
        }
        let links: Vec<Header> = links
            .iter()
            .filter(|l| !in_boot(&l.path))
            .cloned()
            .collect();
        self.inner.entry(header, &links, content)
    }
}

fn cpio_of<W: Write>(
    out: W,
    kernel: &Unit,
    inits: &[&Unit],
    blobs: &dyn BlobSource,
) -> Result<W, FormatError> {
    let mut cpio = CpioWriter::new(out, false);
    write_root_initrd(kernel, inits, blobs, &mut cpio)?;
    cpio.finish()
        .map_err(io_at("writing", Path::new("the small initrd")))
}

/// The small initrd, compressed as the build's initrd is.
pub(super) fn write_small_initrd(
    units: &[&Unit],
    blobs: &dyn BlobSource,
    compression: Compression,
    format: Output,
    out: &mut dyn Write,
) -> Result<(), FormatError> {
    let kernel = units
        .iter()
        .find(|u| u.is_kernel())
        .ok_or_else(|| FormatError::NoKernel {
            format: format.name().into(),
        })?;
    let inits: Vec<&Unit> = units.iter().copied().filter(|u| u.is_init()).collect();
    let at = io_at("writing", Path::new("the small initrd"));
    match compression {
        Compression::None => {
            cpio_of(out, kernel, &inits, blobs)?;
        }
        Compression::Gzip => {
            let gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            cpio_of(gz, kernel, &inits, blobs)?.finish().map_err(at)?;
        }
        Compression::Zstd => {
            let z = zstd::stream::write::Encoder::new(out, 3)
                .map_err(io_at("writing", Path::new("the small initrd")))?;
            cpio_of(z, kernel, &inits, blobs)?.finish().map_err(at)?;
        }
    }
    Ok(())
}

/// The root image of `format`: every unit's entries but `boot/`, into
/// `file` (empty).
pub(super) fn write_root_image(
    format: Output,
    units: &[&Unit],
    blobs: &dyn BlobSource,
    epoch: u64,
    file: &mut PatchFile<'_>,
    path: &Path,
) -> Result<(), FormatError> {
    let iso = |e| FormatError::Boot {
        format: format.name(),
        source: BootError::Iso(e),
    };
    match format {
        Output::KernelSquashfs => {
            let mut opts = SquashfsOptions::new(Compressor::Gzip, epoch);
            opts.skip_boot = true;
            let mut w = SquashfsWriter::new(&mut *file, opts).map_err(io_at("writing", path))?;
            for u in units {
                u.write(blobs, &mut w)?;
            }
            w.finish().map_err(io_at("writing", path))?;
        }
        Output::KernelErofs => {
            let mut opts = ErofsOptions::new(epoch);
            opts.skip_boot = true;
            opts.label = Some(VOLUME_ID.into());
            let mut w = ErofsWriter::new(&mut *file, opts).map_err(io_at("writing", path))?;
            for u in units {
                u.write(blobs, &mut w)?;
            }
            w.finish().map_err(io_at("writing", path))?;
        }
        _ => {
            let opts = IsoOptions {
                volume_id: VOLUME_ID.into(),
                epoch,
                catalog_path: None,
                hybrid_mbr: None,
            };
            let mut w = IsoWriter::new(&mut *file, opts).map_err(iso)?;
            for u in units {
                u.write(blobs, &mut SkipBoot { inner: &mut w })?;
            }
            w.finish().map_err(iso)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_added_unless_named() {
        assert_eq!(
            with_root("console=ttyS0", Output::KernelSquashfs),
            "console=ttyS0 root=/dev/sda"
        );
        assert_eq!(with_root("", Output::KernelIso), "root=/dev/sr0");
        assert_eq!(
            with_root("root=LABEL=x quiet\n", Output::KernelErofs),
            "root=LABEL=x quiet"
        );
        assert!(in_boot("./boot/kernel") && in_boot("boot") && !in_boot("bootx"));
    }
}
