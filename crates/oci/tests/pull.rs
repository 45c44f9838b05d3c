//! Pulling from the real registry (Debian's docker-registry, on loopback),
//! and from the in-process mock for faults the real one cannot show.

use std::time::Duration;

use slipway_oci::{
    ClientOptions, Credential, Credentials, PullPolicy, Puller, RegistryClient, RegistryError,
    Store, StoreError,
};
use slipway_reference::{Arch, Digest, Platform, Reference};
use slipway_testkit::image::pseudo_random_bytes;
use slipway_testkit::{
    Artifact, Entry, Fault, FaultKind, Format, ImageBuilder, Index, MockRegistry, PushTarget,
    Registry,
};

fn options() -> ClientOptions {
    ClientOptions {
        credentials: Credentials::none(),
        backoff: Duration::from_millis(10),
        stall_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

fn client() -> RegistryClient {
    RegistryClient::new(options()).expect("client")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn amd64() -> Platform {
    Platform::linux(Arch::Amd64)
}

fn arm64() -> Platform {
    Platform::linux(Arch::Arm64)
}

fn digest(s: &str) -> Digest {
    Digest::parse(s).expect("digest")
}

fn multi_arch() -> Index {
    let amd = ImageBuilder::new()
        .layer([
            Entry::file("arch", "amd64"),
            Entry::file("big", pseudo_random_bytes(1, 300_000)),
        ])
        .build()
        .expect("build");
    let arm = ImageBuilder::new()
        .arch("arm64")
        .variant("v8")
        .layer([
            Entry::file("arch", "arm64"),
            Entry::file("big", pseudo_random_bytes(2, 300_000)),
        ])
        .build()
        .expect("build");
    Index::new([amd, arm])
}

/// Every blob verifies, no temporary files remain, and every named image
/// resolves for the platforms whose manifests are present.
fn assert_consistent(store: &Store) {
    for dir in ["blobs/sha256"] {
        let Ok(entries) = std::fs::read_dir(store.root().join(dir)) else {
            continue;
        };
        for entry in entries {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            assert!(!name.starts_with('.'), "temporary file left: {name}");
            assert!(
                store
                    .verify_blob(&digest(&format!("sha256:{name}")))
                    .expect("verify"),
                "{name}"
            );
        }
    }
}

#[test]
fn pulls_an_oci_image_by_tag_and_by_digest() {
    let registry = Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer([Entry::dir("etc"), Entry::file("etc/motd", "hi\n")])
        .layer([Entry::whiteout("etc/motd")])
        .build()
        .unwrap();
    PushTarget::new(&registry, "test/oci")
        .push(&image.clone().into(), Some("v1"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = client();
    let puller = Puller::new(&store, &client);
    let rt = runtime();

    let r = Reference::parse(&format!("{}/test/oci:v1", registry.host())).unwrap();
    let images = rt.block_on(puller.pull(&r, &[amd64()])).unwrap();
    assert_eq!(images[0].digest().to_string(), image.manifest.digest());
    assert_eq!(images[0].manifest.layers.len(), 2);
    let refs = store.refs().unwrap();
    assert_eq!(refs[0].0, format!("{}/test/oci:v1", registry.host()));
    for blob in image.blobs() {
        assert!(store.has_blob(&digest(blob.digest())));
    }

    let by_digest = r.without_tag().with_digest(digest(image.manifest.digest()));
    let images = rt.block_on(puller.pull(&by_digest, &[amd64()])).unwrap();
    assert_eq!(images[0].digest().to_string(), image.manifest.digest());
    assert!(store.lookup(&by_digest).unwrap().is_some());
    assert_consistent(&store);
}

#[test]
fn pulls_docker_schema2_images_and_lists() {
    let registry = Registry::start().unwrap();
    let amd = ImageBuilder::new()
        .format(Format::Docker)
        .layer([Entry::file("a", "1")])
        .build()
        .unwrap();
    let arm = ImageBuilder::new()
        .format(Format::Docker)
        .arch("arm64")
        .layer([Entry::file("a", "2")])
        .build()
        .unwrap();
    let list = Artifact::from(Index::new([amd.clone(), arm]));
    assert_eq!(
        list.root().media_type(),
        slipway_oci::media::DOCKER_MANIFEST_LIST
    );
    let target = PushTarget::new(&registry, "test/docker");
    target.push(&list, Some("list")).unwrap();
    target.push(&amd.clone().into(), Some("single")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = client();
    let puller = Puller::new(&store, &client);
    let rt = runtime();
    let list_ref = Reference::parse(&format!("{}/test/docker:list", registry.host())).unwrap();
    let image = rt
        .block_on(puller.resolve(&list_ref, &arm64(), PullPolicy::IfMissing))
        .unwrap();
    assert_eq!(
        image.root.media_type,
        slipway_oci::media::DOCKER_MANIFEST_LIST
    );
    assert_eq!(
        image.manifest_descriptor.media_type,
        slipway_oci::media::DOCKER_MANIFEST
    );
    let single = Reference::parse(&format!("{}/test/docker:single", registry.host())).unwrap();
    let image = rt
        .block_on(puller.resolve(&single, &amd64(), PullPolicy::IfMissing))
        .unwrap();
    assert_eq!(image.digest().to_string(), amd.manifest.digest());
    assert_consistent(&store);
}

#[test]
fn only_the_requested_platform_is_fetched() {
    let registry = Registry::start().unwrap();
    let index = multi_arch();
    PushTarget::new(&registry, "test/multi")
        .push(&index.clone().into(), Some("1"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = client();
    let puller = Puller::new(&store, &client);
    let rt = runtime();
    let r = Reference::parse(&format!("{}/test/multi:1", registry.host())).unwrap();

    rt.block_on(puller.pull(&r, &[arm64()])).unwrap();
    for blob in index.images[1].blobs() {
        assert!(store.has_blob(&digest(blob.digest())), "arm64 blob missing");
    }
    for blob in index.images[0].blobs() {
        assert!(
            !store.has_blob(&digest(blob.digest())),
            "amd64 blob fetched"
        );
    }
    // The partial index is a valid cache entry for arm64, and not for amd64.
    store.resolve(&r, &arm64()).unwrap();
    assert!(matches!(
        store.resolve(&r, &amd64()),
        Err(StoreError::Incomplete { .. })
    ));
    // Asking for amd64 then fetches just that.
    rt.block_on(puller.resolve(&r, &amd64(), PullPolicy::IfMissing))
        .unwrap();
    store.resolve(&r, &amd64()).unwrap();
    assert_consistent(&store);
}

#[test]
fn a_missing_platform_lists_what_the_index_has() {
    let registry = Registry::start().unwrap();
    PushTarget::new(&registry, "test/multi")
        .push(&multi_arch().into(), Some("1"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = client();
    let r = Reference::parse(&format!("{}/test/multi:1", registry.host())).unwrap();
    let err = runtime()
        .block_on(Puller::new(&store, &client).pull(&r, &[Platform::linux(Arch::Riscv64)]))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, RegistryError::PlatformMissing { .. }),
        "{text}"
    );
    assert!(
        text.contains("linux/riscv64") && text.contains("linux/amd64, linux/arm64"),
        "{text}"
    );
    assert!(store.refs().unwrap().is_empty());
}

#[test]
fn an_unknown_image_is_named_in_the_error() {
    let registry = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = client();
    let r = Reference::parse(&format!("{}/no/such:thing", registry.host())).unwrap();
    let err = runtime()
        .block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{}/no/such:thing", registry.host())),
        "{err}"
    );
}

#[test]
fn a_cached_image_needs_no_network_and_offline_names_what_is_missing() {
    let mut registry = Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer([Entry::file("x", "y")])
        .build()
        .unwrap();
    PushTarget::new(&registry, "test/cached")
        .push(&image.into(), Some("1"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = client();
    let puller = Puller::new(&store, &client);
    let rt = runtime();
    let cached = Reference::parse(&format!("{}/test/cached:1", registry.host())).unwrap();
    rt.block_on(puller.resolve(&cached, &amd64(), PullPolicy::IfMissing))
        .unwrap();

    registry.kill();
    rt.block_on(puller.resolve(&cached, &amd64(), PullPolicy::IfMissing))
        .unwrap();
    rt.block_on(puller.resolve(&cached, &amd64(), PullPolicy::Never))
        .unwrap();
    assert!(
        rt.block_on(puller.resolve(&cached, &amd64(), PullPolicy::Always))
            .is_err()
    );

    let a = Reference::parse(&format!("{}/test/absent-a:1", registry.host())).unwrap();
    let b = Reference::parse("example.com/absent-b").unwrap();
    let err = rt
        .block_on(puller.resolve_all(&[cached, a, b], &amd64(), PullPolicy::Never))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("test/absent-a:1") && text.contains("example.com/absent-b:latest"),
        "{text}"
    );
    assert!(!text.contains("cached"), "{text}");
}

#[test]
fn basic_auth_against_the_real_registry() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret").unwrap();
    let image = ImageBuilder::new()
        .layer([Entry::file("x", "y")])
        .build()
        .unwrap();
    PushTarget::new(&registry, "private/img")
        .push(&image.into(), Some("1"))
        .unwrap();
    let r = Reference::parse(&format!("{}/private/img:1", registry.host())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = runtime();

    let anonymous = client();
    let err = rt
        .block_on(Puller::new(&store, &anonymous).pull(&r, &[amd64()]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");

    // Credentials from a Docker config.json, as `docker login` writes them.
    let config = tempfile::tempdir().unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:s3cret");
    std::fs::write(
        config.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let client = RegistryClient::new(ClientOptions {
        credentials: Credentials::none().with_docker_config_dir(config.path()),
        ..options()
    })
    .unwrap();
    rt.block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap();

    let wrong = RegistryClient::new(ClientOptions {
        credentials: Credentials::none().with(
            &registry.host(),
            Credential::Basic {
                username: "alice".into(),
                password: "nope".into(),
            },
        ),
        ..options()
    })
    .unwrap();
    let err = rt
        .block_on(Puller::new(&store, &wrong).pull(&r, &[amd64()]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[test]
fn two_pullers_share_one_cache() {
    let registry = Registry::start().unwrap();
    let index = multi_arch();
    let other = ImageBuilder::new()
        .layer([Entry::file("o", "o")])
        .build()
        .unwrap();
    PushTarget::new(&registry, "test/multi")
        .push(&index.into(), Some("1"))
        .unwrap();
    PushTarget::new(&registry, "test/other")
        .push(&other.into(), Some("1"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let host = registry.host();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (root, host) = (root.clone(), host.clone());
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                let client = client();
                let puller = Puller::new(&store, &client);
                let rt = runtime();
                let (first, second) = if i % 2 == 0 {
                    ("multi", "other")
                } else {
                    ("other", "multi")
                };
                for name in [first, second] {
                    let r = Reference::parse(&format!("{host}/test/{name}:1")).unwrap();
                    rt.block_on(puller.pull(&r, &[amd64(), arm64()])).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = Store::open(&root).unwrap();
    assert_eq!(store.refs().unwrap().len(), 2);
    assert_consistent(&store);
}

// ---- faults, from the in-process mock ----

fn mock_with(artifact: &Artifact) -> MockRegistry {
    let mock = MockRegistry::start().expect("mock");
    mock.add("test/img", Some("1"), artifact);
    mock
}

fn big_image() -> slipway_testkit::Image {
    ImageBuilder::new()
        .layer([Entry::file("big", pseudo_random_bytes(7, 200_000))])
        .build()
        .expect("build")
}

#[test]
fn wrong_bytes_are_fetched_again_once_then_reported() {
    let image = big_image();
    let layer = image.layers[0].digest().to_string();
    let artifact = Artifact::from(image);
    let rt = runtime();

    let mock = mock_with(&artifact);
    mock.fault(Fault::new(&layer, 1, FaultKind::WrongBytes));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:1", mock.host())).unwrap();
    let client = client();
    rt.block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap();
    assert_consistent(&store);

    let mock = mock_with(&artifact);
    mock.fault(Fault::new(&layer, 2, FaultKind::WrongBytes));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:1", mock.host())).unwrap();
    let err = rt
        .block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::ContentMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&layer), "{err}");
    assert!(!store.has_blob(&digest(&layer)));
    assert!(store.refs().unwrap().is_empty());
    assert_consistent(&store);
}

#[test]
fn server_errors_then_success() {
    let artifact = Artifact::from(big_image());
    let mock = mock_with(&artifact);
    mock.fault(Fault::new("/manifests/1", 2, FaultKind::Status(500)));
    mock.fault(Fault::new("/blobs/", 2, FaultKind::Status(503)));
    mock.fault(Fault::new("/blobs/", 1, FaultKind::Status(429)));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:1", mock.host())).unwrap();
    let client = client();
    runtime()
        .block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap();

    // Past the retry budget, the error says what the registry answered.
    let mock = mock_with(&artifact);
    mock.fault(Fault::new("/manifests/1", 10, FaultKind::Status(502)));
    let r = Reference::parse(&format!("{}/test/img:1", mock.host())).unwrap();
    let err = runtime()
        .block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 502, .. }),
        "{err}"
    );
}

#[test]
fn a_stalled_transfer_times_out() {
    let image = big_image();
    let layer = image.layers[0].digest().to_string();
    let mock = mock_with(&image.into());
    mock.fault(Fault::new(&layer, 10, FaultKind::Stall { after: 1000 }));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:1", mock.host())).unwrap();
    let client = RegistryClient::new(ClientOptions {
        stall_timeout: Duration::from_millis(300),
        attempts: 2,
        ..options()
    })
    .unwrap();
    let err = runtime()
        .block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Stalled { .. }), "{err}");
    assert!(!store.has_blob(&digest(&layer)));
    assert_consistent(&store);
}

#[test]
fn a_connection_dropped_mid_blob_is_retried_and_the_cache_stays_consistent() {
    let image = big_image();
    let layer = image.layers[0].digest().to_string();
    let artifact = Artifact::from(image);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = client();
    let rt = runtime();

    // The server dies in the middle of the layer, every time: the pull fails,
    // and leaves neither a partial blob nor a name.
    let dying = mock_with(&artifact);
    dying.fault(Fault::new(&layer, 100, FaultKind::Drop { after: 50_000 }));
    let r = Reference::parse(&format!("{}/test/img:1", dying.host())).unwrap();
    assert!(
        rt.block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
            .is_err()
    );
    assert!(!store.has_blob(&digest(&layer)));
    assert!(store.refs().unwrap().is_empty());
    assert_consistent(&store);

    // Once: retried, and the pull completes.
    let flaky = mock_with(&artifact);
    flaky.fault(Fault::new(&layer, 1, FaultKind::Drop { after: 50_000 }));
    let r = Reference::parse(&format!("{}/test/img:1", flaky.host())).unwrap();
    rt.block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap();
    store.resolve(&r, &amd64()).unwrap();
    assert_consistent(&store);
}

#[test]
fn bearer_token_flow() {
    let artifact = Artifact::from(big_image());
    let mock = mock_with(&artifact);
    mock.require_bearer("t0ken");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:1", mock.host())).unwrap();
    let client = client();
    runtime()
        .block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap();
    let requests = mock.requests();
    let tokens: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET /token"))
        .collect();
    assert_eq!(tokens.len(), 1, "{requests:?}");
    assert!(
        tokens[0].contains("scope=repository%3Atest%2Fimg%3Apull"),
        "{requests:?}"
    );
}

#[test]
fn the_registry_dying_mid_pull_leaves_a_consistent_cache_and_the_next_pull_completes() {
    let mut registry = Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer([Entry::file("a", pseudo_random_bytes(11, 300_000))])
        .layer([Entry::file("b", pseudo_random_bytes(12, 300_000))])
        .layer([Entry::file("c", pseudo_random_bytes(13, 300_000))])
        .build()
        .unwrap();
    PushTarget::new(&registry, "test/big")
        .push(&image.clone().into(), Some("1"))
        .unwrap();
    // Every connection is cut once 500 kB have reached the client, in the
    // middle of the layers; then the registry itself is killed.
    let proxy = slipway_testkit::CuttingProxy::start(registry.addr(), 500_000).unwrap();
    let r = Reference::parse(&format!("{}/test/big:1", proxy.host())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = RegistryClient::new(ClientOptions {
        attempts: 2,
        ..options()
    })
    .unwrap();
    let rt = runtime();
    let err = rt
        .block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap_err();
    assert!(proxy.is_tripped(), "the cut did not happen: {err}");
    registry.kill();
    assert!(err.to_string().contains("test/big:1"), "{err}");
    assert!(store.refs().unwrap().is_empty());
    assert!(
        image
            .layers
            .iter()
            .any(|l| !store.has_blob(&digest(l.digest())))
    );
    assert_consistent(&store);

    registry.restart().unwrap();
    proxy.reset();
    rt.block_on(Puller::new(&store, &client).pull(&r, &[amd64()]))
        .unwrap();
    store.resolve(&r, &amd64()).unwrap();
    assert_consistent(&store);
}
