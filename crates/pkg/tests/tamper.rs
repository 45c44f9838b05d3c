//! A copy of a real Debian suite (its signed `InRelease`, `Packages.xz`
//! and one `.deb`, taken from the current mirror: no version is assumed)
//! served from a loopback HTTP server, intact and tampered with: the
//! image's contents from the intact copy; clear errors naming the file for
//! a changed index, a changed `.deb` and a broken signature, with nothing
//! added to either cache; a pinned version the index no longer has; and
//! builds for amd64 and arm64 in turn, each keeping the other's pins and tag.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use slipway_oci::Store;
use slipway_pkg::deb::repo::{Fetcher, Repository, release_hashes};
use slipway_pkg::deb::sources::{Source, host_sources};
use slipway_pkg::deb::{DebError, default_cache_dir};
use slipway_pkg::{BuildOptions, PkgError};
use slipway_reference::{Arch, Platform};
use slipway_testkit::FileServer;
use slipway_testkit::files::Files;

/// Serves `files` on 127.0.0.1 (404 for anything else) for the rest of the
/// test process; the mirror's URL.
fn serve(files: Files) -> String {
    format!("{}/debian", FileServer::start(files).unwrap().url())
}

/// The real repository files: (InRelease, amd64's Packages.xz, the
/// `.deb`'s pool path, the `.deb`, its version), and arm64's.
struct Copy {
    in_release: Vec<u8>,
    packages_xz: Vec<u8>,
    deb_path: String,
    deb: Vec<u8>,
    version: String,
    arm64: ArchCopy,
}

/// One architecture's `Packages.xz` and PACKAGE's `.deb` in it.
struct ArchCopy {
    packages_xz: Vec<u8>,
    deb_path: String,
    deb: Vec<u8>,
    version: String,
}

const PACKAGE: &str = "busybox-static";

fn copy_from_mirror() -> Copy {
    // The host's first Debian source (deb.debian.org on our machines).
    let host = host_sources(Path::new("/"));
    let source: Source = host
        .iter()
        .find(|s| s.components.iter().any(|c| c == "main"))
        .cloned()
        .expect("the host has a Debian apt source");
    let fetcher = Fetcher::new(default_cache_dir()).unwrap();
    let in_release = fetcher
        .fetch_bytes(&source.dist_url("InRelease"), 16 << 20)
        .unwrap();
    let signed = fetcher.in_release(&source).unwrap();
    let amd64 = copy_arch(&fetcher, &source, &signed, "amd64");
    Copy {
        in_release,
        packages_xz: amd64.packages_xz,
        deb_path: amd64.deb_path,
        deb: amd64.deb,
        version: amd64.version,
        arm64: copy_arch(&fetcher, &source, &signed, "arm64"),
    }
}

fn copy_arch(fetcher: &Fetcher, source: &Source, signed: &str, arch: &str) -> ArchCopy {
    let name = format!("main/binary-{arch}/Packages.xz");
    let (sha, size) = release_hashes(signed)[&name].clone();
    let index = fetcher
        .fetch_verified(
            &source.dist_url(&name),
            &sha,
            Some(size),
            "indexes",
            "InRelease",
        )
        .unwrap();
    let packages_xz = std::fs::read(&index).unwrap();
    let mut repo = Repository::default();
    let mut text = BufReader::new(liblzma::read::XzDecoder::new(packages_xz.as_slice()));
    repo.add_index(&mut text, 0, arch).unwrap();
    let p = repo.packages[PACKAGE]
        .iter()
        .max_by(|a, b| slipway_pkg::deb::version::compare(&a.version, &b.version))
        .unwrap()
        .clone();
    assert!(p.depends.is_empty() && p.pre_depends.is_empty(), "{p:?}");
    let deb = fetcher
        .fetch_verified(
            &source.pool_url(&p.filename),
            &p.sha256,
            Some(p.size),
            "pool",
            "Packages",
        )
        .unwrap();
    ArchCopy {
        packages_xz,
        deb_path: p.filename.clone(),
        deb: std::fs::read(deb).unwrap(),
        version: p.version.clone(),
    }
}

/// Files in a download cache (temporary downloads included).
fn cached_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["indexes", "pool", "tmp"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            out.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

fn suite_of(in_release: &[u8]) -> String {
    let text = String::from_utf8_lossy(in_release);
    text.lines()
        .find_map(|l| l.strip_prefix("Codename: "))
        .unwrap()
        .trim()
        .to_string()
}

struct Setup {
    files: Files,
    copy: Copy,
    suite: String,
    tmp: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let copy = copy_from_mirror();
        let files = Files::default();
        let suite = suite_of(&copy.in_release);
        let tmp = tempfile::tempdir().unwrap();
        let s = Setup {
            files,
            copy,
            suite,
            tmp,
        };
        s.intact();
        s
    }

    fn intact(&self) {
        let mut f = self.files.lock().unwrap();
        f.clear();
        let dists = format!("/debian/dists/{}", self.suite);
        f.insert(format!("{dists}/InRelease"), self.copy.in_release.clone());
        f.insert(
            format!("{dists}/main/binary-amd64/Packages.xz"),
            self.copy.packages_xz.clone(),
        );
        f.insert(
            format!("/debian/{}", self.copy.deb_path),
            self.copy.deb.clone(),
        );
        f.insert(
            format!("{dists}/main/binary-arm64/Packages.xz"),
            self.copy.arm64.packages_xz.clone(),
        );
        f.insert(
            format!("/debian/{}", self.copy.arm64.deb_path),
            self.copy.arm64.deb.clone(),
        );
    }

    fn replace(&self, suffix: &str, bytes: Vec<u8>) {
        let mut f = self.files.lock().unwrap();
        let key = f.keys().find(|k| k.ends_with(suffix)).unwrap().clone();
        f.insert(key, bytes);
    }

    /// A package installing PACKAGE from the served mirror, in a new
    /// directory, with new download and image caches.
    fn package(&self, name: &str, mirror: &str) -> (PathBuf, Store, BuildOptions) {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("build.yml"),
            format!(
                "image: {name}\narches: [amd64]\ndebian:\n  mirror: {mirror}\n  suites: [{}]\nsteps:\n  - debs: [{PACKAGE}]\n",
                self.suite
            ),
        )
        .unwrap();
        let store = Store::open(self.tmp.path().join(format!("{name}-cache"))).unwrap();
        let opts = BuildOptions {
            debs_cache: self.tmp.path().join(format!("{name}-debs")),
            ..BuildOptions::default()
        };
        (dir, store, opts)
    }
}

#[test]
fn a_copied_repository_intact_and_tampered() {
    let setup = Setup::new();
    let mirror = serve(setup.files.clone());

    // Intact: the image holds the package's files, root-owned, and the
    // lock pins what was served.
    let (dir, store, opts) = setup.package("good", &mirror);
    let built = slipway_pkg::build(&dir, &store, &opts).unwrap();
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);
    let image = store
        .resolve(&built.images[0].reference, &Platform::linux(Arch::Amd64))
        .unwrap();
    let layer = store.open_blob(&image.manifest.layers[0].digest).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let mut entries = HashMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut head = [0u8; 4];
        let n = e.read(&mut head).unwrap_or(0);
        entries.insert(
            e.path().unwrap().to_string_lossy().to_string(),
            (
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                head[..n].to_vec(),
            ),
        );
    }
    let busybox = &entries["bin/busybox"];
    assert_eq!(busybox.0, 0o755);
    assert_eq!((busybox.1, busybox.2), (0, 0));
    assert_eq!(busybox.3, b"\x7fELF");
    let copyright = &entries[&format!("usr/share/doc/{PACKAGE}/copyright")];
    assert_eq!((copyright.0, copyright.1, copyright.2), (0o644, 0, 0));
    assert_eq!(entries["bin/"].0, 0o755);
    assert!(
        !entries
            .keys()
            .any(|p| p.starts_with("DEBIAN") || p.contains("control"))
    );
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("debs.lock")).unwrap()).unwrap();
    let pinned = &lock["steps"][0]["resolved"]["amd64"][0];
    assert_eq!(pinned["name"], PACKAGE);
    assert_eq!(pinned["version"], setup.copy.version.as_str());
    assert_eq!(pinned["filename"], setup.copy.deb_path.as_str());
    assert_eq!(pinned["size"], setup.copy.deb.len() as u64);

    // (a) A changed Packages index: its checksum is not the InRelease's.
    let mut changed = setup.copy.packages_xz.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    setup.replace("binary-amd64/Packages.xz", changed);
    let (dir, store, opts) = setup.package("index", &mirror);
    let err = slipway_pkg::build(&dir, &store, &opts).unwrap_err();
    let text = slipway_contract::errors::chain(&err);
    assert!(
        matches!(err, PkgError::Deb(DebError::Checksum { .. })),
        "{text}"
    );
    assert!(text.contains("/main/binary-amd64/Packages.xz"), "{text}");
    assert!(text.contains("InRelease says"), "{text}");
    assert!(store.refs().unwrap().is_empty());
    assert_eq!(cached_files(&opts.debs_cache), Vec::<PathBuf>::new());
    assert!(!dir.join("debs.lock").exists());

    // (b) A changed .deb: its SHA-256 is not the index's.
    setup.intact();
    let mut deb = setup.copy.deb.clone();
    let middle = deb.len() / 2;
    deb[middle] ^= 0xff;
    setup.replace(&setup.copy.deb_path, deb);
    let (dir, store, opts) = setup.package("deb", &mirror);
    let err = slipway_pkg::build(&dir, &store, &opts).unwrap_err();
    let text = slipway_contract::errors::chain(&err);
    assert!(
        matches!(err, PkgError::Deb(DebError::Checksum { .. })),
        "{text}"
    );
    assert!(text.contains(&setup.copy.deb_path), "{text}");
    assert!(store.refs().unwrap().is_empty());
    let pool = opts.debs_cache.join("pool");
    assert!(
        !pool.exists() || std::fs::read_dir(&pool).unwrap().next().is_none(),
        "a bad .deb was kept"
    );

    // (c) A broken signature: one changed character of the signed text.
    setup.intact();
    let mut release = String::from_utf8(setup.copy.in_release.clone()).unwrap();
    let at = release.find("Codename: ").unwrap();
    release.replace_range(at..at + 1, "K");
    setup.replace("InRelease", release.into_bytes());
    let (dir, store, opts) = setup.package("signature", &mirror);
    let err = slipway_pkg::build(&dir, &store, &opts).unwrap_err();
    let text = slipway_contract::errors::chain(&err);
    assert!(
        matches!(err, PkgError::Deb(DebError::BadSignature { .. })),
        "{text}"
    );
    assert!(
        text.contains("/InRelease: the signature does not verify"),
        "{text}"
    );
    assert!(store.refs().unwrap().is_empty());
    assert_eq!(cached_files(&opts.debs_cache), Vec::<PathBuf>::new());
}

#[test]
fn a_pinned_version_the_mirror_no_longer_has() {
    let setup = Setup::new();
    let mirror = serve(setup.files.clone());
    let (dir, store, opts) = setup.package("gone", &mirror);
    let gone = format!(
        r#"{{
  "lockVersion": 1,
  "steps": [
    {{
      "packages": ["{PACKAGE}"],
      "resolved": {{
        "amd64": [
          {{
            "name": "{PACKAGE}",
            "version": "1:0.0-gone",
            "architecture": "amd64",
            "filename": "pool/main/b/busybox/{PACKAGE}_0.0-gone_amd64.deb",
            "size": 1,
            "sha256": "{}",
            "suite": "{mirror} {}"
          }}
        ]
      }}
    }}
  ]
}}
"#,
        "0".repeat(64),
        setup.suite
    );
    std::fs::write(dir.join("debs.lock"), &gone).unwrap();

    // Under --locked: an error naming the lock and the way out; nothing changes.
    let locked = BuildOptions {
        locked: true,
        ..opts.clone()
    };
    let err = slipway_pkg::build(&dir, &store, &locked).unwrap_err();
    let text = slipway_contract::errors::chain(&err);
    assert!(text.contains("debs.lock: --locked"), "{text}");
    assert!(text.contains("no longer served"), "{text}");
    assert!(text.contains("--update-lock"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.join("debs.lock")).unwrap(),
        gone
    );
    assert!(store.refs().unwrap().is_empty());

    // Otherwise: re-resolved to what is served, with a warning; the lock updated.
    let built = slipway_pkg::build(&dir, &store, &opts).unwrap();
    assert_eq!(built.warnings.len(), 1, "{:?}", built.warnings);
    assert!(
        built.warnings[0].contains(&format!(
            "{PACKAGE} 1:0.0-gone (pinned in debs.lock) is no longer served; using {}",
            setup.copy.version
        )),
        "{:?}",
        built.warnings
    );
    let lock = std::fs::read_to_string(dir.join("debs.lock")).unwrap();
    assert!(!lock.contains("0.0-gone"), "{lock}");
    assert!(lock.contains(&setup.copy.version), "{lock}");
    // And the updated lock now holds under --locked.
    let again = slipway_pkg::build(&dir, &store, &locked).unwrap();
    assert!(again.cached());
}

/// A mirror caught mid-update serves, under `Packages.xz`, an index newer
/// than the `InRelease` it served a moment before. Where the InRelease says
/// `Acquire-By-Hash: yes` (Debian's do), the index it names is fetched by
/// its hash, as apt does; where the mirror has no `by-hash/` copy, the
/// build fetches a fresh InRelease once and tries again.
#[test]
fn an_index_changed_while_the_mirror_updates() {
    let setup = Setup::new();
    let in_release = String::from_utf8_lossy(&setup.copy.in_release).into_owned();
    assert!(
        in_release.contains("Acquire-By-Hash: yes"),
        "Debian's InRelease offers indexes by hash"
    );
    let (sha, _) = release_hashes(&in_release)["main/binary-amd64/Packages.xz"].clone();
    let dists = format!("/debian/dists/{}", setup.suite);
    let index = format!("{dists}/main/binary-amd64/Packages.xz");
    let by_hash = format!("{dists}/main/binary-amd64/by-hash/SHA256/{sha}");
    // The next index: what the mirror serves under the file's name now.
    let newer = {
        let mut b = setup.copy.packages_xz.clone();
        b.truncate(b.len() / 2);
        b
    };

    // By hash: the name serves the newer index throughout.
    let server = FileServer::start(setup.files.clone()).unwrap();
    let mirror = format!("{}/debian", server.url());
    setup
        .files
        .lock()
        .unwrap()
        .insert(index.clone(), newer.clone());
    setup
        .files
        .lock()
        .unwrap()
        .insert(by_hash.clone(), setup.copy.packages_xz.clone());
    let (dir, store, opts) = setup.package("by-hash", &mirror);
    let built = slipway_pkg::build(&dir, &store, &opts);
    assert!(built.is_ok(), "{:?}", built.err());

    // No by-hash copy: the first fetch of the name gets the newer index, the
    // retry (after a fresh InRelease) the one that InRelease names.
    setup.intact();
    let server = FileServer::start(setup.files.clone()).unwrap();
    let mirror = format!("{}/debian", server.url());
    server.serve_first(&index, newer.clone());
    let (dir, store, opts) = setup.package("retried", &mirror);
    let built = slipway_pkg::build(&dir, &store, &opts);
    assert!(built.is_ok(), "{:?}", built.err());

    // A mirror that keeps serving an index its InRelease does not name is
    // an error naming the index, after the one retry.
    let server = FileServer::start(setup.files.clone()).unwrap();
    let mirror = format!("{}/debian", server.url());
    server.serve_first(&index, newer.clone());
    server.serve_first(&index, newer);
    let (dir, store, opts) = setup.package("still-changed", &mirror);
    let err = slipway_pkg::build(&dir, &store, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Packages.xz"), "{err}");
    // Nothing half-fetched stays in the download cache.
    assert_eq!(
        cached_files(&setup.tmp.path().join("still-changed-debs")),
        Vec::<PathBuf>::new()
    );
}

/// Building for arm64 after amd64 adds arm64's pins to debs.lock and keeps
/// amd64's, and with them amd64's tag and its image in the cache (an amd64
/// build under `--locked` finds it there); re-resolving amd64 keeps arm64's.
#[test]
fn one_architecture_keeps_the_others_pins_and_tag() {
    let setup = Setup::new();
    let mirror = serve(setup.files.clone());
    let (dir, store, opts) = setup.package("arches", &mirror);
    let lock = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("debs.lock")).unwrap()).unwrap()
    };
    let arches = |lock: &serde_json::Value| -> Vec<String> {
        lock["steps"][0]["resolved"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let for_arch = |arch: Arch, update_lock: bool, locked: bool| BuildOptions {
        arches: Some(vec![arch]),
        update_lock,
        locked,
        ..opts.clone()
    };

    let amd64 = slipway_pkg::build(&dir, &store, &for_arch(Arch::Amd64, false, false)).unwrap();
    let amd64_tag = slipway_pkg::show_tag(&dir, Arch::Amd64).unwrap();
    assert_eq!(amd64.reference(Arch::Amd64), Some(&amd64_tag));
    let first = lock();
    assert_eq!(arches(&first), ["amd64"]);

    // arm64: its pins join amd64's, which stay as they were, and so does
    // amd64's tag.
    let arm64 = slipway_pkg::build(&dir, &store, &for_arch(Arch::Arm64, false, false)).unwrap();
    let arm64_tag = slipway_pkg::show_tag(&dir, Arch::Arm64).unwrap();
    assert_eq!(arm64.reference(Arch::Arm64), Some(&arm64_tag));
    let both = lock();
    assert_eq!(arches(&both), ["amd64", "arm64"]);
    assert_eq!(
        both["steps"][0]["resolved"]["amd64"],
        first["steps"][0]["resolved"]["amd64"]
    );
    let pinned = &both["steps"][0]["resolved"]["arm64"][0];
    assert_eq!(pinned["name"], PACKAGE);
    assert_eq!(pinned["architecture"], "arm64");
    assert_eq!(pinned["version"], setup.copy.arm64.version.as_str());
    assert_eq!(pinned["filename"], setup.copy.arm64.deb_path.as_str());
    assert_eq!(slipway_pkg::show_tag(&dir, Arch::Amd64).unwrap(), amd64_tag);
    assert_ne!(arm64_tag, amd64_tag, "the pins differ, so do the tags");
    let image = store
        .resolve(&arm64_tag, &Platform::linux(Arch::Arm64))
        .unwrap();
    assert_eq!(
        image.manifest_descriptor.platform.unwrap().architecture,
        "arm64"
    );

    // amd64 is still built: found by its tag, and a locked build is a cache hit.
    assert_eq!(
        slipway_pkg::package_reference(&dir, &store, Arch::Amd64).unwrap(),
        amd64_tag
    );
    let again = slipway_pkg::build(&dir, &store, &for_arch(Arch::Amd64, false, true)).unwrap();
    assert!(again.cached());
    assert_eq!(again.reference(Arch::Amd64), Some(&amd64_tag));

    // Re-resolving amd64 from the index keeps arm64's pins and tag; the
    // same index gives the same pins, so the lock is the same bytes.
    let text = std::fs::read_to_string(dir.join("debs.lock")).unwrap();
    slipway_pkg::build(&dir, &store, &for_arch(Arch::Amd64, true, false)).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("debs.lock")).unwrap(),
        text
    );
    assert_eq!(slipway_pkg::show_tag(&dir, Arch::Arm64).unwrap(), arm64_tag);
    assert_eq!(
        slipway_pkg::package_reference(&dir, &store, Arch::Arm64).unwrap(),
        arm64_tag
    );

    // Both at once: one index per tag, each under the tag built alone.
    let both = slipway_pkg::build(
        &dir,
        &store,
        &BuildOptions {
            arches: Some(vec![Arch::Amd64, Arch::Arm64]),
            force: true,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(both.images.len(), 2);
    assert_eq!(both.reference(Arch::Amd64), Some(&amd64_tag));
    assert_eq!(both.reference(Arch::Arm64), Some(&arm64_tag));
}
