//! The harness against the real registry: start, push, read back, auth, restart.

use std::time::Duration;

use slipway_testkit::http::{Request, send};
use slipway_testkit::{Artifact, Entry, Format, ImageBuilder, Index, PushTarget, Registry};

const T: Duration = Duration::from_secs(10);

#[test]
fn push_image_and_index_then_read_back() {
    let registry = Registry::start().unwrap();
    let image = ImageBuilder::new()
        .format(Format::Docker)
        .layer([Entry::file("hello", "world")])
        .build()
        .unwrap();
    let target = PushTarget::new(&registry, "test/single");
    target
        .push(&Artifact::from(image.clone()), Some("v1"))
        .unwrap();

    let r = send(
        registry.addr(),
        &Request::new("GET", "/v2/test/single/manifests/v1")
            .header("Accept", image.manifest.media_type()),
        T,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, image.manifest.bytes());
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(image.manifest.digest())
    );

    let amd = ImageBuilder::new()
        .layer([Entry::file("a", "1")])
        .build()
        .unwrap();
    let arm = ImageBuilder::new()
        .arch("arm64")
        .layer([Entry::file("a", "2")])
        .build()
        .unwrap();
    let index = Artifact::from(Index::new([amd, arm]));
    PushTarget::new(&registry, "test/multi")
        .push(&index, Some("latest"))
        .unwrap();
    let r = send(
        registry.addr(),
        &Request::new("GET", "/v2/test/multi/manifests/latest")
            .header("Accept", index.root().media_type()),
        T,
    )
    .unwrap();
    assert_eq!(r.body, index.root().bytes());
}

#[test]
fn basic_auth_is_enforced() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret").unwrap();
    let r = send(registry.addr(), &Request::new("GET", "/v2/"), T).unwrap();
    assert_eq!(r.status, 401);
    let auth = registry.auth().unwrap().header();
    let r = send(
        registry.addr(),
        &Request::new("GET", "/v2/").header("Authorization", auth),
        T,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", registry.log());
    let image = ImageBuilder::new()
        .layer([Entry::file("x", "y")])
        .build()
        .unwrap();
    PushTarget::new(&registry, "private/img")
        .push(&image.into(), Some("1"))
        .unwrap();
}

#[test]
fn restart_keeps_storage() {
    let mut registry = Registry::start().unwrap();
    let image = ImageBuilder::new().build().unwrap();
    PushTarget::new(&registry, "keep/me")
        .push(&image.clone().into(), Some("t"))
        .unwrap();
    registry.kill();
    assert!(send(registry.addr(), &Request::new("GET", "/v2/"), T).is_err());
    registry.restart().unwrap();
    let r = send(
        registry.addr(),
        &Request::new("GET", "/v2/keep/me/manifests/t")
            .header("Accept", image.manifest.media_type()),
        T,
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn writes_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layer([Entry::file("f", "x")])
        .build()
        .unwrap();
    let artifact = Artifact::from(image);
    artifact
        .write_oci_layout(dir.path(), Some("docker.io/library/x:1"))
        .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "docker.io/library/x:1"
    );
    for blob in artifact.blobs() {
        assert!(dir.path().join("blobs/sha256").join(blob.hex()).exists());
    }
}
