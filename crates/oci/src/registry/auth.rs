//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens,
//! and credentials from Docker's `config.json` (and its credential helpers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use docker_credential::{CredentialRetrievalError, DockerCredential};

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An identity (refresh) token, exchanged at the token endpoint.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    // Never print secrets, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

impl Credential {
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credential::IdentityToken(_) => None,
        }
    }
}

/// Where credentials come from: explicit ones first, then Docker's
/// `config.json` in `docker_config_dir` (default `$DOCKER_CONFIG`, else
/// `~/.docker`), including `credsStore` / `credHelpers`.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    explicit: BTreeMap<String, Credential>,
    docker_config_dir: Option<PathBuf>,
}

impl Credentials {
    /// Credentials from the environment's Docker config.
    pub fn from_env() -> Credentials {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
        Credentials {
            explicit: BTreeMap::new(),
            docker_config_dir: dir,
        }
    }

    /// No credentials at all (anonymous access only), unless added.
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// Reads `config.json` from `dir` instead.
    pub fn with_docker_config_dir(mut self, dir: impl Into<PathBuf>) -> Credentials {
        self.docker_config_dir = Some(dir.into());
        self
    }

    /// Uses `credential` for `registry` (as written in references, e.g. `127.0.0.1:5000`).
    pub fn with(mut self, registry: &str, credential: Credential) -> Credentials {
        self.explicit.insert(registry.to_string(), credential);
        self
    }

    /// The credential for `registry`, if any is configured. A helper that
    /// fails is treated as "no credential" (with a debug log): anonymous
    /// access may still work, and a 401 then says what is missing.
    pub fn lookup(&self, registry: &str) -> Option<Credential> {
        if let Some(c) = self.explicit.get(registry) {
            return Some(c.clone());
        }
        let path = self.docker_config_dir.as_ref()?.join("config.json");
        let file = std::fs::File::open(&path).ok()?;
        match docker_credential::get_credential_from_reader(std::io::BufReader::new(file), registry)
        {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                Some(Credential::Basic { username, password })
            }
            Ok(DockerCredential::IdentityToken(token)) => Some(Credential::IdentityToken(token)),
            Err(CredentialRetrievalError::NoCredentialConfigured) => None,
            Err(e) => {
                tracing::debug!("no credential for {registry} from {}: {e}", path.display());
                None
            }
        }
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="...",service="...",scope="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `k="v", k2=v2` → map; quoted values may hold commas.
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        params.insert(key, value.to_string());
        rest = next.trim_start().trim_start_matches(',');
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn reads_docker_config_auths() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw");
        std::fs::write(
            dir.path().join("config.json"),
            format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let creds = Credentials::none().with_docker_config_dir(dir.path());
        assert_eq!(
            creds.lookup("127.0.0.1:5000"),
            Some(Credential::Basic {
                username: "bob".into(),
                password: "pw".into()
            })
        );
        assert_eq!(creds.lookup("other.example.com"), None);
    }
}
