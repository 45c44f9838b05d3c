//! Pushing built test images to a loopback registry with the testkit's own
//! small HTTP client, so tests of slipway's client are seeded by other code.

use std::net::SocketAddr;
use std::time::Duration;

use crate::TestkitError;
use crate::http::{Request, Response, send};
use crate::image::{Artifact, Blob, Image};
use crate::registry::BasicAuth;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Where to push: a registry address, a repository, optional credentials.
#[derive(Debug, Clone)]
pub struct PushTarget<'a> {
    pub addr: SocketAddr,
    /// Repository path without the registry, e.g. `library/alpine`.
    pub repository: &'a str,
    pub auth: Option<&'a BasicAuth>,
}

impl<'a> PushTarget<'a> {
    /// Targets `repository` on the running test registry, with its credentials.
    pub fn new(registry: &'a crate::Registry, repository: &'a str) -> PushTarget<'a> {
        PushTarget {
            addr: registry.addr(),
            repository,
            auth: registry.auth(),
        }
    }

    fn request(&self, request: Request<'_>) -> Result<Response, TestkitError> {
        let request = match self.auth {
            Some(auth) => request.header("Authorization", auth.header()),
            None => request,
        };
        send(self.addr, &request, TIMEOUT)
    }

    /// Uploads one blob (monolithic upload: POST then PUT).
    pub fn push_blob(&self, blob: &Blob) -> Result<(), TestkitError> {
        let start = format!("/v2/{}/blobs/uploads/", self.repository);
        let r = self.request(Request::new("POST", &start))?;
        expect(&r, 202, &start)?;
        let location = r.header("Location").ok_or_else(|| TestkitError::Registry {
            target: start.clone(),
            status: r.status,
            body: "no Location header".into(),
        })?;
        let location = strip_origin(location);
        let sep = if location.contains('?') { '&' } else { '?' };
        let target = format!("{location}{sep}digest={}", blob.digest());
        let r = self.request(
            Request::new("PUT", &target)
                .header("Content-Type", "application/octet-stream")
                .body(blob.bytes()),
        )?;
        expect(&r, 201, &target)
    }

    /// Puts a manifest or index under `reference` (a tag or a digest).
    pub fn push_manifest(&self, manifest: &Blob, reference: &str) -> Result<(), TestkitError> {
        let target = format!("/v2/{}/manifests/{reference}", self.repository);
        let r = self.request(
            Request::new("PUT", &target)
                .header("Content-Type", manifest.media_type())
                .body(manifest.bytes()),
        )?;
        expect(&r, 201, &target)
    }

    fn push_image(&self, image: &Image, reference: &str) -> Result<(), TestkitError> {
        self.push_blob(&image.config)?;
        for layer in &image.layers {
            self.push_blob(layer)?;
        }
        self.push_manifest(&image.manifest, reference)
    }

    /// Pushes every blob and manifest of `artifact`, tagging its root `tag`
    /// (or pushing it by digest when `tag` is `None`).
    pub fn push(&self, artifact: &Artifact, tag: Option<&str>) -> Result<(), TestkitError> {
        let root_ref = tag.unwrap_or(artifact.root().digest());
        match artifact {
            Artifact::Image(image) => self.push_image(image, root_ref),
            Artifact::Index(index) => {
                for image in &index.images {
                    self.push_image(image, image.manifest.digest())?;
                }
                self.push_manifest(&index.index, root_ref)
            }
        }
    }
}

fn expect(r: &Response, status: u16, target: &str) -> Result<(), TestkitError> {
    if r.status == status {
        return Ok(());
    }
    Err(TestkitError::Registry {
        target: target.to_string(),
        status: r.status,
        body: String::from_utf8_lossy(&r.body).into_owned(),
    })
}

/// `http://host:port/v2/...` → `/v2/...`; relative locations stay as they are.
fn strip_origin(location: &str) -> &str {
    match location.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => location,
    }
}
