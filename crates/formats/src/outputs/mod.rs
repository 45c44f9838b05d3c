//! The output formats, each file written to a temporary name beside it and
//! all of a build's files renamed together when every one is complete.
//!
//! One assembly, many writers: the units are written once, as cached
//! segments, and every format of the build reads them. The initrd's
//! segments are built once and copied into `kernel+initrd`, the UKI, the
//! ISOs and the disks; the raw disk a re-encoded format (qcow2, VHD,
//! VMDK, GCP) is made from is written once for all of them.

mod bootable;
mod format;
mod patch;
mod root;
mod spare;
mod stage;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use slipway_assemble::{AssembleError, BlobSource, EntrySink, Header, KernelPart, Kind, Unit};

pub use format::{Boot, NOT_YET, Output, RequestedFormat, UnknownOutput, clash};
pub use stage::{OutputFile, write_file};

use crate::boot::{BootFiles, BootLoader};
use crate::error::FormatError;
use crate::segments::{
    Compression, SegmentCache, UnitReport, Writer, build_units, build_units_into, concatenate,
};
use crate::tar::{TarWriter, finish};
use stage::{Staged, commit, io_at, stage, stage_synced_ahead};

/// The time of the entries an output adds itself: the units' (all the same).
fn generated_mtime(units: &[&Unit]) -> u64 {
    units
        .first()
        .map_or(slipway_assemble::DEFAULT_MTIME, |u| u.mtime())
}

const DOCKERFILE: &str = "FROM scratch\nCOPY . ./\nENTRYPOINT [\"/bin/rc.init\"]\n";

/// The whole image as one tar stream (`tar`, or `docker` with a Dockerfile).
pub fn write_tar(
    units: &[&Unit],
    blobs: &dyn BlobSource,
    cache: &SegmentCache,
    docker: bool,
    out: &mut dyn Write,
) -> Result<Vec<UnitReport>, FormatError> {
    let files = build_units(units, blobs, Writer::Tar, cache)?;
    concatenate(&files, out)?;
    if docker {
        let mut h = Header::new(
            "Dockerfile",
            Kind::File {
                size: DOCKERFILE.len() as u64,
            },
            0o644,
        );
        h.mtime = generated_mtime(units);
        let mut w = TarWriter::new(&mut *out);
        EntrySink::entry(&mut w, &h, &[], &mut DOCKERFILE.as_bytes())
            .map_err(io_at("writing", Path::new("Dockerfile")))?;
    }
    finish(out).map_err(io_at("writing", Path::new("the end of the tar")))?;
    Ok(files.into_iter().map(|(_, r)| r).collect())
}

/// The whole image as one tar (`tar`, or `docker` with a Dockerfile) at
/// `path`, through a temporary file renamed when complete (`-o FILE`).
pub fn write_tar_file(
    path: &Path,
    units: &[&Unit],
    blobs: &dyn BlobSource,
    cache: &SegmentCache,
    docker: bool,
) -> Result<(OutputFile, Vec<UnitReport>), FormatError> {
    let mut reports = Vec::new();
    let file = write_file(path, |w| {
        reports = write_tar(units, blobs, cache, docker, w)?;
        Ok(())
    })?;
    Ok((file, reports))
}

/// A tar of the entries `f` pushes, with the end marker: a tar composed
/// outside a build, such as an image's filesystem for `cache export`.
pub fn write_entries_tar(
    out: &mut dyn Write,
    f: impl FnOnce(&mut dyn EntrySink) -> Result<(), AssembleError>,
) -> Result<(), FormatError> {
    let mut w = TarWriter::new(&mut *out);
    f(&mut w)?;
    finish(out).map_err(io_at("writing", Path::new("the end of the tar")))
}

/// A kernel part, cached like a segment.
fn kernel_part(
    unit: &Unit,
    blobs: &dyn BlobSource,
    cache: &SegmentCache,
    part: KernelPart,
) -> Result<Option<PathBuf>, FormatError> {
    let key = format!(
        "{}-{part:?}",
        crate::segments::segment_key(unit, Writer::Tar)
    );
    let path = cache.dir.join(key);
    if path.is_file() {
        return Ok(Some(path));
    }
    fs::create_dir_all(&cache.dir).map_err(io_at("creating", &cache.dir))?;
    let mut found = false;
    write_file(&path, |w| {
        found = unit.write_kernel_part(blobs, part, w)?;
        Ok(())
    })?;
    if !found {
        let _ = fs::remove_file(&path);
        return Ok(None);
    }
    Ok(Some(path))
}

fn copy_file(from: &Path, out: &mut dyn Write) -> Result<(), FormatError> {
    let mut f = File::open(from).map_err(io_at("reading", from))?;
    let mut buf = vec![0u8; 1 << 20];
    crate::segments::copy_blocks(&mut f, out, &mut buf).map_err(io_at("copying", from))?;
    Ok(())
}

/// What the outputs of a build are made with, beyond the units.
#[derive(Clone, Copy, Debug)]
pub struct OutputOptions<'a> {
    /// The initrd's compression.
    pub compression: Compression,
    /// `--size`: the size of every disk format, in bytes.
    pub disk_size: u64,
    /// isolinux and the EFI stub, for the ISO, disk and UKI formats.
    pub bootloader: Option<&'a BootLoader>,
}

/// The kernel unit's parts and the initrd's segments, built once for every
/// output that needs them.
struct Built {
    kernel: Option<PathBuf>,
    cmdline: Option<PathBuf>,
    ucode: Option<PathBuf>,
    segments: Vec<(PathBuf, UnitReport)>,
}

impl Built {
    /// The initrd: microcode, then the segments.
    fn initrd_files(&self) -> Vec<PathBuf> {
        self.ucode
            .iter()
            .cloned()
            .chain(self.segments.iter().map(|(p, _)| p.clone()))
            .collect()
    }

    fn write_initrd(&self, w: &mut dyn Write) -> Result<(), FormatError> {
        if let Some(u) = &self.ucode {
            copy_file(u, w)?;
        }
        concatenate(&self.segments, w)
    }
}

/// Builds the initrd's segments and reads the kernel's parts, at once: the
/// kernel's image is read while the units are encoded, so no core waits.
/// With `initrd`, the segments are also written there, in order, as they
/// are done (the initrd without microcode).
fn build_boot(
    units: &[&Unit],
    blobs: &dyn BlobSource,
    cache: &SegmentCache,
    compression: Compression,
    mut initrd: Option<&mut dyn Write>,
) -> Result<Built, FormatError> {
    let kernel = units
        .iter()
        .find(|u| u.is_kernel())
        .ok_or_else(|| FormatError::NoKernel {
            format: "a bootable".into(),
        })?;
    let (parts, built) = std::thread::scope(|scope| {
        let parts = scope.spawn(|| {
            let part = |p| kernel_part(kernel, blobs, cache, p);
            Ok::<_, FormatError>((
                part(KernelPart::Kernel)?,
                part(KernelPart::Cmdline)?,
                part(KernelPart::Ucode)?,
            ))
        });
        let built = build_units_into(
            units,
            blobs,
            Writer::Initrd(compression),
            cache,
            &mut |unit| match initrd.as_mut() {
                Some(w) => copy_file(unit, *w),
                None => Ok(()),
            },
        );
        let parts = parts.join().unwrap_or_else(|_| {
            Err(FormatError::Io {
                what: "reading",
                path: cache.dir.clone(),
                source: io::Error::other("the kernel thread panicked"),
            })
        });
        (parts, built)
    });
    let (kernel, cmdline, ucode) = parts?;
    Ok(Built {
        kernel,
        cmdline,
        ucode,
        segments: built?,
    })
}

/// `path` with `suffix` appended to its file name.
fn suffixed(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `outputs` as `<base>...` files, all or none: each is written to a
/// temporary name, and they are renamed only when every one is complete.
/// Returns the files and unit reports.
pub fn write_outputs(
    outputs: &[Output],
    units: &[&Unit],
    blobs: &dyn BlobSource,
    cache: &SegmentCache,
    options: &OutputOptions<'_>,
    base: &Path,
) -> Result<(Vec<OutputFile>, Vec<UnitReport>), FormatError> {
    let name = |suffix: &str| suffixed(base, suffix);
    if let Some((a, b, suffix)) = clash(outputs) {
        return Err(FormatError::Clash {
            a: a.name(),
            b: b.name(),
            file: name(suffix),
        });
    }
    let mut staged: Vec<Staged> = Vec::new();
    let mut reports = Vec::new();
    for output in outputs.iter().filter(|o| o.streamable()) {
        let docker = *output == Output::Docker;
        let path = name(if docker { ".docker" } else { ".tar" });
        staged.push(stage(&path, |w| {
            reports = write_tar(units, blobs, cache, docker, w)?;
            Ok(())
        })?);
    }
    let bootable: Vec<Output> = outputs
        .iter()
        .copied()
        .filter(|o| o.needs_kernel())
        .collect();
    if let Some(first) = bootable.first() {
        if !units.iter().any(|u| u.is_kernel()) {
            return Err(FormatError::NoKernel {
                format: first.name().into(),
            });
        }
        // The kernel+initrd output's initrd is written while its units
        // are encoded (and on its way to the disk), unless microcode must
        // come first: the parts are read beside the units.
        let early =
            bootable.contains(&Output::KernelInitrd) && !units.iter().any(|u| u.has_ucode());
        let (built, early) = if early {
            let mut built = None;
            let initrd = stage_synced_ahead(&name("-initrd.img"), |w| {
                built = Some(build_boot(
                    units,
                    blobs,
                    cache,
                    options.compression,
                    Some(w),
                )?);
                Ok(())
            })?;
            let built = built.ok_or_else(|| FormatError::Io {
                what: "building",
                path: cache.dir.clone(),
                source: io::Error::other("the initrd was not built"),
            })?;
            (built, Some(initrd))
        } else {
            (
                build_boot(units, blobs, cache, options.compression, None)?,
                None,
            )
        };
        reports = built.segments.iter().map(|(_, r)| r.clone()).collect();
        let boot = match &built.kernel {
            Some(kernel) => Some(BootFiles {
                kernel: kernel.clone(),
                cmdline: match &built.cmdline {
                    Some(c) => String::from_utf8_lossy(&fs::read(c).map_err(io_at("reading", c))?)
                        .into_owned(),
                    None => String::new(),
                },
                initrd: built.initrd_files(),
                epoch: generated_mtime(units),
            }),
            None => None,
        };
        let mut writer = bootable::Writer::new(&built, boot.as_ref(), options, base, units, blobs)?;
        writer.early_initrd = early;
        writer.check(&bootable)?;
        for output in bootable::in_writing_order(&bootable) {
            writer.write(output, &mut staged)?;
        }
    }
    // Renamed only once every output is complete.
    Ok((commit(staged)?, reports))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn compression_names_parse_and_print_back() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c);
        }
        assert_eq!("gz".parse::<Compression>().unwrap(), Compression::Gzip);
        assert_eq!("zst".parse::<Compression>().unwrap(), Compression::Zstd);
        assert_eq!(
            "lz4".parse::<Compression>().unwrap_err().to_string(),
            "unknown compression \"lz4\"; use gzip, zstd or none"
        );
    }

    #[test]
    fn suffixes_are_appended_to_the_name() {
        assert_eq!(
            suffixed(Path::new("out/img.v1"), "-efi.iso"),
            PathBuf::from("out/img.v1-efi.iso")
        );
    }
}
