//! The content store on its own: blobs, index.json, locking, resolution.

use std::io::Write;
use std::sync::Arc;

use slipway_oci::{Descriptor, Store, StoreError};
use slipway_reference::{Arch, Digest, Platform, Reference};
use slipway_testkit::image::sha256_digest;
use slipway_testkit::{Artifact, Entry, Format, ImageBuilder, Index};

fn digest(s: &str) -> Digest {
    Digest::parse(s).expect("valid digest")
}

fn temp_files(store: &Store) -> Vec<String> {
    let dir = store.root().join("blobs/sha256");
    std::fs::read_dir(dir)
        .expect("blob dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn creates_a_layout_and_stores_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("cache")).unwrap();
    assert!(store.root().join("oci-layout").is_file());
    assert_eq!(store.index().unwrap().manifests.len(), 0);
    let d = store.put_blob(b"hello").unwrap();
    assert_eq!(d.to_string(), sha256_digest(b"hello"));
    assert!(store.has_blob(&d));
    assert_eq!(store.read_blob(&d, "test").unwrap(), b"hello");
    assert!(store.verify_blob(&d).unwrap());
    // Reopening an existing layout keeps it.
    let again = Store::open(store.root()).unwrap();
    assert!(again.has_blob(&d));
}

#[test]
fn a_wrong_blob_is_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let expected = digest(&sha256_digest(b"right"));

    let mut w = store.blob_writer(Some((&expected, 5))).unwrap();
    w.write_all(b"wrong").unwrap();
    let err = w.commit().unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&expected.to_string()));

    let mut w = store.blob_writer(Some((&expected, 5))).unwrap();
    w.write_all(b"righ").unwrap();
    assert!(matches!(w.commit(), Err(StoreError::SizeMismatch { .. })));

    let mut w = store.blob_writer(Some((&expected, 5))).unwrap();
    assert!(
        w.write_all(b"right and more").is_err(),
        "more than announced is refused"
    );
    drop(w);

    assert!(!store.has_blob(&expected));
    assert!(temp_files(&store).is_empty(), "temporary files left behind");
}

#[test]
fn corruption_on_disk_is_detected_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let d = store.put_blob(b"{\"a\":1}").unwrap();
    std::fs::write(store.blob_path(&d), b"{\"a\":2}").unwrap();
    assert!(!store.verify_blob(&d).unwrap());
    let err = store.read_blob(&d, "config").unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
}

#[test]
fn refs_are_named_replaced_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store.put_blob(b"a").unwrap();
    let b = store.put_blob(b"b").unwrap();
    let r = Reference::parse("alpine:3.20").unwrap();
    let name = r.to_string();
    assert_eq!(name, "docker.io/library/alpine:3.20");
    store
        .set_ref(&name, &Descriptor::new("x", a.clone(), 1))
        .unwrap();
    store
        .set_ref(&name, &Descriptor::new("x", b.clone(), 1))
        .unwrap();
    let refs = store.refs().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].1.digest, b);
    assert_eq!(store.lookup(&r).unwrap().unwrap().digest, b);
    // By digest: any entry with that digest.
    let by_digest = Reference::parse("other").unwrap().with_digest(b.clone());
    assert_eq!(store.lookup(&by_digest).unwrap().unwrap().digest, b);
    assert!(store.remove_ref(&name).unwrap());
    assert!(store.lookup(&r).unwrap().is_none());
}

#[test]
fn concurrent_index_updates_are_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let root = Arc::new(dir.path().to_path_buf());
    Store::open(root.as_path()).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                // Each thread opens its own store: its own lock file handle, as a process would.
                let store = Store::open(root.as_path()).unwrap();
                for i in 0..25 {
                    let d = store.put_blob(format!("{t}-{i}").as_bytes()).unwrap();
                    store
                        .set_ref(
                            &format!("example.com/t{t}:i{i}"),
                            &Descriptor::new("x", d, 3),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = Store::open(root.as_path()).unwrap();
    assert_eq!(store.refs().unwrap().len(), 200);
}

#[test]
fn foreign_index_fields_survive_updates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    std::fs::write(
        dir.path().join("index.json"),
        r#"{"schemaVersion":2,"manifests":[],"annotations":{"made.by":"linuxkit"}}"#,
    )
    .unwrap();
    let store = Store::open(dir.path()).unwrap();
    let d = store.put_blob(b"x").unwrap();
    store
        .set_ref("docker.io/library/x:1", &Descriptor::new("t", d, 1))
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("index.json")).unwrap();
    assert!(text.contains("made.by"), "{text}");
}

fn two_platform_index() -> Index {
    let amd = ImageBuilder::new()
        .layer([Entry::file("arch", "amd64")])
        .build()
        .expect("build");
    let arm = ImageBuilder::new()
        .arch("arm64")
        .variant("v8")
        .layer([Entry::file("arch", "arm64")])
        .build()
        .expect("build");
    Index::new([amd, arm])
}

#[test]
fn resolves_a_layout_written_by_another_tool() {
    let dir = tempfile::tempdir().unwrap();
    let index = two_platform_index();
    let name = "docker.io/library/multi:1";
    Artifact::from(index.clone())
        .write_oci_layout(dir.path(), Some(name))
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = Reference::parse("multi:1").unwrap();

    let arm = store
        .resolve(&r, &Platform::parse("linux/arm64").unwrap())
        .unwrap();
    assert_eq!(arm.digest().to_string(), index.index.digest());
    assert_eq!(
        arm.manifest_descriptor.digest.to_string(),
        index.images[1].manifest.digest()
    );
    let amd = store.resolve(&r, &Platform::linux(Arch::Amd64)).unwrap();
    assert_eq!(
        amd.manifest.layers[0].digest.to_string(),
        index.images[0].layers[0].digest()
    );

    let err = store
        .resolve(&r, &Platform::linux(Arch::S390x))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::PlatformMissing { .. }));
    assert!(
        text.contains("linux/amd64") && text.contains("linux/arm64"),
        "{text}"
    );

    let err = store
        .resolve(
            &Reference::parse("multi:2").unwrap(),
            &Platform::linux(Arch::Amd64),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("docker.io/library/multi:2"),
        "{err}"
    );
}

#[test]
fn an_index_with_some_children_is_valid_for_those() {
    let dir = tempfile::tempdir().unwrap();
    let index = two_platform_index();
    Artifact::from(index.clone())
        .write_oci_layout(dir.path(), Some("docker.io/library/m:1"))
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Drop the arm64 child's blobs, as a pull of amd64 alone leaves it.
    for blob in index.images[1].blobs() {
        std::fs::remove_file(store.blob_path(&digest(blob.digest()))).unwrap();
    }
    let r = Reference::parse("m:1").unwrap();
    store.resolve(&r, &Platform::linux(Arch::Amd64)).unwrap();
    let err = store
        .resolve(&r, &Platform::linux(Arch::Arm64))
        .unwrap_err();
    assert!(matches!(err, StoreError::Incomplete { .. }), "{err}");
}

#[test]
fn resolves_docker_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .format(Format::Docker)
        .arch("arm64")
        .layer([Entry::file("a", "b")])
        .build()
        .unwrap();
    Artifact::from(image.clone())
        .write_oci_layout(dir.path(), Some("example.com/d:1"))
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    let resolved = store
        .resolve(
            &Reference::parse("example.com/d:1").unwrap(),
            &Platform::linux(Arch::Arm64),
        )
        .unwrap();
    assert_eq!(
        resolved.manifest.config.digest.to_string(),
        image.config.digest()
    );
}
