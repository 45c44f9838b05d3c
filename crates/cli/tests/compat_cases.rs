//! LinuxKit's own test cases (test/cases of its repository), reconstructed
//! in tests/compat/linuxkit-cases with a MANIFEST of what LinuxKit does with
//! each: every config LinuxKit builds must `validate` and `build --dry-run`,
//! the ones its tests expect to fail must fail, and files that are not image
//! configs are listed as such. Their images are not pulled (nobody can pull
//! the invented tags); the build stages after resolution are tested on
//! slipway's own packages elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/compat/linuxkit-cases")
}

struct Row {
    path: String,
    expected: String,
    /// Files merged before this one, relative to its directory
    /// (`after=../../common.yml`): LinuxKit's tests build some cases as
    /// `linuxkit build common.yml test.yml`.
    before: Vec<String>,
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(cases().join("MANIFEST")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let path = words.next().unwrap().to_owned();
            let expected = words.next().unwrap().to_owned();
            assert!(
                matches!(expected.as_str(), "build" | "fail" | "not-a-config"),
                "{l}"
            );
            let mut before = Vec::new();
            let mut next = words.next();
            while let Some(first) = next.and_then(|w| w.strip_prefix("after=")) {
                before.push(first.to_owned());
                next = words.next();
            }
            assert!(next.is_some(), "{l}: says what it exercises");
            Row {
                path,
                expected,
                before,
            }
        })
        .collect()
}

fn slipway(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("slipway").expect("binary");
    cmd.env_remove("SLIPWAY_CACHE")
        .env("NO_COLOR", "1")
        .current_dir(dir);
    cmd
}

fn yml_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml") {
            let rel = path.strip_prefix(cases()).unwrap();
            out.push(rel.display().to_string());
        }
    }
}

#[test]
fn every_file_is_in_the_manifest_and_every_config_row_has_its_file() {
    let rows = manifest();
    let mut files = Vec::new();
    yml_files(&cases(), &mut files);
    for file in &files {
        let row = rows.iter().find(|r| &r.path == file);
        let row = row.unwrap_or_else(|| panic!("{file} is not in MANIFEST"));
        assert_ne!(row.expected, "not-a-config", "{file}");
    }
    for row in rows.iter().filter(|r| r.expected != "not-a-config") {
        assert!(files.contains(&row.path), "{} is missing", row.path);
    }
    assert!(rows.iter().filter(|r| r.expected == "build").count() >= 20);
}

#[test]
fn what_linuxkit_builds_validates_and_dry_runs() {
    let cache = tempfile::tempdir().unwrap();
    for row in manifest().iter().filter(|r| r.expected == "build") {
        let file = cases().join(&row.path);
        let dir = file.parent().unwrap();
        let name = file.file_name().unwrap();
        let out = slipway(dir)
            .arg("validate")
            .args(&row.before)
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            row.path,
            String::from_utf8_lossy(&out.stderr)
        );
        let out = slipway(dir)
            .args(["build", "--dry-run", "--offline", "--cache"])
            .arg(cache.path())
            .args(&row.before)
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            row.path,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("kernel:"), "{}: {text}", row.path);
        // The merged config is itself a config that validates.
        let again = cache.path().join("dry-run.yml");
        std::fs::write(&again, &text).unwrap();
        let ok = slipway(dir).arg("validate").arg(&again).output().unwrap();
        assert!(
            ok.status.success(),
            "{}: the dry run's output: {}",
            row.path,
            String::from_utf8_lossy(&ok.stderr)
        );
    }
}

#[test]
fn what_linuxkit_refuses_fails_with_a_position() {
    for row in manifest().iter().filter(|r| r.expected == "fail") {
        let file = cases().join(&row.path);
        let dir = file.parent().unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        for args in [&["validate"][..], &["build", "--dry-run", "--offline"][..]] {
            let out = slipway(dir)
                .args(args)
                .args(&row.before)
                .arg(name)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{} {args:?}", row.path);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("{name}:")) && stderr.contains(": error: "),
                "{} {args:?}: {stderr}",
                row.path
            );
        }
    }
}
