//! `slipway ctl` as the tests drive it, against any machine's state
//! directory: the fake machine of `fake` (a real multiplexer, no boot) or a
//! machine `slipway run` booted.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fake;
pub mod pki;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use serde_json::Value;

/// `slipway ctl --state <state> ...` (or another way to name the machine).
#[derive(Debug, Clone)]
pub struct Ctl {
    pub state: PathBuf,
    /// The arguments naming the machine.
    pub target: Vec<OsString>,
}

/// What a command said and how it ended.
#[derive(Debug)]
pub struct Said {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ctl {
    pub fn new(state: &Path) -> Ctl {
        Ctl {
            state: state.to_owned(),
            target: vec!["--state".into(), state.into()],
        }
    }

    /// The machine named by `target` (`--address ...`) instead of its state.
    pub fn with_target(&self, target: Vec<OsString>) -> Ctl {
        Ctl {
            state: self.state.clone(),
            target,
        }
    }

    pub fn command(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("slipway").unwrap();
        cmd.arg("ctl").args(&self.target).args(args);
        cmd.timeout(std::time::Duration::from_secs(60));
        cmd
    }

    /// Run it, whatever the outcome.
    pub fn run(&self, args: &[&str]) -> Said {
        let out = self.command(args).output().unwrap();
        Said {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run it; it must succeed. Its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let said = self.run(args);
        assert_eq!(said.code, 0, "slipway ctl {args:?}: {said:?}");
        said.stdout
    }

    /// Run it; it must fail with exit status 1. Its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let said = self.run(args);
        assert_eq!(said.code, 1, "slipway ctl {args:?}: {said:?}");
        said.stderr
    }

    /// `ps --json`.
    pub fn ps(&self) -> Vec<Value> {
        let out = self.ok(&["ps", "--json"]);
        match serde_json::from_str(&out).unwrap() {
            Value::Array(all) => all,
            other => panic!("ps --json: {other}"),
        }
    }

    /// One service of `ps --json`.
    pub fn service(&self, name: &str) -> Value {
        self.ps()
            .into_iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    /// Started in the background, its standard output piped (`logs -f`).
    pub fn spawn(&self, args: &[&str]) -> Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("slipway"))
            .arg("ctl")
            .args(&self.target)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}
