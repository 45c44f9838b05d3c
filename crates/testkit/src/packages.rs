//! The standard packages of `pkg/`, built once per target directory into a
//! shared image cache for the end-to-end tests, and a private copy of the
//! tree's `pkg/` and `examples/` for each test.
//!
//! The copy is what makes the tests independent of Debian's mirrors keeping
//! a pinned version: a vanished pin is re-resolved (with a warning) in the
//! copy's `debs.lock`, never in the tree, and every copy re-resolves the same
//! way, so they share one tag and the shared cache builds each package once.
//! Packages with `cargo:` steps (`pkg/init`, `pkg/mux`) are linked, not
//! copied: the step needs the workspace around it (found through the
//! link's real path), and they have no `debs.lock`.
//!
//! Building is serialised across test processes by a lock file; a package
//! whose tag is already in the cache is not rebuilt. Like the rest of the
//! boot helpers this panics on failure, with the command's output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::initramfs::{target_dir, workspace};

/// A test's copy of `pkg/` and `examples/`, whose packages are all in
/// [`Packages::cache`].
#[derive(Debug)]
pub struct Packages {
    /// Holds `pkg/` and `examples/`; removed on drop.
    pub root: tempfile::TempDir,
    /// The shared image cache (`--cache`) with every standard package.
    pub cache: PathBuf,
}

impl Packages {
    /// `examples/<name>` in this test's copy.
    pub fn example(&self, name: &str) -> PathBuf {
        self.root.path().join("examples").join(name)
    }

    /// `pkg/<name>` in this test's copy.
    pub fn package(&self, name: &str) -> PathBuf {
        self.root.path().join("pkg").join(name)
    }

    /// Build more package directories (a test's own, say in
    /// [`Packages::package`]) into the shared cache, under the same lock as
    /// the standard ones.
    pub fn build(&self, slipway: &Path, dirs: &[PathBuf]) {
        build_locked(slipway, &self.cache, dirs);
    }
}

/// Copy a directory tree (files, directories, symlinks as links).
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&e.path(), &to);
        } else if kind.is_symlink() {
            symlink(fs::read_link(e.path()).unwrap(), &to).unwrap();
        } else {
            fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Copy the tree's `pkg/` and `examples/` for this test and make sure every
/// standard package is in the shared cache, building what is missing with
/// `slipway` (the binary under test: `env!("CARGO_BIN_EXE_slipway")`).
pub fn standard(slipway: &Path) -> Packages {
    let ws = workspace();
    let root = tempfile::tempdir().unwrap();
    let pkg = root.path().join("pkg");
    fs::create_dir_all(&pkg).unwrap();
    let mut dirs = Vec::new();
    for e in fs::read_dir(ws.join("pkg")).unwrap() {
        let src = e.unwrap().path();
        if !src.join("build.yml").is_file() {
            continue;
        }
        let name = src.file_name().unwrap().to_owned();
        let dst = pkg.join(&name);
        let cargo = fs::read_to_string(src.join("build.yml"))
            .unwrap()
            .lines()
            .any(|l| l.trim() == "- cargo:");
        if src.join("debs.lock").exists() || !cargo {
            copy_dir(&src, &dst);
        } else {
            symlink(&src, &dst).unwrap();
        }
        dirs.push(dst);
    }
    dirs.sort();
    if ws.join("examples").is_dir() {
        copy_dir(&ws.join("examples"), &root.path().join("examples"));
    }

    let cache = target_dir().join("e2e-packages").join("cache");
    build_locked(slipway, &cache, &dirs);
    Packages { root, cache }
}

/// `slipway --cache CACHE pkg build DIRS...`, one test process at a time.
fn build_locked(slipway: &Path, cache: &Path, dirs: &[PathBuf]) {
    let shared = cache.parent().unwrap();
    fs::create_dir_all(shared).unwrap();
    let lock = fs::File::create(shared.join("lock")).unwrap();
    lock.lock().unwrap();
    let output = Command::new(slipway)
        .arg("--cache")
        .arg(cache)
        .args(["pkg", "build"])
        .args(dirs)
        .output()
        .unwrap();
    drop(lock);
    assert!(
        output.status.success(),
        "building the packages {dirs:?} failed: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
