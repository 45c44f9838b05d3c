//! SBOM attestations stored beside images, as BuildKit stores them and
//! LinuxKit reads them: in the image's index, a manifest whose descriptor
//! is annotated `vnd.docker.reference.type: attestation-manifest` and
//! `vnd.docker.reference.digest: <the image manifest's digest>`, with
//! platform `unknown/unknown`; its layers are in-toto statements
//! (`application/vnd.in-toto+json`), the SPDX one annotated
//! `in-toto.io/predicate-type: https://spdx.dev/Document`.

use std::collections::BTreeMap;

use slipway_reference::Digest;

use crate::descriptor::{Descriptor, DescriptorPlatform, ManifestKind};
use crate::error::StoreError;
use crate::media::{OCI_CONFIG, OCI_MANIFEST};
use crate::store::{ResolvedImage, Store};

pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
pub const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";

/// Whether `d` is an attestation manifest's entry in an index.
pub fn is_attestation(d: &Descriptor) -> bool {
    d.annotations.get(REFERENCE_TYPE).map(String::as_str) == Some(ATTESTATION_MANIFEST)
}

/// The attestation entry among `manifests` for the image manifest `subject`.
pub fn attestation_for<'a>(
    manifests: &'a [Descriptor],
    subject: &Digest,
) -> Option<&'a Descriptor> {
    let subject = subject.to_string();
    manifests
        .iter()
        .find(|d| is_attestation(d) && d.annotations.get(REFERENCE_DIGEST) == Some(&subject))
}

/// Stores an SPDX in-toto `statement` as an attestation manifest for the
/// image manifest `subject`; returns the descriptor to list in the index.
pub fn store_sbom(
    store: &Store,
    subject: &Digest,
    statement: &[u8],
) -> Result<Descriptor, StoreError> {
    let layer = store.put_blob(statement)?;
    let config = serde_json::json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]},
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|e| StoreError::InvalidLayout {
        path: store.root().to_path_buf(),
        reason: e.to_string(),
    })?;
    let config_digest = store.put_blob(&config_bytes)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": [{
            "mediaType": IN_TOTO,
            "digest": layer.to_string(),
            "size": statement.len(),
            "annotations": {PREDICATE_TYPE: SPDX_PREDICATE},
        }],
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::InvalidLayout {
        path: store.root().to_path_buf(),
        reason: e.to_string(),
    })?;
    let digest = store.put_blob(&bytes)?;
    let mut d = Descriptor::new(OCI_MANIFEST, digest, bytes.len() as u64);
    d.platform = Some(DescriptorPlatform {
        architecture: "unknown".into(),
        os: "unknown".into(),
        variant: None,
        extra: serde_json::Map::new(),
    });
    d.annotations = BTreeMap::from([
        (REFERENCE_TYPE.to_owned(), ATTESTATION_MANIFEST.to_owned()),
        (REFERENCE_DIGEST.to_owned(), subject.to_string()),
    ]);
    Ok(d)
}

impl Store {
    /// The SPDX in-toto statement attached to `image` (found in its index
    /// by the manifest's digest), if the cache holds one.
    pub fn attached_sbom(&self, image: &ResolvedImage) -> Result<Option<Vec<u8>>, StoreError> {
        if image.root.digest == image.manifest_descriptor.digest {
            return Ok(None);
        }
        let ManifestKind::Index(index) = self.read_document(&image.root)? else {
            return Ok(None);
        };
        let Some(entry) = attestation_for(&index.manifests, &image.manifest_descriptor.digest)
        else {
            return Ok(None);
        };
        if !self.has_blob(&entry.digest) {
            return Ok(None);
        }
        let ManifestKind::Manifest(manifest) = self.read_document(entry)? else {
            return Ok(None);
        };
        let layer = manifest.layers.iter().find(|l| {
            l.media_type == IN_TOTO
                && l.annotations.get(PREDICATE_TYPE).map(String::as_str) == Some(SPDX_PREDICATE)
        });
        match layer {
            Some(l) if self.has_blob(&l.digest) => {
                Ok(Some(self.read_blob(&l.digest, "SBOM attestation")?))
            }
            _ => Ok(None),
        }
    }
}
