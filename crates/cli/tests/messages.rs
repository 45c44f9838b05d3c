//! What a user sees on common mistakes: an output in a directory that does
//! not exist yet, a reader of standard output that goes away early, a
//! mirror written without a scheme.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;

use assert_cmd::Command;
use slipway_testkit::{Artifact, Entry, ImageBuilder, MockRegistry};

fn slipway(work: &Path) -> Command {
    let mut cmd = Command::cargo_bin("slipway").expect("binary");
    cmd.current_dir(work)
        .arg("--cache")
        .arg(work.join("cache"))
        .env_remove("SLIPWAY_CACHE")
        .env_remove("LINUXKIT_MIRROR")
        .env("DOCKER_CONFIG", work.join("no-docker-config"))
        .env("NO_COLOR", "1");
    cmd
}

/// A configuration that builds offline: files only, one of them `big`
/// bytes, more than a pipe holds.
fn config(work: &Path, big: usize) -> String {
    std::fs::write(work.join("big.bin"), vec![b'x'; big]).unwrap();
    std::fs::write(
        work.join("c.yml"),
        "files:\n  - path: etc/motd\n    contents: hello\n  - path: big.bin\n    source: big.bin\n",
    )
    .unwrap();
    "c.yml".into()
}

fn tar_names(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    tar::Archive::new(file)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn outputs_create_a_missing_directory_with_o_as_with_dir() {
    let work = tempfile::tempdir().unwrap();
    let cfg = config(work.path(), 10);
    slipway(work.path())
        .args(["-q", "build", "-o", "new/deeper/x.tar", &cfg])
        .assert()
        .success()
        .stderr("");
    let names = tar_names(&work.path().join("new/deeper/x.tar"));
    assert!(names.contains(&"etc/motd".to_string()), "{names:?}");
    slipway(work.path())
        .args([
            "-q",
            "build",
            "--format",
            "tar",
            "--dir",
            "other/deeper",
            &cfg,
        ])
        .assert()
        .success()
        .stderr("");
    assert!(work.path().join("other/deeper/c.tar").is_file());
    // Nothing of the temporary files is left behind.
    for dir in ["new/deeper", "other/deeper"] {
        let left: Vec<_> = std::fs::read_dir(work.path().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".slipway-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn an_output_directory_that_cannot_be_made_is_one_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let cfg = config(work.path(), 10);
    std::fs::write(work.path().join("afile"), "in the way").unwrap();
    for args in [
        ["-o", "afile/x.tar", "--format", "tar"],
        ["--dir", "afile/sub", "--format", "tar"],
    ] {
        let out = slipway(work.path())
            .arg("build")
            .args(args)
            .arg(&cfg)
            .assert()
            .code(1);
        let text = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with("slipway: error: cannot create the output directory afile"),
            "{text}"
        );
        assert_eq!(
            text.matches("afile is not a directory").count(),
            1,
            "{text}"
        );
        assert!(!text.contains(".slipway-"), "{text}");
        assert!(!text.contains("os error"), "{text}");
    }
}

/// Runs slipway with standard output a pipe whose reader is already closed.
fn with_closed_stdout(work: &Path, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("slipway"));
    cmd.current_dir(work)
        .arg("--cache")
        .arg(work.join("cache"))
        .args(args)
        .env_remove("SLIPWAY_CACHE")
        .env_remove("LINUXKIT_MIRROR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped());
    cmd.output().unwrap()
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    let work = tempfile::tempdir().unwrap();
    let cfg = config(work.path(), 2 << 20);
    let commands: [&[&str]; 6] = [
        &["-q", "build", "-o", "-", &cfg],
        &["build", "--dry-run", &cfg],
        &["validate", "--json", &cfg],
        &["cache", "ls"],
        &["schema"],
        &["completions", "bash"],
    ];
    for args in commands {
        let out = with_closed_stdout(work.path(), args);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {:?} {text}", out.status);
        assert_eq!(text, "", "{args:?}");
    }
    // A reader that takes some and stops: `slipway build -o - | head -c 1000`.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("slipway"))
        .current_dir(work.path())
        .arg("--cache")
        .arg(work.path().join("cache"))
        .args(["-q", "build", "-o", "-", &cfg])
        .env_remove("SLIPWAY_CACHE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1000];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{:?} {text}", out.status);
    assert_eq!(text, "");
}

#[test]
fn a_mirror_without_a_scheme_is_http_on_loopback_and_refused_elsewhere() {
    let mock = MockRegistry::start().unwrap();
    let image: Artifact = ImageBuilder::new()
        .layer([Entry::file("mirrored", "yes")])
        .build()
        .unwrap()
        .into();
    mock.add("library/mirrored", Some("1"), &image);
    let work = tempfile::tempdir().unwrap();
    let mirror = mock.addr().to_string();
    assert!(mirror.starts_with("127.0.0.1:"), "{mirror}");
    let out = slipway(work.path())
        .args([
            "cache",
            "pull",
            "--arch",
            "amd64",
            "--mirror",
            &mirror,
            "mirrored:1",
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(
        text.trim(),
        format!("docker.io/library/mirrored:1 {}", image.root().digest())
    );
    assert!(mock.requests().iter().any(|r| r.contains("/manifests/")));

    let out = slipway(work.path())
        .args([
            "cache",
            "pull",
            "--mirror",
            "mirror.example:5000",
            "alpine:3.20",
        ])
        .assert()
        .code(1);
    let text = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(text.contains("no scheme"), "{text}");
    assert!(text.contains("https://mirror.example:5000"), "{text}");
}
