//! The standard packages in `pkg/`: each built twice from its `debs.lock`
//! into two empty image caches in this one run gives the same image
//! digests. Downloads come from the shared download cache (fast when warm).
//!
//! Each package directory is copied first, so that a pin the mirror no
//! longer serves is re-resolved (with a warning) in the copy and never in
//! the tree: the test does not depend on a Debian version still being
//! served. Packages built by `cargo:` steps (`pkg/init`, `pkg/mux`) are
//! left out: the step needs the workspace around the package, and the
//! guest side's own tests cover them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use slipway_oci::Store;
use slipway_pkg::BuildOptions;
use slipway_testkit::packages::copy_dir;

fn standard_packages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pkg");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("build.yml").is_file())
        .filter(|p| {
            !std::fs::read_to_string(p.join("build.yml"))
                .unwrap()
                .lines()
                .any(|l| l.trim() == "- cargo:")
        })
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_standard_package_twice_gives_identical_digests() {
    let dirs = standard_packages();
    assert!(dirs.len() >= 12, "{dirs:?}");
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::open(tmp.path().join("a")).unwrap();
    let b = Store::open(tmp.path().join("b")).unwrap();
    let opts = BuildOptions::default();
    for dir in &dirs {
        let name = dir.file_name().unwrap();
        let copy = tmp.path().join("pkg").join(name);
        copy_dir(dir, &copy);
        let first = slipway_pkg::build(&copy, &a, &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(!first.cached());
        for w in &first.warnings {
            eprintln!("{}: {w}", dir.display());
        }
        let lock = std::fs::read_to_string(copy.join("debs.lock")).ok();
        let second = slipway_pkg::build(&copy, &b, &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(!second.cached());
        assert!(second.warnings.is_empty(), "{:?}", second.warnings);
        assert_eq!(
            std::fs::read_to_string(copy.join("debs.lock")).ok(),
            lock,
            "{}: the second build changed debs.lock",
            dir.display()
        );
        assert_eq!(first.images.len(), second.images.len(), "{}", dir.display());
        for (one, two) in first.images.iter().zip(&second.images) {
            assert_eq!(one.reference, two.reference, "{}", dir.display());
            assert_eq!(one.index.digest, two.index.digest, "{}", dir.display());
            assert_eq!(one.manifests, two.manifests, "{}", dir.display());
            // The tag is the one the tree's directory has.
            if first.warnings.is_empty() {
                for arch in &one.arches {
                    assert_eq!(slipway_pkg::show_tag(dir, *arch).unwrap(), one.reference);
                }
            }
        }
    }
}
