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
