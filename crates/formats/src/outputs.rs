//! The output formats LinuxKit writes without Docker, each file written to
//! a temporary name beside it and renamed when complete.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use slipway_assemble::{AssembleError, BlobSource, EntrySink, Header, KernelPart, Kind, Unit};

use crate::segments::{
    Compression, FormatError, SegmentCache, UnitReport, Writer, build_units, concatenate,
};
use crate::tar::{TarWriter, finish};

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Tar,
    KernelInitrd,
    TarKernelInitrd,
    Docker,
}

/// LinuxKit's other formats: names accepted as formats, not written yet.
pub const NOT_YET: &[&str] = &[
    "aws",
    "dynamic-vhd",
    "gcp",
    "iso-bios",
    "iso-efi",
    "iso-efi-initrd",
    "kernel+iso",
    "kernel+squashfs",
    "qcow2-bios",
    "qcow2-efi",
    "raw-bios",
    "raw-efi",
    "rpi3",
    "vhd",
    "vmdk",
];

impl Output {
    /// Every format this version writes.
    pub const ALL: [Output; 4] = [
        Output::Tar,
        Output::KernelInitrd,
        Output::TarKernelInitrd,
        Output::Docker,
    ];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Output::Tar => "tar",
            Output::KernelInitrd => "kernel+initrd",
            Output::TarKernelInitrd => "tar-kernel-initrd",
            Output::Docker => "docker",
        }
    }

    /// Whether it can be written to standard output (`-o -`).
    pub fn streamable(self) -> bool {
        matches!(self, Output::Tar | Output::Docker)
    }

    /// Whether it is made of the kernel and an initrd.
    pub fn needs_kernel(self) -> bool {
        matches!(self, Output::KernelInitrd | Output::TarKernelInitrd)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn available() -> String {
    Output::ALL.map(Output::name).join(", ")
}

/// A `--format` name this version does not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownOutput {
    #[error(
        "the {name} format is not available in this version of slipway yet; available: {}",
        available()
    )]
    NotYet { name: String },
    #[error("unknown format {name:?}; available: {}", available())]
    Unknown { name: String },
}

impl std::str::FromStr for Output {
    type Err = UnknownOutput;

    /// A format name, surrounding spaces ignored.
    fn from_str(s: &str) -> Result<Output, UnknownOutput> {
        let name = s.trim();
        if let Some(o) = Output::ALL.into_iter().find(|o| o.name() == name) {
            return Ok(o);
        }
        let name = name.to_string();
        Err(if NOT_YET.contains(&name.as_str()) {
            UnknownOutput::NotYet { name }
        } else {
            UnknownOutput::Unknown { name }
        })
    }
}

/// A `--format` name as given: a format this version writes, or one of
/// LinuxKit's it does not write yet. Those are accepted where nothing is
/// written (`--dry-run` takes any LinuxKit command line) and refused by
/// [`RequestedFormat::output`] where something would be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestedFormat {
    Output(Output),
    NotYet(&'static str),
}

impl RequestedFormat {
    /// The format to write, or why there is none.
    pub fn output(self) -> Result<Output, UnknownOutput> {
        match self {
            RequestedFormat::Output(o) => Ok(o),
            RequestedFormat::NotYet(name) => Err(UnknownOutput::NotYet {
                name: name.to_string(),
            }),
        }
    }
}

impl std::fmt::Display for RequestedFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestedFormat::Output(o) => o.fmt(f),
            RequestedFormat::NotYet(name) => f.write_str(name),
        }
    }
}

impl std::str::FromStr for RequestedFormat {
    type Err = UnknownOutput;

    fn from_str(s: &str) -> Result<RequestedFormat, UnknownOutput> {
        match s.parse::<Output>() {
            Ok(o) => Ok(RequestedFormat::Output(o)),
            Err(UnknownOutput::NotYet { name }) => NOT_YET
                .iter()
                .find(|n| **n == name)
                .map(|n| RequestedFormat::NotYet(n))
                .ok_or(UnknownOutput::NotYet { name }),
            Err(e) => Err(e),
        }
    }
}

/// A file written.
#[derive(Clone, Debug)]
pub struct OutputFile {
    pub path: PathBuf,
    pub bytes: u64,
}

fn io_at(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FormatError + use<> {
    let path = path.to_path_buf();
    move |source| FormatError::Io { what, path, source }
}

/// The OS's reason for an I/O error, without Rust's `(os error N)` or a
/// wrapper's own additions.
fn os_reason(err: &io::Error) -> String {
    let inner = err
        .get_ref()
        .and_then(|e| e.source())
        .and_then(|e| e.downcast_ref::<io::Error>())
        .unwrap_or(err);
    let text = inner.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// An output written in full to a temporary file beside its final name,
/// not yet renamed.
struct Staged {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
    bytes: u64,
}

/// Writes `path`'s contents to a temporary file in the same directory.
/// Dropped without [`commit`], the temporary file is removed.
fn stage(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<(), FormatError>,
) -> Result<Staged, FormatError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if path.is_dir() {
        return Err(FormatError::Io {
            what: "writing",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::IsADirectory, "a directory is in the way"),
        });
    }
    // An output is an ordinary file: 0666 less the umask, as any tool
    // writing a file makes it (a temporary file would be 0600).
    let tmp = tempfile::Builder::new()
        .prefix(".slipway-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        // tempfile's error names the temporary file, which means nothing
        // to the user; the directory and the reason are what matter.
        .map_err(|e| io::Error::new(e.kind(), os_reason(&e)))
        .map_err(io_at("cannot write in", dir))?;
    let mut w = BufWriter::new(tmp);
    f(&mut w)?;
    let tmp = w.into_inner().map_err(|e| FormatError::Io {
        what: "writing",
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    tmp.as_file().sync_all().map_err(io_at("syncing", path))?;
    let bytes = tmp
        .as_file()
        .metadata()
        .map_err(io_at("reading", path))?
        .len();
    Ok(Staged {
        tmp,
        path: path.to_path_buf(),
        bytes,
    })
}

/// Renames every staged file into place, all or none: each file it replaces
/// is first hard-linked to a backup name, and a failed rename puts the
/// earlier ones back.
fn commit(staged: Vec<Staged>) -> Result<Vec<OutputFile>, FormatError> {
    let mut backups: Vec<(PathBuf, Option<tempfile::TempPath>)> = Vec::new();
    for s in &staged {
        let backup = if s.path.is_file() {
            let dir = s.tmp.path().parent().unwrap_or(Path::new("."));
            let name = tempfile::Builder::new()
                .prefix(".slipway-previous-")
                .make_in(dir, |p| fs::hard_link(&s.path, p))
                .map_err(io_at("keeping the previous", &s.path))?;
            Some(name.into_temp_path())
        } else {
            None
        };
        backups.push((s.path.clone(), backup));
    }
    let mut done = Vec::new();
    for (i, s) in staged.into_iter().enumerate() {
        let (path, bytes) = (s.path.clone(), s.bytes);
        if let Err(e) = s.tmp.persist(&path) {
            // Put back what this build replaced (the first `i`), newest first.
            for (target, backup) in backups[..i].iter().rev() {
                match backup {
                    Some(b) => {
                        let _ = fs::rename(b, target);
                    }
                    None => {
                        let _ = fs::remove_file(target);
                    }
                }
            }
            return Err(FormatError::Io {
                what: "renaming to",
                path,
                source: e.error,
            });
        }
        done.push(OutputFile { path, bytes });
    }
    // The backups are removed as they drop.
    Ok(done)
}

/// Writes `path` through a temporary file in the same directory, renamed
/// into place when `f` has written it all.
pub fn write_file(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<(), FormatError>,
) -> Result<OutputFile, FormatError> {
    let mut files = commit(vec![stage(path, f)?])?;
    files.pop().ok_or_else(|| FormatError::Io {
        what: "writing",
        path: path.to_path_buf(),
        source: io::Error::other("nothing was written"),
    })
}

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

/// Writes `outputs` as `<base>...` files, all or none: each is written to a
/// temporary name, and they are renamed only when every one is complete.
/// Returns the files and unit reports.
pub fn write_outputs(
    outputs: &[Output],
    units: &[&Unit],
    blobs: &dyn BlobSource,
    cache: &SegmentCache,
    compression: Compression,
    base: &Path,
) -> Result<(Vec<OutputFile>, Vec<UnitReport>), FormatError> {
    let name = |suffix: &str| {
        let mut s = base.as_os_str().to_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    let mut staged = Vec::new();
    let mut reports = Vec::new();
    for output in outputs {
        match output {
            Output::Tar | Output::Docker => {
                let docker = *output == Output::Docker;
                let path = name(if docker { ".docker" } else { ".tar" });
                staged.push(stage(&path, |w| {
                    reports = write_tar(units, blobs, cache, docker, w)?;
                    Ok(())
                })?);
            }
            Output::KernelInitrd | Output::TarKernelInitrd => {
                let kernel =
                    units
                        .iter()
                        .find(|u| u.is_kernel())
                        .ok_or_else(|| FormatError::Io {
                            what: "building",
                            path: name(""),
                            source: io::Error::other(
                                "kernel+initrd outputs need a `kernel:` with an image",
                            ),
                        })?;
                // The kernel's parts are read from its image while the units
                // are encoded, not before: no core waits for them.
                let (parts, built) = std::thread::scope(|scope| {
                    let parts = scope.spawn(|| {
                        let part = |p| kernel_part(kernel, blobs, cache, p);
                        Ok::<_, FormatError>((
                            part(KernelPart::Kernel)?,
                            part(KernelPart::Cmdline)?,
                            part(KernelPart::Ucode)?,
                        ))
                    });
                    let built = build_units(units, blobs, Writer::Initrd(compression), cache);
                    let parts = parts.join().unwrap_or_else(|_| {
                        Err(FormatError::Io {
                            what: "reading",
                            path: cache.dir.clone(),
                            source: io::Error::other("the kernel thread panicked"),
                        })
                    });
                    (parts, built)
                });
                let (kpath, cpath, upath) = parts?;
                let built = built?;
                reports = built.iter().map(|(_, r)| r.clone()).collect();
                let write_initrd = |w: &mut dyn Write| -> Result<(), FormatError> {
                    if let Some(u) = &upath {
                        copy_file(u, w)?;
                    }
                    concatenate(&built, w)
                };
                if *output == Output::KernelInitrd {
                    if let Some(k) = &kpath {
                        staged.push(stage(&name("-kernel"), |w| copy_file(k, w))?);
                    }
                    staged.push(stage(&name("-initrd.img"), write_initrd)?);
                    if let Some(c) = &cpath {
                        staged.push(stage(&name("-cmdline"), |w| copy_file(c, w))?);
                    }
                } else {
                    // A tar of kernel, initrd.img, cmdline and ucode.cpio.
                    let initrd_tmp = tempfile::NamedTempFile::new_in(&cache.dir)
                        .map_err(io_at("creating a file in", &cache.dir))?;
                    {
                        let mut w = BufWriter::new(initrd_tmp.as_file());
                        write_initrd(&mut w)?;
                        w.flush().map_err(io_at("writing", initrd_tmp.path()))?;
                    }
                    let parts: Vec<(&str, Option<&Path>)> = vec![
                        ("kernel", kpath.as_deref()),
                        ("initrd.img", Some(initrd_tmp.path())),
                        ("cmdline", cpath.as_deref()),
                        ("ucode.cpio", upath.as_deref()),
                    ];
                    staged.push(stage(&name("-initrd.tar"), |w| {
                        let mut tw = TarWriter::new(&mut *w);
                        for (n, p) in parts {
                            let Some(p) = p else { continue };
                            let size = fs::metadata(p).map_err(io_at("reading", p))?.len();
                            let mut h = Header::new(n, Kind::File { size }, 0o644);
                            h.mtime = generated_mtime(units);
                            let mut f = File::open(p).map_err(io_at("reading", p))?;
                            EntrySink::entry(&mut tw, &h, &[], &mut f)
                                .map_err(io_at("writing", p))?;
                        }
                        finish(w).map_err(io_at("writing", Path::new("the end of the tar")))
                    })?);
                }
            }
        }
    }
    // Renamed only once every output is complete.
    Ok((commit(staged)?, reports))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn put(bytes: &'static [u8]) -> impl FnOnce(&mut dyn Write) -> Result<(), FormatError> {
        move |w| {
            w.write_all(bytes)
                .map_err(io_at("writing", Path::new("test")))
        }
    }

    #[test]
    fn a_failed_rename_puts_back_the_files_already_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        fs::write(&a, "old a").unwrap();
        let staged = vec![
            stage(&a, put(b"new a")).unwrap(),
            stage(&c, put(b"new c")).unwrap(),
            stage(&b, put(b"new b")).unwrap(),
        ];
        // Something takes b's place between writing and renaming.
        fs::create_dir(&b).unwrap();
        fs::write(b.join("inside"), "x").unwrap();
        let err = commit(staged).unwrap_err();
        assert!(err.to_string().contains("renaming"), "{err}");
        assert_eq!(fs::read(&a).unwrap(), b"old a");
        assert!(!c.exists(), "a new file stayed after a failed build");
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a", "b"]);
    }

    #[test]
    fn format_and_compression_names_parse_and_print_back() {
        for o in Output::ALL {
            assert_eq!(o.name().parse::<Output>().unwrap(), o);
            assert_eq!(format!(" {o} ").parse::<Output>().unwrap(), o);
        }
        assert_eq!(
            "iso-efi".parse::<Output>().unwrap_err().to_string(),
            "the iso-efi format is not available in this version of slipway yet; available: tar, kernel+initrd, tar-kernel-initrd, docker"
        );
        assert_eq!(
            "floppy".parse::<Output>().unwrap_err().to_string(),
            "unknown format \"floppy\"; available: tar, kernel+initrd, tar-kernel-initrd, docker"
        );
        assert_eq!(
            "iso-efi".parse::<RequestedFormat>().unwrap(),
            RequestedFormat::NotYet("iso-efi")
        );
        assert!(
            "iso-efi"
                .parse::<RequestedFormat>()
                .unwrap()
                .output()
                .is_err()
        );
        assert_eq!(
            "tar".parse::<RequestedFormat>().unwrap().output().unwrap(),
            Output::Tar
        );
        assert!("floppy".parse::<RequestedFormat>().is_err());
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
    fn outputs_are_renamed_together() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, "old").unwrap();
        let staged = vec![stage(&a, put(b"new")).unwrap()];
        // Written but not renamed: the old file is still there.
        assert_eq!(fs::read(&a).unwrap(), b"old");
        let files = commit(staged).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].bytes, 3);
        assert_eq!(fs::read(&a).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
