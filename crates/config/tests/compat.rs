//! LinuxKit's own example configurations, reconstructed, validate; the
//! deliberately invalid ones do not (their messages are in `diagnostics.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use slipway_config::{Input, load};

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/compat/linuxkit")
}

fn input(path: &Path) -> Input {
    Input {
        name: path.display().to_string(),
        base_dir: path.parent().unwrap().to_path_buf(),
        bytes: std::fs::read(path).unwrap(),
    }
}

#[test]
fn every_example_validates() {
    let mut checked = 0;
    for entry in std::fs::read_dir(compat_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // multi-b.yml is a second file: it binds a volume declared in multi-a.yml.
        if path.extension().is_none_or(|e| e != "yml") || name == "multi-b.yml" {
            continue;
        }
        if let Err(e) = load(vec![input(&path)]) {
            panic!(
                "{name} does not validate:\n{}",
                e.diagnostics.render_plain(&e.sources)
            );
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} examples found");
}

#[test]
fn two_files_merge_and_share_volumes() {
    let dir = compat_dir();
    let loaded = load(vec![
        input(&dir.join("multi-a.yml")),
        input(&dir.join("multi-b.yml")),
    ])
    .unwrap_or_else(|e| panic!("{}", e.diagnostics.render_plain(&e.sources)));
    let kernel = loaded.config.kernel.unwrap().value;
    assert_eq!(kernel.cmdline.unwrap().value, "console=ttyS0 quiet");
    assert!(loaded.config.services.unwrap().value.len() >= 2);
}

#[test]
fn the_second_file_alone_names_the_missing_volume() {
    let err = load(vec![input(&compat_dir().join("multi-b.yml"))]).unwrap_err();
    let out = err.diagnostics.render_plain(&err.sources);
    assert!(out.contains("no volume `site` is declared"), "{out}");
}

#[test]
fn dry_run_output_validates_again() {
    for name in [
        "minimal.yml",
        "resources.yml",
        "wireguard.yml",
        "volumes.yml",
        "metadata.yml",
    ] {
        let path = compat_dir().join(name);
        let loaded = load(vec![input(&path)]).unwrap();
        let printed =
            slipway_config::print::to_yaml(&slipway_config::print::ToOut::to_out(&loaded.config));
        let again = slipway_config::load_str("printed.yml", &printed).unwrap_or_else(|e| {
            panic!(
                "{name}:\n{printed}\n{}",
                e.diagnostics.render_plain(&e.sources)
            )
        });
        assert_eq!(again.config, loaded.config, "{name}");
    }
}
