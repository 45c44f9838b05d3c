//! Pushing cached images to a registry (`slipway cache push`).

use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use slipway_reference::{Digest, Reference};

use crate::descriptor::{Descriptor, ImageIndex, ManifestKind};
use crate::registry::client::{Access, expect_success};
use crate::registry::{RegistryClient, RegistryError};
use crate::store::Store;

/// What a push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushReport {
    /// The digest now under the target tag.
    pub digest: Digest,
    /// Set when the cache held only some platforms of an index: the index
    /// pushed lists just those, so its digest differs from the original's.
    pub reduced_from: Option<Digest>,
    /// Platforms of the original index left out because their manifests are not cached.
    pub absent_platforms: Vec<String>,
}

impl RegistryClient {
    /// Whether the registry has the blob already (HEAD).
    pub async fn has_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(reference),
            reference.repository()
        );
        let make = |http: &reqwest::Client| http.head(&url);
        let response = self.send(reference, Access::Push, &url, &make).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => expect_success(reference, &url, response)
                .await
                .map(|_| false),
        }
    }

    /// Uploads a cached blob unless the registry has it, streaming it from disk.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        store: &Store,
    ) -> Result<(), RegistryError> {
        if self.has_blob(reference, &descriptor.digest).await? {
            return Ok(());
        }
        let base = self.base_url(reference);
        let start = format!("{base}/v2/{}/blobs/uploads/", reference.repository());
        let make = |http: &reqwest::Client| http.post(&start).header(CONTENT_LENGTH, 0);
        let response = self.send(reference, Access::Push, &start, &make).await?;
        let response = expect_success(reference, &start, response).await?;
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::BadManifest {
                reference: reference.to_string(),
                reason: "the registry started an upload without a Location".into(),
            })?;
        let location = if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location.to_string()
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", descriptor.digest);
        let path = store.blob_path(&descriptor.digest);
        std::fs::File::open(&path).map_err(|source| RegistryError::Store {
            reference: reference.to_string(),
            source: crate::StoreError::io("opening", &path)(source),
        })?;
        let make = |http: &reqwest::Client| {
            // Opened per try, so a retry re-sends from the start. It opened
            // above; should it vanish, the empty body is refused by digest.
            let body = std::fs::File::open(&path)
                .map(|f| reqwest::Body::from(tokio::fs::File::from_std(f)))
                .unwrap_or_else(|_| reqwest::Body::from(Vec::new()));
            http.put(&url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, descriptor.size)
                .body(body)
        };
        let response = self.send(reference, Access::Push, &url, &make).await?;
        expect_success(reference, &url, response).await.map(|_| ())
    }

    /// Puts a manifest or index under `tag_or_digest`.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.base_url(reference),
            reference.repository()
        );
        let make = |http: &reqwest::Client| {
            http.put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(bytes.to_vec())
        };
        let response = self.send(reference, Access::Push, &url, &make).await?;
        expect_success(reference, &url, response).await.map(|_| ())
    }
}

/// Pushes the cached image named `source` to `target` (tagged with its tag,
/// or `latest`). For an index, the child manifests the cache holds are
/// pushed, then the index, reduced to those children if some are absent.
pub async fn push(
    store: &Store,
    client: &RegistryClient,
    source: &Reference,
    target: &Reference,
) -> Result<PushReport, RegistryError> {
    let name = source.to_string();
    let store_error = |source| RegistryError::Store {
        reference: name.clone(),
        source,
    };
    let root = store
        .lookup(source)
        .map_err(store_error)?
        .ok_or_else(|| RegistryError::Store {
            reference: name.clone(),
            source: crate::StoreError::NotCached {
                reference: name.clone(),
                root: store.root().to_path_buf(),
            },
        })?;
    let tag = target.tag().unwrap_or("latest").to_string();
    match store.read_document(&root).map_err(store_error)? {
        ManifestKind::Manifest(manifest) => {
            push_image(store, client, target, &manifest).await?;
            let bytes = store
                .read_blob(&root.digest, "manifest")
                .map_err(store_error)?;
            client
                .push_manifest(target, &tag, &root.media_type, &bytes)
                .await?;
            Ok(PushReport {
                digest: root.digest,
                reduced_from: None,
                absent_platforms: Vec::new(),
            })
        }
        ManifestKind::Index(index) => {
            let mut present = Vec::new();
            let mut absent = Vec::new();
            for child in &index.manifests {
                let platform = child
                    .platform
                    .as_ref()
                    .map_or_else(|| child.digest.to_string(), |p| p.to_platform().to_string());
                if !store.has_blob(&child.digest) {
                    absent.push(platform);
                    continue;
                }
                match store.read_document(child).map_err(store_error)? {
                    ManifestKind::Manifest(m) if is_complete(store, &m) => {
                        push_image(store, client, target, &m).await?;
                        let bytes = store
                            .read_blob(&child.digest, "manifest")
                            .map_err(store_error)?;
                        client
                            .push_manifest(
                                target,
                                &child.digest.to_string(),
                                &child.media_type,
                                &bytes,
                            )
                            .await?;
                        present.push(child.clone());
                    }
                    _ => absent.push(platform),
                }
            }
            let (bytes, reduced_from) = if absent.is_empty() {
                (
                    store
                        .read_blob(&root.digest, "index")
                        .map_err(store_error)?,
                    None,
                )
            } else {
                let reduced = ImageIndex {
                    manifests: present,
                    ..index
                };
                let bytes =
                    serde_json::to_vec(&reduced).map_err(|e| RegistryError::BadManifest {
                        reference: name.clone(),
                        reason: e.to_string(),
                    })?;
                (bytes, Some(root.digest.clone()))
            };
            client
                .push_manifest(target, &tag, &root.media_type, &bytes)
                .await?;
            Ok(PushReport {
                digest: crate::hash::sha256(&bytes),
                reduced_from,
                absent_platforms: absent,
            })
        }
    }
}

fn is_complete(store: &Store, manifest: &crate::ImageManifest) -> bool {
    std::iter::once(&manifest.config)
        .chain(manifest.layers.iter())
        .all(|d| store.has_blob(&d.digest))
}

async fn push_image(
    store: &Store,
    client: &RegistryClient,
    target: &Reference,
    manifest: &crate::ImageManifest,
) -> Result<(), RegistryError> {
    for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
        client.push_blob(target, blob, store).await?;
    }
    Ok(())
}
