//! `slipway pkg` and `@pkg:` in `slipway build`, through the binary:
//! `--build-packages` (and the command the error names without it),
//! `show-tag` against what `@pkg:` resolves to, `--push` to a real registry
//! on loopback and back, and bad input (an unknown key, no build.yml, a lock
//! `--locked` refuses, a package the suite lacks, a tampered index) that
//! adds nothing to the cache.
//! The packages use local steps only, or a copy of a Debian suite served
//! on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use slipway_oci::Store;
use slipway_testkit::{FileServer, Registry};

fn slipway(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.arg("--cache")
        .arg(cache)
        .args(["--arch", "amd64"])
        .env_remove("SLIPWAY_CACHE")
        .env_remove("LINUXKIT_MIRROR");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("running slipway")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}", stderr(&o));
    o
}

fn failed(o: Output) -> String {
    assert!(!o.status.success(), "succeeded: {}", stdout(&o));
    stderr(&o)
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A package of local steps only (no network): `org/demo`.
fn demo_package(dir: &Path, org: &str) {
    write(
        dir,
        "build.yml",
        &format!(
            "image: demo\norg: {org}\narches: [amd64]\nsteps:\n  - root: rootfs\n  - files:\n      - path: etc/motd\n        contents: \"hello\\n\"\n  - symlinks:\n      - {{path: bin/t, target: /bin/tool}}\n"
        ),
    );
    write(dir, "rootfs/bin/tool", "#!/bin/sh\necho tool\n");
}

/// The names in the cache's index.
fn refs(cache: &Path) -> Vec<String> {
    Store::open(cache)
        .unwrap()
        .refs()
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

fn show_tag(dir: &Path) -> String {
    let cache = tempfile::tempdir().unwrap();
    stdout(&ok(run(slipway(cache.path())
        .args(["pkg", "show-tag"])
        .arg(dir))))
    .trim()
    .to_string()
}

/// A config whose one onboot image is `@pkg:./demo`, written at line 3, column 12.
fn config(work: &Path) -> PathBuf {
    let file = work.join("demo.yml");
    std::fs::write(
        &file,
        "onboot:\n  - name: demo\n    image: \"@pkg:./demo\"\n",
    )
    .unwrap();
    file
}

#[test]
fn build_packages_builds_what_the_cache_lacks_once() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    demo_package(&dir, "test");
    let file = config(work.path());
    let cache = work.path().join("cache");
    let tag = show_tag(&dir);
    assert!(tag.starts_with("docker.io/test/demo:"), "{tag}");
    let build = |extra: &[&str]| {
        let mut cmd = slipway(&cache);
        cmd.arg("build")
            .args(extra)
            .arg("-o")
            .arg(work.path().join("out.tar"))
            .arg(&file);
        run(&mut cmd)
    };

    // Without --build-packages: where the scalar is, the exact command, the flag.
    let text = failed(build(&[]));
    let at = format!("{}:3:12: error: @pkg:", file.display());
    assert!(text.contains(&at), "{text}");
    assert!(text.contains(&format!("{tag} (linux/amd64)")), "{text}");
    let command = format!(
        "slipway --cache {} --arch amd64 pkg build {}",
        cache.display(),
        dir.display()
    );
    assert!(text.contains(&format!("`{command}`")), "{text}");
    assert!(text.contains("--build-packages"), "{text}");
    assert!(refs(&cache).is_empty());
    assert!(!work.path().join("out.tar").exists());

    // With it: built, then the image is written.
    let o = ok(build(&["--build-packages"]));
    assert!(
        stderr(&o).contains(&format!("building package {}", dir.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(refs(&cache), vec![tag.clone()]);
    let tar = std::fs::read(work.path().join("out.tar")).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let paths: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p == "containers/onboot/000-demo/lower/etc/motd"),
        "{paths:?}"
    );

    // Again: found in the cache, nothing rebuilt, the index unchanged.
    let index = std::fs::read(cache.join("index.json")).unwrap();
    let o = ok(build(&["--build-packages"]));
    assert!(!stderr(&o).contains("building package"), "{}", stderr(&o));
    assert_eq!(std::fs::read(cache.join("index.json")).unwrap(), index);

    // `--resolve-only` prints what `pkg show-tag` prints.
    let o = ok(run(slipway(&cache)
        .args(["build", "--resolve-only"])
        .arg(&file)));
    let line = stdout(&o);
    assert_eq!(line.split_whitespace().next(), Some(tag.as_str()), "{line}");

    // The command the error named, run as written, makes the image too.
    let other = work.path().join("other-cache");
    let text = failed(build_in(&other, &file, work.path()));
    let named = text
        .split('`')
        .find(|s| s.starts_with("slipway "))
        .unwrap()
        .to_string();
    let words: Vec<&str> = named.split_whitespace().collect();
    ok(run(Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(&words[1..])
        .env_remove("SLIPWAY_CACHE")));
    ok(build_in(&other, &file, work.path()));
    assert_eq!(refs(&other), vec![tag]);
}

fn build_in(cache: &Path, file: &Path, work: &Path) -> Output {
    run(slipway(cache)
        .arg("build")
        .arg("-o")
        .arg(work.join("other.tar"))
        .arg(file))
}

#[test]
fn a_failing_package_build_under_build_packages() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    write(
        &dir,
        "build.yml",
        "image: demo\narches: [amd64]\nsteps:\n  - root: not-there\n",
    );
    let file = config(work.path());
    let cache = work.path().join("cache");
    let text = failed(run(slipway(&cache)
        .args(["build", "--build-packages", "-o"])
        .arg(work.path().join("out.tar"))
        .arg(&file)));
    let at = format!("{}:3:12: error: @pkg:", file.display());
    assert!(text.contains(&at), "{text}");
    assert!(
        text.contains(&format!("building package {} failed", dir.display())),
        "{text}"
    );
    assert!(text.contains("not-there"), "{text}");
    assert!(refs(&cache).is_empty());
    assert!(!work.path().join("out.tar").exists());
}

#[test]
fn build_packages_locked_keeps_the_lock() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    // A lock that no longer fits build.yml; the mirror does not exist, so
    // anything but refusing before a download would fail differently.
    write(
        &dir,
        "build.yml",
        "image: demo\narches: [amd64]\ndebian:\n  mirror: http://127.0.0.1:9/debian\n  suites: [bookworm]\nsteps:\n  - debs: [busybox-static]\n",
    );
    let lock = "{\n  \"lockVersion\": 1,\n  \"steps\": [{\"packages\": [\"busybox\"], \"resolved\": {\"amd64\": []}}]\n}\n";
    write(&dir, "debs.lock", lock);
    let file = config(work.path());
    let cache = work.path().join("cache");
    let text = failed(run(slipway(&cache)
        .env("SLIPWAY_DEBS_CACHE", work.path().join("debs"))
        .args(["build", "--build-packages", "--locked", "--resolve-only"])
        .arg(&file)));
    let at = format!("{}:3:12: error: @pkg:", file.display());
    assert!(text.contains(&at), "{text}");
    assert!(text.contains("debs.lock: --locked"), "{text}");
    assert!(text.contains("does not match build.yml"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.join("debs.lock")).unwrap(),
        lock
    );
    assert!(refs(&cache).is_empty());
    // --locked belongs to --build-packages.
    let text = failed(run(slipway(&cache)
        .args(["build", "--locked", "--resolve-only"])
        .arg(&file)));
    assert!(text.contains("--build-packages"), "{text}");
}

#[test]
fn push_to_a_registry_and_pull_back() {
    let registry = Registry::start().unwrap();
    let host = registry.host();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    // The image's own name is in the loopback registry.
    demo_package(&dir, &format!("{host}/test"));
    let tag = show_tag(&dir);
    let cache = work.path().join("cache");

    // `--push` before the directory: a flag, not its value.
    let o = ok(run(slipway(&cache)
        .args(["pkg", "build", "--push"])
        .arg(&dir)));
    let printed = stdout(&o);
    let (name, digest) = printed.trim().split_once(' ').unwrap();
    assert_eq!(name, tag);
    assert!(
        stderr(&o).contains(&format!("pushed {tag} {digest}")),
        "{}",
        stderr(&o)
    );

    // `--push=REPO`: under the package's tag there (the cached image, not rebuilt).
    let elsewhere = format!("{host}/other/copy");
    let o = ok(run(slipway(&cache)
        .args(["pkg", "build", &format!("--push={elsewhere}")])
        .arg(&dir)));
    assert!(
        stderr(&o).contains("up to date in the cache"),
        "{}",
        stderr(&o)
    );
    let tag_part = tag.rsplit_once(':').unwrap().1;
    let copy = format!("{elsewhere}:{tag_part}");
    assert!(
        stderr(&o).contains(&format!("pushed {copy} {digest}")),
        "{}",
        stderr(&o)
    );

    // Both pulled into an empty cache: the same digest.
    let second = work.path().join("second");
    for name in [tag.as_str(), copy.as_str()] {
        let o = ok(run(slipway(&second).args(["cache", "pull", name])));
        assert_eq!(stdout(&o).trim(), format!("{name} {digest}"));
    }
    ok(run(slipway(&second).args(["cache", "verify"])));

    // A tag for several packages is refused before anything is built.
    let text = failed(run(slipway(&cache)
        .args(["pkg", "build", &format!("--push={elsewhere}:x")])
        .arg(&dir)
        .arg(&dir)));
    assert!(text.contains("one tag for 2 packages"), "{text}");
}

#[test]
fn bad_packages_are_clear_errors_and_add_nothing() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let build = |dir: &Path, extra: &[&str]| {
        failed(run(slipway(&cache)
            .env("SLIPWAY_DEBS_CACHE", work.path().join("debs"))
            .args(["pkg", "build"])
            .args(extra)
            .arg(dir)))
    };

    // An unknown key: file:line:column, and the key it is closest to.
    let typo = work.path().join("typo");
    write(
        &typo,
        "build.yml",
        "image: typo\nimgae: x\nsteps:\n  - root: r\n",
    );
    let text = build(&typo, &[]);
    let at = format!(
        "{}:2:1: error: unknown key `imgae`",
        typo.join("build.yml").display()
    );
    assert!(text.contains(&at), "{text}");
    assert!(text.contains("did you mean `image`?"), "{text}");
    // The snippet, as for a config.
    assert!(text.contains("2 │ imgae: x"), "{text}");
    assert!(text.contains("build.yml has 1 error"), "{text}");

    // A directory without build.yml.
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let text = build(&empty, &[]);
    assert!(
        text.contains("not a package directory: there is no build.yml"),
        "{text}"
    );
    assert!(text.contains(&empty.display().to_string()), "{text}");

    // --locked with a lock that no longer fits build.yml: refused before any
    // download (the mirror does not exist), the lock as it was.
    let locked = work.path().join("locked");
    write(
        &locked,
        "build.yml",
        "image: locked\narches: [amd64]\ndebian:\n  mirror: http://127.0.0.1:9/debian\n  suites: [bookworm]\nsteps:\n  - debs: [busybox-static]\n",
    );
    let lock = r#"{
  "lockVersion": 1,
  "steps": [
    {
      "packages": ["busybox"],
      "resolved": {"amd64": []}
    }
  ]
}
"#;
    write(&locked, "debs.lock", lock);
    let text = build(&locked, &["--locked"]);
    assert!(text.contains("debs.lock: --locked"), "{text}");
    assert!(text.contains("does not match build.yml"), "{text}");
    assert!(text.contains("--update-lock"), "{text}");
    assert_eq!(
        std::fs::read_to_string(locked.join("debs.lock")).unwrap(),
        lock
    );

    assert!(refs(&cache).is_empty());
}

/// `InRelease` and `Packages.xz` of the host's first Debian suite, as the
/// mirror serves them now, and the suite's codename.
fn debian_copy(debs: &Path) -> (String, Vec<u8>, Vec<u8>) {
    use slipway_pkg::deb::repo::{Fetcher, release_hashes};
    let source = slipway_pkg::deb::sources::host_sources(Path::new("/"))
        .into_iter()
        .find(|s| s.components.iter().any(|c| c == "main"))
        .expect("the host has a Debian apt source");
    let fetcher = Fetcher::new(debs.to_path_buf()).unwrap();
    let signed = fetcher.in_release(&source).unwrap();
    let in_release = fetcher
        .fetch_bytes(&source.dist_url("InRelease"), 16 << 20)
        .unwrap();
    let (sha, size) = release_hashes(&signed)["main/binary-amd64/Packages.xz"].clone();
    let index = fetcher
        .fetch_verified(
            &source.dist_url("main/binary-amd64/Packages.xz"),
            &sha,
            Some(size),
            "indexes",
            "InRelease",
        )
        .unwrap();
    let suite = signed
        .lines()
        .find_map(|l| l.strip_prefix("Codename: "))
        .unwrap()
        .trim()
        .to_string();
    (suite, in_release, std::fs::read(index).unwrap())
}

#[test]
fn a_debian_package_the_suite_lacks_and_a_tampered_index() {
    let work = tempfile::tempdir().unwrap();
    let (suite, in_release, packages) = debian_copy(&work.path().join("copy"));
    let files: HashMap<String, Vec<u8>> = [
        (format!("/debian/dists/{suite}/InRelease"), in_release),
        (
            format!("/debian/dists/{suite}/main/binary-amd64/Packages.xz"),
            packages,
        ),
    ]
    .into_iter()
    .collect();
    let server = FileServer::start(std::sync::Arc::new(std::sync::Mutex::new(files))).unwrap();
    let dir = work.path().join("nope");
    write(
        &dir,
        "build.yml",
        &format!(
            "image: nope\narches: [amd64]\ndebian:\n  mirror: {}/debian\n  suites: [{suite}]\nsteps:\n  - debs:\n      packages: [busybox-static, no-such-package-slipway]\n",
            server.url()
        ),
    );
    let cache = work.path().join("cache");
    let text = failed(run(slipway(&cache)
        .env("SLIPWAY_DEBS_CACHE", work.path().join("debs"))
        .args(["pkg", "build"])
        .arg(&dir)));
    let at = format!(
        "{}:8:34: error: package \"no-such-package-slipway\" does not exist in {}/debian {suite}",
        dir.join("build.yml").display(),
        server.url()
    );
    assert!(text.contains(&at), "{text}");
    assert!(refs(&cache).is_empty());
    assert!(!dir.join("debs.lock").exists());

    // A tampered index: the URL, and that InRelease says otherwise; nothing
    // kept in either cache.
    let index = format!("/debian/dists/{suite}/main/binary-amd64/Packages.xz");
    let mut files = server.files().lock().unwrap();
    let bytes = files.get_mut(&index).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    drop(files);
    let debs = work.path().join("debs-tampered");
    let text = failed(run(slipway(&cache)
        .env("SLIPWAY_DEBS_CACHE", &debs)
        .args(["pkg", "build"])
        .arg(&dir)));
    assert!(
        text.contains(&format!("{}{index}: ", server.url())),
        "{text}"
    );
    assert!(text.contains("InRelease says"), "{text}");
    assert!(refs(&cache).is_empty());
    assert!(!dir.join("debs.lock").exists());
    let kept: Vec<_> = ["indexes", "pool"]
        .iter()
        .filter_map(|d| std::fs::read_dir(debs.join(d)).ok())
        .flat_map(|rd| rd.map(|e| e.unwrap().path()))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
}

/// `SOURCE_DATE_EPOCH` is part of every package's tag, so setting it after
/// the packages were built makes them "missing": every message that can
/// follow names it.
#[test]
fn source_date_epoch_is_named_where_it_changed_a_tag() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    demo_package(&dir, "test");
    let file = config(work.path());
    let cache = work.path().join("cache");
    let plain = |cmd: &mut Command| {
        cmd.env_remove("SOURCE_DATE_EPOCH");
        run(cmd)
    };
    let epoch = |cmd: &mut Command| {
        cmd.env("SOURCE_DATE_EPOCH", "1700000000");
        run(cmd)
    };
    let named = "SOURCE_DATE_EPOCH=\"1700000000\" is set";
    ok(plain(slipway(&cache).args(["pkg", "build"]).arg(&dir)));
    let build = |extra: &[&str]| {
        let mut cmd = slipway(&cache);
        cmd.args(["build", "--offline"])
            .args(extra)
            .arg("-o")
            .arg(work.path().join("out.tar"))
            .arg(&file);
        cmd
    };
    ok(plain(&mut build(&[])));

    // The offline build with it set: the missing package, and why.
    let text = failed(epoch(&mut build(&[])));
    assert!(
        text.contains(&format!("{}:3:12: error: @pkg:", file.display())),
        "{text}"
    );
    assert!(text.contains("is not in the cache"), "{text}");
    assert!(text.contains(named), "{text}");
    // Without it, the same failure says nothing of it.
    let other = work.path().join("other-cache");
    let text = failed(plain(
        slipway(&other)
            .args(["build", "--offline", "-o"])
            .arg(work.path().join("out2.tar"))
            .arg(&file),
    ));
    assert!(text.contains("is not in the cache"), "{text}");
    assert!(!text.contains("SOURCE_DATE_EPOCH"), "{text}");

    // show-tag: the tag alone on standard output, the note on standard error.
    let without = ok(plain(slipway(&cache).args(["pkg", "show-tag"]).arg(&dir)));
    assert_eq!(stderr(&without), "");
    let with = ok(epoch(slipway(&cache).args(["pkg", "show-tag"]).arg(&dir)));
    assert_ne!(stdout(&with), stdout(&without));
    assert_eq!(stdout(&with).lines().count(), 1);
    assert!(
        stderr(&with).contains("SOURCE_DATE_EPOCH=\"1700000000\""),
        "{}",
        stderr(&with)
    );

    // --build-packages says why it builds again.
    let o = ok(epoch(&mut build(&["--build-packages"])));
    assert!(stderr(&o).contains("building package"), "{}", stderr(&o));
    assert!(stderr(&o).contains(named), "{}", stderr(&o));
}

#[test]
fn build_and_show_tag_as_json() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    demo_package(&dir, "test");
    let cache = work.path().join("cache");
    let tag = show_tag(&dir);
    let build = || {
        let o = ok(run(slipway(&cache)
            .args(["pkg", "build", "--json"])
            .arg(&dir)));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let first = build();
    let images = first["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{first:#}");
    let image = &images[0];
    assert_eq!(image["reference"], tag.as_str());
    assert_eq!(image["package"], dir.display().to_string());
    assert_eq!(image["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(image["cached"], false);
    // The digest is the index the cache names under the tag.
    let store = Store::open(&cache).unwrap();
    let (_, descriptor) = store
        .refs()
        .unwrap()
        .into_iter()
        .find(|(name, _)| *name == tag)
        .unwrap();
    assert_eq!(image["digest"], descriptor.digest.to_string());

    // Again: the same image, now from the cache.
    let second = build();
    assert_eq!(second["images"][0]["digest"], image["digest"]);
    assert_eq!(second["images"][0]["cached"], true);

    let o = ok(run(slipway(&cache)
        .args(["pkg", "show-tag", "--json"])
        .arg(&dir)));
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["reference"], tag.as_str());
    assert_eq!(shown["repository"], "docker.io/test/demo");
    assert_eq!(
        format!("docker.io/test/demo:{}", shown["tag"].as_str().unwrap()),
        tag
    );
    assert_eq!(shown["platform"], "linux/amd64");
}
