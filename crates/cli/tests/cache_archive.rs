//! `slipway cache import/export/clean/verify`, end to end through the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use slipway_testkit::image::pseudo_random_bytes;
use slipway_testkit::{Artifact, Entry, ImageBuilder, Index};

fn slipway(cache: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("slipway").expect("binary");
    cmd.arg("--cache").arg(cache).env_remove("SLIPWAY_CACHE");
    cmd
}

fn stdout(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

fn stderr(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

fn index() -> Index {
    let amd = ImageBuilder::new()
        .layer([Entry::file("big", pseudo_random_bytes(5, 50_000))])
        .build()
        .expect("build");
    let arm = ImageBuilder::new()
        .arch("arm64")
        .layer([Entry::file("a", "arm")])
        .build()
        .expect("build");
    Index::new([amd, arm])
}

#[test]
fn export_to_a_file_and_to_stdout_then_import_from_a_file_and_stdin() {
    let index = index();
    let source = tempfile::tempdir().unwrap();
    Artifact::from(index.clone())
        .write_oci_layout(source.path(), Some("example.com/app:1"))
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("app.tar");
    slipway(source.path())
        .args(["cache", "export", "example.com/app:1", "-o"])
        .arg(&file)
        .assert()
        .success();
    let piped = slipway(source.path())
        .args(["cache", "export", "example.com/app:1", "-o", "-"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        piped.get_output().stdout,
        "the file and the stream hold the same bytes"
    );
    let names: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left beside the output");

    let cache = tempfile::tempdir().unwrap();
    let out = slipway(cache.path())
        .args(["cache", "import"])
        .arg(&file)
        .assert()
        .success();
    assert_eq!(
        stdout(&out).trim(),
        format!("example.com/app:1 {}", index.index.digest())
    );
    let other = tempfile::tempdir().unwrap();
    slipway(other.path())
        .args(["cache", "import", "-"])
        .write_stdin(piped.get_output().stdout.clone())
        .assert()
        .success();
    let out = slipway(other.path())
        .args(["cache", "ls"])
        .assert()
        .success();
    assert!(stdout(&out).contains(index.index.digest()));

    // The docker format holds the --arch platform.
    let out = slipway(source.path())
        .args([
            "cache",
            "export",
            "--arch",
            "arm64",
            "--format",
            "docker",
            "example.com/app:1",
            "-o",
            "-",
        ])
        .assert()
        .success();
    assert!(stderr(&out).contains(index.images[1].manifest.digest()));
}

#[test]
fn export_of_a_partial_index_names_the_absent_platforms() {
    let index = index();
    let source = tempfile::tempdir().unwrap();
    Artifact::from(index.clone())
        .write_oci_layout(source.path(), Some("example.com/app:1"))
        .unwrap();
    for blob in index.images[1].blobs() {
        std::fs::remove_file(source.path().join("blobs/sha256").join(blob.hex())).unwrap();
    }
    let out = slipway(source.path())
        .args(["cache", "export", "example.com/app:1", "-o", "-"])
        .assert()
        .success();
    assert!(
        stderr(&out).contains("lacks linux/arm64"),
        "{}",
        stderr(&out)
    );
    let out = slipway(source.path())
        .args([
            "cache",
            "export",
            "--platform",
            "linux/arm64",
            "example.com/app:1",
            "-o",
            "-",
        ])
        .assert()
        .failure();
    assert!(
        stderr(&out).contains("example.com/app:1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn clean_and_verify() {
    let index = index();
    let cache = tempfile::tempdir().unwrap();
    Artifact::from(index.clone())
        .write_oci_layout(cache.path(), Some("example.com/app:1"))
        .unwrap();
    std::fs::write(cache.path().join("blobs/sha256/.tmp-killed"), b"half").unwrap();
    slipway(cache.path())
        .args(["cache", "verify"])
        .assert()
        .success();
    let out = slipway(cache.path())
        .args(["cache", "clean"])
        .assert()
        .success();
    assert!(stdout(&out).contains(".tmp-killed"), "{}", stdout(&out));

    let layer = cache
        .path()
        .join("blobs/sha256")
        .join(index.images[0].layers[0].hex());
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    let out = slipway(cache.path())
        .args(["cache", "verify"])
        .assert()
        .failure();
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "corrupt blob {}",
            index.images[0].layers[0].digest()
        )),
        "{text}"
    );
    assert!(text.contains("example.com/app:1"), "{text}");
    assert!(!layer.exists());

    slipway(cache.path())
        .args(["cache", "clean", "--all"])
        .assert()
        .success();
    let out = slipway(cache.path())
        .args(["cache", "ls", "--json"])
        .assert()
        .success();
    assert_eq!(stdout(&out).trim(), "[]");
}

/// The bytes an IEC size as printed (`512 B`, `1.50 KiB`, `3.25 MiB`)
/// stands for, and the most it can be off by rounding.
fn iec(text: &str) -> (f64, f64) {
    let (number, unit) = text.split_once(' ').unwrap();
    let power = ["B", "KiB", "MiB", "GiB", "TiB"]
        .iter()
        .position(|u| *u == unit)
        .unwrap_or_else(|| panic!("not an IEC unit: {text:?}"));
    let scale = 1024f64.powi(power as i32);
    let precision = if power == 0 { 0.5 } else { 0.005 };
    (number.parse::<f64>().unwrap() * scale, precision * scale)
}

/// The text between `before` and `after` on the line of `text` holding `before`.
fn between<'a>(text: &'a str, before: &str, after: &str) -> &'a str {
    let start = text
        .find(before)
        .unwrap_or_else(|| panic!("{before:?} in {text}"))
        + before.len();
    let rest = &text[start..];
    &rest[..rest
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} in {text}"))]
}

#[test]
fn sizes_are_printed_in_iec_units() {
    let index = index();
    let cache = tempfile::tempdir().unwrap();
    Artifact::from(index)
        .write_oci_layout(cache.path(), Some("example.com/app:1"))
        .unwrap();
    let total: u64 = std::fs::read_dir(cache.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let out = slipway(cache.path())
        .args(["cache", "verify"])
        .assert()
        .success();
    let text = stderr(&out);
    let checked = between(&text, "blobs (", ")");
    let (bytes, slack) = iec(checked);
    assert!(
        (bytes - total as f64).abs() <= slack,
        "{checked} for {total} bytes"
    );
    let out = slipway(cache.path())
        .args(["cache", "clean", "--all"])
        .assert()
        .success();
    let text = stderr(&out);
    let freed = between(&text, "freed ", " (");
    let (bytes, slack) = iec(freed);
    assert!(
        (bytes - total as f64).abs() <= slack,
        "{freed} for {total} bytes"
    );
    assert!(
        total >= 1024,
        "the fixture is too small to show a unit: {total}"
    );
    assert!(!freed.ends_with(" B"), "{freed}");
}

/// `cache import --json` names what it imported; `cache clean --json` what
/// it removed and freed.
#[test]
fn import_and_clean_as_json() {
    let index = index();
    let source = tempfile::tempdir().unwrap();
    Artifact::from(index.clone())
        .write_oci_layout(source.path(), Some("example.com/app:1"))
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("app.tar");
    slipway(source.path())
        .args(["cache", "export", "example.com/app:1", "-o"])
        .arg(&file)
        .assert()
        .success();
    let cache = tempfile::tempdir().unwrap();
    let out = slipway(cache.path())
        .args(["cache", "import", "--json"])
        .arg(&file)
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"imported": [{"name": "example.com/app:1", "digest": index.index.digest()}]})
    );

    std::fs::write(cache.path().join("blobs/sha256/.tmp-killed"), b"half").unwrap();
    let out = slipway(cache.path())
        .args(["cache", "clean", "--all", "--json"])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        doc["removedImages"],
        serde_json::json!(["example.com/app:1"])
    );
    let blobs = doc["removedBlobs"].as_array().unwrap();
    assert!(
        blobs.contains(&serde_json::json!(index.images[0].layers[0].digest())),
        "{doc:#}"
    );
    assert!(
        blobs.contains(&serde_json::json!(index.index.digest())),
        "{doc:#}"
    );
    let temp = doc["removedTempFiles"].as_array().unwrap();
    assert!(
        temp.iter()
            .any(|t| t.as_str().unwrap().ends_with(".tmp-killed")),
        "{doc:#}"
    );
    assert!(doc["freedBytes"].as_u64().unwrap() > 50_000, "{doc:#}");
    assert_eq!(doc["removedSegments"], 0);
}
