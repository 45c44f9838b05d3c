//! A volume's image as an OCI image layout (`format: oci`).

use crate::blobs::BlobSource;
use crate::entry::{EntrySink, Header, Kind};
use crate::error::{AssembleError, Result};

use super::{ImageInput, dir, file};

/// Volume `format: oci`: the image as an OCI layout under `lower/`.
pub(super) fn write_oci_layout(
    image: &ImageInput,
    store: &dyn BlobSource,
    lower: &str,
    location: &str,
    sink: &mut dyn EntrySink,
) -> Result<()> {
    let source = image.name.as_str();
    let r = &image.resolved;
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    file(
        &format!("{lower}/oci-layout"),
        layout,
        source,
        location,
        sink,
    )?;
    let mut root = serde_json::to_value(&r.root).map_err(|source| AssembleError::ImageConfig {
        image: image.name.clone(),
        source,
    })?;
    root["annotations"] = serde_json::json!({ slipway_oci::REF_NAME_ANNOTATION: image.name });
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": slipway_oci::media::OCI_INDEX, "manifests": [root]});
    let index = serde_json::to_vec(&index).map_err(|source| AssembleError::ImageConfig {
        image: image.name.clone(),
        source,
    })?;
    file(
        &format!("{lower}/index.json"),
        &index,
        source,
        location,
        sink,
    )?;
    for d in [&format!("{lower}/blobs"), &format!("{lower}/blobs/sha256")] {
        dir(d, source, location, sink)?;
    }
    let mut digests = vec![r.root.digest.clone()];
    if r.manifest_descriptor.digest != r.root.digest {
        digests.push(r.manifest_descriptor.digest.clone());
    }
    digests.extend(r.blobs().map(|d| d.digest.clone()));
    digests.sort_by_key(|d| d.to_string());
    digests.dedup();
    for digest in digests {
        let mut blob = store
            .open_blob(&digest)
            .map_err(|source| AssembleError::Store {
                image: image.name.clone(),
                source,
            })?;
        let size = blob.size;
        let h = Header::new(
            format!("{lower}/blobs/sha256/{}", digest.hex()),
            Kind::File { size },
            0o644,
        )
        .with_origin(source, location);
        sink.entry(&h, &[], &mut blob)
            .map_err(AssembleError::Sink)?;
    }
    Ok(())
}
