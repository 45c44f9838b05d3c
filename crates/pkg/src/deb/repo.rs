//! Fetching a repository's signed `InRelease`, its `Packages` indexes and
//! `.deb` files, every byte checked: the `InRelease` against the keyring,
//! each index against the `InRelease`'s SHA256 list, each `.deb` against
//! its index entry (or the lock).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};

use super::DebError;
use super::sources::Source;
use crate::tree::{HashingWriter, sha256_reader};

/// Most bytes read from an `InRelease` file.
const MAX_RELEASE: u64 = 16 << 20;
/// A download making no progress for this long fails.
const STALL: Duration = Duration::from_secs(60);
/// A whole download may take at most this long.
const TOTAL: Duration = Duration::from_secs(900);

/// A package as a `Packages` index lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub depends: String,
    pub pre_depends: String,
    pub provides: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub essential: bool,
    /// Index into [`Repository::sources`].
    pub source: usize,
}

/// The HTTP side, with the download cache.
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    pub cache: PathBuf,
}

impl Fetcher {
    pub fn new(cache: PathBuf) -> Result<Fetcher, DebError> {
        // reqwest is built without a default crypto provider; ring is ours
        // (an error means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(STALL)
            .timeout(TOTAL)
            .build()
            .map_err(|e| DebError::Http {
                url: String::new(),
                message: e.to_string(),
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DebError::io("starting an HTTP runtime for", &cache))?;
        Ok(Fetcher {
            client,
            runtime,
            cache,
        })
    }

    /// Streams `url` into `dest` (a temporary file), returning its sha256 and size.
    fn download(
        &self,
        url: &str,
        dest: &Path,
        limit: Option<u64>,
    ) -> Result<([u8; 32], u64), DebError> {
        let http = |message: String| DebError::Http {
            url: url.to_string(),
            message,
        };
        let file = File::create(dest).map_err(DebError::io("creating", dest))?;
        let mut out = HashingWriter::new(std::io::BufWriter::new(file));
        self.runtime.block_on(async {
            let mut response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| http(format!("{e:#}")))?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Err(DebError::NotFound {
                    url: url.to_string(),
                });
            }
            if !response.status().is_success() {
                return Err(http(format!("HTTP {}", response.status())));
            }
            while let Some(chunk) = response.chunk().await.map_err(|e| http(format!("{e:#}")))? {
                out.write_all(&chunk)
                    .map_err(DebError::io("writing", dest))?;
                if limit.is_some_and(|l| out.written > l) {
                    return Err(http(format!("larger than {} bytes", limit.unwrap_or(0))));
                }
            }
            Ok(())
        })?;
        let (mut w, hash, n) = out.finish();
        w.flush().map_err(DebError::io("writing", dest))?;
        Ok((hash, n))
    }

    fn temp_in(&self, dir: &Path) -> Result<tempfile::NamedTempFile, DebError> {
        std::fs::create_dir_all(dir).map_err(DebError::io("creating", dir))?;
        tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(dir)
            .map_err(DebError::io("creating a file in", dir))
    }

    /// A file known by its sha256, from the cache or downloaded (checked,
    /// then renamed into the cache). `what` and `expected_from` name it in errors.
    pub fn fetch_verified(
        &self,
        url: &str,
        sha256: &str,
        size: Option<u64>,
        subdir: &str,
        expected_from: &str,
    ) -> Result<PathBuf, DebError> {
        let dir = self.cache.join(subdir);
        let path = dir.join(format!("sha256-{sha256}"));
        if let Ok(file) = File::open(&path) {
            let mut reader = BufReader::new(file);
            if let Ok((hash, _)) = sha256_reader(&mut reader)
                && hex::encode(hash) == sha256
            {
                return Ok(path);
            }
            // A damaged cache entry is replaced.
            let _ = std::fs::remove_file(&path);
        }
        let temp = self.temp_in(&dir)?;
        let limit = size.map(|s| s.saturating_add(1));
        let (hash, n) = self.download(url, temp.path(), limit)?;
        let actual = hex::encode(hash);
        if actual != sha256 || size.is_some_and(|s| s != n) {
            return Err(DebError::Checksum {
                url: url.to_string(),
                what: format!("the download ({n} bytes)"),
                expected: sha256.to_string(),
                actual,
                expected_from: expected_from.to_string(),
            });
        }
        temp.persist(&path)
            .map_err(|e| DebError::io("renaming into", &path)(e.error))?;
        Ok(path)
    }

    /// The bytes at `url` (at most `limit`), unverified and not cached:
    /// for tools and tests that copy a repository.
    pub fn fetch_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, DebError> {
        let temp = self.temp_in(&self.cache.join("tmp"))?;
        self.download(url, temp.path(), Some(limit))?;
        std::fs::read(temp.path()).map_err(DebError::io("reading", temp.path()))
    }

    /// Downloads and verifies `InRelease`; returns its signed text.
    pub fn in_release(&self, source: &Source) -> Result<String, DebError> {
        let url = source.dist_url("InRelease");
        let temp = self.temp_in(&self.cache.join("tmp"))?;
        self.download(&url, temp.path(), Some(MAX_RELEASE))?;
        let bytes = std::fs::read(temp.path()).map_err(DebError::io("reading", temp.path()))?;
        let text = String::from_utf8(bytes).map_err(|_| DebError::BadIndex {
            url: url.clone(),
            message: "InRelease is not UTF-8".into(),
        })?;
        let signed = verify_clearsigned(&url, &text, &source.keyring)?;
        #[allow(
            clippy::disallowed_methods,
            reason = "an expired Release file is refused; nothing written depends on the time"
        )]
        let now = std::time::SystemTime::now();
        check_valid_until(&url, &signed, now)?;
        Ok(signed)
    }
}

/// Seconds since the epoch of an RFC 2822 date as Release files write them
/// (`Sat, 05 Dec 2026 08:00:00 UTC`; the weekday is optional).
pub fn parse_release_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text.split_once(", ").map_or(text, |(_, rest)| rest);
    let mut words = text.split_whitespace();
    let day: i64 = words.next()?.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| Some(*m) == words.clone().next())? as i64
        + 1;
    words.next();
    let year: i64 = words.next()?.parse().ok()?;
    let mut hms = words.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    let offset = match words.next() {
        None | Some("UTC" | "GMT" | "Z") => 0,
        Some(z) if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let n: i64 = z[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if z.starts_with('-') { -secs } else { secs }
        }
        Some(_) => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec - offset)
}

/// A Release file with a `Valid-Until` date in the past is refused (an
/// old, validly signed file replayed by a mirror); one without the field
/// (Debian's stable suites) never expires.
pub fn check_valid_until(
    url: &str,
    release: &str,
    now: std::time::SystemTime,
) -> Result<(), DebError> {
    let Some(field) = release_field(release, "Valid-Until") else {
        return Ok(());
    };
    let bad = |message: String| DebError::BadIndex {
        url: url.to_string(),
        message,
    };
    let until = parse_release_date(field)
        .ok_or_else(|| bad(format!("cannot read its Valid-Until date {field:?}")))?;
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if now > until {
        return Err(bad(format!(
            "expired: Valid-Until {field} has passed (the mirror serves an outdated InRelease)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates_and_valid_until() {
        assert_eq!(parse_release_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_release_date("Sat, 10 May 2025 09:12:33 UTC"),
            Some(1_746_868_353)
        );
        assert_eq!(
            parse_release_date("10 May 2025 11:12:33 +0200"),
            Some(1_746_868_353)
        );
        assert_eq!(parse_release_date("Sat, 10 Foo 2025 09:12:33 UTC"), None);
        assert_eq!(parse_release_date("tomorrow"), None);
        let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let release = "Origin: Debian\nValid-Until: Sat, 10 May 2025 09:12:33 UTC\nSHA256:\n";
        check_valid_until("u", release, at(1_746_868_353)).unwrap();
        let err = check_valid_until("http://m/InRelease", release, at(1_746_868_354)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("http://m/InRelease: expired: Valid-Until Sat, 10 May 2025"),
            "{err}"
        );
        check_valid_until("u", "Origin: Debian\n", at(u64::MAX >> 2)).unwrap();
        assert!(check_valid_until("u", "Valid-Until: soon\n", at(0)).is_err());
    }
}

/// Loads every public key in a keyring (binary or armoured).
pub fn load_keyring(path: &Path) -> Result<Vec<SignedPublicKey>, DebError> {
    let file = File::open(path).map_err(DebError::io("opening the keyring", path))?;
    let bytes = {
        let mut b = Vec::new();
        file.take(64 << 20)
            .read_to_end(&mut b)
            .map_err(DebError::io("reading", path))?;
        b
    };
    let bad = |reason: String| DebError::Sources {
        message: format!("{}: not an OpenPGP keyring: {reason}", path.display()),
    };
    let keys: Vec<SignedPublicKey> = if bytes.starts_with(b"-----") {
        SignedPublicKey::from_armor_many(bytes.as_slice())
            .map_err(|e| bad(e.to_string()))?
            .0
            .filter_map(Result::ok)
            .collect()
    } else {
        SignedPublicKey::from_bytes_many(bytes.as_slice())
            .map_err(|e| bad(e.to_string()))?
            .filter_map(Result::ok)
            .collect()
    };
    if keys.is_empty() {
        return Err(bad("no public keys".into()));
    }
    Ok(keys)
}

/// Verifies a clear-signed document against any key (or subkey) of the
/// keyring; returns the signed text.
pub fn verify_clearsigned(url: &str, text: &str, keyring: &Path) -> Result<String, DebError> {
    let keys = load_keyring(keyring)?;
    let bad = |reason: String| DebError::BadSignature {
        url: url.to_string(),
        keyring: keyring.to_path_buf(),
        reason,
    };
    let (message, _) = CleartextSignedMessage::from_string(text)
        .map_err(|e| bad(format!("not a clear-signed document: {e}")))?;
    let verified = keys.iter().any(|key| {
        message.verify(&key.primary_key).is_ok()
            || key
                .public_subkeys
                .iter()
                .any(|sub| message.verify(&sub.key).is_ok())
    });
    if !verified {
        return Err(bad("no signature was made by a key in the keyring".into()));
    }
    // The signed text, as signed: dash-unescaped, with LF line ends.
    Ok(message.signed_text().replace("\r\n", "\n"))
}

/// The `SHA256:` list of a Release file: path -> (sha256, size).
pub fn release_hashes(release: &str) -> HashMap<String, (String, u64)> {
    let mut out = HashMap::new();
    let mut in_sha = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            in_sha = line.trim_end() == "SHA256:";
            continue;
        }
        if in_sha {
            let mut parts = line.split_whitespace();
            if let (Some(h), Some(s), Some(p)) = (parts.next(), parts.next(), parts.next())
                && let Ok(size) = s.parse()
            {
                out.insert(p.to_string(), (h.to_string(), size));
            }
        }
    }
    out
}

/// One field of a Release file's header.
pub fn release_field<'a>(release: &'a str, field: &str) -> Option<&'a str> {
    release.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case(field))
            .map(|(_, v)| v.trim())
    })
}

/// Every package the sources list for `arch`, fetched and verified.
/// A source's `InRelease` and its `Packages` indexes for `arch`, each
/// verified against it: (the URL named, the cached file) per component.
fn source_indexes(
    fetcher: &Fetcher,
    source: &Source,
    arch: &str,
) -> Result<(String, Vec<(String, PathBuf)>), DebError> {
    let release = fetcher.in_release(source)?;
    let hashes = release_hashes(&release);
    let by_hash = release_field(&release, "Acquire-By-Hash").is_some_and(|v| v == "yes");
    let from = format!("{} InRelease", source.label());
    let mut indexes = Vec::new();
    for component in &source.components {
        let dir = format!("{component}/binary-{arch}");
        let base = format!("{dir}/Packages");
        let pick = ["xz", "gz"]
            .iter()
            .map(|ext| format!("{base}.{ext}"))
            .chain(std::iter::once(base.clone()))
            .find_map(|name| hashes.get(&name).map(|h| (name, h.clone())));
        let Some((name, (sha256, size))) = pick else {
            return Err(DebError::BadIndex {
                url: source.dist_url("InRelease"),
                message: format!("lists no {base}(.xz|.gz) for {component}/{arch}"),
            });
        };
        let url = source.dist_url(&name);
        // As apt does: a mirror that keeps indexes by hash serves the one
        // this InRelease names even while it is being updated.
        let by_hash_path = by_hash
            .then(|| {
                let at = source.dist_url(&format!("{dir}/by-hash/SHA256/{sha256}"));
                fetcher
                    .fetch_verified(&at, &sha256, Some(size), "indexes", &from)
                    .inspect_err(|e| tracing::debug!("{at}: {e}; trying {url}"))
                    .ok()
            })
            .flatten();
        let path = match by_hash_path {
            Some(path) => path,
            None => fetcher.fetch_verified(&url, &sha256, Some(size), "indexes", &from)?,
        };
        indexes.push((url, path));
    }
    Ok((release, indexes))
}

#[derive(Debug, Default)]
pub struct Repository {
    pub sources: Vec<Source>,
    /// Whether each source's Release says `NotAutomatic: yes` (backports).
    pub not_automatic: Vec<bool>,
    pub packages: HashMap<String, Vec<Arc<DebPackage>>>,
    /// Virtual name -> packages that provide it.
    pub provides: HashMap<String, Vec<Arc<DebPackage>>>,
}

impl Repository {
    pub fn load(fetcher: &Fetcher, sources: &[Source], arch: &str) -> Result<Repository, DebError> {
        let mut repo = Repository::default();
        for (i, source) in sources.iter().enumerate() {
            let (release, indexes) = match source_indexes(fetcher, source, arch) {
                // The mirror was updated between its InRelease and an index
                // (and serves no index by hash): a fresh InRelease names the
                // index it serves now. Once: a second mismatch is no update.
                Err(DebError::Checksum { .. }) => source_indexes(fetcher, source, arch)?,
                result => result?,
            };
            repo.sources.push(source.clone());
            repo.not_automatic
                .push(release_field(&release, "NotAutomatic").is_some_and(|v| v == "yes"));
            for (url, path) in indexes {
                let file = File::open(&path).map_err(DebError::io("opening", &path))?;
                let mut reader: Box<dyn Read> = if url.ends_with(".xz") {
                    Box::new(liblzma::read::XzDecoder::new(BufReader::new(file)))
                } else if url.ends_with(".gz") {
                    Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
                } else {
                    Box::new(BufReader::new(file))
                };
                repo.add_index(&mut BufReader::new(&mut reader), i, arch)
                    .map_err(|e| DebError::BadIndex {
                        url: url.clone(),
                        message: format!("cannot decompress: {e}"),
                    })?;
            }
        }
        Ok(repo)
    }

    /// Adds the packages of one `Packages` text, for `arch` (and `all`).
    pub fn add_index(
        &mut self,
        reader: &mut dyn BufRead,
        source: usize,
        arch: &str,
    ) -> std::io::Result<()> {
        let mut stanza = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 || line.trim().is_empty() {
                if !stanza.is_empty() {
                    self.add_stanza(&stanza, source, arch);
                    stanza.clear();
                }
                if n == 0 {
                    return Ok(());
                }
                continue;
            }
            stanza.push_str(&line);
        }
    }

    fn add_stanza(&mut self, stanza: &str, source: usize, arch: &str) {
        {
            let mut p = DebPackage {
                name: String::new(),
                version: String::new(),
                architecture: String::new(),
                depends: String::new(),
                pre_depends: String::new(),
                provides: String::new(),
                filename: String::new(),
                size: 0,
                sha256: String::new(),
                essential: false,
                source,
            };
            let mut last: Option<&mut String> = None;
            for line in stanza.lines() {
                if line.starts_with([' ', '\t']) {
                    if let Some(v) = last.as_deref_mut() {
                        v.push(' ');
                        v.push_str(line.trim());
                    }
                    continue;
                }
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let v = v.trim();
                last = None;
                match k {
                    "Package" => p.name = v.to_string(),
                    "Version" => p.version = v.to_string(),
                    "Architecture" => p.architecture = v.to_string(),
                    "Depends" => {
                        p.depends = v.to_string();
                        last = Some(&mut p.depends);
                    }
                    "Pre-Depends" => {
                        p.pre_depends = v.to_string();
                        last = Some(&mut p.pre_depends);
                    }
                    "Provides" => {
                        p.provides = v.to_string();
                        last = Some(&mut p.provides);
                    }
                    "Filename" => p.filename = v.to_string(),
                    "Size" => p.size = v.parse().unwrap_or(0),
                    "SHA256" => p.sha256 = v.to_string(),
                    "Essential" => p.essential = v == "yes",
                    _ => {}
                }
            }
            if p.name.is_empty() || p.filename.is_empty() || p.sha256.len() != 64 {
                return;
            }
            if p.architecture != arch && p.architecture != "all" {
                return;
            }
            let p = Arc::new(p);
            for provided in p.provides.split(',') {
                let name = provided.split_whitespace().next().unwrap_or("");
                if !name.is_empty() {
                    self.provides
                        .entry(name.to_string())
                        .or_default()
                        .push(p.clone());
                }
            }
            self.packages.entry(p.name.clone()).or_default().push(p);
        }
    }
}
