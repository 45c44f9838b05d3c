//! The boot loader image of the ISO, disk and UKI formats (`--bootloader`):
//! by default slipway's own package, `pkg/bootloader`, whose files are
//! part of this binary so that its tag (a digest of those files) is known
//! here, the same one `cargo xtask packages` and `slipway pkg build
//! pkg/bootloader` give, and `--build-packages` can build it anywhere.
//! The image is read from the cache like every other one.

use std::path::PathBuf;

use slipway_formats::boot::BootLoader;
use slipway_oci::{ResolvedImage, Store};
use slipway_reference::Reference;

/// The files of `pkg/bootloader`, as they are in the tree (a test checks
/// that this list is the whole directory, byte for byte).
pub const PACKAGE: &[(&str, &str)] = &[
    (
        "build.yml",
        include_str!("../../../../../pkg/bootloader/build.yml"),
    ),
    (
        "debs.lock",
        include_str!("../../../../../pkg/bootloader/debs.lock"),
    ),
    (
        "README.md",
        include_str!("../../../../../pkg/bootloader/README.md"),
    ),
];

/// The scratch name of the package written out (see `slipway_scratch`).
const SCRATCH: &str = "slipway-bootloader-";

/// Where `pkg/bootloader` is in slipway's source tree, for messages.
pub const PACKAGE_DIR: &str = "pkg/bootloader";

/// The built-in package written out to a temporary directory named like
/// the tree's, so that it can be hashed (and built) as a package.
pub struct Package {
    dir: slipway_scratch::ScratchDir,
}

impl Package {
    pub fn write() -> anyhow::Result<Package> {
        let tmp = std::env::temp_dir();
        slipway_scratch::reap(&tmp, SCRATCH);
        let dir = slipway_scratch::dir_in(&tmp, SCRATCH)?;
        let pkg = dir.path().join("bootloader");
        std::fs::create_dir(&pkg)?;
        for (name, text) in PACKAGE {
            std::fs::write(pkg.join(name), text)?;
        }
        Ok(Package { dir })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("bootloader")
    }
}

/// What `--bootloader` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// slipway's own package.
    BuiltIn,
    /// `@pkg:DIR`: a package directory (relative to the working directory).
    Package(PathBuf),
    /// An image reference, pulled like a config's images.
    Reference(Reference),
}

/// `--bootloader IMAGE`: an image reference or `@pkg:DIR`; absent, the
/// built-in package.
pub fn parse(text: Option<&str>) -> anyhow::Result<Choice> {
    let Some(text) = text else {
        return Ok(Choice::BuiltIn);
    };
    match text.strip_prefix("@pkg:") {
        Some(dir) if !dir.trim().is_empty() => Ok(Choice::Package(PathBuf::from(dir))),
        Some(_) => anyhow::bail!("--bootloader @pkg: needs the path of a package directory"),
        None => Reference::parse(text)
            .map(Choice::Reference)
            .map_err(|e| anyhow::Error::new(e).context(format!("--bootloader {text}"))),
    }
}

/// Reads the boot loader files out of the resolved image (flattened, as
/// every image is; each blob checked against its digest).
pub fn read(reference: &str, image: &ResolvedImage, store: &Store) -> anyhow::Result<BootLoader> {
    let input = slipway_assemble::ImageInput {
        name: reference.to_string(),
        resolved: image.clone(),
        // Boot loader images are small; the default bounds them.
        max_layer_size: slipway_assemble::DEFAULT_MAX_LAYER_SIZE,
    };
    let mut loader = BootLoader::new(reference);
    input.write_filesystem(store, &mut loader)?;
    Ok(loader)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    /// The built-in copy is the whole of `pkg/bootloader`, byte for byte:
    /// its tag is then the one `slipway pkg build pkg/bootloader` gives.
    #[test]
    fn the_built_in_package_is_the_trees() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(PACKAGE_DIR);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut ours: Vec<String> = PACKAGE.iter().map(|(n, _)| n.to_string()).collect();
        ours.sort();
        assert_eq!(names, ours, "{} changed: update PACKAGE", dir.display());
        for (name, text) in PACKAGE {
            assert_eq!(
                std::fs::read_to_string(dir.join(name)).unwrap(),
                *text,
                "{name}"
            );
        }
    }

    #[test]
    fn choices() {
        assert_eq!(parse(None).unwrap(), Choice::BuiltIn);
        assert_eq!(
            parse(Some("@pkg:pkg/bootloader")).unwrap(),
            Choice::Package("pkg/bootloader".into())
        );
        assert!(matches!(
            parse(Some("example.org/boot:1")).unwrap(),
            Choice::Reference(_)
        ));
        assert!(parse(Some("@pkg:")).is_err());
        assert!(parse(Some("Not A Reference")).is_err());
    }
}
