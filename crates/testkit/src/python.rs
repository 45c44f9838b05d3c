//! The test venv's Python (`cargo xtask test` makes it: grpcio, jsonschema,
//! PyYAML from PyPI), for checks by implementations independent of ours.

use std::path::{Path, PathBuf};

/// Its path: `$SLIPWAY_TEST_PYTHON`, or `target/python-test/bin/python3`.
/// Panics with how to make it when it is missing.
pub fn python() -> PathBuf {
    let python = std::env::var_os("SLIPWAY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("python-test/bin/python3")
        });
    assert!(
        python.is_file(),
        "{} is missing: `cargo xtask test` creates it (a venv with the PyPI packages of xtask/src/deps.rs)",
        python.display()
    );
    python
}
