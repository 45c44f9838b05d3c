//! `slipway build --resolve-only` and the registry flags (`--mirror`,
//! `LINUXKIT_MIRROR`) against the real registry on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use slipway_testkit::{Artifact, Entry, ImageBuilder, Index, PushTarget, Registry};

fn slipway(cache: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("slipway").expect("binary");
    cmd.arg("--cache")
        .arg(cache)
        .env_remove("SLIPWAY_CACHE")
        .env_remove("LINUXKIT_MIRROR");
    cmd
}

fn out(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn err(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn image(tag: &str) -> Artifact {
    ImageBuilder::new()
        .arch("arm64")
        .layer([Entry::file("name", tag)])
        .build()
        .expect("build")
        .into()
}

/// Pushes images `kernel`, `init`, `tool` (an index), `svc` to `registry`;
/// returns their root digests by name.
fn seed(registry: &Registry) -> Vec<(String, String)> {
    let mut digests = Vec::new();
    for name in ["kernel", "init", "svc"] {
        let artifact = image(name);
        PushTarget::new(registry, &format!("test/{name}"))
            .push(&artifact, Some("1"))
            .unwrap();
        digests.push((name.to_string(), artifact.root().digest().to_string()));
    }
    let amd = ImageBuilder::new()
        .layer([Entry::file("a", "amd")])
        .build()
        .unwrap();
    let arm = ImageBuilder::new()
        .arch("arm64")
        .layer([Entry::file("a", "arm")])
        .build()
        .unwrap();
    let index = Artifact::from(Index::new([amd, arm]));
    PushTarget::new(registry, "test/tool")
        .push(&index, Some("1"))
        .unwrap();
    digests.push(("tool".into(), index.root().digest().to_string()));
    digests
}

fn config(host: &str) -> String {
    format!(
        "kernel:\n  image: {host}/test/kernel:1\n  cmdline: console=ttyS0\n\
         init:\n  - {host}/test/init:1\n\
         onboot:\n  - name: tool\n    image: {host}/test/tool:1\n\
         services:\n  - name: svc\n    image: {host}/test/svc:1\n  - name: again\n    image: {host}/test/tool:1\n"
    )
}

#[test]
fn resolves_every_image_in_config_order_then_offline_from_the_cache() {
    let registry = Registry::start().unwrap();
    let digests = seed(&registry);
    let host = registry.host();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("image.yml");
    std::fs::write(&file, config(&host)).unwrap();
    let cache = tempfile::tempdir().unwrap();

    let a = slipway(cache.path())
        .args(["build", "--resolve-only", "--arch", "arm64"])
        .arg(&file)
        .assert()
        .success();
    let digest = |n: &str| digests.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let expected: Vec<String> = ["kernel", "init", "tool", "svc", "tool"]
        .iter()
        .map(|n| format!("{host}/test/{n}:1 {}", digest(n)))
        .collect();
    assert_eq!(out(&a).lines().collect::<Vec<_>>(), expected);
    // Not a terminal: plain progress lines.
    assert!(err(&a).contains("pulling"), "{}", err(&a));

    // Only arm64 of the index was fetched; offline, everything resolves from the cache.
    let a = slipway(cache.path())
        .args(["build", "--resolve-only", "--offline", "--arch", "arm64"])
        .arg(&file)
        .assert()
        .success();
    assert_eq!(out(&a).lines().collect::<Vec<_>>(), expected);
    let a = slipway(cache.path())
        .args(["build", "--resolve-only", "--offline", "--arch", "amd64"])
        .arg(&file)
        .assert()
        .failure();
    let text = err(&a);
    assert!(
        text.contains("image.yml:8:12") && text.contains("image.yml:13:12"),
        "{text}"
    );
    assert!(text.contains(&format!("{host}/test/tool:1")), "{text}");
    assert!(text.contains("offline"), "{text}");
}

#[test]
fn an_unknown_image_is_named_with_its_place_in_the_yaml() {
    let registry = Registry::start().unwrap();
    seed(&registry);
    let host = registry.host();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("bad.yml");
    std::fs::write(
        &file,
        format!(
            "init:\n  - {host}/test/init:1\nservices:\n  - name: missing\n    image: {host}/test/nothing-here:7\n"
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let a = slipway(cache.path())
        .args(["build", "--resolve-only", "--arch", "arm64"])
        .arg(&file)
        .assert()
        .failure();
    let text = err(&a);
    assert!(
        text.contains(&format!("bad.yml:5:12: error: {host}/test/nothing-here:7")),
        "{text}"
    );
    assert!(text.contains("not found"), "{text}");
}

#[test]
fn a_package_reference_is_reported_where_it_is_written() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("pkg.yml");
    std::fs::write(
        &file,
        "onboot:\n  - name: local\n    image: \"@pkg:./mypkg\"\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let a = slipway(cache.path())
        .args(["build", "--resolve-only", "--offline"])
        .arg(&file)
        .assert()
        .failure();
    let text = err(&a);
    assert!(text.contains("pkg.yml:3:12"), "{text}");
    assert!(text.contains("@pkg:") && text.contains("mypkg"), "{text}");
}

#[test]
fn mirrors_serve_docker_hub_and_named_registries() {
    let registry = Registry::start().unwrap();
    let host = registry.host();
    let hub = image("hub");
    PushTarget::new(&registry, "library/hubimage")
        .push(&hub, Some("3"))
        .unwrap();
    let quay = image("quay");
    PushTarget::new(&registry, "org/thing")
        .push(&quay, Some("1"))
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mirror = format!("http://{host}");

    // `--mirror URL`: Docker Hub.
    let a = slipway(cache.path())
        .args([
            "cache",
            "pull",
            "--arch",
            "arm64",
            "--mirror",
            &mirror,
            "hubimage:3",
        ])
        .assert()
        .success();
    assert_eq!(
        out(&a).trim(),
        format!("docker.io/library/hubimage:3 {}", hub.root().digest())
    );
    // `REGISTRY=URL`, from LINUXKIT_MIRROR.
    let a = slipway(cache.path())
        .env("LINUXKIT_MIRROR", format!("quay.io={mirror}"))
        .args(["cache", "pull", "--arch", "arm64", "quay.io/org/thing:1"])
        .assert()
        .success();
    assert_eq!(
        out(&a).trim(),
        format!("quay.io/org/thing:1 {}", quay.root().digest())
    );
    let a = slipway(cache.path())
        .args([
            "cache",
            "pull",
            "--mirror",
            "docker.io=ftp://x",
            "hubimage:3",
        ])
        .assert()
        .failure();
    assert!(err(&a).contains("--mirror"), "{}", err(&a));
}
