//! Writing a built tree into the cache as an OCI image, deterministically.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::{Compression, GzBuilder};
use slipway_oci::media::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use slipway_oci::{Descriptor, DescriptorPlatform, ImageIndex, ManifestKind, Store};
use slipway_reference::{Arch, Digest, Reference};

use crate::error::PkgError;
use crate::tree::{HashingWriter, Tree};

pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Image metadata from `build.yml`.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// `SOURCE_DATE_EPOCH` if set and valid, else 0: the time of every entry
/// and of the image config.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// RFC 3339 UTC for a Unix time (days-from-civil inverse, Howard Hinnant's algorithm).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Writes `tree` as a one-layer image for `arch`: layer, config and
/// manifest blobs. Returns the manifest's descriptor (with its platform).
pub fn write_image(
    store: &Store,
    tree: &Tree,
    arch: Arch,
    meta: &Meta,
) -> Result<Descriptor, PkgError> {
    let epoch = source_date_epoch();
    // Layer: tar -> (diff_id hash) -> gzip (no name, mtime 0, fixed level) -> blob (digest).
    let blob = store.blob_writer(None)?;
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(HashingWriter::new(blob), Compression::new(6));
    let tar_hash = HashingWriter::new(gz);
    let tar_hash = tree.write_tar(tar_hash, epoch)?;
    let (gz, diff_id, _) = tar_hash.finish();
    let counted = gz.finish().map_err(|source| PkgError::Layer {
        what: "compressing".into(),
        source,
    })?;
    let (mut blob, _, layer_size) = counted.finish();
    blob.flush()
        .map_err(PkgError::io("writing", blob.temp_path().to_path_buf()))?;
    let layer_digest = blob.commit()?;
    let diff_id = Digest::from_sha256_bytes(&diff_id);

    let mut config = serde_json::Map::new();
    if let Some(e) = &meta.entrypoint {
        config.insert("Entrypoint".into(), serde_json::json!(e));
    }
    if let Some(c) = &meta.cmd {
        config.insert("Cmd".into(), serde_json::json!(c));
    }
    if !meta.env.is_empty() {
        config.insert("Env".into(), serde_json::json!(meta.env));
    }
    if let Some(w) = &meta.workdir {
        config.insert("WorkingDir".into(), serde_json::json!(w));
    }
    if !meta.labels.is_empty() {
        config.insert("Labels".into(), serde_json::json!(meta.labels));
    }
    let image_config = serde_json::json!({
        "created": rfc3339(epoch),
        "architecture": arch.as_oci(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": rfc3339(epoch), "created_by": "slipway pkg build"}],
    });
    let config_bytes = serde_json::to_vec(&image_config).map_err(|source| PkgError::Json {
        what: "config",
        source,
    })?;
    let config_digest = store.put_blob(&config_bytes)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": [{"mediaType": LAYER_GZIP, "digest": layer_digest.to_string(), "size": layer_size}],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| PkgError::Json {
        what: "manifest",
        source,
    })?;
    let manifest_digest = store.put_blob(&manifest_bytes)?;
    let mut d = Descriptor::new(OCI_MANIFEST, manifest_digest, manifest_bytes.len() as u64);
    d.platform = Some(DescriptorPlatform {
        architecture: arch.as_oci().to_string(),
        os: "linux".to_string(),
        variant: None,
        extra: serde_json::Map::new(),
    });
    Ok(d)
}

/// Stores the SBOM `recorder` made for the image `manifest` as its SPDX
/// attestation; returns the attestation's index entry.
pub fn attach_sbom(
    store: &Store,
    reference: &Reference,
    manifest: &Descriptor,
    recorder: &crate::sbom::Recorder,
) -> Result<Descriptor, PkgError> {
    let name = reference.to_string();
    let sbom = recorder.document(&name, source_date_epoch())?;
    let statement = slipway_report::spdx::statement(&name, manifest.digest.hex(), &sbom)
        .map_err(|e| PkgError::step("sbom", e.to_string()))?;
    Ok(slipway_oci::attestation::store_sbom(
        store,
        &manifest.digest,
        &statement,
    )?)
}

/// Names an index of `manifests` (and their SBOM `attestations`)
/// `reference` in the cache. Platforms the cache's current index for that
/// name has and `manifests` lacks are kept, with their attestations, so
/// building one arch does not drop the others. Images sorted by arch, then
/// their attestations in the same order, as BuildKit lists them.
pub fn tag_index(
    store: &Store,
    reference: &Reference,
    manifests: &[Descriptor],
    attestations: &[Descriptor],
) -> Result<Descriptor, PkgError> {
    use slipway_oci::attestation::{REFERENCE_DIGEST, is_attestation};
    let mut entries: BTreeMap<String, Descriptor> = BTreeMap::new();
    let mut attached: Vec<Descriptor> = Vec::new();
    if let Some(existing) = store.lookup(reference)?
        && store.has_blob(&existing.digest)
        && let Ok(ManifestKind::Index(index)) = store.read_document(&existing)
    {
        for d in index.manifests {
            if is_attestation(&d) {
                attached.push(d);
            } else if let Some(p) = &d.platform
                && store.has_blob(&d.digest)
            {
                entries.insert(p.architecture.clone(), d);
            }
        }
    }
    for d in manifests {
        if let Some(p) = &d.platform {
            entries.insert(p.architecture.clone(), d.clone());
        }
    }
    attached.extend(attestations.iter().cloned());
    let mut list: Vec<Descriptor> = entries.into_values().collect();
    let subjects: Vec<String> = list.iter().map(|d| d.digest.to_string()).collect();
    for subject in &subjects {
        // The last attestation made for an image wins.
        if let Some(a) = attached
            .iter()
            .rev()
            .find(|a| a.annotations.get(REFERENCE_DIGEST) == Some(subject))
            .filter(|a| store.has_blob(&a.digest))
        {
            list.push(a.clone());
        }
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: list,
        extra: serde_json::Map::new(),
    };
    let bytes = serde_json::to_vec(&index).map_err(|source| PkgError::Json {
        what: "index",
        source,
    })?;
    let digest = store.put_blob(&bytes)?;
    let d = Descriptor::new(OCI_INDEX, digest, bytes.len() as u64);
    store.set_ref(&reference.to_string(), &d)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
