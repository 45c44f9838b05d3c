//! Push round trips, and interoperability with an independent client
//! (skopeo) through the cache's OCI layout.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use slipway_oci::{ClientOptions, Credentials, Puller, RegistryClient, Store, push};
use slipway_reference::{Arch, Digest, Platform, Reference};
use slipway_testkit::{Artifact, Entry, ImageBuilder, Index, PushTarget, Registry};

fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        credentials: Credentials::none(),
        backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    })
    .expect("client")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn digest(s: &str) -> Digest {
    Digest::parse(s).expect("digest")
}

fn two_arch_index() -> Index {
    let amd = ImageBuilder::new()
        .layer([Entry::file("arch", "amd64")])
        .build()
        .expect("build");
    let arm = ImageBuilder::new()
        .arch("arm64")
        .layer([Entry::file("arch", "arm64")])
        .build()
        .expect("build");
    Index::new([amd, arm])
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("skopeo is needed for the interop tests (apt-get install skopeo): {e}")
        });
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn layout_root_digest(dir: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("json");
    index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string()
}

#[test]
fn push_then_pull_round_trip() {
    let registry = Registry::start().unwrap();
    let index = two_arch_index();
    let source_dir = tempfile::tempdir().unwrap();
    Artifact::from(index.clone())
        .write_oci_layout(source_dir.path(), Some("example.com/src/img:1"))
        .unwrap();
    let source = Store::open(source_dir.path()).unwrap();
    let client = client();
    let rt = runtime();
    let target = Reference::parse(&format!("{}/dst/img:2", registry.host())).unwrap();
    let report = rt
        .block_on(push(
            &source,
            &client,
            &Reference::parse("example.com/src/img:1").unwrap(),
            &target,
        ))
        .unwrap();
    assert_eq!(report.digest.to_string(), index.index.digest());
    assert_eq!(report.reduced_from, None);

    let back_dir = tempfile::tempdir().unwrap();
    let back = Store::open(back_dir.path()).unwrap();
    let platforms = [Platform::linux(Arch::Amd64), Platform::linux(Arch::Arm64)];
    let images = rt
        .block_on(Puller::new(&back, &client).pull(&target, &platforms))
        .unwrap();
    assert_eq!(images[0].digest().to_string(), index.index.digest());
    assert_eq!(
        images[1].manifest_descriptor.digest.to_string(),
        index.images[1].manifest.digest()
    );
}

#[test]
fn a_partial_index_is_pushed_reduced() {
    let registry = Registry::start().unwrap();
    let index = two_arch_index();
    let dir = tempfile::tempdir().unwrap();
    Artifact::from(index.clone())
        .write_oci_layout(dir.path(), Some("example.com/p:1"))
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    for blob in index.images[1].blobs() {
        std::fs::remove_file(store.blob_path(&digest(blob.digest()))).unwrap();
    }
    let client = client();
    let rt = runtime();
    let target = Reference::parse(&format!("{}/partial/img:1", registry.host())).unwrap();
    let report = rt
        .block_on(push(
            &store,
            &client,
            &Reference::parse("example.com/p:1").unwrap(),
            &target,
        ))
        .unwrap();
    assert_eq!(
        report
            .reduced_from
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some(index.index.digest())
    );
    assert_eq!(report.absent_platforms, ["linux/arm64"]);
    assert_ne!(report.digest.to_string(), index.index.digest());

    let back_dir = tempfile::tempdir().unwrap();
    let back = Store::open(back_dir.path()).unwrap();
    let images = rt
        .block_on(Puller::new(&back, &client).pull(&target, &[Platform::linux(Arch::Amd64)]))
        .unwrap();
    assert_eq!(images[0].digest(), &report.digest);
}

#[test]
fn skopeo_copies_the_cache_layout_both_ways_with_identical_digests() {
    let registry = Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer([Entry::dir("etc"), Entry::file("etc/hostname", "slipway\n")])
        .cmd(["/bin/true"])
        .build()
        .unwrap();
    let index = two_arch_index();
    PushTarget::new(&registry, "seed/single")
        .push(&image.clone().into(), Some("1"))
        .unwrap();
    PushTarget::new(&registry, "seed/multi")
        .push(&index.clone().into(), Some("1"))
        .unwrap();

    // slipway pulls into its cache ...
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Store::open(cache_dir.path()).unwrap();
    let client = client();
    let rt = runtime();
    let host = registry.host();
    let single = Reference::parse(&format!("{host}/seed/single:1")).unwrap();
    let multi = Reference::parse(&format!("{host}/seed/multi:1")).unwrap();
    let both = [Platform::linux(Arch::Amd64), Platform::linux(Arch::Arm64)];
    rt.block_on(Puller::new(&cache, &client).pull(&single, &both[..1]))
        .unwrap();
    rt.block_on(Puller::new(&cache, &client).pull(&multi, &both))
        .unwrap();

    // ... skopeo reads the cache, by the LinuxKit-style full names, and pushes ...
    let root = cache_dir.path().display().to_string();
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{root}:{single}"),
        &format!("docker://{host}/skopeo/single:1"),
    ]);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{root}:{multi}"),
        &format!("docker://{host}/skopeo/multi:1"),
    ]);
    // ... and what the registry now serves has the original digests.
    for (name, expected) in [
        ("single", image.manifest.digest()),
        ("multi", index.index.digest()),
    ] {
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/skopeo/{name}:1"),
        ]);
        assert_eq!(
            slipway_testkit::image::sha256_digest(out.as_bytes()),
            expected,
            "{name}"
        );
    }

    // The other way: skopeo writes into a slipway cache, and slipway resolves it.
    let other_dir = tempfile::tempdir().unwrap();
    let name = format!("{host}/skopeo/multi:1");
    let other_root = other_dir.path().display().to_string();
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{other_root}:{name}"),
    ]);
    assert_eq!(layout_root_digest(other_dir.path()), index.index.digest());
    let other = Store::open(other_dir.path()).unwrap();
    let resolved = other
        .resolve(
            &Reference::parse(&name).unwrap(),
            &Platform::linux(Arch::Arm64),
        )
        .unwrap();
    assert_eq!(
        resolved.manifest_descriptor.digest.to_string(),
        index.images[1].manifest.digest()
    );
}
