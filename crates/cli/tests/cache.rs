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
