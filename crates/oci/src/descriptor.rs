//! Descriptors, manifests and indexes, as serde types that keep every field
//! they do not know (`extra`), so rewriting another tool's `index.json` loses
//! nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slipway_reference::{Digest, Platform};

use crate::media;

/// The annotation naming an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    #[serde(with = "digest_serde")]
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            extra: serde_json::Map::new(),
        }
    }

    /// The `org.opencontainers.image.ref.name` annotation, if set.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(REF_NAME_ANNOTATION)
            .map(String::as_str)
    }
}

/// The `platform` object of an index entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl DescriptorPlatform {
    /// As a normalised [`Platform`].
    pub fn to_platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
        .normalized()
    }
}

/// An image index (OCI) or manifest list (Docker); also `index.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ImageIndex {
    /// An empty OCI index, as a new layout's `index.json`.
    pub fn empty() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            manifests: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }
}

/// A single-platform image manifest (OCI or Docker schema 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// What a manifest document turned out to be.
#[allow(clippy::large_enum_variant)] // short-lived; boxing would only add noise
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    Index(ImageIndex),
    Manifest(ImageManifest),
}

impl ManifestKind {
    /// Parses `bytes`, telling index from manifest by the media type given
    /// (a registry's `Content-Type` or a descriptor's), else by the document's
    /// own `mediaType`, else by its shape.
    pub fn parse(
        media_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<ManifestKind, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        let declared = media_type
            .filter(|m| media::is_index(m) || media::is_manifest(m))
            .or_else(|| value.get("mediaType").and_then(|m| m.as_str()))
            .map(str::to_string);
        let index = match declared.as_deref() {
            Some(m) if media::is_index(m) => true,
            Some(m) if media::is_manifest(m) => false,
            _ => value.get("manifests").is_some(),
        };
        if index {
            serde_json::from_value(value).map(ManifestKind::Index)
        } else {
            serde_json::from_value(value).map(ManifestKind::Manifest)
        }
    }
}

mod digest_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use slipway_reference::Digest;

    pub fn serialize<S: Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(digest)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":7,"artifactType":"x","annotations":{"org.opencontainers.image.ref.name":"docker.io/library/a:1"}}],"annotations":{"k":"v"}}"#;
        let index: ImageIndex = serde_json::from_str(text).unwrap();
        assert_eq!(index.manifests[0].ref_name(), Some("docker.io/library/a:1"));
        let back = serde_json::to_value(&index).unwrap();
        assert_eq!(back["manifests"][0]["artifactType"], "x");
        assert_eq!(back["annotations"]["k"], "v");
    }

    #[test]
    fn unknown_numbers_survive_a_round_trip_to_the_last_bit() {
        // The default float parser of serde_json reads this one ulp off.
        let text = r#"{"schemaVersion":2,"manifests":[],"x":1.9622222222222214e+21}"#;
        let index: ImageIndex = serde_json::from_str(text).unwrap();
        let again: ImageIndex =
            serde_json::from_str(&serde_json::to_string(&index).unwrap()).unwrap();
        assert_eq!(again, index);
        assert_eq!(serde_json::to_string(&index).unwrap(), text);
    }

    #[test]
    fn tells_index_from_manifest() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#;
        assert!(matches!(
            ManifestKind::parse(None, m),
            Ok(ManifestKind::Manifest(_))
        ));
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            ManifestKind::parse(None, i),
            Ok(ManifestKind::Index(_))
        ));
    }
}
