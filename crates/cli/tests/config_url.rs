//! Configurations named by URL, as LinuxKit takes them: downloaded over
//! plain HTTP from a loopback file server and over HTTPS through a TLS
//! front whose private CA is trusted only with `--cert-file`; diagnostics
//! name the URL as the file; `@pkg:` in a fetched configuration is refused
//! at its position; the files' size limit applies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use slipway_testkit::{FileServer, TlsProxy};

const GOOD: &str = "\
kernel:
  image: linuxkit/kernel:6.12.59
  cmdline: console=ttyS0
init:
  - linuxkit/init:b1cc89d041ad73f4b061793f829a791a94cc6221
files:
  - path: etc/motd
    contents: fetched
";

const WITH_PKG: &str = "\
init:
  - linuxkit/init:b1cc89d041ad73f4b061793f829a791a94cc6221
onboot:
  - name: mine
    image: \"@pkg:./pkg/mine\"
";

const BAD: &str = "\
init:
  - linuxkit/init:b1cc89d041ad73f4b061793f829a791a94cc6221
onboot:
  - name: x
    image: alpine:3.20
    nosuchkey: 1
";

const WITH_SOURCE: &str = "\
files:
  - path: etc/hello
    source: hello.txt
";

fn slipway(work: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("slipway").expect("binary");
    cmd.current_dir(work)
        .arg("--cache")
        .arg(work.join("cache"))
        .env_remove("SLIPWAY_CACHE")
        .env_remove("LINUXKIT_MIRROR")
        .env("NO_COLOR", "1");
    cmd
}

fn server() -> FileServer {
    let files: HashMap<String, Vec<u8>> = [
        ("/good.yml", GOOD),
        ("/pkg.yml", WITH_PKG),
        ("/bad.yml", BAD),
        ("/source.yml", WITH_SOURCE),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
    .collect();
    FileServer::start(Arc::new(Mutex::new(files))).unwrap()
}

fn stderr(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

#[test]
fn a_config_is_fetched_over_http() {
    let server = server();
    let work = tempfile::tempdir().unwrap();
    let url = format!("{}/good.yml", server.url());
    slipway(work.path())
        .args(["validate", &url])
        .assert()
        .success()
        .stderr("");
    let out = slipway(work.path())
        .args(["build", "--dry-run", &url])
        .assert()
        .success();
    let yaml = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(yaml.contains("contents: fetched"), "{yaml}");
    assert!(yaml.contains("linuxkit/kernel:6.12.59"), "{yaml}");
}

#[test]
fn diagnostics_of_a_fetched_config_name_its_url() {
    let server = server();
    let work = tempfile::tempdir().unwrap();
    let url = format!("{}/bad.yml", server.url());
    let out = slipway(work.path())
        .args(["validate", &url])
        .assert()
        .code(1);
    let text = stderr(&out);
    assert!(text.contains(&format!("{url}:6:5: error:")), "{text}");
    assert!(text.contains("nosuchkey"), "{text}");
}

#[test]
fn pkg_in_a_fetched_config_is_refused_at_its_position() {
    let server = server();
    let work = tempfile::tempdir().unwrap();
    // A package directory that would be valid locally changes nothing.
    std::fs::create_dir_all(work.path().join("pkg/mine")).unwrap();
    std::fs::write(work.path().join("pkg/mine/build.yml"), "image: mine\n").unwrap();
    let url = format!("{}/pkg.yml", server.url());
    for command in ["validate", "build"] {
        let out = slipway(work.path()).args([command, &url]).assert().code(1);
        let text = stderr(&out);
        assert!(text.contains(&format!("{url}:5:12: error:")), "{text}");
        assert!(text.contains("fetched by URL"), "{text}");
    }
}

#[test]
fn a_fetched_configs_sources_are_relative_to_the_working_directory() {
    let server = server();
    let work = tempfile::tempdir().unwrap();
    let url = format!("{}/source.yml", server.url());
    let out = slipway(work.path())
        .args(["validate", &url])
        .assert()
        .code(1);
    let text = stderr(&out);
    assert!(text.contains(&format!("{url}:3:13: error:")), "{text}");
    assert!(
        text.contains(&work.path().join("hello.txt").display().to_string()),
        "{text}"
    );
    std::fs::write(work.path().join("hello.txt"), "hi\n").unwrap();
    slipway(work.path())
        .args(["validate", &url])
        .assert()
        .success();
}

#[test]
fn missing_and_oversized_configs_are_clear_errors() {
    let server = server();
    let work = tempfile::tempdir().unwrap();
    let url = format!("{}/nothing.yml", server.url());
    let out = slipway(work.path())
        .args(["validate", &url])
        .assert()
        .code(1);
    let text = stderr(&out);
    assert!(text.contains(&format!("cannot fetch {url}")), "{text}");
    assert!(text.contains("404"), "{text}");

    let limit = slipway_config::yaml::MAX_FILE_BYTES;
    let mut big = String::from("# padding\n");
    while big.len() <= limit {
        big.push_str("#########################################################\n");
    }
    server
        .files()
        .lock()
        .unwrap()
        .insert("/big.yml".into(), big.into_bytes());
    let url = format!("{}/big.yml", server.url());
    let out = slipway(work.path())
        .args(["validate", &url])
        .assert()
        .code(1);
    let text = stderr(&out);
    assert!(text.contains(&format!("cannot fetch {url}")), "{text}");
    assert!(text.contains(&format!("limit of {limit} bytes")), "{text}");
}

#[test]
fn https_needs_the_cert_file_of_a_private_ca() {
    let server = server();
    let upstream: SocketAddr = server.url().trim_start_matches("http://").parse().unwrap();
    let tls = TlsProxy::start(upstream).unwrap();
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca.pem");
    std::fs::write(&ca, tls.ca_pem()).unwrap();
    let url = format!("https://{}/good.yml", tls.host());

    let out = slipway(work.path())
        .args(["validate", &url])
        .assert()
        .code(1);
    let text = stderr(&out);
    assert!(text.contains(&format!("cannot fetch {url}")), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    slipway(work.path())
        .args(["validate", "--cert-file"])
        .arg(&ca)
        .arg(&url)
        .assert()
        .success()
        .stderr("");
}
