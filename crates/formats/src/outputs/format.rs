//! The `--format` names, LinuxKit's, and the files each writes.

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    Tar,
    KernelInitrd,
    TarKernelInitrd,
    Docker,
    IsoBios,
    IsoEfi,
    IsoEfiInitrd,
    RawBios,
    RawEfi,
    Qcow2Bios,
    Qcow2Efi,
    Vhd,
    DynamicVhd,
    Vmdk,
    Gcp,
    Aws,
    KernelSquashfs,
    KernelErofs,
    KernelIso,
    Uki,
}

/// How a format boots, which decides what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// Not bootable on its own (`tar`, `docker`).
    None,
    /// The kernel and initrd as files, for a boot loader or `qemu -kernel`.
    Files,
    /// The hybrid ISO (isolinux; and the UKI when the kernel has an EFI
    /// stub), as an ISO or a disk.
    Bios,
    /// Through a UKI: the kernel must have an EFI stub.
    Efi,
    /// The kernel, a small initrd and a root filesystem image.
    Root,
}

/// LinuxKit's formats slipway does not write: names accepted where
/// nothing is written (`--dry-run`), refused where something would be.
pub const NOT_YET: &[&str] = &["rpi3"];

impl Output {
    /// Every format this version writes, in LinuxKit's order, then `uki`.
    pub const ALL: [Output; 20] = [
        Output::Tar,
        Output::KernelInitrd,
        Output::TarKernelInitrd,
        Output::Docker,
        Output::IsoBios,
        Output::IsoEfi,
        Output::IsoEfiInitrd,
        Output::RawBios,
        Output::RawEfi,
        Output::Qcow2Bios,
        Output::Qcow2Efi,
        Output::Vhd,
        Output::DynamicVhd,
        Output::Vmdk,
        Output::Gcp,
        Output::Aws,
        Output::KernelSquashfs,
        Output::KernelErofs,
        Output::KernelIso,
        Output::Uki,
    ];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Output::Tar => "tar",
            Output::KernelInitrd => "kernel+initrd",
            Output::TarKernelInitrd => "tar-kernel-initrd",
            Output::Docker => "docker",
            Output::IsoBios => "iso-bios",
            Output::IsoEfi => "iso-efi",
            Output::IsoEfiInitrd => "iso-efi-initrd",
            Output::RawBios => "raw-bios",
            Output::RawEfi => "raw-efi",
            Output::Qcow2Bios => "qcow2-bios",
            Output::Qcow2Efi => "qcow2-efi",
            Output::Vhd => "vhd",
            Output::DynamicVhd => "dynamic-vhd",
            Output::Vmdk => "vmdk",
            Output::Gcp => "gcp",
            Output::Aws => "aws",
            Output::KernelSquashfs => "kernel+squashfs",
            Output::KernelErofs => "kernel+erofs",
            Output::KernelIso => "kernel+iso",
            Output::Uki => "uki",
        }
    }

    /// The suffixes of the files it writes, appended to `DIR/NAME`
    /// (LinuxKit's, and `.efi` for the UKI).
    pub fn suffixes(self) -> &'static [&'static str] {
        match self {
            Output::Tar => &[".tar"],
            Output::Docker => &[".docker"],
            Output::KernelInitrd => &["-kernel", "-initrd.img", "-cmdline"],
            Output::TarKernelInitrd => &["-initrd.tar"],
            Output::IsoBios => &[".iso"],
            Output::IsoEfi => &["-efi.iso"],
            Output::IsoEfiInitrd => &["-efi-initrd.iso"],
            Output::RawBios => &["-bios.img"],
            Output::RawEfi => &["-efi.img"],
            Output::Qcow2Bios => &[".qcow2"],
            Output::Qcow2Efi => &["-efi.qcow2"],
            Output::Vhd | Output::DynamicVhd => &[".vhd"],
            Output::Vmdk => &[".vmdk"],
            Output::Gcp => &[".img.tar.gz"],
            Output::Aws => &[".raw"],
            Output::KernelSquashfs => &["-kernel", "-initrd.img", "-cmdline", "-squashfs.img"],
            Output::KernelErofs => &["-kernel", "-initrd.img", "-cmdline", "-erofs.img"],
            Output::KernelIso => &["-kernel", "-initrd.img", "-cmdline", ".iso"],
            Output::Uki => &[".efi"],
        }
    }

    /// Whether it can be written to standard output (`-o -`).
    pub fn streamable(self) -> bool {
        matches!(self, Output::Tar | Output::Docker)
    }

    /// How it boots.
    pub fn boot(self) -> Boot {
        match self {
            Output::Tar | Output::Docker => Boot::None,
            Output::KernelInitrd | Output::TarKernelInitrd => Boot::Files,
            Output::IsoBios
            | Output::RawBios
            | Output::Qcow2Bios
            | Output::Vhd
            | Output::DynamicVhd
            | Output::Vmdk
            | Output::Gcp
            | Output::Aws => Boot::Bios,
            Output::IsoEfi
            | Output::IsoEfiInitrd
            | Output::RawEfi
            | Output::Qcow2Efi
            | Output::Uki => Boot::Efi,
            Output::KernelSquashfs | Output::KernelErofs | Output::KernelIso => Boot::Root,
        }
    }

    /// Whether it needs a `kernel:` with an image.
    pub fn needs_kernel(self) -> bool {
        self.boot() != Boot::None
    }

    /// Whether it needs the boot loader files (isolinux, the EFI stub).
    pub fn needs_bootloader(self) -> bool {
        matches!(self.boot(), Boot::Bios | Boot::Efi)
    }

    /// Whether it is a disk of `--size` bytes.
    pub fn sized(self) -> bool {
        matches!(
            self,
            Output::RawBios
                | Output::RawEfi
                | Output::Qcow2Bios
                | Output::Qcow2Efi
                | Output::Vhd
                | Output::DynamicVhd
                | Output::Vmdk
                | Output::Gcp
                | Output::Aws
        )
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
        "the {name} format is not available in this version of slipway; available: {}",
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
/// LinuxKit's it does not write. Those are accepted where nothing is
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

/// Two formats of one build that would write the same file (`vhd` and
/// `dynamic-vhd`, `iso-bios` and `kernel+iso`, `kernel+initrd` and the
/// `kernel+` root formats, which write a different initrd and command
/// line): the first such pair and the file's suffix.
pub fn clash(outputs: &[Output]) -> Option<(Output, Output, &'static str)> {
    for (i, a) in outputs.iter().enumerate() {
        for b in &outputs[i + 1..] {
            if a == b {
                continue;
            }
            if let Some(s) = a.suffixes().iter().find(|s| b.suffixes().contains(s)) {
                return Some((*a, *b, s));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back_and_files_follow_linuxkit() {
        for o in Output::ALL {
            assert_eq!(o.name().parse::<Output>().unwrap(), o);
            assert_eq!(format!(" {o} ").parse::<Output>().unwrap(), o);
            assert!(!o.suffixes().is_empty());
        }
        let files = |o: Output| o.suffixes().join(" ");
        assert_eq!(files(Output::IsoBios), ".iso");
        assert_eq!(files(Output::IsoEfi), "-efi.iso");
        assert_eq!(files(Output::IsoEfiInitrd), "-efi-initrd.iso");
        assert_eq!(files(Output::RawBios), "-bios.img");
        assert_eq!(files(Output::RawEfi), "-efi.img");
        assert_eq!(files(Output::Qcow2Bios), ".qcow2");
        assert_eq!(files(Output::Qcow2Efi), "-efi.qcow2");
        assert_eq!(files(Output::Gcp), ".img.tar.gz");
        assert_eq!(files(Output::Aws), ".raw");
        assert_eq!(files(Output::Uki), ".efi");
        assert_eq!(
            clash(&[Output::Vhd, Output::Tar, Output::DynamicVhd]),
            Some((Output::Vhd, Output::DynamicVhd, ".vhd"))
        );
        assert_eq!(
            clash(&[Output::IsoBios, Output::KernelIso]).map(|c| c.2),
            Some(".iso")
        );
        assert!(clash(&[Output::KernelInitrd, Output::KernelSquashfs]).is_some());
        assert_eq!(
            clash(&[
                Output::IsoBios,
                Output::IsoEfi,
                Output::RawBios,
                Output::Uki
            ]),
            None
        );
        assert_eq!(
            "rpi3".parse::<Output>().unwrap_err().to_string(),
            format!(
                "the rpi3 format is not available in this version of slipway; available: {}",
                available()
            )
        );
        assert_eq!(
            "rpi3".parse::<RequestedFormat>().unwrap(),
            RequestedFormat::NotYet("rpi3")
        );
        assert!("floppy".parse::<RequestedFormat>().is_err());
    }
}
