//! Import, export, clean and verify, on stores written by the testkit's
//! builder and on archives made here (`docker save` layout) or by skopeo.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::json;
use slipway_oci::{ArchiveKind, ExportFormat, Store, StoreError};
use slipway_reference::{Arch, Digest, Platform, Reference};
use slipway_testkit::image::{pseudo_random_bytes, sha256_digest, tar_bytes};
use slipway_testkit::{Artifact, Entry, ImageBuilder, Index};

fn digest(s: &str) -> Digest {
    Digest::parse(s).expect("digest")
}

fn two_arch() -> Index {
    let amd = ImageBuilder::new()
        .layer([Entry::file("arch", "amd64")])
        .layer([Entry::file("big", pseudo_random_bytes(7, 200_000))])
        .build()
        .expect("build");
    let arm = ImageBuilder::new()
        .arch("arm64")
        .layer([Entry::file("arch", "arm64")])
        .build()
        .expect("build");
    Index::new([amd, arm])
}

fn store_with(artifact: &Artifact, name: &str) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    artifact
        .write_oci_layout(dir.path(), Some(name))
        .expect("layout");
    let store = Store::open(dir.path()).expect("store");
    (dir, store)
}

fn export_bytes(
    store: &Store,
    name: &str,
    platform: Option<&Platform>,
    format: ExportFormat,
) -> (Vec<u8>, slipway_oci::ExportReport) {
    let r = Reference::parse(name).expect("ref");
    slipway_oci::export(store, &r, platform, format, Vec::new()).expect("export")
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    tar::Archive::new(bytes)
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

#[test]
fn oci_export_then_import_gives_the_same_image() {
    let index = two_arch();
    let (_a, source) = store_with(&index.clone().into(), "example.com/multi:1");
    let (tar, report) = export_bytes(&source, "example.com/multi:1", None, ExportFormat::Oci);
    assert_eq!(report.root.digest.to_string(), index.index.digest());
    assert!(report.absent_platforms.is_empty());
    // Deterministic: the same store exports the same bytes.
    let (again, _) = export_bytes(&source, "example.com/multi:1", None, ExportFormat::Oci);
    assert_eq!(tar, again);

    let dir = tempfile::tempdir().unwrap();
    let target = Store::open(dir.path()).unwrap();
    let imported = slipway_oci::import(&target, &tar[..]).unwrap();
    assert_eq!(imported.kind, ArchiveKind::OciLayout);
    assert_eq!(imported.images[0].0, "example.com/multi:1");
    let r = Reference::parse("example.com/multi:1").unwrap();
    for arch in [Arch::Amd64, Arch::Arm64] {
        let image = target.resolve(&r, &Platform::linux(arch)).unwrap();
        assert_eq!(image.digest().to_string(), index.index.digest());
    }
}

#[test]
fn a_partial_index_exports_reduced_and_says_what_is_absent() {
    let index = two_arch();
    let (_a, store) = store_with(&index.clone().into(), "example.com/multi:1");
    for blob in index.images[1].blobs() {
        std::fs::remove_file(store.blob_path(&digest(blob.digest()))).unwrap();
    }
    let (tar, report) = export_bytes(&store, "example.com/multi:1", None, ExportFormat::Oci);
    assert_eq!(report.absent_platforms, ["linux/arm64"]);
    assert_eq!(
        report.reduced_from.as_ref().map(ToString::to_string),
        Some(index.index.digest().to_string())
    );
    let names = tar_names(&tar);
    assert!(names.contains(&format!("blobs/sha256/{}", report.root.digest.hex())));
    assert!(!names.contains(&format!("blobs/sha256/{}", index.images[1].manifest.hex())));

    // One platform only: its manifest becomes the root.
    let amd = Platform::linux(Arch::Amd64);
    let (_, report) = export_bytes(&store, "example.com/multi:1", Some(&amd), ExportFormat::Oci);
    assert_eq!(
        report.root.digest.to_string(),
        index.images[0].manifest.digest()
    );
    // The absent one is named in the error, with what the index has.
    let err = slipway_oci::export(
        &store,
        &Reference::parse("example.com/multi:1").unwrap(),
        Some(&Platform::linux(Arch::Arm64)),
        ExportFormat::Oci,
        Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("example.com/multi:1"), "{err}");
}

#[test]
fn docker_export_loads_back_and_lists_a_manifest_json() {
    let index = two_arch();
    let (_a, store) = store_with(&index.clone().into(), "example.com/multi:1");
    let arm = Platform::linux(Arch::Arm64);
    let (tar, report) = export_bytes(
        &store,
        "example.com/multi:1",
        Some(&arm),
        ExportFormat::Docker,
    );
    assert_eq!(
        report.root.digest.to_string(),
        index.images[1].manifest.digest()
    );
    let mut archive = tar::Archive::new(&tar[..]);
    let manifest: serde_json::Value = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .map(|e| serde_json::from_reader(e).unwrap())
        .expect("manifest.json");
    assert_eq!(manifest[0]["RepoTags"][0], "example.com/multi:1");
    assert_eq!(
        manifest[0]["Config"],
        format!("blobs/sha256/{}", index.images[1].config.hex())
    );
    // Without a platform, an index cannot become a docker archive.
    let err = slipway_oci::export(
        &store,
        &Reference::parse("example.com/multi:1").unwrap(),
        None,
        ExportFormat::Docker,
        Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("one platform"), "{err}");
}

/// A `docker save` archive as Docker before 25 wrote it: `manifest.json`,
/// `<hex>.json` configs and `<id>/layer.tar` uncompressed layers.
fn docker_save_tar(tags: &[&str]) -> (Vec<u8>, String, Vec<String>) {
    let layer1 = tar_bytes(&[Entry::file("etc/motd", "hello")]).unwrap();
    let layer2 = tar_bytes(&[Entry::file("big", pseudo_random_bytes(3, 100_000))]).unwrap();
    let diff_ids = vec![sha256_digest(&layer1), sha256_digest(&layer2)];
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = sha256_digest(&config);
    let config_name = format!("{}.json", config_digest.trim_start_matches("sha256:"));
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": tags,
        "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
    }]))
    .unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, bytes).unwrap();
    };
    // Layers first, manifest.json last: the importer cannot know the roles up front.
    add("aaa/VERSION", b"1.0");
    add("aaa/layer.tar", &layer1);
    add("bbb/layer.tar", &layer2);
    add(&config_name, &config);
    add("repositories", b"{}");
    add("manifest.json", &manifest);
    (builder.into_inner().unwrap(), config_digest, diff_ids)
}

#[test]
fn imports_a_docker_save_archive() {
    let (tar, config_digest, diff_ids) = docker_save_tar(&["alpine:3.20", "example.com/x/y:2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let report = slipway_oci::import(&store, &tar[..]).unwrap();
    assert_eq!(report.kind, ArchiveKind::DockerSave);
    let names: Vec<&str> = report.images.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["docker.io/library/alpine:3.20", "example.com/x/y:2"]
    );
    let image = store
        .resolve(
            &Reference::parse("alpine:3.20").unwrap(),
            &Platform::linux(Arch::Amd64),
        )
        .unwrap();
    assert_eq!(image.root.media_type, slipway_oci::media::DOCKER_MANIFEST);
    assert_eq!(image.manifest.config.digest.to_string(), config_digest);
    let layers: Vec<String> = image
        .manifest
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect();
    assert_eq!(
        layers, diff_ids,
        "uncompressed layer blobs are their diff_ids"
    );
    assert_eq!(
        image.manifest.layers[0].media_type,
        slipway_oci::media::DOCKER_LAYER
    );
    for d in image.blobs() {
        assert!(store.verify_blob(&d.digest).unwrap());
    }
    // From a pipe, too: nothing needs seeking.
    let other = tempfile::tempdir().unwrap();
    let store = Store::open(other.path()).unwrap();
    let reader = std::io::Read::chain(&tar[..], std::io::empty());
    slipway_oci::import(&store, reader).unwrap();
}

#[test]
fn a_blob_that_does_not_match_its_name_is_refused_and_not_stored() {
    let image = ImageBuilder::new()
        .layer([Entry::file("a", "b")])
        .build()
        .unwrap();
    let (_a, store) = store_with(&image.clone().into(), "example.com/x:1");
    let (tar, _) = export_bytes(&store, "example.com/x:1", None, ExportFormat::Oci);
    // Flip one byte of the layer's content inside the archive.
    let layer = &image.layers[0];
    let at = tar
        .windows(layer.bytes().len())
        .position(|w| w == layer.bytes())
        .expect("layer in tar");
    let mut bad = tar.clone();
    bad[at + 10] ^= 0xff;
    let dir = tempfile::tempdir().unwrap();
    let target = Store::open(dir.path()).unwrap();
    let err = slipway_oci::import(&target, &bad[..]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(layer.hex()), "{text}");
    assert!(!target.has_blob(&digest(layer.digest())));
    assert!(target.refs().unwrap().is_empty());
}

#[test]
fn an_archive_without_an_image_is_a_clear_error() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(2);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "hello.txt", &b"hi"[..])
        .unwrap();
    let tar = builder.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = slipway_oci::import(&store, &tar[..]).unwrap_err();
    assert!(err.to_string().contains("index.json"), "{err}");
    let err = slipway_oci::import(&store, &b"not a tar at all, not even close"[..]).unwrap_err();
    assert!(!err.to_string().is_empty());
}

fn touch(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn clean_removes_only_what_no_image_uses() {
    let index = two_arch();
    let (dir, store) = store_with(&index.clone().into(), "example.com/multi:1");
    let stray = store.put_blob(b"nobody refers to me").unwrap();
    let removed = ImageBuilder::new()
        .layer([Entry::file("gone", "soon")])
        .build()
        .unwrap();
    Artifact::from(removed.clone())
        .write_oci_layout(dir.path(), Some("example.com/gone:1"))
        .unwrap();
    assert!(store.remove_ref("example.com/gone:1").unwrap());
    // Left by a killed process: a blob being written, an index being replaced.
    touch(&dir.path().join("blobs/sha256/.tmp-abc123"), b"partial");
    touch(&dir.path().join(".index.json.tmp-xyz"), b"{");
    touch(&dir.path().join("segments/ab/cdef"), b"segment");

    let report = store.clean(false).unwrap();
    assert!(report.removed_blobs.contains(&stray));
    for blob in removed.blobs() {
        assert!(
            report.removed_blobs.contains(&digest(blob.digest())),
            "{}",
            blob.digest()
        );
    }
    assert_eq!(report.removed_temp_files.len(), 2);
    assert_eq!(report.removed_segments, 1);
    assert!(!dir.path().join("segments").exists());
    for blob in Artifact::from(index.clone()).blobs() {
        assert!(store.has_blob(&digest(blob.digest())), "{}", blob.digest());
    }
    // Nothing more to do the second time.
    let again = store.clean(false).unwrap();
    assert!(again.removed_blobs.is_empty() && again.removed_temp_files.is_empty());

    let all = store.clean(true).unwrap();
    assert_eq!(all.removed_refs, ["example.com/multi:1"]);
    assert!(store.refs().unwrap().is_empty());
    assert!(!store.has_blob(&digest(index.index.digest())));
}

#[test]
fn clean_waits_for_writers() {
    let image = ImageBuilder::new()
        .layer([Entry::file("a", "b")])
        .build()
        .unwrap();
    let (_dir, store) = store_with(&image.into(), "example.com/x:1");
    // A pull or import holds the cache from its first blob to naming the image.
    let guard = store.gc_guard().unwrap();
    let stray = store.put_blob(b"fetched, not yet named").unwrap();
    assert!(store.try_clean(false).unwrap().is_none());
    // So does a blob being written, through its temporary file.
    drop(guard);
    let writer = store.blob_writer(None).unwrap();
    let temp = writer.temp_path().to_path_buf();
    assert!(store.try_clean(false).unwrap().is_none());
    assert!(temp.exists() && store.has_blob(&stray));
    drop(writer);
    let report = store.try_clean(false).unwrap().expect("no writer left");
    assert_eq!(report.removed_blobs, [stray]);
}

#[test]
fn verify_drops_corrupt_blobs_and_reports_damaged_images() {
    let index = two_arch();
    let (dir, store) = store_with(&index.clone().into(), "example.com/multi:1");
    let single = ImageBuilder::new()
        .layer([Entry::file("x", "y")])
        .build()
        .unwrap();
    Artifact::from(single.clone())
        .write_oci_layout(dir.path(), Some("example.com/single:1"))
        .unwrap();
    let sound = store.verify().unwrap();
    assert!(sound.is_sound(), "{sound:?}");
    assert_eq!(sound.checked, 11);

    // Corrupt an amd64 layer, and the single image's manifest.
    let layer = digest(index.images[0].layers[1].digest());
    let path = store.blob_path(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    std::fs::write(store.blob_path(&digest(single.manifest.digest())), b"{}").unwrap();
    // And drop the arm64 manifest, as a partial pull leaves it: that is fine.
    std::fs::remove_file(store.blob_path(&digest(index.images[1].manifest.digest()))).unwrap();

    let report = store.verify().unwrap();
    assert!(!report.is_sound());
    assert!(report.corrupt.contains(&layer));
    assert!(!store.has_blob(&layer));
    assert_eq!(report.dropped_refs, ["example.com/single:1"]);
    assert_eq!(report.incomplete.len(), 1);
    assert_eq!(report.incomplete[0].name, "example.com/multi:1");
    assert_eq!(report.incomplete[0].missing, [layer]);
    assert_eq!(
        report.partial,
        [(
            "example.com/multi:1".to_string(),
            vec!["linux/arm64".to_string()]
        )]
    );
    let err = store
        .resolve(
            &Reference::parse("example.com/multi:1").unwrap(),
            &Platform::linux(Arch::Amd64),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Incomplete { .. }), "{err}");
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (cargo xtask deps)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn skopeo_reads_an_exported_archive_and_its_archives_import() {
    let image = ImageBuilder::new()
        .layer([Entry::file("etc/motd", "hi")])
        .build()
        .unwrap();
    let (_a, store) = store_with(&image.clone().into(), "example.com/s:1");
    let work = tempfile::tempdir().unwrap();
    let tar_path = work.path().join("image.tar");
    let (tar, _) = export_bytes(&store, "example.com/s:1", None, ExportFormat::Oci);
    std::fs::write(&tar_path, tar).unwrap();
    let archive = format!("oci-archive:{}", tar_path.display());
    let raw = skopeo(&["inspect", "--raw", &archive]);
    assert_eq!(sha256_digest(raw.as_bytes()), image.manifest.digest());

    // skopeo's own oci-archive, named as skopeo names it, imports.
    let back = work.path().join("skopeo.tar");
    skopeo(&[
        "copy",
        "--quiet",
        &archive,
        &format!("oci-archive:{}:example.com/t:2", back.display()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let target = Store::open(dir.path()).unwrap();
    let file = std::fs::File::open(&back).unwrap();
    let report = slipway_oci::import(&target, file).unwrap();
    assert_eq!(report.images[0].0, "example.com/t:2");
    let resolved = target
        .resolve(
            &Reference::parse("example.com/t:2").unwrap(),
            &Platform::linux(Arch::Amd64),
        )
        .unwrap();
    assert_eq!(
        resolved.manifest.layers[0].digest.to_string(),
        image.layers[0].digest()
    );
}

#[test]
fn skopeo_reads_a_docker_export_and_writes_docker_archives_that_import() {
    let image = ImageBuilder::new()
        .layer([Entry::file("etc/motd", "hi")])
        .layer([Entry::file("big", pseudo_random_bytes(9, 50_000))])
        .build()
        .unwrap();
    let (_a, store) = store_with(&image.clone().into(), "example.com/d:1");
    let work = tempfile::tempdir().unwrap();
    let tar_path = work.path().join("docker.tar");
    let amd = Platform::linux(Arch::Amd64);
    let (tar, _) = export_bytes(&store, "example.com/d:1", Some(&amd), ExportFormat::Docker);
    std::fs::write(&tar_path, tar).unwrap();
    // skopeo's docker-archive transport reads what `docker load` reads: manifest.json.
    let archive = format!("docker-archive:{}", tar_path.display());
    let config = skopeo(&["inspect", "--config", &archive]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // A docker-archive written by skopeo (legacy docker save layout) imports,
    // with the same config and the same uncompressed layer contents.
    let back = work.path().join("skopeo-docker.tar");
    skopeo(&[
        "copy",
        "--quiet",
        &archive,
        &format!("docker-archive:{}:example.com/e:2", back.display()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let target = Store::open(dir.path()).unwrap();
    let report = slipway_oci::import(&target, std::fs::File::open(&back).unwrap()).unwrap();
    assert_eq!(report.kind, ArchiveKind::DockerSave);
    assert_eq!(report.images[0].0, "example.com/e:2");
    let resolved = target
        .resolve(&Reference::parse("example.com/e:2").unwrap(), &amd)
        .unwrap();
    assert_eq!(
        resolved.manifest.config.digest.to_string(),
        image.config.digest()
    );
    assert_eq!(resolved.manifest.layers.len(), 2);
    for d in resolved.blobs() {
        assert!(target.verify_blob(&d.digest).unwrap());
    }
}
