//! SPDX 2.3 documents (JSON), as LinuxKit writes them: a package's SBOM
//! (its Debian packages and the crates its binaries link) and an image's,
//! which merges the SBOMs of the images it is made of.
//!
//! Deterministic: element ids come from names and versions, lists keep the
//! order they were given in, the creation time is given by the caller
//! (fixed unless asked otherwise), and the document namespace is derived
//! from the document's own content.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::debian::Licence;

/// The in-toto predicate type of an SPDX SBOM attestation.
pub const PREDICATE_TYPE: &str = "https://spdx.dev/Document";
/// The in-toto statement type BuildKit writes.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v0.1";
/// Where document namespaces live; the rest is derived from the content.
const NAMESPACE_BASE: &str = "https://slipway.invalid/spdx";

/// Why an SBOM could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("not an SPDX JSON document")]
    Json(#[from] serde_json::Error),
    #[error("not an SPDX 2 document: {0}")]
    NotSpdx(String),
}

/// Characters SPDX ids allow: letters, digits, `.` and `-`.
pub fn id_part(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '-' => c,
            '+' => '.',
            _ => '-',
        })
        .collect()
}

/// Percent-encoding for a purl's name and version (RFC 3986 unreserved
/// characters stay).
fn purl_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH`.
pub fn deb_purl(name: &str, version: &str, arch: &str) -> String {
    format!(
        "pkg:deb/debian/{}@{}?arch={}",
        purl_encode(name),
        purl_encode(version),
        purl_encode(arch)
    )
}

/// `pkg:cargo/NAME@VERSION`.
pub fn cargo_purl(name: &str, version: &str) -> String {
    format!("pkg:cargo/{}@{}", purl_encode(name), purl_encode(version))
}

/// One SPDX package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Package {
    /// Unique in the document, without `SPDXRef-`.
    pub id: String,
    pub name: String,
    pub version: Option<String>,
    pub supplier: Option<String>,
    pub download: Option<String>,
    pub file_name: Option<String>,
    pub sha256: Option<String>,
    pub licence_declared: String,
    pub purl: Option<String>,
    /// `APPLICATION`, `LIBRARY`, `CONTAINER`, `OPERATING-SYSTEM`...
    pub purpose: Option<&'static str>,
    pub comment: Option<String>,
}

impl Package {
    /// A Debian package, as a `debs:` step installed it.
    pub fn debian(
        name: &str,
        version: &str,
        arch: &str,
        sha256: &str,
        download: &str,
        licence: &Licence,
    ) -> Package {
        Package {
            id: format!(
                "deb-{}-{}-{}",
                id_part(name),
                id_part(version),
                id_part(arch)
            ),
            name: name.to_owned(),
            version: Some(version.to_owned()),
            supplier: Some("Organization: Debian".to_owned()),
            download: Some(download.to_owned()),
            file_name: download.rsplit('/').next().map(str::to_owned),
            sha256: Some(sha256.to_owned()),
            licence_declared: licence.expression.clone(),
            purl: Some(deb_purl(name, version, arch)),
            purpose: None,
            comment: None,
        }
    }

    /// A crate a binary links. `registry` is true for crates.io crates.
    pub fn crate_(
        name: &str,
        version: &str,
        registry: bool,
        checksum: Option<&str>,
        licence: &str,
    ) -> Package {
        Package {
            id: format!("crate-{}-{}", id_part(name), id_part(version)),
            name: name.to_owned(),
            version: Some(version.to_owned()),
            supplier: None,
            download: registry
                .then(|| format!("https://crates.io/api/v1/crates/{name}/{version}/download")),
            file_name: None,
            sha256: checksum.map(str::to_owned),
            licence_declared: licence.to_owned(),
            purl: registry.then(|| cargo_purl(name, version)),
            purpose: Some("LIBRARY"),
            comment: None,
        }
    }

    fn to_json(&self) -> Value {
        let mut p = Map::new();
        p.insert("SPDXID".into(), json!(format!("SPDXRef-{}", self.id)));
        p.insert("name".into(), json!(self.name));
        if let Some(v) = &self.version {
            p.insert("versionInfo".into(), json!(v));
        }
        if let Some(s) = &self.supplier {
            p.insert("supplier".into(), json!(s));
        }
        if let Some(f) = &self.file_name {
            p.insert("packageFileName".into(), json!(f));
        }
        p.insert(
            "downloadLocation".into(),
            json!(self.download.as_deref().unwrap_or("NOASSERTION")),
        );
        p.insert("filesAnalyzed".into(), json!(false));
        if let Some(h) = &self.sha256 {
            p.insert(
                "checksums".into(),
                json!([{"algorithm": "SHA256", "checksumValue": h}]),
            );
        }
        p.insert("licenseConcluded".into(), json!("NOASSERTION"));
        p.insert("licenseDeclared".into(), json!(self.licence_declared));
        p.insert("copyrightText".into(), json!("NOASSERTION"));
        if let Some(purl) = &self.purl {
            p.insert(
                "externalRefs".into(),
                json!([{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": purl,
                }]),
            );
        }
        if let Some(purpose) = self.purpose {
            p.insert("primaryPackagePurpose".into(), json!(purpose));
        }
        if let Some(c) = &self.comment {
            p.insert("comment".into(), json!(c));
        }
        Value::Object(p)
    }
}

/// Who made a document and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creation {
    /// RFC 3339 UTC (see [`crate::time::rfc3339`]).
    pub created: String,
    /// e.g. `slipway-0.1.0`.
    pub tool: String,
}

impl Creation {
    /// slipway as the tool, at `secs`.
    pub fn at(secs: u64) -> Creation {
        Creation {
            created: crate::time::rfc3339(secs),
            tool: format!("slipway-{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// An SPDX document being put together.
#[derive(Clone, Debug)]
pub struct Document {
    name: String,
    creation: Creation,
    packages: Vec<Value>,
    ids: BTreeSet<String>,
    relationships: Vec<Value>,
    extracted: BTreeMap<String, Value>,
    /// Other top-level arrays carried over from merged documents (`files`,
    /// `snippets`, `annotations`).
    other: BTreeMap<String, Vec<Value>>,
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({
        "spdxElementId": from,
        "relationshipType": kind,
        "relatedSpdxElement": to,
    })
}

const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";

impl Document {
    pub fn new(name: &str, creation: Creation) -> Document {
        Document {
            name: name.to_owned(),
            creation,
            packages: Vec::new(),
            ids: BTreeSet::new(),
            relationships: Vec::new(),
            extracted: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }

    /// How many packages it has.
    pub fn package_count(&self) -> usize {
        self.packages.len()
    }

    /// Adds `package` (once per id) and returns its `SPDXRef-` id.
    pub fn add(&mut self, package: &Package) -> String {
        let id = format!("SPDXRef-{}", package.id);
        if self.ids.insert(id.clone()) {
            self.packages.push(package.to_json());
        }
        id
    }

    /// The document describes `id` (a top-level thing of the image).
    pub fn describes(&mut self, id: &str) {
        self.relate(DOCUMENT_ID, "DESCRIBES", id);
    }

    /// `from` `kind` `to` (`CONTAINS`, `STATIC_LINK`, `DEPENDS_ON`...), once.
    pub fn relate(&mut self, from: &str, kind: &str, to: &str) {
        let r = relationship(from, kind, to);
        if !self.relationships.contains(&r) {
            self.relationships.push(r);
        }
    }

    /// The `LicenseRef`s a licence uses, with their texts.
    pub fn add_licence(&mut self, licence: &Licence) {
        for (id, (name, text)) in &licence.extracted {
            self.extracted.entry(id.clone()).or_insert_with(|| {
                json!({
                    "licenseId": id,
                    "name": name,
                    "extractedText": text,
                })
            });
        }
    }

    /// Merges `sbom` (an SPDX JSON document, such as an image's attestation)
    /// under `container`: every element id gets `prefix`, and what the
    /// merged document described, `container` now contains.
    pub fn merge(&mut self, sbom: &Value, prefix: &str, container: &str) -> Result<(), SbomError> {
        let version = sbom
            .get("spdxVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !version.starts_with("SPDX-2.") {
            return Err(SbomError::NotSpdx(format!("spdxVersion {version:?}")));
        }
        let rename = |id: &str| -> String {
            match id.strip_prefix("SPDXRef-") {
                Some(rest) if id != DOCUMENT_ID => format!("SPDXRef-{prefix}-{rest}"),
                _ => id.to_owned(),
            }
        };
        let rename_value = |v: &mut Value, key: &str| {
            if let Some(id) = v.get(key).and_then(Value::as_str) {
                let new = rename(id);
                v[key] = json!(new);
            }
        };
        for p in sbom
            .get("packages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut p = p.clone();
            rename_value(&mut p, "SPDXID");
            if let Some(files) = p.get_mut("hasFiles").and_then(Value::as_array_mut) {
                for f in files.iter_mut() {
                    if let Some(id) = f.as_str() {
                        *f = json!(rename(id));
                    }
                }
            }
            if let Some(id) = p.get("SPDXID").and_then(Value::as_str)
                && self.ids.insert(id.to_owned())
            {
                self.packages.push(p);
            }
        }
        for key in ["files", "snippets"] {
            for item in sbom
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let mut item = item.clone();
                rename_value(&mut item, "SPDXID");
                rename_value(&mut item, "snippetFromFile");
                self.other.entry(key.to_owned()).or_default().push(item);
            }
        }
        let described: Vec<String> = sbom
            .get("documentDescribes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(&rename)
            .collect();
        for d in described {
            self.relate(container, "CONTAINS", &d);
        }
        for r in sbom
            .get("relationships")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let from = r
                .get("spdxElementId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let kind = r
                .get("relationshipType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let to = r
                .get("relatedSpdxElement")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if from == DOCUMENT_ID && kind == "DESCRIBES" {
                self.relate(container, "CONTAINS", &rename(to));
            } else if from != DOCUMENT_ID && to != DOCUMENT_ID {
                self.relate(&rename(from), kind, &rename(to));
            }
        }
        for e in sbom
            .get("hasExtractedLicensingInfos")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = e.get("licenseId").and_then(Value::as_str) {
                self.extracted
                    .entry(id.to_owned())
                    .or_insert_with(|| e.clone());
            }
        }
        Ok(())
    }

    /// The document as pretty JSON, its namespace derived from everything
    /// else in it.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut doc = Map::new();
        doc.insert("spdxVersion".into(), json!("SPDX-2.3"));
        doc.insert("dataLicense".into(), json!("CC0-1.0"));
        doc.insert("SPDXID".into(), json!(DOCUMENT_ID));
        doc.insert("name".into(), json!(self.name));
        doc.insert("documentNamespace".into(), json!(""));
        doc.insert(
            "creationInfo".into(),
            json!({
                "created": self.creation.created,
                "creators": [format!("Tool: {}", self.creation.tool)],
                "licenseListVersion": license_list_version(),
            }),
        );
        doc.insert("packages".into(), Value::Array(self.packages.clone()));
        for (key, items) in &self.other {
            doc.insert(key.clone(), Value::Array(items.clone()));
        }
        doc.insert(
            "relationships".into(),
            Value::Array(self.relationships.clone()),
        );
        if !self.extracted.is_empty() {
            doc.insert(
                "hasExtractedLicensingInfos".into(),
                Value::Array(self.extracted.values().cloned().collect()),
            );
        }
        let mut doc = Value::Object(doc);
        let digest = hex::encode(Sha256::digest(serde_json::to_vec(&doc)?));
        doc["documentNamespace"] = json!(format!(
            "{NAMESPACE_BASE}/{}-{}",
            id_part(&self.name),
            &digest[..32]
        ));
        let mut out = serde_json::to_vec_pretty(&doc)?;
        out.push(b'\n');
        Ok(out)
    }
}

/// The SPDX licence list the identifiers are checked against (`3.29`).
fn license_list_version() -> String {
    let v = spdx::identifiers::VERSION;
    // SPDX writes the list version as major.minor.
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// An SBOM as an in-toto statement about `subject` (name, sha256 hex), as
/// BuildKit stores it in an attestation manifest.
pub fn statement(
    subject_name: &str,
    subject_sha256: &str,
    sbom: &[u8],
) -> Result<Vec<u8>, SbomError> {
    let predicate: Value = serde_json::from_slice(sbom)?;
    let s = json!({
        "_type": STATEMENT_TYPE,
        "predicateType": PREDICATE_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": subject_sha256}}],
        "predicate": predicate,
    });
    Ok(serde_json::to_vec(&s)?)
}

/// The SPDX document of an in-toto statement (or a bare SPDX document).
pub fn from_statement(bytes: &[u8]) -> Result<Value, SbomError> {
    let v: Value = serde_json::from_slice(bytes)?;
    let doc = if v.get("predicateType").is_some() {
        let kind = v["predicateType"].as_str().unwrap_or_default();
        if kind != PREDICATE_TYPE {
            return Err(SbomError::NotSpdx(format!("predicateType {kind:?}")));
        }
        v.get("predicate").cloned().unwrap_or(Value::Null)
    } else {
        v
    };
    if doc.get("spdxVersion").is_none() {
        return Err(SbomError::NotSpdx("no spdxVersion".into()));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::debian::from_copyright;

    fn package_sbom() -> Vec<u8> {
        let mut doc = Document::new("docker.io/slipway/runc:abc", Creation::at(0));
        let licence = from_copyright(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: Apache-2.0 and public-domain\n",
        );
        let deb = Package::debian(
            "runc",
            "1.1.5+ds1-1+deb12u1",
            "amd64",
            &"a".repeat(64),
            "http://deb.debian.org/debian/pool/main/r/runc/runc_1.1.5+ds1-1+deb12u1_amd64.deb",
            &licence,
        );
        let id = doc.add(&deb);
        doc.add_licence(&licence);
        doc.describes(&id);
        doc.to_json().unwrap()
    }

    #[test]
    fn package_document() {
        let bytes = package_sbom();
        assert_eq!(bytes, package_sbom(), "deterministic");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["spdxVersion"], "SPDX-2.3");
        assert_eq!(v["creationInfo"]["created"], "1970-01-01T00:00:00Z");
        let p = &v["packages"][0];
        assert_eq!(
            p["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/runc@1.1.5%2Bds1-1%2Bdeb12u1?arch=amd64"
        );
        assert_eq!(
            p["licenseDeclared"],
            "Apache-2.0 AND LicenseRef-Debian-public-domain"
        );
        assert_eq!(
            v["hasExtractedLicensingInfos"][0]["licenseId"],
            "LicenseRef-Debian-public-domain"
        );
        assert!(
            v["documentNamespace"]
                .as_str()
                .unwrap()
                .starts_with("https://slipway.invalid/spdx/docker.io-slipway-runc-abc-")
        );
    }

    #[test]
    fn merged_under_an_image() {
        let sub: Value = serde_json::from_slice(&package_sbom()).unwrap();
        let wrapped = statement("runc", &"b".repeat(64), &package_sbom()).unwrap();
        assert_eq!(from_statement(&wrapped).unwrap(), sub);
        let mut doc = Document::new("minimal", Creation::at(crate::time::LINUXKIT_TIME));
        let image = Package {
            id: "Image-0".into(),
            name: "docker.io/slipway/runc:abc".into(),
            licence_declared: "NOASSERTION".into(),
            ..Package::default()
        };
        let image_id = doc.add(&image);
        doc.describes(&image_id);
        doc.merge(&sub, "I0", &image_id).unwrap();
        doc.merge(&sub, "I1", &image_id).unwrap();
        let v: Value = serde_json::from_slice(&doc.to_json().unwrap()).unwrap();
        let ids: Vec<&str> = v["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["SPDXID"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "SPDXRef-Image-0",
                "SPDXRef-I0-deb-runc-1.1.5.ds1-1.deb12u1-amd64",
                "SPDXRef-I1-deb-runc-1.1.5.ds1-1.deb12u1-amd64"
            ]
        );
        let contains: Vec<&Value> = v["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["relationshipType"] == "CONTAINS")
            .collect();
        assert_eq!(contains.len(), 2);
        assert_eq!(v["hasExtractedLicensingInfos"].as_array().unwrap().len(), 1);
        assert!(
            doc.merge(&json!({"spdxVersion": "SPDX-3.0"}), "x", &image_id)
                .is_err()
        );
    }
}
