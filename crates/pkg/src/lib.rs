//! `slipway pkg build`: package directories (`build.yml`) to OCI images in
//! the cache, without Docker.
//!
//! A package is LinuxKit's `build.yml` (`image`, `org`, `tag`, `arches`,
//! `config` → the `org.mobyproject.config` label, ...) plus `steps:` applied
//! in order into one image: a root directory, Debian packages fetched and
//! verified by slipway's own repository client (pinned in `debs.lock`),
//! files, symlinks, users and groups, the CA bundle, a kernel with a module
//! subset, and binaries of this workspace. See docs/packages.md.

pub mod build;
pub mod cargo_step;
pub mod deb;
pub mod def;
pub mod elf;
pub mod error;
pub mod image;
pub mod kernel;
pub mod sbom;
pub mod steps;
pub mod tag;
pub mod tree;

use std::path::Path;

use slipway_oci::{Store, StoreError};
use slipway_reference::{Arch, Platform, Reference};

pub use build::{BuildOptions, Built, BuiltImage, build};
pub use def::{PackageDef, load};
pub use error::PkgError;

/// The reference `slipway pkg build DIR` names its image for `arch`:
/// `org/image:tag` (fully expanded), whether or not it is built. Tags are
/// per architecture (see [`tag`]).
pub fn show_tag(dir: &Path, arch: Arch) -> Result<Reference, PkgError> {
    let def = def::load(dir)?;
    let tag = tag::tag(&def, arch)?;
    build::reference_for(&def, &tag)
}

/// Resolves `@pkg:DIR` to the image the cache holds for it on `arch`;
/// when it is not there, [`PkgError::NotBuilt`] names the `slipway pkg
/// build` command that makes it.
pub fn package_reference(dir: &Path, store: &Store, arch: Arch) -> Result<Reference, PkgError> {
    let reference = show_tag(dir, arch)?;
    let platform = Platform::linux(arch);
    match store.resolve(&reference, &platform) {
        Ok(_) => Ok(reference),
        Err(
            StoreError::NotCached { .. }
            | StoreError::PlatformMissing { .. }
            | StoreError::Incomplete { .. },
        ) => Err(PkgError::NotBuilt {
            reference: reference.to_string(),
            platform: platform.to_string(),
            dir: dir.to_path_buf(),
            cache: store.root().to_path_buf(),
            epoch: tag::epoch_in_tags(),
        }),
        Err(e) => Err(e.into()),
    }
}
