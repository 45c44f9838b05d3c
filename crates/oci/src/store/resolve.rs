//! Finding the image for a platform among what the cache holds.

use slipway_reference::{Digest, Platform, Reference};

use super::Store;
use crate::descriptor::{Descriptor, ImageManifest, ManifestKind};
use crate::error::StoreError;

/// A single-platform image the cache holds completely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The fully expanded reference it was resolved from.
    pub reference: String,
    /// What the reference names: an index or the manifest itself.
    pub root: Descriptor,
    /// The manifest for the platform (equal to `root` for a single image).
    pub manifest_descriptor: Descriptor,
    pub manifest: ImageManifest,
}

impl ResolvedImage {
    /// The digest to pin the reference to (`image@sha256:...`): the root's.
    pub fn digest(&self) -> &Digest {
        &self.root.digest
    }

    /// Config and layers: every blob the image needs besides its manifest.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.manifest.config).chain(self.manifest.layers.iter())
    }
}

/// The entry of an index for `wanted`: OS and architecture must match; if
/// `wanted` names a variant, an entry with that variant is preferred, else
/// the first OS/architecture match is taken (LinuxKit ignores variants).
/// Entries without a platform or with OS `unknown` (attestations) never match.
pub fn select_platform<'a>(
    manifests: &'a [Descriptor],
    wanted: &Platform,
) -> Option<&'a Descriptor> {
    let wanted = wanted.normalized();
    let candidates: Vec<(&Descriptor, Platform)> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| (d, p.to_platform())))
        .filter(|(_, p)| p.os != "unknown" && p.matches_os_arch(&wanted))
        .collect();
    candidates
        .iter()
        .find(|(_, p)| wanted.variant.is_some() && p.variant == wanted.variant)
        .or_else(|| candidates.first())
        .map(|(d, _)| *d)
}

/// The platforms an index lists, for error messages.
pub(crate) fn listed_platforms(manifests: &[Descriptor]) -> Vec<String> {
    manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.to_platform().to_string())
        .collect()
}

impl Store {
    /// Resolves `reference` for `platform` from the cache alone. Valid when
    /// the root is named in `index.json`, and the manifest for the platform,
    /// its config and its layers are all present. An index whose other
    /// platforms are absent is fine.
    pub fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, StoreError> {
        let name = reference.to_string();
        let root = self
            .lookup(reference)?
            .ok_or_else(|| StoreError::NotCached {
                reference: name.clone(),
                root: self.root().to_path_buf(),
            })?;
        self.resolve_descriptor(&name, root, platform)
    }

    /// As [`Store::resolve`], from a root descriptor already found.
    pub fn resolve_descriptor(
        &self,
        name: &str,
        root: Descriptor,
        platform: &Platform,
    ) -> Result<ResolvedImage, StoreError> {
        let not_cached = || StoreError::NotCached {
            reference: name.to_string(),
            root: self.root().to_path_buf(),
        };
        if !self.has_blob(&root.digest) {
            return Err(not_cached());
        }
        let (manifest_descriptor, manifest) = match self.read_document(&root)? {
            ManifestKind::Manifest(m) => (root.clone(), m),
            ManifestKind::Index(index) => {
                let child = select_platform(&index.manifests, platform)
                    .ok_or_else(|| StoreError::PlatformMissing {
                        reference: name.to_string(),
                        wanted: platform.to_string(),
                        available: listed_platforms(&index.manifests),
                    })?
                    .clone();
                if !self.has_blob(&child.digest) {
                    return Err(StoreError::Incomplete {
                        reference: name.to_string(),
                        wanted: platform.to_string(),
                        missing: vec![child.digest],
                    });
                }
                match self.read_document(&child)? {
                    ManifestKind::Manifest(m) => (child, m),
                    ManifestKind::Index(_) => {
                        return Err(StoreError::BadDocument {
                            what: "manifest",
                            digest: child.digest,
                            source: serde::de::Error::custom(
                                "a nested index where a manifest was expected",
                            ),
                        });
                    }
                }
            }
        };
        let image = ResolvedImage {
            reference: name.to_string(),
            root,
            manifest_descriptor,
            manifest,
        };
        let missing: Vec<Digest> = image
            .blobs()
            .filter(|d| !self.has_blob(&d.digest))
            .map(|d| d.digest.clone())
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::Incomplete {
                reference: name.to_string(),
                wanted: platform.to_string(),
                missing,
            });
        }
        Ok(image)
    }

    /// Reads and parses a manifest or index blob.
    pub fn read_document(&self, descriptor: &Descriptor) -> Result<ManifestKind, StoreError> {
        let bytes = self.read_blob(&descriptor.digest, "manifest")?;
        ManifestKind::parse(Some(&descriptor.media_type), &bytes).map_err(|source| {
            StoreError::BadDocument {
                what: "manifest",
                digest: descriptor.digest.clone(),
                source,
            }
        })
    }
}
