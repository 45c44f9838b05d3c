//! Machine-readable configuration checks: `slipway schema` judged by an
//! independent JSON Schema validator (Python's jsonschema over PyYAML),
//! `validate --json`, and the checks of local paths `validate` makes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn slipway() -> Command {
    let mut cmd = Command::cargo_bin("slipway").expect("binary");
    cmd.env_remove("SLIPWAY_CACHE").env("NO_COLOR", "1");
    cmd
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// Each file's schema errors, as the independent validator reports them.
fn schema_errors(files: &[PathBuf]) -> BTreeMap<String, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    let out = slipway().arg("schema").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&schema, &out.stdout).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_schema.py");
    let out = std::process::Command::new(slipway_testkit::python::python())
        .arg(script)
        .arg(&schema)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_schema.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_example_and_linuxkit_config_satisfies_the_schema() {
    let mut files = yml_files(&repo().join("examples"));
    files.extend(yml_files(&repo().join("tests/compat/linuxkit")));
    assert!(files.len() > 15, "{files:?}");
    let result = schema_errors(&files);
    assert_eq!(result.len(), files.len());
    for (file, errors) in &result {
        assert!(errors.is_empty(), "{file}: {errors:#?}");
    }
}

#[test]
fn the_schema_refuses_unknown_keys_wrong_types_and_missing_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = vec![
        repo().join("tests/compat/invalid/unknown-top-level-key.yml"),
        repo().join("tests/compat/invalid/unknown-service-key.yml"),
        repo().join("tests/compat/invalid/wrong-type-binds.yml"),
    ];
    for (name, text) in [
        (
            "no-image.yml",
            "services:\n  - name: getty\n    command: [\"/bin/sh\"]\n",
        ),
        (
            "readonly-string.yml",
            "onboot:\n  - name: a\n    image: busybox:1\n    readonly: sometimes\n",
        ),
        (
            "kernel-typo.yml",
            "kernel:\n  image: linuxkit/kernel:6.6\n  cmdlin: console=ttyS0\n",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        cases.push(path);
    }
    let result = schema_errors(&cases);
    for case in &cases {
        let errors = &result[&case.display().to_string()];
        assert!(!errors.is_empty(), "{} passed the schema", case.display());
    }
    // And slipway's own reader refuses each of them too.
    for case in &cases {
        slipway().arg("validate").arg(case).assert().failure();
    }
}

#[test]
fn validate_json_reports_every_diagnostic_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("two-errors.yml");
    std::fs::write(
        &bad,
        "onboot:\n  - name: a\n    image: busybox:1\n    capabilities: [all, CAP_NET_ADMIN]\n\
         services:\n  - name: b\n    image: busybox:1\n    imgae: typo\n",
    )
    .unwrap();
    let out = slipway()
        .args(["validate", "--json"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    let diagnostics = doc["diagnostics"].as_array().unwrap();
    assert!(diagnostics.len() >= 2, "{doc:#}");
    assert_eq!(doc["errors"].as_u64().unwrap() as usize, {
        diagnostics
            .iter()
            .filter(|d| d["severity"] == "error")
            .count()
    });
    for d in diagnostics {
        assert!(d["file"].as_str().unwrap().ends_with("two-errors.yml"));
        assert!(d["line"].as_u64().unwrap() >= 1);
        assert!(d["column"].as_u64().unwrap() >= 1);
        assert!(!d["message"].as_str().unwrap().is_empty());
        assert!(!d["code"].as_str().unwrap().is_empty());
    }
    // The human form says the same, on standard error, and nothing on stdout.
    let human = slipway().arg("validate").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&human.stderr);
    for d in diagnostics.iter().filter(|d| d["severity"] == "error") {
        let place = format!("{}:{}:", d["line"], d["column"]);
        assert!(stderr.contains(&place), "{place} not in {stderr}");
    }

    let good = repo().join("tests/compat/linuxkit/minimal.yml");
    let out = slipway()
        .args(["validate", "--json"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["errors"], 0);
}

#[test]
fn validate_checks_local_packages_and_sources_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("not-a-package")).unwrap();
    std::fs::create_dir(dir.path().join("a-dir")).unwrap();
    std::fs::write(dir.path().join("present"), "x").unwrap();
    let config = dir.path().join("local.yml");
    std::fs::write(
        &config,
        "init:\n  - \"@pkg:./missing\"\n  - \"@pkg:./not-a-package\"\n\
         files:\n  - path: etc/a\n    source: absent\n\
         \x20 - path: etc/b\n    source: a-dir\n\
         \x20 - path: etc/c\n    source: absent\n    optional: true\n\
         \x20 - path: etc/d\n    source: present\n",
    )
    .unwrap();
    let out = slipway()
        .current_dir(dir.path())
        .args(["validate", "local.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "local.yml:2:5: error: package directory",
        "missing does not exist",
        "local.yml:3:5: error:",
        "not-a-package has no build.yml",
        "local.yml:6:13: error: cannot read",
        "absent: No such file or directory",
        "local.yml:8:13: error:",
        "a-dir is a directory",
    ] {
        assert!(stderr.contains(want), "{want:?} not in:\n{stderr}");
    }
    // The optional missing source and the present one are fine.
    assert!(!stderr.contains(":10:"), "{stderr}");
    assert!(!stderr.contains(":12:"), "{stderr}");
    assert!(stderr.contains("4 errors"), "{stderr}");

    // build stops at the same place, before touching the network or cache.
    let out = slipway()
        .current_dir(dir.path())
        .args(["build", "--offline", "--dry-run", "local.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("local.yml:6:13: error: cannot read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn schema_output_is_stable_json() {
    let a = slipway().arg("schema").output().unwrap();
    let b = slipway().arg("schema").output().unwrap();
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let schema: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    slipway()
        .args(["schema", "extra"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("unexpected argument"));
}
