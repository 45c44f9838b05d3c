//! Package builds that need no network: root directories, files, symlinks,
//! users and groups; the image's contents, modes, owners, config and label;
//! determinism; bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;

use slipway_oci::{ManifestKind, Store};
use slipway_pkg::{BuildOptions, PkgError};
use slipway_reference::{Arch, Platform};

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn package(dir: &Path) {
    write(
        dir,
        "build.yml",
        r#"image: demo
org: test
arches: [amd64]
config:
  pid: host
  capabilities: [CAP_SYS_ADMIN]
steps:
  - root: rootfs
  - files:
      - path: etc/motd
        contents: "hello\n"
        mode: "0600"
        uid: 100
        gid: 101
      - path: var/empty
        directory: true
  - symlinks:
      target: /bin/tool
      paths: [bin/a, bin/b]
  - users:
      - {name: root, uid: 0}
      - {name: svc, uid: 1000, shell: /bin/false}
  - groups:
      - {name: wheel, gid: 10, members: [svc]}
  - remove: [bin/junk]
entrypoint: [/bin/tool]
env: [A=1]
labels:
  x.y: z
"#,
    );
    write(dir, "rootfs/bin/tool", "#!/bin/sh\necho tool\n");
    write(dir, "rootfs/bin/junk", "junk");
    std::fs::set_permissions(
        dir.join("rootfs/bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
}

/// (path, mode, uid, gid, `dir` / `-> target` / content) of a layer entry.
type Listed = (String, u32, u64, u64, String);

/// The entries of the image's one layer, and its config.
fn listing(
    store: &Store,
    reference: &slipway_reference::Reference,
) -> (Vec<Listed>, serde_json::Value) {
    let image = store
        .resolve(reference, &Platform::linux(Arch::Amd64))
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &store
            .read_blob(&image.manifest.config.digest, "config")
            .unwrap(),
    )
    .unwrap();
    let layer = store.open_blob(&image.manifest.layers[0].digest).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let path = e.path().unwrap().to_string_lossy().to_string();
        let what = match h.entry_type() {
            tar::EntryType::Symlink => format!("-> {}", e.link_name().unwrap().unwrap().display()),
            tar::EntryType::Directory => "dir".to_string(),
            _ => {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                s
            }
        };
        assert_eq!(h.mtime().unwrap(), 0);
        out.push((
            path,
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            what,
        ));
    }
    (out, config)
}

#[test]
fn root_files_symlinks_users_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    package(&dir);
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let built = slipway_pkg::build(&dir, &store, &BuildOptions::default()).unwrap();
    assert!(
        built.images[0]
            .reference
            .to_string()
            .starts_with("docker.io/test/demo:")
    );
    let (files, config) = listing(&store, &built.images[0].reference);
    let find = |p: &str| {
        files
            .iter()
            .find(|f| f.0 == p)
            .unwrap_or_else(|| panic!("{p} missing: {files:?}"))
            .clone()
    };
    assert_eq!(find("bin/tool").1, 0o755);
    assert_eq!(find("bin/a").4, "-> /bin/tool");
    assert_eq!(
        find("etc/motd"),
        ("etc/motd".into(), 0o600, 100, 101, "hello\n".into())
    );
    assert_eq!(find("var/empty/").4, "dir");
    assert!(files.iter().all(|f| f.0 != "bin/junk"));
    assert_eq!(
        find("etc/passwd").4,
        "root:x:0:0:root:/root:/bin/sh\nsvc:x:1000:1000:svc:/home/svc:/bin/false\n"
    );
    assert_eq!(
        find("etc/group").4,
        "root:x:0:\nsvc:x:1000:\nwheel:x:10:svc\n"
    );
    assert_eq!(find("etc/shadow").1, 0o640);
    // Sorted, parents first.
    let paths: Vec<&String> = files.iter().map(|f| &f.0).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/bin/tool"])
    );
    assert_eq!(config["config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(config["config"]["Labels"]["x.y"], "z");
    let label = config["config"]["Labels"]["org.mobyproject.config"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(label).unwrap(),
        serde_json::json!({"pid": "host", "capabilities": ["CAP_SYS_ADMIN"]})
    );
    slipway_config::label::parse_label("demo", label).unwrap();
    // The index names an amd64 manifest.
    let index = store.lookup(&built.images[0].reference).unwrap().unwrap();
    match store.read_document(&index).unwrap() {
        ManifestKind::Index(i) => assert_eq!(
            i.manifests[0].platform.as_ref().unwrap().architecture,
            "amd64"
        ),
        ManifestKind::Manifest(_) => panic!("expected an index"),
    }
    // A second build is a cache hit; package_reference finds it.
    let again = slipway_pkg::build(&dir, &store, &BuildOptions::default()).unwrap();
    assert!(again.cached());
    assert_eq!(
        slipway_pkg::package_reference(&dir, &store, Arch::Amd64).unwrap(),
        built.images[0].reference
    );
}

#[test]
fn same_inputs_same_digests_in_two_caches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    package(&dir);
    let a = Store::open(tmp.path().join("a")).unwrap();
    let b = Store::open(tmp.path().join("b")).unwrap();
    let ba = slipway_pkg::build(&dir, &a, &BuildOptions::default()).unwrap();
    let bb = slipway_pkg::build(&dir, &b, &BuildOptions::default()).unwrap();
    assert_eq!(ba.images[0].reference, bb.images[0].reference);
    assert_eq!(ba.images[0].index.digest, bb.images[0].index.digest);
    // The tag follows the inputs.
    let before = slipway_pkg::show_tag(&dir, Arch::Amd64).unwrap();
    write(&dir, "rootfs/bin/tool", "#!/bin/sh\necho changed\n");
    assert_ne!(slipway_pkg::show_tag(&dir, Arch::Amd64).unwrap(), before);
}

#[test]
fn unknown_keys_are_errors_with_positions_and_nothing_is_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bad");
    write(
        &dir,
        "build.yml",
        "image: bad\nimgae: x\nsteps:\n  - root: r\n    mode: 1\n  - rooot: r\n",
    );
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let err = slipway_pkg::build(&dir, &store, &BuildOptions::default()).unwrap_err();
    let text = slipway_contract::errors::chain(&err);
    assert!(
        matches!(err, PkgError::Definition { count: 3, .. }),
        "{text}"
    );
    assert!(
        text.contains("build.yml:2:1: error: unknown key `imgae`"),
        "{text}"
    );
    assert!(
        text.contains("build.yml:5:5: error: unknown key `mode` in steps[0]"),
        "{text}"
    );
    assert!(
        text.contains("build.yml:6:5: error: steps[1]: a step is one of"),
        "{text}"
    );
    assert!(store.refs().unwrap().is_empty());
}

#[test]
fn not_built_names_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    package(&dir);
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let amd64 = Arch::Amd64;
    let err = slipway_pkg::package_reference(&dir, &store, amd64).unwrap_err();
    assert!(
        slipway_contract::errors::chain(&err).contains("build it with: slipway pkg build"),
        "{err}"
    );
    // Built for amd64 only, it is still not built for arm64.
    slipway_pkg::build(&dir, &store, &BuildOptions::default()).unwrap();
    slipway_pkg::package_reference(&dir, &store, amd64).unwrap();
    let err = slipway_pkg::package_reference(&dir, &store, Arch::Arm64).unwrap_err();
    assert!(matches!(err, PkgError::NotBuilt { .. }), "{err}");
    assert!(
        slipway_contract::errors::chain(&err).contains("linux/arm64"),
        "{err}"
    );
}

#[test]
fn a_dockerfile_package_without_docker_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lk");
    write(&dir, "build.yml", "image: lk\n");
    write(&dir, "Dockerfile", "FROM scratch\n");
    let store = Store::open(tmp.path().join("cache")).unwrap();
    // With no Docker engine (our test machines), the error says so.
    if std::process::Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return;
    }
    let err = slipway_pkg::build(&dir, &store, &BuildOptions::default()).unwrap_err();
    assert!(
        slipway_contract::errors::chain(&err).contains("needs a Docker engine"),
        "{err}"
    );
    assert!(store.refs().unwrap().is_empty());
}

#[test]
fn missing_package_directory() {
    let err = slipway_pkg::show_tag(Path::new("/nonexistent/pkg"), Arch::Amd64).unwrap_err();
    assert!(
        slipway_contract::errors::chain(&err).contains("there is no build.yml"),
        "{err}"
    );
}

#[test]
fn a_dockerfile_package_passes_its_fields_to_buildx() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lk");
    write(
        &dir,
        "build.yml",
        "image: lk\ndockerfile: Containerfile\nbuildArgs: [A=1, B=two]\ndisable-cache: true\nconfig:\n  pid: host\n",
    );
    let def = slipway_pkg::load(&dir).unwrap();
    let layout = tmp.path().join("oci");
    let args: Vec<String> =
        slipway_pkg::build::buildx_args(&def, &[Arch::Amd64, Arch::Arm64], &layout)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
    let has = |pair: [&str; 2]| args.windows(2).any(|w| w[0] == pair[0] && w[1] == pair[1]);
    assert!(has(["--platform", "linux/amd64,linux/arm64"]), "{args:?}");
    let file = dir.join("Containerfile").display().to_string();
    assert!(has(["--file", &file]), "{args:?}");
    assert!(has(["--network", "none"]), "{args:?}");
    assert!(args.iter().any(|a| a == "--no-cache"), "{args:?}");
    assert!(
        has(["--build-arg", "A=1"]) && has(["--build-arg", "B=two"]),
        "{args:?}"
    );
    assert!(
        has(["--label", r#"org.mobyproject.config={"pid":"host"}"#]),
        "{args:?}"
    );
    assert_eq!(args.last().unwrap(), &dir.display().to_string());

    // `network: true`, no buildArgs, the cache used.
    write(&dir, "build.yml", "image: lk\nnetwork: true\n");
    let def = slipway_pkg::load(&dir).unwrap();
    let args: Vec<String> = slipway_pkg::build::buildx_args(&def, &[Arch::Amd64], &layout)
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        !args
            .iter()
            .any(|a| a == "--network" || a == "--no-cache" || a == "--build-arg" || a == "--label"),
        "{args:?}"
    );
}

/// A package whose layer depends on nothing of the host: explicit modes,
/// no `root:` copy (its modes would follow the umask), a name over 100 bytes.
fn pinned_package(dir: &Path) {
    let long =
        "a-directory-name-long-enough-that-the-path-needs-more-than-the-hundred-bytes-of-ustar";
    write(
        dir,
        "build.yml",
        &format!(
            r#"image: pinned
org: test
arches: [amd64]
steps:
  - files:
      - path: etc/motd
        contents: "hello\n"
        mode: "0644"
      - path: usr/share/{long}/file
        contents: "x"
        mode: "0600"
        uid: 3000000
  - symlinks:
      target: /etc/motd
      paths: [motd]
"#
        ),
    );
}

/// The package format version (part of every tag) is raised whenever a
/// layer's bytes change for the same inputs: the tag and the layer's
/// uncompressed digest are pinned together, so a change to the layer
/// without a new tag fails here.
#[test]
fn the_layer_bytes_and_the_tag_format_change_together() {
    const TAG: &str = "f3b26c74e7b4666841c6115c21a42253a2ad85ed";
    const DIFF_ID: &str = "sha256:205b8c2f5c49f872173911406178db9d3388d90c474a0d73f7390b05f0d9c167";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pinned");
    pinned_package(&dir);
    let store = Store::open(tmp.path().join("cache")).unwrap();
    let built = slipway_pkg::build(&dir, &store, &BuildOptions::default()).unwrap();
    let (files, config) = listing(&store, &built.images[0].reference);
    let long_file = files.iter().find(|f| f.0.ends_with("-ustar/file")).unwrap();
    assert_eq!((long_file.1, long_file.2), (0o600, 3_000_000));
    let tag = built.images[0].reference.tag().unwrap().to_string();
    let diff_id = config["rootfs"]["diff_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    if diff_id != DIFF_ID {
        assert_ne!(
            tag, TAG,
            "the layer's bytes changed ({diff_id}) but the tag did not: raise slipway_pkg::tag::FORMAT"
        );
    }
    assert_eq!(
        (tag.as_str(), diff_id.as_str()),
        (TAG, DIFF_ID),
        "update both pins (after raising slipway_pkg::tag::FORMAT if the layer changed)"
    );
    // The layer is ustar with PAX records, never GNU extensions.
    let image = store
        .resolve(&built.images[0].reference, &Platform::linux(Arch::Amd64))
        .unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(store.open_blob(&image.manifest.layers[0].digest).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let mut at = 0;
    let mut pax = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let block = &tar[at..at + 512];
        assert_eq!(&block[257..265], b"ustar\x0000", "ustar magic at {at}");
        pax += usize::from(block[156] == b'x');
        let size = u64::from_str_radix(std::str::from_utf8(&block[124..135]).unwrap(), 8).unwrap();
        at += 512 + size.div_ceil(512) as usize * 512;
    }
    assert_eq!(pax, 1, "one PAX header: the long name and the large uid");
}
