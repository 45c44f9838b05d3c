//! `slipway cache` against a real registry on loopback.

use assert_cmd::Command;
use slipway_testkit::{Entry, ImageBuilder, PushTarget, Registry};

fn slipway(cache: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("slipway").expect("binary");
    cmd.arg("--cache").arg(cache).env_remove("SLIPWAY_CACHE");
    cmd
}

#[test]
fn pull_ls_push_rm() {
    let registry = Registry::start().unwrap();
    let image = ImageBuilder::new()
        .arch("arm64")
        .layer([Entry::file("hello", "world")])
        .build()
        .unwrap();
    PushTarget::new(&registry, "test/cli")
        .push(&image.clone().into(), Some("1"))
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let name = format!("{}/test/cli:1", registry.host());

    let out = slipway(cache.path())
        .args(["cache", "pull", "--arch", "arm64", &name])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains(image.manifest.digest()), "{stdout}");

    let out = slipway(cache.path())
        .args(["cache", "ls", "--json"])
        .assert()
        .success();
    let list: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(list[0]["name"], name);
    assert_eq!(list[0]["digest"], image.manifest.digest());

    let copy = format!("{}/test/copy:2", registry.host());
    slipway(cache.path())
        .args(["cache", "push", &name, "--remote-name", &copy])
        .assert()
        .success();
    slipway(cache.path())
        .args(["cache", "rm", &name])
        .assert()
        .success();
    slipway(cache.path())
        .args(["cache", "rm", &name])
        .assert()
        .failure();
    slipway(cache.path())
        .args(["cache", "pull", "--arch", "arm64", &copy])
        .assert()
        .success();
    let out = slipway(cache.path())
        .args(["cache", "ls"])
        .assert()
        .success();
    let table = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(table.contains(&copy) && !table.contains(&name), "{table}");
}

/// Two `slipway` processes pulling into one cache at once: both succeed, no
/// index update is lost, and the cache verifies.
#[test]
fn two_processes_pull_into_one_cache() {
    let registry = Registry::start().unwrap();
    let mut names = Vec::new();
    for i in 0..6 {
        let image = ImageBuilder::new()
            .layer([Entry::file(
                "data",
                slipway_testkit::image::pseudo_random_bytes(i, 256 * 1024),
            )])
            .layer([Entry::file(format!("f{i}"), format!("{i}"))])
            .build()
            .unwrap();
        PushTarget::new(&registry, &format!("test/p{i}"))
            .push(&image.into(), Some("1"))
            .unwrap();
        names.push(format!("{}/test/p{i}:1", registry.host()));
    }
    let cache = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("slipway");
    let spawn = |order: &[String]| {
        std::process::Command::new(&bin)
            .arg("--cache")
            .arg(cache.path())
            .args(["-q", "cache", "pull"])
            .args(order)
            .env_remove("SLIPWAY_CACHE")
            .spawn()
            .unwrap()
    };
    let reversed: Vec<String> = names.iter().rev().cloned().collect();
    let mut a = spawn(&names);
    let mut b = spawn(&reversed);
    #[allow(
        clippy::disallowed_methods,
        reason = "a deadline for the two pulls the test waits on"
    )]
    let started = std::time::Instant::now();
    for child in [&mut a, &mut b] {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "a pull failed: {status}");
                break;
            }
            if started.elapsed() > std::time::Duration::from_secs(120) {
                let _ = child.kill();
                panic!("a pull did not finish within 120 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let out = slipway(cache.path())
        .args(["cache", "ls", "--json"])
        .assert()
        .success();
    let list: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for name in &names {
        assert!(
            listed.contains(&name.as_str()),
            "{name} lost from {listed:?}"
        );
    }
    slipway(cache.path())
        .args(["cache", "verify"])
        .assert()
        .success();
}

/// `cache verify --json`: each image's state, the corrupt blobs and the
/// totals; exit status 1 when anything was wrong, as without --json.
#[test]
fn verify_as_json() {
    let registry = Registry::start().unwrap();
    let mut layers = Vec::new();
    for (i, repo) in ["test/a", "test/b"].iter().enumerate() {
        let image = ImageBuilder::new()
            .arch("amd64")
            .layer([Entry::file(format!("f{i}"), format!("content {i}"))])
            .build()
            .unwrap();
        layers.push(image.layers[0].digest().to_string());
        PushTarget::new(&registry, repo)
            .push(&image.into(), Some("1"))
            .unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let a = format!("{}/test/a:1", registry.host());
    let b = format!("{}/test/b:1", registry.host());
    let pulled = slipway(cache.path())
        .args(["cache", "pull", "--json", "--arch", "amd64", &a, &b])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&pulled.get_output().stdout).unwrap();
    let pulled: Vec<&str> = doc["pulled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reference"].as_str().unwrap())
        .collect();
    assert_eq!(pulled, [a.as_str(), b.as_str()], "{doc:#}");
    assert_eq!(doc["failed"], serde_json::json!([]));

    let verify = || {
        let out = slipway(cache.path())
            .args(["cache", "verify", "--json"])
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), doc)
    };
    let (code, doc) = verify();
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["sound"], true);
    assert_eq!(doc["corruptBlobs"], serde_json::json!([]));
    assert!(doc["checkedBlobs"].as_u64().unwrap() >= 6, "{doc:#}");
    assert!(doc["checkedBytes"].as_u64().unwrap() > 0);
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{doc:#}");
    assert!(images.iter().all(|i| i["status"] == "ok"), "{doc:#}");

    // Damage b's layer: the blob is reported corrupt and deleted, b is
    // incomplete and names it, a is untouched, and the exit status is 1.
    let (algorithm, hex) = layers[1].split_once(':').unwrap();
    let blob = cache.path().join("blobs").join(algorithm).join(hex);
    std::fs::write(&blob, "not the layer").unwrap();
    let (code, doc) = verify();
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(doc["sound"], false);
    assert_eq!(doc["corruptBlobs"], serde_json::json!([layers[1]]));
    assert!(!blob.exists());
    let state = |name: &str| {
        doc["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(state(&a)["status"], "ok");
    assert_eq!(state(&b)["status"], "incomplete");
    assert_eq!(state(&b)["missing"], serde_json::json!([layers[1]]));
}
