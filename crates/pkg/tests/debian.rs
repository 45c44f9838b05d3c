//! Debian packages through slipway's own repository client, against the
//! mirror of the host's apt sources (resolved from the current index: no
//! particular version is assumed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use slipway_oci::Store;
use slipway_pkg::{BuildOptions, PkgError};

#[test]
fn runc_without_libseccomp_is_caught_by_the_library_check() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("runc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("build.yml"),
        "image: runc\narches: [amd64]\nsteps:\n  - debs:\n      packages: [runc]\n      exclude: [libseccomp2]\n",
    )
    .unwrap();
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let err = slipway_pkg::build(&dir, &store, &BuildOptions::default()).unwrap_err();
    match &err {
        PkgError::MissingLibraries { missing } => {
            assert!(
                missing
                    .iter()
                    .any(|m| m.contains("/usr/sbin/runc: needs libseccomp.so.2")),
                "{missing:?}"
            );
        }
        other => panic!("expected a missing library, got {other}"),
    }
    assert!(store.refs().unwrap().is_empty());
    // The lock was written, pinning what the current index had.
    let lock = std::fs::read_to_string(dir.join("debs.lock")).unwrap();
    assert!(lock.contains("\"name\": \"runc\""));
}

#[test]
fn a_package_that_does_not_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nope");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("build.yml"),
        "image: nope\nsteps:\n  - debs: [no-such-package-slipway]\n",
    )
    .unwrap();
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let err = slipway_pkg::build(&dir, &store, &BuildOptions::default()).unwrap_err();
    assert!(
        slipway_contract::errors::chain(&err)
            .contains("package \"no-such-package-slipway\" does not exist"),
        "{err}"
    );
    // Where build.yml lists it.
    let at = format!("{}:3:12: error: package", dir.join("build.yml").display());
    assert!(
        slipway_contract::errors::chain(&err).starts_with(&at),
        "{err}"
    );
    assert!(store.refs().unwrap().is_empty());
}
