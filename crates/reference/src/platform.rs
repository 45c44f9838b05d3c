//! Architectures and OCI platforms (`linux/arm64`, `linux/arm/v7`).

use std::fmt;
use std::str::FromStr;

/// Why an architecture or platform string is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// An architecture slipway cannot build for.
    #[error(
        "unsupported architecture {arch:?}: expected one of amd64 (x86_64), arm64 (aarch64), riscv64, s390x"
    )]
    UnknownArch {
        /// The architecture as written.
        arch: String,
    },
    /// A platform string that is not `os/arch[/variant]`.
    #[error("invalid platform {input:?}: {reason}")]
    InvalidPlatform {
        /// The whole input.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// An architecture slipway builds images for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
    /// 64-bit RISC-V.
    Riscv64,
    /// IBM Z.
    S390x,
}

impl Arch {
    /// Every supported architecture.
    pub const ALL: [Arch; 4] = [Arch::Amd64, Arch::Arm64, Arch::Riscv64, Arch::S390x];

    /// Accepts OCI/Go names and `uname -m` names, in any case:
    /// `amd64`/`x86_64`/`x86-64`, `arm64`/`aarch64`, `riscv64`, `s390x`.
    pub fn parse(s: &str) -> Result<Arch, PlatformError> {
        match s.to_ascii_lowercase().as_str() {
            "amd64" | "x86_64" | "x86-64" => Ok(Arch::Amd64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            "riscv64" => Ok(Arch::Riscv64),
            "s390x" => Ok(Arch::S390x),
            _ => Err(PlatformError::UnknownArch { arch: s.to_owned() }),
        }
    }

    /// The OCI (Go) name, e.g. `amd64`.
    pub fn as_oci(&self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
            Arch::Riscv64 => "riscv64",
            Arch::S390x => "s390x",
        }
    }

    /// The kernel's (`uname -m`) name, e.g. `x86_64`.
    pub fn as_uname(&self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::S390x => "s390x",
        }
    }

    /// The architecture this program was compiled for, if slipway supports it.
    pub fn host() -> Option<Arch> {
        Arch::parse(std::env::consts::ARCH).ok()
    }
}

impl fmt::Display for Arch {
    /// The OCI name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_oci())
    }
}

impl FromStr for Arch {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Arch, PlatformError> {
        Arch::parse(s)
    }
}

/// An OCI platform. Any OS and architecture are representable (image indexes
/// list platforms slipway does not build for); [`Platform::arch`] says whether
/// the architecture is a supported [`Arch`].
///
/// [`Platform::parse`] normalises the way containerd's `platforms.Normalize`
/// does, so that spellings of the same platform compare equal: names are
/// lowercased; `x86_64`/`x86-64` → `amd64` (variant `v1` dropped); `aarch64` →
/// `arm64`, where `v8` is the default and dropped (`8`, `v8`, `v8.0` → none;
/// `9`, `9.0`, `v9.0` → `v9`); `i386` → `386`; `armhf` → `arm/v7`; `armel` →
/// `arm/v6`; `arm` without a variant means `arm/v7`, and a bare number `5`,
/// `6`, `7`, `8` becomes `v5`…`v8`; `macos` → `darwin`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// OCI architecture name, e.g. `arm64`.
    pub architecture: String,
    /// Architecture variant, e.g. `v7`.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses and normalises `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let invalid = |reason: &str| PlatformError::InvalidPlatform {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let (os, architecture, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => return Err(invalid("expected os/arch or os/arch/variant")),
        };
        for (what, part) in [
            ("the os", Some(os)),
            ("the architecture", Some(architecture)),
            ("the variant", variant),
        ] {
            let Some(part) = part else { continue };
            if part.is_empty() {
                return Err(invalid(&format!("{what} is empty")));
            }
            if let Some(bad) = part
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            {
                return Err(invalid(&format!(
                    "{what} contains {bad:?}; allowed are letters, digits, '_', '.' and '-'"
                )));
            }
        }
        Ok(Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
        .normalized())
    }

    /// `linux/<arch>`, normalised (no variant: arm64's default `v8` is implied).
    pub fn linux(arch: Arch) -> Platform {
        Platform {
            os: "linux".to_owned(),
            architecture: arch.as_oci().to_owned(),
            variant: None,
        }
    }

    /// The same platform, normalised as [`Platform::parse`] does. Useful for
    /// platforms read from image indexes, which are not normalised.
    pub fn normalized(&self) -> Platform {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            other => other.to_owned(),
        };
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let (architecture, variant) =
            normalize_arch(&self.architecture.to_ascii_lowercase(), variant.as_deref());
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The architecture as a supported [`Arch`], if it is one.
    pub fn arch(&self) -> Option<Arch> {
        Arch::parse(&self.architecture).ok()
    }

    /// LinuxKit matches on OS + architecture only (variant ignored) when
    /// reading the cache. Both sides are normalised first.
    pub fn matches_os_arch(&self, other: &Platform) -> bool {
        let (a, b) = (self.normalized(), other.normalized());
        a.os == b.os && a.architecture == b.architecture
    }
}

/// containerd's architecture/variant normalisation (see [`Platform`]).
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let keep = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_owned);
    match arch {
        "i386" => ("386".to_owned(), None),
        "x86_64" | "x86-64" | "amd64" => {
            let variant = if variant == Some("v1") {
                None
            } else {
                keep(variant)
            };
            ("amd64".to_owned(), variant)
        }
        "aarch64" | "arm64" => {
            let variant = match variant {
                Some("8" | "v8" | "v8.0") => None,
                Some("9" | "9.0" | "v9.0") => Some("v9".to_owned()),
                other => keep(other),
            };
            ("arm64".to_owned(), variant)
        }
        "armhf" => ("arm".to_owned(), Some("v7".to_owned())),
        "armel" => ("arm".to_owned(), Some("v6".to_owned())),
        "arm" => {
            let variant = match variant {
                None | Some("" | "7") => Some("v7".to_owned()),
                Some(n @ ("5" | "6" | "8")) => Some(format!("v{n}")),
                other => keep(other),
            };
            ("arm".to_owned(), variant)
        }
        other => (other.to_owned(), keep(variant)),
    }
}

impl fmt::Display for Platform {
    /// `os/arch[/variant]`, e.g. `linux/arm/v7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) if !variant.is_empty() => write!(f, "/{variant}"),
            _ => Ok(()),
        }
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        let cases = [
            ("amd64", Arch::Amd64),
            ("x86_64", Arch::Amd64),
            ("x86-64", Arch::Amd64),
            ("AMD64", Arch::Amd64),
            ("arm64", Arch::Arm64),
            ("aarch64", Arch::Arm64),
            ("riscv64", Arch::Riscv64),
            ("s390x", Arch::S390x),
        ];
        for (input, arch) in cases {
            assert_eq!(Arch::parse(input), Ok(arch), "{input}");
            assert_eq!(input.parse::<Arch>(), Ok(arch), "{input}");
        }
        for arch in Arch::ALL {
            assert_eq!(Arch::parse(arch.as_oci()), Ok(arch));
            assert_eq!(Arch::parse(arch.as_uname()), Ok(arch));
            assert_eq!(arch.to_string(), arch.as_oci());
        }
        assert_eq!(Arch::Amd64.as_uname(), "x86_64");
        assert_eq!(Arch::Arm64.as_uname(), "aarch64");
        assert_eq!(Arch::Riscv64.as_oci(), "riscv64");
        assert_eq!(Arch::S390x.as_uname(), "s390x");
    }

    #[test]
    fn unknown_arch() {
        for input in ["", "arm", "386", "ppc64le", "mips", "x86"] {
            let err = Arch::parse(input).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "unsupported architecture {input:?}: expected one of amd64 (x86_64), arm64 (aarch64), riscv64, s390x"
                )
            );
        }
    }

    #[test]
    fn host_arch_matches_compile_target() {
        let expected = match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            "riscv64" => Some(Arch::Riscv64),
            "s390x" => Some(Arch::S390x),
            _ => None,
        };
        assert_eq!(Arch::host(), expected);
    }

    fn p(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: arch.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    #[test]
    fn parse_normalises() {
        let cases = [
            ("linux/amd64", p("linux", "amd64", None)),
            ("linux/x86_64", p("linux", "amd64", None)),
            ("linux/x86-64", p("linux", "amd64", None)),
            ("linux/amd64/v1", p("linux", "amd64", None)),
            ("linux/amd64/v3", p("linux", "amd64", Some("v3"))),
            ("linux/arm64", p("linux", "arm64", None)),
            ("linux/aarch64", p("linux", "arm64", None)),
            ("linux/arm64/v8", p("linux", "arm64", None)),
            ("linux/arm64/8", p("linux", "arm64", None)),
            ("linux/arm64/v8.0", p("linux", "arm64", None)),
            ("linux/arm64/9", p("linux", "arm64", Some("v9"))),
            ("linux/arm64/v9.0", p("linux", "arm64", Some("v9"))),
            ("linux/arm64/v8.2", p("linux", "arm64", Some("v8.2"))),
            ("linux/arm", p("linux", "arm", Some("v7"))),
            ("linux/arm/7", p("linux", "arm", Some("v7"))),
            ("linux/arm/6", p("linux", "arm", Some("v6"))),
            ("linux/arm/v5", p("linux", "arm", Some("v5"))),
            ("linux/armhf", p("linux", "arm", Some("v7"))),
            ("linux/armel", p("linux", "arm", Some("v6"))),
            ("linux/i386", p("linux", "386", None)),
            ("linux/riscv64", p("linux", "riscv64", None)),
            ("linux/s390x", p("linux", "s390x", None)),
            ("linux/ppc64le", p("linux", "ppc64le", None)),
            ("Linux/AMD64", p("linux", "amd64", None)),
            ("macos/arm64", p("darwin", "arm64", None)),
            ("windows/amd64", p("windows", "amd64", None)),
        ];
        for (input, expected) in cases {
            assert_eq!(Platform::parse(input), Ok(expected.clone()), "{input}");
            assert_eq!(input.parse::<Platform>(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn display() {
        assert_eq!(
            p("linux", "arm64", Some("v8")).to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(p("linux", "arm64", None).to_string(), "linux/arm64");
        assert_eq!(p("linux", "arm64", Some("")).to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        for arch in Arch::ALL {
            let platform = Platform::linux(arch);
            assert_eq!(platform.to_string(), format!("linux/{}", arch.as_oci()));
            assert_eq!(Platform::parse(&platform.to_string()), Ok(platform.clone()));
            assert_eq!(platform.arch(), Some(arch));
        }
    }

    #[test]
    fn normalized_handles_index_platforms() {
        assert_eq!(
            p("linux", "arm64", Some("v8")).normalized(),
            Platform::linux(Arch::Arm64)
        );
        assert_eq!(p("linux", "amd64", Some("")).normalized().variant, None);
        assert_eq!(p("linux", "arm", None).arch(), None);
    }

    #[test]
    fn matches_os_arch_ignores_variant() {
        let arm64 = Platform::linux(Arch::Arm64);
        assert!(arm64.matches_os_arch(&p("linux", "arm64", Some("v8"))));
        assert!(arm64.matches_os_arch(&p("linux", "arm64", Some("v9"))));
        assert!(arm64.matches_os_arch(&p("linux", "aarch64", None)));
        assert!(!arm64.matches_os_arch(&Platform::linux(Arch::Amd64)));
        assert!(!arm64.matches_os_arch(&p("darwin", "arm64", None)));
        assert!(p("linux", "arm", Some("v6")).matches_os_arch(&p("linux", "arm", Some("v7"))));
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "",
                "invalid platform \"\": expected os/arch or os/arch/variant",
            ),
            (
                "linux",
                "invalid platform \"linux\": expected os/arch or os/arch/variant",
            ),
            (
                "linux/arm/v7/x",
                "invalid platform \"linux/arm/v7/x\": expected os/arch or os/arch/variant",
            ),
            ("/amd64", "invalid platform \"/amd64\": the os is empty"),
            (
                "linux/",
                "invalid platform \"linux/\": the architecture is empty",
            ),
            (
                "linux/arm64/",
                "invalid platform \"linux/arm64/\": the variant is empty",
            ),
            (
                "linux/amd 64",
                "invalid platform \"linux/amd 64\": the architecture contains ' '; allowed are letters, digits, '_', '.' and '-'",
            ),
            (
                "lin:ux/amd64",
                "invalid platform \"lin:ux/amd64\": the os contains ':'; allowed are letters, digits, '_', '.' and '-'",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(Platform::parse(input).unwrap_err().to_string(), *message);
        }
    }
}
