//! Pulling images into the store, and the resolution policy (cache first,
//! `--pull`, `--offline`).

use slipway_contract::errors::chain;
use std::collections::BTreeSet;

use futures_util::{StreamExt, TryStreamExt, stream};
use slipway_reference::{Digest, Platform, Reference};

use crate::descriptor::{Descriptor, ManifestKind};
use crate::progress::{NoProgress, Progress};
use crate::registry::{RegistryClient, RegistryError};
use crate::store::{ResolvedImage, Store, select_platform};
use crate::{ImageManifest, StoreError};

/// When to go to the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Use what the cache has; fetch only what it lacks (the default).
    #[default]
    IfMissing,
    /// Fetch tags again even if cached (`--pull`); blobs already present are kept.
    Always,
    /// Never touch the network (`--offline`).
    Never,
}

/// Pulls images from registries into a [`Store`].
pub struct Puller<'a> {
    store: &'a Store,
    client: &'a RegistryClient,
    progress: &'a dyn Progress,
}

impl std::fmt::Debug for Puller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("store", &self.store)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The name an image is stored under: the fully expanded reference, with
/// `latest` when it has neither tag nor digest.
pub fn cache_name(reference: &Reference) -> Reference {
    if reference.tag().is_none() && reference.digest().is_none() {
        reference.with_default_tag()
    } else {
        reference.clone()
    }
}

impl<'a> Puller<'a> {
    pub fn new(store: &'a Store, client: &'a RegistryClient) -> Puller<'a> {
        Puller {
            store,
            client,
            progress: &NoProgress,
        }
    }

    /// Reports download progress to `progress`.
    pub fn with_progress(mut self, progress: &'a dyn Progress) -> Puller<'a> {
        self.progress = progress;
        self
    }

    /// Fetches `reference` for each of `platforms` (only those children of
    /// an index), with config and layers, into the store, and names its
    /// root in `index.json` once everything is in. Returns the images, one
    /// per platform.
    pub async fn pull(
        &self,
        reference: &Reference,
        platforms: &[Platform],
    ) -> Result<Vec<ResolvedImage>, RegistryError> {
        let reference = cache_name(reference);
        let name = reference.to_string();
        let store_error = |source: StoreError| RegistryError::Store {
            reference: name.clone(),
            source,
        };
        // Keeps `cache clean` from collecting blobs between their download and naming.
        let _guard = self.store.gc_guard().map_err(store_error)?;
        self.store.reap_scratch();
        let root = self.client.fetch_manifest(&reference).await?;
        let kind = parse(&reference, &root.descriptor, &root.bytes)?;
        let mut manifests: Vec<(Descriptor, Vec<u8>, ImageManifest)> = Vec::new();
        match kind {
            ManifestKind::Manifest(manifest) => {
                manifests.push((root.descriptor.clone(), root.bytes.clone(), manifest));
            }
            ManifestKind::Index(index) => {
                let mut wanted_children = BTreeSet::new();
                for platform in platforms {
                    let child = select_platform(&index.manifests, platform).ok_or_else(|| {
                        RegistryError::PlatformMissing {
                            reference: name.clone(),
                            wanted: platform.to_string(),
                            available: crate::store::listed_platforms(&index.manifests),
                        }
                    })?;
                    if !wanted_children.insert(child.digest.clone()) {
                        continue;
                    }
                    let by_digest = reference.with_digest(child.digest.clone());
                    let fetched = self.client.fetch_manifest(&by_digest).await?;
                    match parse(&by_digest, &child.clone(), &fetched.bytes)? {
                        ManifestKind::Manifest(m) => {
                            manifests.push((child.clone(), fetched.bytes, m));
                            // The image's SBOM attestation travels with it.
                            if let Some(att) =
                                self.fetch_attestation(&reference, &index, child).await
                            {
                                manifests.push(att);
                            }
                        }
                        ManifestKind::Index(_) => {
                            return Err(RegistryError::BadManifest {
                                reference: name.clone(),
                                reason: format!(
                                    "{} is a nested index; only one level is supported",
                                    child.digest
                                ),
                            });
                        }
                    }
                }
            }
        }

        // Layers and configs first, in parallel; manifests after; the name last.
        let mut seen: BTreeSet<Digest> = BTreeSet::new();
        let blobs: Vec<Descriptor> = manifests
            .iter()
            .flat_map(|(_, _, m)| std::iter::once(&m.config).chain(m.layers.iter()))
            .filter(|d| seen.insert(d.digest.clone()))
            .cloned()
            .collect();
        let parallel = self.client.options().parallel_blobs.max(1);
        let total = blobs
            .iter()
            .filter(|d| !self.store.has_blob(&d.digest))
            .map(|d| d.size)
            .sum();
        self.progress.start(&name, total);
        stream::iter(blobs.iter().map(|d| {
            self.client
                .fetch_blob_with_progress(&reference, d, self.store, self.progress)
        }))
        .buffer_unordered(parallel)
        .try_collect::<Vec<()>>()
        .await?;
        for (descriptor, bytes, _) in &manifests {
            self.put_document(descriptor, bytes).map_err(store_error)?;
        }
        self.put_document(&root.descriptor, &root.bytes)
            .map_err(store_error)?;
        self.store
            .set_ref(&name, &root.descriptor)
            .map_err(store_error)?;
        self.progress.finish(&name);

        platforms
            .iter()
            .map(|p| {
                self.store
                    .resolve_descriptor(&name, root.descriptor.clone(), p)
                    .map_err(store_error)
            })
            .collect()
    }

    /// The attestation manifest `index` lists for `child`, if any: fetched
    /// on a best-effort basis (an image without one, or a registry that
    /// lost it, still pulls).
    async fn fetch_attestation(
        &self,
        reference: &Reference,
        index: &crate::ImageIndex,
        child: &Descriptor,
    ) -> Option<(Descriptor, Vec<u8>, ImageManifest)> {
        let att = crate::attestation::attestation_for(&index.manifests, &child.digest)?;
        let by_digest = reference.with_digest(att.digest.clone());
        match self.client.fetch_manifest(&by_digest).await {
            Ok(fetched) => match parse(&by_digest, att, &fetched.bytes) {
                Ok(ManifestKind::Manifest(m)) => Some((att.clone(), fetched.bytes, m)),
                _ => None,
            },
            Err(e) => {
                tracing::warn!(
                    "{reference}: the attestation {} was not fetched: {}",
                    att.digest,
                    chain(&e)
                );
                None
            }
        }
    }

    fn put_document(&self, descriptor: &Descriptor, bytes: &[u8]) -> Result<(), StoreError> {
        if self.store.has_blob(&descriptor.digest) {
            return Ok(());
        }
        self.store
            .put_blob_from(&mut &bytes[..], &descriptor.digest, descriptor.size)
    }

    /// The image for `platform`, by `policy`: from the cache when it holds
    /// it completely (no network), else pulled.
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
        policy: PullPolicy,
    ) -> Result<ResolvedImage, RegistryError> {
        let reference = cache_name(reference);
        if policy != PullPolicy::Always
            && let Ok(image) = self.store.resolve(&reference, platform)
        {
            return Ok(image);
        }
        if policy == PullPolicy::Never {
            return Err(RegistryError::Offline {
                missing: vec![format!("{reference} ({platform})")],
            });
        }
        let mut images = self
            .pull(&reference, std::slice::from_ref(platform))
            .await?;
        images.pop().ok_or_else(|| RegistryError::PlatformMissing {
            reference: reference.to_string(),
            wanted: platform.to_string(),
            available: Vec::new(),
        })
    }

    /// Resolves every reference, in parallel. Offline, the error names every
    /// image the cache lacks, not just the first.
    pub async fn resolve_all(
        &self,
        references: &[Reference],
        platform: &Platform,
        policy: PullPolicy,
    ) -> Result<Vec<ResolvedImage>, RegistryError> {
        if policy == PullPolicy::Never {
            let mut images = Vec::new();
            let mut missing = Vec::new();
            for reference in references {
                let reference = cache_name(reference);
                match self.store.resolve(&reference, platform) {
                    Ok(image) => images.push(image),
                    Err(_) => missing.push(format!("{reference} ({platform})")),
                }
            }
            return if missing.is_empty() {
                Ok(images)
            } else {
                Err(RegistryError::Offline { missing })
            };
        }
        stream::iter(references.iter().map(|r| self.resolve(r, platform, policy)))
            .buffered(self.client.options().parallel_blobs.max(1))
            .try_collect()
            .await
    }
}

fn parse(
    reference: &Reference,
    descriptor: &Descriptor,
    bytes: &[u8],
) -> Result<ManifestKind, RegistryError> {
    ManifestKind::parse(Some(&descriptor.media_type), bytes).map_err(|e| {
        RegistryError::BadManifest {
            reference: reference.to_string(),
            reason: e.to_string(),
        }
    })
}
