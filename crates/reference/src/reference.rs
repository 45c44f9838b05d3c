//! Image references (`docker.io/library/redis:7@sha256:…`), normalised the way
//! LinuxKit and docker do.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::digest::{Digest, DigestError};
use crate::grammar::{PathProblem, check_domain, check_path_component, check_tag};

/// Docker Hub's canonical domain in references.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";
/// Docker Hub's legacy domain, rewritten to [`DOCKER_HUB_DOMAIN`].
pub const DOCKER_HUB_LEGACY_DOMAIN: &str = "index.docker.io";
/// The host actually serving Docker Hub's registry API.
pub const DOCKER_HUB_REGISTRY_HOST: &str = "registry-1.docker.io";
/// Namespace of Docker Hub's official images (`redis` is `library/redis`).
pub const OFFICIAL_NAMESPACE: &str = "library";
/// Tag a pull uses when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository path (after normalisation) docker accepts.
pub const REPOSITORY_MAX_LEN: usize = 255;

/// Why a string is not a valid image reference. Every message names the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input was empty.
    #[error("invalid reference: empty string")]
    Empty,
    /// Whitespace or a control character somewhere in the input.
    #[error(
        "invalid reference {input:?}: {character:?} at byte {position} is not allowed; references contain no whitespace or control characters"
    )]
    ForbiddenCharacter {
        /// The whole input.
        input: String,
        /// The offending character.
        character: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// The repository path has uppercase letters (docker's rule).
    #[error("invalid reference {input:?}: repository names must be lowercase")]
    Uppercase {
        /// The whole input.
        input: String,
    },
    /// Nothing before the `:tag` or `@digest`.
    #[error("invalid reference {input:?}: no repository name before the tag or digest")]
    MissingName {
        /// The whole input.
        input: String,
    },
    /// The input is a bare 64-hex image ID, which docker refuses as a name.
    #[error(
        "invalid reference {input:?}: a 64-character hex string is an image ID, not a repository name"
    )]
    ImageId {
        /// The whole input.
        input: String,
    },
    /// The registry part is malformed.
    #[error("invalid reference {input:?}: registry {domain:?} {reason}")]
    InvalidDomain {
        /// The whole input.
        input: String,
        /// The registry part as written.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `/`-separated component of the repository path is malformed.
    #[error("invalid reference {input:?}: path component {component:?} {reason}")]
    InvalidPathComponent {
        /// The whole input.
        input: String,
        /// The component as written.
        component: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository path is longer than [`REPOSITORY_MAX_LEN`].
    #[error(
        "invalid reference {input:?}: repository name {repository:?} is {length} characters long; at most 255 are allowed"
    )]
    NameTooLong {
        /// The whole input.
        input: String,
        /// The normalised repository path.
        repository: String,
        /// Its length.
        length: usize,
    },
    /// The tag is malformed.
    #[error("invalid reference {input:?}: tag {tag:?} {reason}")]
    InvalidTag {
        /// The whole input (for [`Reference::with_tag`], the name and new tag).
        input: String,
        /// The tag as written.
        tag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The digest after `@` is malformed.
    // The reason is part of the message, as for the other variants: a
    // reference error is shown whole, in diagnostics and flag errors.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidDigest {
        /// The whole input.
        input: String,
        /// What is wrong with the digest.
        reason: DigestError,
    },
}

/// A fully expanded image reference: registry domain, repository path, and an
/// optional tag and digest.
///
/// Normalisation follows LinuxKit's `util.ReferenceExpand` (`redis` →
/// `docker.io/library/redis`, `foo/bar` → `docker.io/foo/bar`; the first
/// component is a registry only if it contains `.` or `:` or is `localhost`)
/// and docker's `ParseNormalizedNamed` for the forms LinuxKit leaves alone:
/// `index.docker.io` becomes `docker.io`, a single-component Docker Hub path
/// gains `library/` (`docker.io/redis` → `docker.io/library/redis`), and a
/// path of three or more components without a registry is on Docker Hub
/// (`foo/bar/baz` → `docker.io/foo/bar/baz`, where LinuxKit keeps the string
/// as written but every registry client then resolves it on Docker Hub).
/// The domain keeps its case as written, as docker's does. No tag is added at
/// parse time; see [`Reference::with_default_tag`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference (see the type's documentation).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let input = || s.to_owned();
        if let Some((position, character)) = s
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || c.is_control())
        {
            return Err(ReferenceError::ForbiddenCharacter {
                input: input(),
                character,
                position,
            });
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::ImageId { input: input() });
        }

        // No name or tag can contain '@', so the first one starts the digest.
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                let digest =
                    Digest::parse(digest).map_err(|reason| ReferenceError::InvalidDigest {
                        input: input(),
                        reason,
                    })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };

        // A ':' after the last '/' starts the tag; earlier ones are a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(|reason| ReferenceError::InvalidTag {
                input: input(),
                tag: tag.to_owned(),
                reason,
            })?;
        }

        if name.is_empty() {
            return Err(ReferenceError::MissingName { input: input() });
        }
        let (domain, repository) = split_domain(name);
        if let Some(domain) = domain {
            check_domain(domain).map_err(|reason| ReferenceError::InvalidDomain {
                input: input(),
                domain: domain.to_owned(),
                reason,
            })?;
        }
        check_repository(repository, s)?;
        let domain = match domain {
            None | Some(DOCKER_HUB_LEGACY_DOMAIN) => DOCKER_HUB_DOMAIN,
            Some(domain) => domain,
        };
        let repository = if domain == DOCKER_HUB_DOMAIN && !repository.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{repository}")
        } else {
            repository.to_owned()
        };
        if repository.len() > REPOSITORY_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                input: input(),
                length: repository.len(),
                repository,
            });
        }
        Ok(Reference {
            domain: domain.to_owned(),
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry domain, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/redis`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Domain and repository, e.g. `docker.io/library/redis`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same reference with `tag` (validated) instead of its tag; the digest is kept.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        check_tag(tag).map_err(|reason| ReferenceError::InvalidTag {
            input: format!("{}:{tag}", self.name()),
            tag: tag.to_owned(),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same reference with `digest` instead of its digest; the tag is kept.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same reference without a digest.
    pub fn without_digest(&self) -> Reference {
        Reference {
            digest: None,
            ..self.clone()
        }
    }

    /// The same reference without a tag.
    pub fn without_tag(&self) -> Reference {
        Reference {
            tag: None,
            ..self.clone()
        }
    }

    /// The reference with `latest` added when it has neither tag nor digest
    /// (what a pull uses).
    pub fn with_default_tag(&self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            Reference {
                tag: Some(DEFAULT_TAG.to_owned()),
                ..self.clone()
            }
        } else {
            self.clone()
        }
    }

    /// Whether the registry is a loopback address (`localhost`, `127.0.0.0/8`,
    /// `[::1]`, any port): plain HTTP is allowed there.
    pub fn is_loopback_registry(&self) -> bool {
        is_loopback_host(&self.domain)
    }

    /// The host to contact for the registry API: Docker Hub's `docker.io` is
    /// served by `registry-1.docker.io`; every other domain is itself.
    pub fn registry_host(&self) -> &str {
        if self.domain == DOCKER_HUB_DOMAIN {
            DOCKER_HUB_REGISTRY_HOST
        } else {
            &self.domain
        }
    }
}

/// Splits a name into an explicit registry domain (if its first component is
/// one) and the repository path.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first == "localhost" || first.contains(['.', ':']) => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// Checks every component of a repository path (before normalisation).
fn check_repository(repository: &str, input: &str) -> Result<(), ReferenceError> {
    for component in repository.split('/') {
        match check_path_component(component) {
            Ok(()) => {}
            Err(PathProblem::Uppercase) => {
                return Err(ReferenceError::Uppercase {
                    input: input.to_owned(),
                });
            }
            Err(PathProblem::Invalid(reason)) => {
                return Err(ReferenceError::InvalidPathComponent {
                    input: input.to_owned(),
                    component: component.to_owned(),
                    reason,
                });
            }
        }
    }
    Ok(())
}

/// The host part of a domain, without the port (brackets kept for IPv6).
/// Whether `host[:port]` is a loopback address (`localhost`, `127.0.0.0/8`,
/// `[::1]`), where plain HTTP is allowed.
pub fn is_loopback_host(domain: &str) -> bool {
    let host = host_of(domain);
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

fn host_of(domain: &str) -> &str {
    if domain.starts_with('[') {
        match domain.find(']') {
            Some(end) => &domain[..=end],
            None => domain,
        }
    } else {
        domain.split_once(':').map_or(domain, |(host, _)| host)
    }
}

impl fmt::Display for Reference {
    /// Fully expanded: `docker.io/library/redis:7@sha256:<hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}
