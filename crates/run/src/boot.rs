//! What to boot: a path (and `--kernel`, `--squashfs`, `--iso`, `--uefi`)
//! resolved into a [`Boot`], with a clear error for anything else.
//!
//! A path that exists is classified by its bytes ([`crate::detect`]); one
//! that does not is a prefix when `<path>-kernel` exists, as LinuxKit's
//! `build` writes them: `<p>-kernel` with `<p>-squashfs.img`,
//! `<p>-erofs.img` or `<p>.iso` (a root filesystem, attached read-only as
//! the first virtio disk, `root=/dev/vda` appended unless the command line
//! has a `root=`; where that `root=` names a SATA disk or a CD, as a root
//! format's own command line does, it is attached there: see
//! `crate::qemu`), or with `<p>-initrd.img`. A root-image prefix boots with
//! `<p>-initrd.img` too when it is there: a kernel whose block and
//! filesystem drivers are modules needs one to mount the root.

use std::fs;
use std::path::{Path, PathBuf};

use crate::RunError;
use crate::detect::{self, Kind};

/// What `slipway run` boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// `<prefix>-kernel`, `<prefix>-initrd.img`, `<prefix>-cmdline`.
    Kernel {
        /// The kernel.
        kernel: PathBuf,
        /// The initramfs.
        initrd: PathBuf,
        /// The kernel command line.
        cmdline: String,
    },
    /// A kernel with its root filesystem on a read-only disk
    /// (`kernel+squashfs`, `kernel+erofs`, `kernel+iso`).
    KernelRoot {
        /// The kernel.
        kernel: PathBuf,
        /// `<prefix>-initrd.img`, when there is one.
        initrd: Option<PathBuf>,
        /// The command line, with `root=/dev/vda` unless it named a root.
        cmdline: String,
        /// The root filesystem image: the first virtio disk, or the SATA
        /// disk or CD `root=` names.
        root: PathBuf,
        /// `squashfs`, `erofs` or `iso9660`.
        fs: &'static str,
    },
    /// An ISO image, as a CD-ROM (`-cdrom`).
    Iso {
        /// The image.
        path: PathBuf,
        /// What its El Torito catalog boots.
        info: detect::IsoInfo,
    },
    /// A disk image, the first virtio disk.
    Disk {
        /// The image.
        path: PathBuf,
        /// qemu's format: `raw`, `qcow2`, `vpc`, `vmdk`.
        format: &'static str,
        /// Open with `snapshot=on`: writes go to a temporary overlay
        /// (streamOptimized VMDK, which qemu cannot write).
        snapshot: bool,
        /// The firmware its first sector asks for: `Uefi` without BIOS boot
        /// code; `None` when the bytes do not say (qcow2, VHD, VMDK).
        firmware: Option<Firmware>,
    },
    /// A GCP image (`NAME.img.tar.gz`): `disk.raw` is extracted into the
    /// state directory and booted from there.
    GcpTarball {
        /// The archive.
        path: PathBuf,
    },
    /// An EFI application (a UKI), loaded by OVMF through `-kernel`.
    Efi {
        /// The application.
        path: PathBuf,
    },
}

/// Which firmware a disk needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, qemu's default.
    Bios,
    /// UEFI (OVMF).
    Uefi,
}

/// What the command line says the path is (`--kernel`, `--squashfs`,
/// `--iso`); `Auto` decides from the files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hint {
    /// Decide from the files.
    #[default]
    Auto,
    /// `--kernel`: a kernel+initrd prefix.
    Kernel,
    /// `--squashfs`: a kernel+squashfs prefix.
    Squashfs,
    /// `--iso`: an ISO image.
    Iso,
}

/// The default command line of a prefix without `-cmdline`.
const DEFAULT_CMDLINE: &str = "console=ttyS0";

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

fn not_bootable(path: &Path, reason: impl Into<String>) -> RunError {
    RunError::NotBootable {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl Boot {
    /// What `path` names, decided from the files alone.
    pub fn detect(path: &Path) -> Result<Boot, RunError> {
        Boot::detect_as(path, Hint::Auto)
    }

    /// What `path` names, as `hint` says it is: an error when the files
    /// disagree, or when they are not something `slipway run` boots.
    pub fn detect_as(path: &Path, hint: Hint) -> Result<Boot, RunError> {
        let kernel = with_suffix(path, "-kernel");
        let prefix = !path.is_file() && kernel.is_file();
        match hint {
            Hint::Kernel | Hint::Squashfs if !kernel.is_file() => {
                return Err(not_bootable(
                    path,
                    format!(
                        "{} was given, but there is no {}",
                        if hint == Hint::Kernel {
                            "--kernel"
                        } else {
                            "--squashfs"
                        },
                        kernel.display()
                    ),
                ));
            }
            Hint::Kernel | Hint::Squashfs => return prefix_boot(path, hint),
            _ if prefix => return prefix_boot(path, hint),
            _ => {}
        }
        if !path.exists() {
            return Err(missing(path));
        }
        let kind = detect::detect(path).map_err(|source| RunError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        if hint == Hint::Iso && !matches!(kind, Kind::Iso(_)) {
            return Err(not_bootable(
                path,
                format!("--iso was given, but it is {}", kind.describe()),
            ));
        }
        from_kind(path, kind)
    }

    /// The image the machine starts from, for messages.
    pub fn path(&self) -> &Path {
        match self {
            Boot::Kernel { kernel, .. } | Boot::KernelRoot { kernel, .. } => kernel,
            Boot::Iso { path, .. }
            | Boot::Disk { path, .. }
            | Boot::GcpTarball { path }
            | Boot::Efi { path } => path,
        }
    }

    /// The firmware this boot needs when the command line does not ask for
    /// one: `Uefi` for an EFI application, an EFI-only ISO, a disk without
    /// BIOS boot code; else `Bios`.
    pub fn default_firmware(&self) -> Firmware {
        match self {
            Boot::Efi { .. } => Firmware::Uefi,
            Boot::Iso { info, .. } if !info.bios && info.efi => Firmware::Uefi,
            Boot::Disk {
                firmware: Some(Firmware::Uefi),
                ..
            } => Firmware::Uefi,
            _ => Firmware::Bios,
        }
    }

    /// The firmware to boot with: `--uefi` (`uefi`) or the default; an
    /// error for an ISO without an EFI boot entry (OVMF would find nothing
    /// to start). A disk is taken at its word: OVMF also boots a FAT
    /// partition that is not typed as an ESP.
    pub fn firmware(&self, uefi: bool) -> Result<Firmware, RunError> {
        if !uefi {
            return Ok(self.default_firmware());
        }
        match self {
            Boot::Iso { path, info } if !info.efi => Err(not_bootable(
                path,
                "--uefi was given, but the ISO has no El Torito EFI boot entry (boot it without --uefi)",
            )),
            _ => Ok(Firmware::Uefi),
        }
    }
}

/// The error for a path that does not exist: which prefix files are there.
fn missing(path: &Path) -> RunError {
    let near: Vec<String> = [
        "-initrd.img",
        "-squashfs.img",
        "-erofs.img",
        "-cmdline",
        ".iso",
    ]
    .iter()
    .map(|s| with_suffix(path, s))
    .filter(|p| p.exists())
    .map(|p| p.display().to_string())
    .collect();
    if near.is_empty() {
        not_bootable(
            path,
            format!(
                "it does not exist, and neither does {} (a kernel+initrd prefix)",
                with_suffix(path, "-kernel").display()
            ),
        )
    } else {
        not_bootable(
            path,
            format!(
                "it does not exist; {} does, but {} does not",
                near.join(", "),
                with_suffix(path, "-kernel").display()
            ),
        )
    }
}

/// A boot for a file of kind `kind`, or the reason it is none.
fn from_kind(path: &Path, kind: Kind) -> Result<Boot, RunError> {
    let disk = |format, snapshot, firmware| {
        Ok(Boot::Disk {
            path: path.to_path_buf(),
            format,
            snapshot,
            firmware,
        })
    };
    match kind {
        Kind::Iso(info) if info.bios || info.efi => Ok(Boot::Iso {
            path: path.to_path_buf(),
            info,
        }),
        Kind::Iso(_) => Err(not_bootable(
            path,
            "it is an ISO 9660 image without an El Torito boot record: a data CD (the root \
             filesystem of a kernel+iso build boots through its prefix: `slipway run PREFIX`)",
        )),
        Kind::Qcow2 | Kind::Vhd { dynamic: false } => {
            // The disk inside says which firmware, when it can be read.
            let inner = detect::inner_disk(path, &kind).map_err(|source| RunError::Io {
                what: format!("reading {}", path.display()),
                source,
            })?;
            let format = if kind == Kind::Qcow2 { "qcow2" } else { "vpc" };
            disk(format, false, inner.map(firmware_for))
        }
        Kind::Vhd { .. } => disk("vpc", false, None),
        Kind::Vmdk { stream_optimized } => disk("vmdk", stream_optimized, None),
        Kind::VmdkDescriptor => disk("vmdk", false, None),
        Kind::RawDisk(info) => disk("raw", false, Some(firmware_for(info))),
        Kind::GcpTarball => Ok(Boot::GcpTarball {
            path: path.to_path_buf(),
        }),
        Kind::Uki | Kind::EfiApp => Ok(Boot::Efi {
            path: path.to_path_buf(),
        }),
        other => Err(refused(path, &other)),
    }
}

/// Without boot code a BIOS has nothing to run: UEFI.
fn firmware_for(info: detect::DiskInfo) -> Firmware {
    if info.bios_code {
        Firmware::Bios
    } else {
        Firmware::Uefi
    }
}

/// Why a file of a known kind is not booted, and what would boot.
fn refused(path: &Path, kind: &Kind) -> RunError {
    let what = kind.describe();
    let text = path.to_string_lossy();
    let prefix_of = |suffix: &str| text.strip_suffix(suffix).map(str::to_owned);
    let hint = match kind {
        Kind::Text { .. } => format!(
            ", not an image: build it first with `slipway build {text}`, then run the output"
        ),
        Kind::LinuxKernel => match prefix_of("-kernel") {
            Some(p) => format!(
                ", which needs an initrd: run its prefix, `slipway run {p}` ({p}-initrd.img \
                 or {p}-squashfs.img beside it)"
            ),
            None => ", which needs an initrd: name the kernel PREFIX-kernel beside \
                      PREFIX-initrd.img and run `slipway run PREFIX`"
                .to_owned(),
        },
        Kind::Squashfs | Kind::Erofs => {
            let suffix = if *kind == Kind::Squashfs {
                "-squashfs.img"
            } else {
                "-erofs.img"
            };
            match prefix_of(suffix) {
                Some(p) => format!(
                    ", a root filesystem: run its prefix with the kernel, `slipway run {p}`"
                ),
                None => format!(
                    ", a root filesystem: name it PREFIX{suffix} beside PREFIX-kernel and run \
                     `slipway run PREFIX`, or attach it with --disk"
                ),
            }
        }
        Kind::Initramfs { .. } => match prefix_of("-initrd.img") {
            Some(p) => format!(", which needs a kernel: run its prefix, `slipway run {p}`"),
            None => ", which needs a kernel: name them PREFIX-kernel and PREFIX-initrd.img \
                      and run `slipway run PREFIX`"
                .to_owned(),
        },
        Kind::Ext => ", not a bootable disk: attach it to a machine with --disk".to_owned(),
        Kind::Tar => {
            ", not an image (`slipway build -f tar` writes these): build a bootable format \
             such as kernel+initrd"
                .to_owned()
        }
        Kind::Directory => directory_hint(path),
        Kind::Zeros | Kind::Empty => {
            ", not a bootable image: attach a blank disk with --disk".to_owned()
        }
        _ => ", not an image `slipway run` boots".to_owned(),
    };
    not_bootable(path, format!("it is {what}{hint}"))
}

/// Prefixes and images inside a directory, to suggest one.
fn directory_hint(dir: &Path) -> String {
    let mut found: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let prefix = name.strip_suffix("-kernel")?;
            Some(dir.join(prefix).display().to_string())
        })
        .collect();
    found.sort();
    match found.first() {
        Some(first) => format!(
            "; it holds {}: run one, e.g. `slipway run {first}`",
            found
                .iter()
                .map(|p| format!("the prefix {p}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => ", not an image".to_owned(),
    }
}

/// `<p>.iso` is also the name of `iso-bios`'s hybrid ISO, which one build
/// writes beside its `kernel+initrd` files: an ISO with El Torito boot
/// entries boots on its own and is not a `kernel+iso` root (a data CD).
fn is_boot_iso(path: &Path) -> bool {
    matches!(detect::detect(path), Ok(Kind::Iso(info)) if info.bios || info.efi)
}

/// A prefix boot: a root image or an initrd beside `<path>-kernel`.
fn prefix_boot(path: &Path, hint: Hint) -> Result<Boot, RunError> {
    let kernel = with_suffix(path, "-kernel");
    let cmdline = fs::read_to_string(with_suffix(path, "-cmdline"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|_| DEFAULT_CMDLINE.to_owned());
    let initrd = with_suffix(path, "-initrd.img");
    let roots: [(&str, &'static str); 3] = [
        ("-squashfs.img", "squashfs"),
        ("-erofs.img", "erofs"),
        (".iso", "iso9660"),
    ];
    check_part(&kernel, "a kernel", |k| *k == Kind::LinuxKernel)?;
    if hint != Hint::Kernel {
        for (suffix, fs) in roots {
            if hint == Hint::Squashfs && fs != "squashfs" {
                continue;
            }
            let root = with_suffix(path, suffix);
            if !root.is_file() || (fs == "iso9660" && is_boot_iso(&root)) {
                continue;
            }
            check_part(&root, "a root filesystem", |k| match fs {
                "squashfs" => *k == Kind::Squashfs,
                "erofs" => *k == Kind::Erofs,
                _ => matches!(k, Kind::Iso(_)),
            })?;
            if initrd.is_file() {
                check_part(&initrd, "an initrd", initrd_like)?;
            }
            let cmdline = if cmdline.split_whitespace().any(|a| a.starts_with("root=")) {
                cmdline
            } else {
                format!("{cmdline} root=/dev/vda")
            };
            return Ok(Boot::KernelRoot {
                kernel,
                initrd: initrd.is_file().then_some(initrd),
                cmdline,
                root,
                fs,
            });
        }
        if hint == Hint::Squashfs {
            return Err(not_bootable(
                path,
                format!(
                    "--squashfs was given, but there is no {}",
                    with_suffix(path, "-squashfs.img").display()
                ),
            ));
        }
    }
    if !initrd.is_file() {
        return Err(not_bootable(
            path,
            format!(
                "{} exists, but neither {} nor a root image ({}-squashfs.img, -erofs.img, .iso) does",
                kernel.display(),
                initrd.display(),
                path.display()
            ),
        ));
    }
    check_part(&initrd, "an initrd", initrd_like)?;
    Ok(Boot::Kernel {
        kernel,
        initrd,
        cmdline,
    })
}

/// A prefix's part is what its name says, or the boot is refused with what
/// it is: qemu would start a kernel that is a YAML file and fail late and
/// obscurely (or not at all).
fn check_part(path: &Path, what: &str, ok: impl Fn(&Kind) -> bool) -> Result<(), RunError> {
    let kind = detect::detect(path).map_err(|source| RunError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    if ok(&kind) {
        return Ok(());
    }
    let hint = match (what, &kind) {
        ("a kernel", Kind::Elf) => {
            " (an uncompressed vmlinux?): slipway run boots a bzImage, the kernel's `make bzImage`"
        }
        ("a kernel", Kind::Uki) => ": run the UKI itself, `slipway run FILE`",
        _ => "",
    };
    Err(not_bootable(
        path,
        format!("it should be {what}, but it is {}{hint}", kind.describe()),
    ))
}

/// What the kernel may unpack as an initramfs: a cpio archive, compressed
/// or not (lz4, bzip2, lzo and lzma streams are not recognised, so bytes of
/// an unknown kind pass too).
fn initrd_like(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Initramfs { .. } | Kind::Compressed(_) | Kind::Unknown(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of a bzImage: its `HdrS` setup header.
    fn kernel() -> Vec<u8> {
        let mut k = vec![0u8; 1024];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k
    }

    #[test]
    fn prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        fs::write(dir.path().join("img-kernel"), kernel()).unwrap();
        fs::write(dir.path().join("img-cmdline"), b"console=ttyS0 quiet\n").unwrap();
        let err = Boot::detect(&p).unwrap_err().to_string();
        assert!(err.contains("img-initrd.img"), "{err}");
        fs::write(dir.path().join("img-initrd.img"), b"070701").unwrap();
        assert_eq!(
            Boot::detect(&p).unwrap(),
            Boot::Kernel {
                kernel: dir.path().join("img-kernel"),
                initrd: dir.path().join("img-initrd.img"),
                cmdline: "console=ttyS0 quiet".into(),
            }
        );
        let mut erofs = vec![0u8; 2048];
        erofs[1024..1028].copy_from_slice(&[0xe2, 0xe1, 0xf5, 0xe0]);
        fs::write(dir.path().join("img-erofs.img"), erofs).unwrap();
        match Boot::detect(&p).unwrap() {
            Boot::KernelRoot {
                initrd,
                cmdline,
                root,
                fs,
                ..
            } => {
                assert_eq!(initrd, Some(dir.path().join("img-initrd.img")));
                assert_eq!(cmdline, "console=ttyS0 quiet root=/dev/vda");
                assert_eq!(root, dir.path().join("img-erofs.img"));
                assert_eq!(fs, "erofs");
            }
            other => panic!("{other:?}"),
        }
        // --kernel keeps the initrd boot; --squashfs wants a squashfs.
        assert!(matches!(
            Boot::detect_as(&p, Hint::Kernel).unwrap(),
            Boot::Kernel { .. }
        ));
        let err = Boot::detect_as(&p, Hint::Squashfs).unwrap_err().to_string();
        assert!(err.contains("img-squashfs.img"), "{err}");
        // A root= on the command line is kept.
        fs::write(dir.path().join("img-cmdline"), b"root=/dev/sda\n").unwrap();
        fs::write(dir.path().join("img-squashfs.img"), b"hsqs").unwrap();
        match Boot::detect_as(&p, Hint::Squashfs).unwrap() {
            Boot::KernelRoot { cmdline, fs, .. } => {
                assert_eq!((cmdline.as_str(), fs), ("root=/dev/sda", "squashfs"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Each part of a prefix is checked against its bytes.
    #[test]
    fn prefix_parts_are_what_they_say() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        fs::write(dir.path().join("img-kernel"), b"kernel:\n  image: x\n").unwrap();
        fs::write(dir.path().join("img-initrd.img"), b"070701").unwrap();
        let err = Boot::detect(&p).unwrap_err().to_string();
        assert!(
            err.contains("img-kernel: it should be a kernel, but it is a text file"),
            "{err}"
        );
        fs::write(dir.path().join("img-kernel"), kernel()).unwrap();
        fs::write(dir.path().join("img-initrd.img"), b"").unwrap();
        let err = Boot::detect(&p).unwrap_err().to_string();
        assert!(
            err.contains("it should be an initrd, but it is an empty file"),
            "{err}"
        );
        fs::write(dir.path().join("img-initrd.img"), b"070701").unwrap();
        fs::write(dir.path().join("img-squashfs.img"), b"hello\n").unwrap();
        let err = Boot::detect(&p).unwrap_err().to_string();
        assert!(
            err.contains("it should be a root filesystem, but it is a text file"),
            "{err}"
        );
        fs::write(dir.path().join("img-squashfs.img"), b"hsqs").unwrap();
        assert!(matches!(
            Boot::detect(&p).unwrap(),
            Boot::KernelRoot { fs: "squashfs", .. }
        ));
    }

    #[test]
    fn missing_paths_say_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let err = Boot::detect(&dir.path().join("nothing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("nothing-kernel"), "{err}");
        fs::write(dir.path().join("x-squashfs.img"), b"s").unwrap();
        let err = Boot::detect(&dir.path().join("x")).unwrap_err().to_string();
        assert!(err.contains("x-squashfs.img does"), "{err}");
        let err = Boot::detect_as(&dir.path().join("x"), Hint::Kernel)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--kernel was given"), "{err}");
    }
}
