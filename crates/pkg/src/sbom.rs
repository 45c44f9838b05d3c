//! A package's SBOM: every Debian package its `debs:` steps installed (name,
//! version, architecture, purl, the SHA-256 the Packages index gave, the
//! licence of its machine-readable copyright file) and every binary its
//! `cargo:` steps built with the crates it links (from `cargo metadata`).
//! Stored with the image as an SPDX attestation (see
//! `slipway_oci::attestation`), so it travels through registries and
//! `slipway build` merges it into the image's SBOM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use slipway_report::debian::{Licence, crate_licence, from_copyright};
use slipway_report::spdx::{Creation, Document, Package, id_part};

use crate::deb::lock::LockedDeb;
use crate::error::PkgError;
use crate::tree::{Kind, Tree};

/// The most of a copyright file that is read.
const COPYRIGHT_LIMIT: u64 = 4 << 20;

/// What a build put in one architecture's image, as it happened.
#[derive(Debug, Default)]
pub struct Recorder {
    debs: Vec<(Package, Licence)>,
    binaries: Vec<(Package, Vec<Package>)>,
}

impl Recorder {
    /// A `.deb` just unpacked into `tree` (its copyright file is read now,
    /// before a `remove:` step can take `/usr/share/doc` away).
    pub fn deb(&mut self, deb: &LockedDeb, mirror: &str, tree: &Tree) {
        let path = format!("usr/share/doc/{}/copyright", deb.name);
        let licence = match tree.resolve(&path) {
            Some((_, entry)) => match &entry.kind {
                Kind::File(content) => content
                    .read_all(COPYRIGHT_LIMIT)
                    .map(|bytes| from_copyright(&String::from_utf8_lossy(&bytes)))
                    .unwrap_or_else(|_| Licence::none()),
                _ => Licence::none(),
            },
            None => Licence::none(),
        };
        let url = format!("{}/{}", mirror.trim_end_matches('/'), deb.filename);
        let package = Package::debian(
            &deb.name,
            &deb.version,
            &deb.architecture,
            &deb.sha256,
            &url,
            &licence,
        );
        self.debs.push((package, licence));
    }

    /// A binary a `cargo:` step built, installed at `dest`.
    pub fn binary(&mut self, binary: Package, crates: Vec<Package>) {
        self.binaries.push((binary, crates));
    }

    /// How many Debian packages and crates it has recorded.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.debs.len(),
            self.binaries.iter().map(|(_, c)| c.len()).sum(),
        )
    }

    /// The SPDX document of the image `name`, made at `secs`.
    pub fn document(&self, name: &str, secs: u64) -> Result<Vec<u8>, PkgError> {
        let mut doc = Document::new(name, Creation::at(secs));
        for (package, licence) in &self.debs {
            let id = doc.add(package);
            doc.add_licence(licence);
            doc.describes(&id);
        }
        for (binary, crates) in &self.binaries {
            let id = doc.add(binary);
            doc.describes(&id);
            for c in crates {
                let cid = doc.add(c);
                doc.relate(&id, "STATIC_LINK", &cid);
            }
        }
        doc.to_json()
            .map_err(|e| PkgError::step("sbom", e.to_string()))
    }
}

#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<MetaPackage>,
    resolve: Option<Resolve>,
}

#[derive(Debug, Deserialize)]
struct MetaPackage {
    id: String,
    name: String,
    version: String,
    license: Option<String>,
    source: Option<String>,
    targets: Vec<MetaTarget>,
}

#[derive(Debug, Deserialize)]
struct MetaTarget {
    kind: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    #[serde(default)]
    deps: Vec<NodeDep>,
}

#[derive(Debug, Deserialize)]
struct NodeDep {
    pkg: String,
    #[serde(default)]
    dep_kinds: Vec<DepKind>,
}

#[derive(Debug, Deserialize)]
struct DepKind {
    kind: Option<String>,
}

/// `checksum`s of `Cargo.lock`, by `name version`.
fn lock_checksums(ws: &Path) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(ws.join("Cargo.lock")) else {
        return out;
    };
    // Cargo writes the lock file itself in this one shape: `[[package]]`
    // tables of `key = "value"` lines.
    let (mut name, mut version) = (String::new(), String::new());
    for line in text.lines() {
        let value = |l: &str| {
            l.split_once('=')
                .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        };
        if line == "[[package]]" {
            name.clear();
            version.clear();
        } else if line.starts_with("name = ") {
            name = value(line).unwrap_or_default();
        } else if line.starts_with("version = ") {
            version = value(line).unwrap_or_default();
        } else if line.starts_with("checksum = ")
            && let Some(sum) = value(line)
        {
            out.insert((name.clone(), version.clone()), sum);
        }
    }
    out
}

/// The crates `package` links for `target`: its normal dependencies,
/// transitively, from `cargo metadata` (build dependencies and procedural
/// macros run at build time and are not in the binary). The package itself
/// comes first.
pub fn linked_crates(ws: &Path, package: &str, target: &str) -> Result<Vec<Package>, PkgError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(ws)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--filter-platform",
            target,
        ])
        .output()
        .map_err(|e| PkgError::step("cargo", format!("cannot run cargo metadata: {e}")))?;
    if !out.status.success() {
        return Err(PkgError::step(
            "cargo",
            format!(
                "cargo metadata failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let meta: Metadata = serde_json::from_slice(&out.stdout)
        .map_err(|e| PkgError::step("cargo", format!("cargo metadata: {e}")))?;
    let by_id: BTreeMap<&str, &MetaPackage> =
        meta.packages.iter().map(|p| (p.id.as_str(), p)).collect();
    let nodes: BTreeMap<&str, &Node> = meta
        .resolve
        .as_ref()
        .map(|r| r.nodes.iter().map(|n| (n.id.as_str(), n)).collect())
        .unwrap_or_default();
    let root = meta
        .packages
        .iter()
        .find(|p| p.name == package && p.source.is_none())
        .ok_or_else(|| {
            PkgError::step("cargo", format!("cargo metadata has no package {package}"))
        })?;
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut order = vec![root.id.as_str()];
    seen.insert(root.id.as_str());
    let mut i = 0;
    while i < order.len() {
        if let Some(node) = nodes.get(order[i]) {
            for dep in &node.deps {
                let normal = dep.dep_kinds.iter().any(|k| k.kind.is_none());
                let proc_macro = by_id.get(dep.pkg.as_str()).is_some_and(|p| {
                    p.targets
                        .iter()
                        .any(|t| t.kind.iter().any(|k| k == "proc-macro"))
                });
                if normal && !proc_macro && seen.insert(dep.pkg.as_str()) {
                    order.push(dep.pkg.as_str());
                }
            }
        }
        i += 1;
    }
    let sums = lock_checksums(ws);
    // The package first, then its crates by name and version.
    let mut crates: Vec<&MetaPackage> = order
        .iter()
        .filter_map(|id| by_id.get(id).copied())
        .collect();
    crates[1..].sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(crates
        .into_iter()
        .map(|p| {
            let registry = p
                .source
                .as_deref()
                .is_some_and(|s| s.starts_with("registry+"));
            Package::crate_(
                &p.name,
                &p.version,
                registry,
                sums.get(&(p.name.clone(), p.version.clone()))
                    .map(String::as_str),
                &crate_licence(p.license.as_deref()),
            )
        })
        .collect())
}

/// The package of a binary built from `crate_` (the first of `crates`),
/// installed at `dest`, with the SHA-256 of its bytes.
pub fn binary_package(bin: &str, dest: &str, sha256: &str, krate: Option<&Package>) -> Package {
    Package {
        id: format!("bin-{}", id_part(bin)),
        name: bin.to_owned(),
        version: krate.and_then(|k| k.version.clone()),
        file_name: Some(dest.to_owned()),
        sha256: Some(sha256.to_owned()),
        licence_declared: krate
            .map_or_else(|| "NOASSERTION".to_owned(), |k| k.licence_declared.clone()),
        purpose: Some("APPLICATION"),
        comment: Some("built from this workspace by a cargo: step".to_owned()),
        ..Package::default()
    }
}

impl Recorder {
    /// The binary a `cargo:` step just installed in `tree`, with the crates
    /// it links.
    pub fn cargo(
        &mut self,
        pkg_dir: &Path,
        step: &crate::def::CargoStep,
        arch: slipway_reference::Arch,
        tree: &Tree,
    ) -> Result<(), PkgError> {
        let ws = crate::cargo_step::workspace_root(pkg_dir).ok_or_else(|| {
            PkgError::step(
                "cargo",
                format!("{} is not inside a Cargo workspace", pkg_dir.display()),
            )
        })?;
        let crates = linked_crates(&ws, &step.package, crate::cargo_step::rust_target(arch))?;
        let dest = crate::tree::normalize(&step.dest).unwrap_or_else(|| step.dest.clone());
        let sha256 = match tree.get(&dest).map(|e| &e.kind) {
            Some(Kind::File(content)) => {
                let mut reader = content
                    .open()
                    .map_err(PkgError::io("reading", Path::new(&dest).to_path_buf()))?;
                let (hash, _) = crate::tree::sha256_reader(&mut reader)
                    .map_err(PkgError::io("reading", Path::new(&dest).to_path_buf()))?;
                hex::encode(hash)
            }
            _ => return Err(PkgError::step("cargo", format!("{dest} was not installed"))),
        };
        let binary = binary_package(&step.bin, &dest, &sha256, crates.first());
        self.binary(binary, crates);
        Ok(())
    }
}
