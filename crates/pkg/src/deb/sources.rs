//! apt sources: the host's (`/etc/apt/sources.list.d/*.sources` in deb822
//! form, `/etc/apt/sources.list` and `*.list` one-line form), or those a
//! `build.yml` names.

use std::path::{Path, PathBuf};

use super::DebError;
use crate::def::DebianSource;

pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One repository suite: `<uri>/dists/<suite>/`, with its components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    pub keyring: PathBuf,
}

impl Source {
    pub fn dist_url(&self, file: &str) -> String {
        format!(
            "{}/dists/{}/{file}",
            self.uri.trim_end_matches('/'),
            self.suite
        )
    }

    pub fn pool_url(&self, filename: &str) -> String {
        format!("{}/{filename}", self.uri.trim_end_matches('/'))
    }

    /// `uri suite`, as locks and messages name it.
    pub fn label(&self) -> String {
        format!("{} {}", self.uri.trim_end_matches('/'), self.suite)
    }
}

/// Parses deb822 `.sources` text: stanzas of `Types`, `URIs`, `Suites`,
/// `Components`, `Signed-By`, `Enabled`.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in stanzas(text) {
        let get = |k: &str| {
            stanza
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        if get("Enabled").is_some_and(|e| e.trim() == "no") {
            continue;
        }
        if !get("Types")
            .unwrap_or("")
            .split_whitespace()
            .any(|t| t == "deb")
        {
            continue;
        }
        let keyring = get("Signed-By")
            .map(str::trim)
            .filter(|s| s.starts_with('/') && !s.contains('\n'))
            .map_or_else(|| PathBuf::from(DEBIAN_KEYRING), PathBuf::from);
        let components: Vec<String> = get("Components")
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for uri in get("URIs").unwrap_or("").split_whitespace() {
            for suite in get("Suites").unwrap_or("").split_whitespace() {
                out.push(Source {
                    uri: uri.to_string(),
                    suite: suite.to_string(),
                    components: components.clone(),
                    keyring: keyring.clone(),
                });
            }
        }
    }
    out
}

/// Parses one-line `sources.list` text: `deb [options] uri suite components...`.
pub fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        let mut keyring = PathBuf::from(DEBIAN_KEYRING);
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                let opt = w.trim_start_matches('[').trim_end_matches(']');
                if let Some(k) = opt.strip_prefix("signed-by=") {
                    keyring = PathBuf::from(k);
                }
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(Source {
            uri: uri.to_string(),
            suite: suite.to_string(),
            components: words.map(str::to_string).collect(),
            keyring,
        });
    }
    out
}

/// A deb822 file's stanzas: (field, value) pairs; continuation lines joined with `\n`.
pub fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = current.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The host's apt sources, from `root` (normally `/`).
pub fn host_sources(root: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    let list = root.join("etc/apt/sources.list");
    if let Ok(text) = std::fs::read_to_string(&list) {
        out.extend(parse_one_line(&text));
    }
    let dir = root.join("etc/apt/sources.list.d");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => out.extend(parse_deb822(&text)),
            Some("list") => out.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    // Only Debian's archive: third-party repositories are not for images.
    out.retain(|s| s.components.iter().any(|c| c == "main"));
    out
}

/// The sources a package uses: `build.yml`'s `debian:`, completed from the
/// host's sources (mirror = the first host source's URI, components `main`),
/// or the host's sources when `debian:` is absent.
pub fn effective(debian: Option<&DebianSource>, host: &[Source]) -> Result<Vec<Source>, DebError> {
    let Some(d) = debian else {
        if host.is_empty() {
            return Err(DebError::Sources {
                message: "no Debian sources: the host has none in /etc/apt; set `debian: {mirror, suites}` in build.yml".into(),
            });
        }
        return Ok(host.to_vec());
    };
    let first = host.first();
    let uri = match (&d.mirror, first) {
        (Some(m), _) => m.clone(),
        (None, Some(s)) => s.uri.clone(),
        (None, None) => {
            return Err(DebError::Sources {
                message:
                    "`debian:` gives no mirror and the host has no apt sources to take one from"
                        .into(),
            });
        }
    };
    let suites: Vec<String> = if d.suites.is_empty() {
        host.iter()
            .filter(|s| s.uri == uri)
            .map(|s| s.suite.clone())
            .collect()
    } else {
        d.suites.clone()
    };
    if suites.is_empty() {
        return Err(DebError::Sources {
            message: format!("`debian:` names no suites and the host has none for {uri}"),
        });
    }
    let components = if d.components.is_empty() {
        vec!["main".to_string()]
    } else {
        d.components.clone()
    };
    let keyring = d
        .keyring
        .clone()
        .or_else(|| first.map(|s| s.keyring.clone()))
        .unwrap_or_else(|| PathBuf::from(DEBIAN_KEYRING));
    Ok(suites
        .into_iter()
        .map(|suite| Source {
            uri: uri.clone(),
            suite,
            components: components.clone(),
            keyring: keyring.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_and_one_line() {
        let text = "Types: deb\n# comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://x\nSuites: y\nComponents: main\n";
        let s = parse_deb822(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].suite, "bookworm-updates");
        let one = parse_one_line(
            "deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main contrib\ndeb-src http://m bookworm main\n",
        );
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].keyring, PathBuf::from("/k.gpg"));
        assert_eq!(one[0].components, ["main", "contrib"]);
    }
}
