//! `--cert-file`: a registry behind TLS with a certificate from a private CA
//! (made by the test) is trusted only when that CA is given. The registry is
//! the testkit's mock behind a real rustls server, reached as a mirror
//! because a loopback registry named in a reference is always plain HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use slipway_testkit::{Artifact, Entry, ImageBuilder, MockRegistry, TlsProxy};

fn slipway(cache: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("slipway").expect("binary");
    cmd.arg("--cache")
        .arg(cache)
        .env_remove("SLIPWAY_CACHE")
        .env_remove("LINUXKIT_MIRROR")
        // No Docker credentials from the machine.
        .env("DOCKER_CONFIG", cache.join("no-docker-config"));
    cmd
}

#[test]
fn a_private_ca_is_trusted_only_with_cert_file() {
    let mock = MockRegistry::start().unwrap();
    let image: Artifact = ImageBuilder::new()
        .layer([Entry::file("secure", "yes")])
        .build()
        .unwrap()
        .into();
    mock.add("library/secure", Some("1"), &image);
    let tls = TlsProxy::start(mock.addr()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca.pem");
    std::fs::write(&ca, tls.ca_pem()).unwrap();
    let mirror = format!("https://{}", tls.host());
    let cache = tempfile::tempdir().unwrap();

    let a = slipway(cache.path())
        .args([
            "cache", "pull", "--arch", "amd64", "--mirror", &mirror, "secure:1",
        ])
        .assert()
        .failure();
    let text = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(text.contains("docker.io/library/secure:1"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(
        mock.requests().iter().all(|r| !r.contains("/manifests/")),
        "nothing is asked over an untrusted connection"
    );

    let a = slipway(cache.path())
        .args([
            "cache",
            "pull",
            "--arch",
            "amd64",
            "--mirror",
            &mirror,
            "--cert-file",
        ])
        .arg(&ca)
        .arg("secure:1")
        .assert()
        .success();
    let text = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert_eq!(
        text.trim(),
        format!("docker.io/library/secure:1 {}", image.root().digest())
    );

    let bad = work.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    slipway(cache.path())
        .args(["cache", "pull", "--mirror", &mirror, "--cert-file"])
        .arg(&bad)
        .arg("secure:1")
        .assert()
        .failure();
}
