//! The registry client: the distribution API over reqwest (rustls with the
//! system's roots), with authentication, retries and a stall timeout.

use slipway_contract::errors::chain;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use slipway_reference::{Digest, Reference};

use super::auth::{Challenge, Credential, Credentials, parse_challenge};
use super::error::RegistryError;
use crate::descriptor::Descriptor;
use crate::hash::Hasher;
use crate::media;
use crate::progress::{NoProgress, Progress};
use crate::store::{MAX_DOCUMENT_SIZE, Store};

/// How the client behaves. `Default` suits real use.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Registries (as written in references) reached over plain HTTP.
    /// Loopback registries always are.
    pub insecure_registries: Vec<String>,
    /// A connect or read that waits longer than this fails (and is retried).
    pub stall_timeout: Duration,
    /// Tries per request for transient failures (5xx, 429, dropped or stalled connections).
    pub attempts: u32,
    /// Wait before the second try; doubled for each further one.
    pub backoff: Duration,
    /// Blobs downloaded at once, per pull.
    pub parallel_blobs: usize,
    pub credentials: Credentials,
    pub user_agent: String,
    /// Registries to pull from instead of the ones references name (`--mirror`).
    pub mirrors: Vec<Mirror>,
    /// PEM certificates of private CAs to trust besides the system's (`--cert-file`).
    pub extra_roots_pem: Vec<Vec<u8>>,
}

/// A pull-through mirror: reads of `registry` (as written in references,
/// `docker.io` for Docker Hub) go to `url` instead. Pushes never do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub registry: String,
    /// `scheme://host[:port][/path]`, without a trailing slash.
    pub url: String,
}

impl Mirror {
    /// LinuxKit's `--mirror` syntax: `URL` mirrors Docker Hub,
    /// `REGISTRY=URL` mirrors that registry. A URL needs a scheme, except on
    /// loopback (`localhost:5000`), which is plain HTTP.
    pub fn parse(text: &str) -> Result<Mirror, RegistryError> {
        let text = text.trim();
        let (registry, url) = match text.split_once('=') {
            Some((registry, url)) => (registry.trim(), url.trim()),
            None => ("docker.io", text),
        };
        let bad = |reason: &str| RegistryError::Client(format!("--mirror {text:?}: {reason}"));
        if registry.is_empty() || registry.contains('/') {
            return Err(bad(
                "the registry must be a host name, e.g. docker.io=https://mirror.example",
            ));
        }
        let url = url.trim_end_matches('/');
        let url = if url.contains("://") {
            url.to_string()
        } else if slipway_reference::is_loopback_host(url.split('/').next().unwrap_or(url)) {
            // A loopback mirror is plain HTTP, as loopback registries are.
            format!("http://{url}")
        } else {
            // LinuxKit refuses a mirror without a scheme too; guessing
            // HTTPS would fail later with a TLS error instead.
            return Err(bad(&format!(
                "the URL has no scheme; write https://{url} (or http://{url} for a plain-HTTP mirror)"
            )));
        };
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| bad("the URL must be http:// or https://"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("the URL has no host"));
        }
        let registry = match registry {
            "index.docker.io" | "registry-1.docker.io" => "docker.io",
            other => other,
        };
        Ok(Mirror {
            registry: registry.to_string(),
            url,
        })
    }

    /// The mirror's host (for credentials), without scheme or path.
    pub fn host(&self) -> &str {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            stall_timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Duration::from_millis(250),
            parallel_blobs: 4,
            credentials: Credentials::from_env(),
            user_agent: format!("slipway/{}", env!("CARGO_PKG_VERSION")),
            mirrors: Vec::new(),
            extra_roots_pem: Vec::new(),
        }
    }
}

/// A manifest or index fetched from a registry, verified.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

/// A client for OCI distribution registries. Cheap to share (`&`) between
/// concurrent pulls; it caches bearer tokens per repository and action.
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    options: ClientOptions,
    /// `Authorization` values by (registry, scope).
    auth_cache: Mutex<HashMap<(String, String), String>>,
}

/// What a request is for, to scope its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

impl RegistryClient {
    pub fn new(options: ClientOptions) -> Result<RegistryClient, RegistryError> {
        // reqwest is built without a default crypto provider; ring is ours.
        // An error means one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = Vec::new();
        for pem in &options.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| RegistryError::Client(format!("reading a CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(RegistryError::Client(
                    "the CA certificate file holds no PEM certificate".into(),
                ));
            }
            roots.extend(certs);
        }
        let http = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .connect_timeout(options.stall_timeout)
            .read_timeout(options.stall_timeout)
            .tls_certs_merge(roots)
            .build()
            .map_err(|e| RegistryError::Client(e.to_string()))?;
        Ok(RegistryClient {
            http,
            options,
            auth_cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// `http://` for loopback and `--insecure-registry` names, else `https://`.
    pub fn base_url(&self, reference: &Reference) -> String {
        let insecure = reference.is_loopback_registry()
            || self
                .options
                .insecure_registries
                .iter()
                .any(|r| r == reference.domain());
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{}", reference.registry_host())
    }

    /// The mirror that serves reads of `reference`, if one is configured.
    pub fn mirror_for(&self, reference: &Reference) -> Option<&Mirror> {
        self.options
            .mirrors
            .iter()
            .find(|m| m.registry == reference.domain())
    }

    /// Where reads go: the mirror's URL if one is configured, else [`Self::base_url`].
    fn read_base_url(&self, reference: &Reference) -> String {
        match self.mirror_for(reference) {
            Some(mirror) => mirror.url.clone(),
            None => self.base_url(reference),
        }
    }

    fn url(&self, reference: &Reference, kind: &str, tail: &str) -> String {
        format!(
            "{}/v2/{}/{kind}/{tail}",
            self.read_base_url(reference),
            reference.repository()
        )
    }

    fn scope(reference: &Reference, access: Access) -> String {
        format!("repository:{}:{}", reference.repository(), access.actions())
    }

    fn cached_auth(&self, reference: &Reference, access: Access) -> Option<String> {
        let key = (
            reference.domain().to_string(),
            Self::scope(reference, access),
        );
        self.auth_cache.lock().ok()?.get(&key).cloned()
    }

    fn cache_auth(&self, reference: &Reference, access: Access, value: String) {
        if let Ok(mut cache) = self.auth_cache.lock() {
            let key = (
                reference.domain().to_string(),
                Self::scope(reference, access),
            );
            cache.insert(key, value);
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.options.backoff.saturating_mul(1 << attempt.min(6))
    }

    /// Sends a request built by `make`, answering an auth challenge once and
    /// retrying transient failures with backoff. Returns any response that
    /// is neither (the caller judges 404s and the like).
    pub(crate) async fn send(
        &self,
        reference: &Reference,
        access: Access,
        url: &str,
        make: &(dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Sync),
    ) -> Result<reqwest::Response, RegistryError> {
        let name = reference.to_string();
        let mut authenticated = false;
        let mut attempt = 0;
        loop {
            let mut request = make(&self.http);
            if let Some(auth) = self.cached_auth(reference, access) {
                request = request.header(AUTHORIZATION, auth);
            }
            let result = request.send().await;
            let error = match result {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !authenticated => {
                    authenticated = true;
                    self.authenticate(reference, access, url, response).await?;
                    continue;
                }
                Ok(response) if is_transient_status(response.status()) => {
                    status_error(&name, url, response).await
                }
                Ok(response) => return Ok(response),
                Err(source) => self.transport_error(&name, url, source),
            };
            attempt += 1;
            if attempt >= self.options.attempts || !error.is_transient() {
                return Err(error);
            }
            tracing::debug!("{}; retrying (attempt {})", chain(&error), attempt + 1);
            tokio::time::sleep(self.backoff(attempt - 1)).await;
        }
    }

    /// Downloads `url` (`http://` or `https://`, trusting the same CAs as
    /// registry requests), refusing more than `limit` bytes. For files named
    /// by URL, such as configurations; no authentication, no retries.
    pub async fn download(&self, url: &str, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let fail = |reason: String| RegistryError::Download {
            url: url.to_string(),
            reason,
        };
        let too_large = || fail(format!("it is larger than the limit of {limit} bytes"));
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(fail("only http:// and https:// URLs can be fetched".into()));
        }
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("the server answered {status}")));
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fail(chain(&e)))?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    fn transport_error(&self, reference: &str, url: &str, source: reqwest::Error) -> RegistryError {
        if source.is_timeout() {
            RegistryError::Stalled {
                reference: reference.to_string(),
                url: url.to_string(),
                after: self.options.stall_timeout,
            }
        } else {
            RegistryError::Http {
                reference: reference.to_string(),
                url: url.to_string(),
                source,
            }
        }
    }

    /// Answers a 401: basic credentials, or a token from the bearer realm.
    async fn authenticate(
        &self,
        reference: &Reference,
        access: Access,
        url: &str,
        response: reqwest::Response,
    ) -> Result<(), RegistryError> {
        let name = reference.to_string();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        // A mirror is asked with its own credentials.
        let credential = match self.mirror_for(reference) {
            Some(mirror) if url.starts_with(&mirror.url) => {
                self.options.credentials.lookup(mirror.host())
            }
            _ => self.options.credentials.lookup(reference.domain()),
        };
        let unauthorized = |body: String| RegistryError::Unauthorized {
            reference: name.clone(),
            url: url.to_string(),
            body,
        };
        match challenge {
            Some(Challenge::Basic) => {
                let header = credential
                    .as_ref()
                    .and_then(Credential::basic_header)
                    .ok_or_else(|| {
                        unauthorized("basic auth required and no credentials configured".into())
                    })?;
                self.cache_auth(reference, access, header);
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self
                    .fetch_token(
                        reference,
                        access,
                        &realm,
                        service.as_deref(),
                        credential.as_ref(),
                    )
                    .await?;
                self.cache_auth(reference, access, format!("Bearer {token}"));
                Ok(())
            }
            None => Err(unauthorized(response_text(response).await)),
        }
    }

    async fn fetch_token(
        &self,
        reference: &Reference,
        access: Access,
        realm: &str,
        service: Option<&str>,
        credential: Option<&Credential>,
    ) -> Result<String, RegistryError> {
        let token_error = |reason: String| RegistryError::Token {
            reference: reference.to_string(),
            realm: realm.to_string(),
            reason,
        };
        let scope = Self::scope(reference, access);
        let mut query: Vec<(&str, &str)> = vec![("scope", scope.as_str())];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let mut request = match credential {
            // An identity token is exchanged through the OAuth2 POST form.
            Some(Credential::IdentityToken(token)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", "slipway"),
                    ("scope", scope.as_str()),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", url_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.http
                    .post(realm)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            _ => {
                let query = query
                    .iter()
                    .map(|(k, v)| format!("{k}={}", url_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                let sep = if realm.contains('?') { '&' } else { '?' };
                self.http.get(format!("{realm}{sep}{query}"))
            }
        };
        if let Some(header) = credential.and_then(Credential::basic_header) {
            request = request.header(AUTHORIZATION, header);
        }
        let response = request
            .send()
            .await
            .map_err(|e| token_error(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(token_error(format!(
                "{status}: {}",
                response_text(response).await
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| token_error(format!("unreadable answer: {e}")))?;
        let body: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| token_error(format!("unreadable answer: {e}")))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| token_error("the answer has no token".into()))
    }

    /// Fetches the manifest or index `reference` names (by digest if it has
    /// one, else by tag), verified against the digest it was asked by, or
    /// the one the registry announces.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> Result<FetchedManifest, RegistryError> {
        let tail = match (reference.digest(), reference.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        let url = self.url(reference, "manifests", &tail);
        let accept = media::MANIFEST_TYPES.join(", ");
        let make = |http: &reqwest::Client| http.get(&url).header(ACCEPT, &accept);
        let response = self.send(reference, Access::Pull, &url, &make).await?;
        let response = expect_success(reference, &url, response).await?;
        let announced = response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok());
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = self
            .read_small_body(reference, &url, response, "a manifest")
            .await?;
        let expected = reference.digest().cloned().or(announced);
        let algorithm = expected
            .as_ref()
            .map_or(slipway_reference::Algorithm::Sha256, Digest::algorithm);
        let mut hasher = Hasher::new(algorithm);
        hasher.update(&bytes);
        let actual = hasher.finish();
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(RegistryError::ContentMismatch {
                reference: reference.to_string(),
                expected,
                actual,
            });
        }
        let media_type = content_type
            .filter(|t| media::is_index(t) || media::is_manifest(t))
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
            })
            .ok_or_else(|| RegistryError::BadManifest {
                reference: reference.to_string(),
                reason: "neither the response nor the document names its media type".into(),
            })?;
        Ok(FetchedManifest {
            descriptor: Descriptor::new(media_type, actual, bytes.len() as u64),
            bytes,
        })
    }

    async fn read_small_body(
        &self,
        reference: &Reference,
        url: &str,
        response: reqwest::Response,
        what: &'static str,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = |size| RegistryError::TooLarge {
            reference: reference.to_string(),
            what,
            size,
            limit: MAX_DOCUMENT_SIZE,
        };
        if let Some(len) = response.content_length()
            && len > MAX_DOCUMENT_SIZE
        {
            return Err(too_large(len));
        }
        let mut stream = response.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.transport_error(&reference.to_string(), url, e))?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
                return Err(too_large(bytes.len() as u64));
            }
        }
        Ok(bytes)
    }

    /// Downloads the blob `descriptor` names into `store`, hashing as it
    /// streams. Transient failures are retried; content that does not match
    /// the digest is fetched once more, then reported. Nothing partial or
    /// wrong is ever stored.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        store: &Store,
    ) -> Result<(), RegistryError> {
        self.fetch_blob_with_progress(reference, descriptor, store, &NoProgress)
            .await
    }

    /// As [`Self::fetch_blob`], telling `progress` of the bytes as they come
    /// (under the reference's name).
    pub async fn fetch_blob_with_progress(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        store: &Store,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        if store.has_blob(&descriptor.digest) {
            return Ok(());
        }
        let url = self.url(reference, "blobs", &descriptor.digest.to_string());
        let mut attempt = 0;
        let mut mismatches = 0;
        loop {
            let error = match self
                .try_fetch_blob(reference, descriptor, store, &url, progress)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let retry = if matches!(error, RegistryError::ContentMismatch { .. }) {
                mismatches += 1;
                mismatches <= 1
            } else {
                attempt += 1;
                error.is_transient() && attempt < self.options.attempts
            };
            if !retry {
                return Err(error);
            }
            tracing::debug!("{}; fetching the blob again", chain(&error));
            tokio::time::sleep(self.backoff(attempt.saturating_sub(1))).await;
        }
    }

    async fn try_fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        store: &Store,
        url: &str,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let name = reference.to_string();
        // Bytes counted for this try, taken back if it fails.
        let mut counted = 0u64;
        let result = self
            .try_fetch_blob_inner(reference, descriptor, store, url, progress, &mut counted)
            .await;
        if result.is_err() && counted > 0 {
            progress.rewind(&name, counted);
        }
        result
    }

    async fn try_fetch_blob_inner(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        store: &Store,
        url: &str,
        progress: &dyn Progress,
        counted: &mut u64,
    ) -> Result<(), RegistryError> {
        let name = reference.to_string();
        let store_error = |source| RegistryError::Store {
            reference: name.clone(),
            source,
        };
        let make = |http: &reqwest::Client| http.get(url);
        let response = self.send(reference, Access::Pull, url, &make).await?;
        let response = expect_success(reference, url, response).await?;
        let mut writer = store
            .blob_writer(Some((&descriptor.digest, descriptor.size)))
            .map_err(store_error)?;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.transport_error(&name, url, e))?;
            writer
                .write_all(&chunk)
                .map_err(|e| RegistryError::BadManifest {
                    reference: name.clone(),
                    reason: format!("blob {}: {e}", descriptor.digest),
                })?;
            *counted += chunk.len() as u64;
            progress.advance(&name, chunk.len() as u64);
        }
        match writer.commit() {
            Ok(_) => Ok(()),
            Err(crate::StoreError::DigestMismatch {
                expected, actual, ..
            }) => Err(RegistryError::ContentMismatch {
                reference: name.clone(),
                expected,
                actual,
            }),
            Err(crate::StoreError::SizeMismatch {
                expected, actual, ..
            }) => Err(RegistryError::BadManifest {
                reference: name.clone(),
                reason: format!(
                    "blob {} has {actual} bytes, its descriptor says {expected}",
                    descriptor.digest
                ),
            }),
            Err(e) => Err(store_error(e)),
        }
    }
}

fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

async fn response_text(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let text = text.trim();
    // Registries answer with JSON error lists; keep them short in messages.
    text.chars().take(500).collect()
}

async fn status_error(reference: &str, url: &str, response: reqwest::Response) -> RegistryError {
    RegistryError::Status {
        reference: reference.to_string(),
        url: url.to_string(),
        status: response.status().as_u16(),
        body: response_text(response).await,
    }
}

/// Turns 401/403/404 and other failures into errors naming the reference.
pub(crate) async fn expect_success(
    reference: &Reference,
    url: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, RegistryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let name = reference.to_string();
    Err(match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            reference: name,
            url: url.to_string(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized {
            reference: name,
            url: url.to_string(),
            body: response_text(response).await,
        },
        _ => status_error(&name, url, response).await,
    })
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_syntax_is_linuxkits() {
        let hub = Mirror::parse("http://127.0.0.1:5000/").unwrap();
        assert_eq!(hub.registry, "docker.io");
        assert_eq!(hub.url, "http://127.0.0.1:5000");
        assert_eq!(hub.host(), "127.0.0.1:5000");
        let named = Mirror::parse("quay.io=https://mirror.example:8443/quay").unwrap();
        assert_eq!(named.registry, "quay.io");
        assert_eq!(named.url, "https://mirror.example:8443/quay");
        assert_eq!(named.host(), "mirror.example:8443");
        for (loopback, url) in [
            ("localhost:5055", "http://localhost:5055"),
            ("127.0.0.1:5000/hub", "http://127.0.0.1:5000/hub"),
            ("[::1]:5000", "http://[::1]:5000"),
        ] {
            assert_eq!(Mirror::parse(loopback).unwrap().url, url);
        }
        let err = Mirror::parse("mirror.example:5000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://mirror.example:5000"), "{err}");
        assert_eq!(
            Mirror::parse("index.docker.io=https://m").unwrap().registry,
            "docker.io"
        );
        for bad in ["ftp://x", "docker.io=", "a/b=https://m", "=https://m"] {
            assert!(Mirror::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_go_to_the_mirror_and_pushes_do_not() {
        let client = RegistryClient::new(ClientOptions {
            mirrors: vec![Mirror::parse("https://mirror.example").unwrap()],
            credentials: Credentials::none(),
            ..ClientOptions::default()
        })
        .unwrap();
        let hub = Reference::parse("alpine:3.20").unwrap();
        assert_eq!(
            client.url(&hub, "manifests", "3.20"),
            "https://mirror.example/v2/library/alpine/manifests/3.20"
        );
        assert_eq!(client.base_url(&hub), "https://registry-1.docker.io");
        let other = Reference::parse("quay.io/a/b:1").unwrap();
        assert_eq!(
            client.url(&other, "blobs", "x"),
            "https://quay.io/v2/a/b/blobs/x"
        );
    }

    #[test]
    fn a_cert_file_without_a_certificate_is_refused() {
        let err = RegistryClient::new(ClientOptions {
            extra_roots_pem: vec![b"hello".to_vec()],
            credentials: Credentials::none(),
            ..ClientOptions::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
    }
}
