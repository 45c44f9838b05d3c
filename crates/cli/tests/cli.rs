//! The `slipway` command line: configuration commands, global options in
//! either position, LinuxKit's flag spellings, exit codes and diagnostics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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

fn compat(name: &str) -> String {
    repo()
        .join("tests/compat/linuxkit")
        .join(name)
        .display()
        .to_string()
}

fn invalid(name: &str) -> String {
    repo()
        .join("tests/compat/invalid")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn validate_is_silent_on_success() {
    slipway()
        .args(["validate", &compat("minimal.yml")])
        .assert()
        .success()
        .stdout("")
        .stderr("");
}

#[test]
fn validate_reports_every_error_with_its_position_and_exits_1() {
    let file = invalid("bad-rlimit.yml");
    let out = slipway().args(["validate", &file]).assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    for line in [11, 12, 13, 14] {
        assert!(
            stderr.contains(&format!("{file}:{line}:9: error:")),
            "{stderr}"
        );
    }
    // The snippet is shown too.
    assert!(stderr.contains("rlimits"), "{stderr}");
    assert!(
        stderr.contains("the configuration has 4 errors"),
        "{stderr}"
    );
}

#[test]
fn warnings_go_to_stderr_with_exit_0() {
    let out = slipway()
        .args(["validate", &compat("swap.yml")])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("warning: `trust` is accepted"), "{stderr}");
    // -q keeps quiet about warnings.
    slipway()
        .args(["-q", "validate", &compat("swap.yml")])
        .assert()
        .success()
        .stderr("");
}

#[test]
fn dry_run_prints_the_merged_config_which_parses_again() {
    let out = slipway()
        .args([
            "build",
            "--dry-run",
            &compat("multi-a.yml"),
            &compat("multi-b.yml"),
        ])
        .assert()
        .success();
    let yaml = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(yaml.contains("cmdline: console=ttyS0 quiet"), "{yaml}");
    assert!(
        yaml.contains("image: docker.io/linuxkit/"),
        "references are normalised:\n{yaml}"
    );
    // Standard input works, and the printed config validates unchanged.
    slipway()
        .args(["validate", "-"])
        .write_stdin(yaml.clone())
        .assert()
        .success();
    let again = slipway()
        .args(["build", "--dry-run", "-"])
        .write_stdin(yaml.clone())
        .assert()
        .success();
    assert_eq!(String::from_utf8_lossy(&again.get_output().stdout), yaml);
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    let file = compat("minimal.yml");
    for args in [
        vec![
            "-v",
            "2",
            "--arch",
            "arm64",
            "--cache",
            "/nonexistent",
            "validate",
            &file,
        ],
        vec![
            "validate",
            &file,
            "-v",
            "2",
            "--arch",
            "arm64",
            "--cache",
            "/nonexistent",
        ],
        vec!["--mirror", "http://mirror.invalid", "validate", "-q", &file],
    ] {
        slipway().args(&args).assert().success();
    }
}

#[test]
fn linuxkit_flag_spellings_are_accepted_with_warnings_where_unimplemented() {
    let file = compat("minimal.yml");
    let out = slipway()
        .args([
            "build",
            "--dry-run",
            "--docker",
            "--input-tar",
            "old.tar",
            "--no-sbom",
            "--size",
            "2G",
            "--o",
            "-",
            "--format",
            "tar,kernel+initrd",
            "-f",
            "iso-bios",
            "--cert-file",
            "/dev/null",
            &file,
        ])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("--docker is accepted for compatibility and ignored"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--input-tar is accepted for compatibility and ignored"),
        "{stderr}"
    );
    slipway()
        .args(["build", "--dry-run", "--outfile", "x.tar", &file])
        .assert()
        .success();
}

#[test]
fn unreadable_input_is_a_clear_error() {
    slipway()
        .args(["validate", "/nonexistent/config.yml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cannot read /nonexistent/config.yml",
        ));
    slipway()
        .args(["validate", "/"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is a directory"));
}

#[test]
fn bad_flags_are_usage_errors() {
    slipway().args(["validate"]).assert().code(2);
    slipway()
        .args(["-v", "9", "validate", "x"])
        .assert()
        .code(2);
    slipway().args(["frobnicate"]).assert().code(2);
}

#[test]
fn help_and_completions() {
    slipway()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Build an image"));
    slipway().args(["build", "--help"]).assert().success();
    for shell in ["bash", "zsh", "fish"] {
        slipway()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("slipway"));
    }
}

#[test]
fn diagnostics_are_uncoloured_when_not_on_a_terminal() {
    let out = slipway()
        .env_remove("NO_COLOR")
        .args(["validate", &invalid("bad-capability.yml")])
        .assert()
        .code(1);
    let stderr = out.get_output().stderr.clone();
    assert!(
        !stderr.contains(&0x1b),
        "escape codes in non-terminal output"
    );
}

/// The rendered snippet of a syntax error shows the offending line, with
/// the caret under the offending character (not the first line of the file,
/// not the scalar before a tab).
#[test]
fn syntax_error_snippets_point_at_the_offending_character() {
    // (text, the offending line, its 1-based column)
    let cases = [
        ("onboot:\n  - name: x\n\t  image: y\n", "\t  image: y", 1),
        (
            "kernel:\n  image: a/b:1\n  cmdline: \"console=tty0\ninit:\n  - x\n",
            "  cmdline: \"console=tty0",
            12,
        ),
        ("init: [a, b\nonboot:\n  - name: x\n", "init: [a, b", 7),
        (
            "onboot:\n  - name: x\n    image: {a: b\nservices: []\n",
            "    image: {a: b",
            12,
        ),
        (
            "onboot:\n  - name: x\n    image: y\n   command: [a]\n",
            "   command: [a]",
            4,
        ),
        (
            "files:\n  - path: etc/resolv.conf\n    contents: |\n#      domain test.local\n      nameserver 10.10.1.101\n",
            "#      domain test.local",
            1,
        ),
        ("kernel:\n  image: a/b:1\n---\ninit:\n  - x\n", "---", 1),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (text, line, column)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("case{i}.yml"));
        std::fs::write(&file, text).unwrap();
        let out = slipway()
            .args(["validate", file.to_str().unwrap()])
            .assert()
            .code(1);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        let number = text[..text.find(line).unwrap()].matches('\n').count() + 1;
        assert!(
            stderr.contains(&format!("{}:{number}:{column}: error:", file.display())),
            "case {i}: {stderr}"
        );
        // miette prints the line as ` N │ text` and the caret on the next
        // line, under the character: `   · ` then spaces up to the column.
        let shown = stderr
            .lines()
            .position(|l| l.ends_with(&format!("{number} │ {}", line.replace('\t', "    "))))
            .unwrap_or_else(|| panic!("case {i}: line {number} not shown:\n{stderr}"));
        let caret_line = stderr.lines().nth(shown + 1).unwrap();
        let gutter = caret_line.find('·').unwrap() + '·'.len_utf8() + 1;
        let caret = caret_line[gutter..]
            .find(['┬', '▲', '─'])
            .unwrap_or_else(|| panic!("case {i}: no caret under the line:\n{stderr}"));
        assert_eq!(caret + 1, column, "case {i}: caret column\n{stderr}");
    }
}
