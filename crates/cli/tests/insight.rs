//! What a build says about its image, checked by independent tools on the
//! examples built from the standard packages (`slipway_testkit::packages`):
//!
//! * the SBOM of every example validates with the SPDX project's own
//!   validator (`pyspdxtools`, from the venv `cargo xtask test` makes),
//!   lists one package per image and every Debian package of every
//!   `debs.lock` the example uses, and the crates slipway-init links; it is
//!   the same bytes in the image (`sbom.spdx.json`) and beside it, and
//!   byte-identical across two builds;
//! * the size report: its text form's per-unit stored sizes add up to the
//!   initrd's size exactly; its HTML page, opened by headless Chromium
//!   (`--dump-dom`) with every request sent to a proxy that is a listening
//!   socket of this test, shows the units and totals and asks for nothing
//!   but Chromium's own calls home (a page with an image on the network,
//!   beside it, does ask); `slipway
//!   report diff` reads it back;
//! * an image pushed to a registry with its SBOM attestation, pulled into
//!   an empty cache, brings the attestation along, and a build using it
//!   merges its Debian packages into the image's SBOM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use slipway_testkit::boot::build_with;
use slipway_testkit::initramfs::need;
use slipway_testkit::{Registry, packages};

fn slipway() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_slipway"))
}

fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(slipway()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "slipway {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `pyspdxtools` from the test venv `cargo xtask test` makes.
fn pyspdxtools() -> PathBuf {
    let tool = slipway_testkit::python::python().with_file_name("pyspdxtools");
    assert!(tool.is_file(), "{} is missing", tool.display());
    tool
}

fn validate(sbom: &Path) {
    let out = Command::new(pyspdxtools())
        .arg("-i")
        .arg(sbom)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyspdxtools -i {}: {}\n{}{}",
        sbom.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `@pkg:` directories an example names.
fn packages_of(example: &Path) -> BTreeSet<PathBuf> {
    let text = fs::read_to_string(example).unwrap();
    text.lines()
        .filter_map(|l| l.split("\"@pkg:").nth(1))
        .map(|rest| {
            let dir = rest.split('"').next().unwrap();
            example.parent().unwrap().join(dir)
        })
        .collect()
}

/// (name, version, arch) of every amd64 package of a `debs.lock`.
fn locked_debs(dir: &Path) -> Vec<(String, String, String)> {
    let Ok(text) = fs::read_to_string(dir.join("debs.lock")) else {
        return Vec::new();
    };
    let lock: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for step in lock["steps"].as_array().unwrap() {
        for d in step["resolved"]["amd64"].as_array().into_iter().flatten() {
            out.push((
                d["name"].as_str().unwrap().to_owned(),
                d["version"].as_str().unwrap().to_owned(),
                d["architecture"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

fn purls(sbom: &Value) -> BTreeSet<String> {
    sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
        .filter_map(|r| r["referenceLocator"].as_str().map(str::to_owned))
        .collect()
}

/// Every example: a valid SBOM with its images, Debian packages and
/// crates; for minimal.yml also inside the image and reproducible.
#[test]
fn every_example_has_a_valid_complete_sbom() {
    let pkgs = packages::standard(slipway());
    let out = tempfile::tempdir().unwrap();
    let mut examples: Vec<PathBuf> = fs::read_dir(pkgs.root.path().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 3, "{examples:?}");
    for example in &examples {
        let name = example.file_stem().unwrap().to_string_lossy().into_owned();
        let sbom_path = out.path().join(format!("{name}.spdx.json"));
        let sbom_arg = format!("--sbom-file={}", sbom_path.display());
        build_with(
            slipway(),
            &pkgs.cache,
            &[example],
            out.path(),
            &name,
            &["--offline", &sbom_arg],
        );
        validate(&sbom_path);
        let sbom: Value = serde_json::from_slice(&fs::read(&sbom_path).unwrap()).unwrap();
        let used = packages_of(example);
        let images: Vec<&Value> = sbom["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["primaryPackagePurpose"] == "CONTAINER")
            .collect();
        assert_eq!(images.len(), used.len(), "{name}: one package per image");
        for image in &images {
            assert!(
                image["versionInfo"]
                    .as_str()
                    .unwrap()
                    .starts_with("sha256:")
            );
        }
        let listed = purls(&sbom);
        let mut debs = 0;
        for dir in &used {
            for (n, v, a) in locked_debs(dir) {
                let purl = slipway_report::spdx::deb_purl(&n, &v, &a);
                assert!(
                    listed.contains(&purl),
                    "{name}: {purl} of {} is not in the SBOM",
                    dir.display()
                );
                debs += 1;
            }
        }
        assert!(debs > 0, "{name} uses no Debian package?");
        if used.iter().any(|d| d.ends_with("pkg/init")) {
            let bins: Vec<&Value> = sbom["packages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["primaryPackagePurpose"] == "APPLICATION")
                .collect();
            assert!(
                bins.iter().any(|b| b["name"] == "slipway-init"),
                "{name}: no slipway-init"
            );
            for c in ["nix", "serde_json", "slipway-contract"] {
                assert!(
                    sbom["packages"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == c),
                    "{name}: slipway-init links {c}, the SBOM does not say so"
                );
            }
            assert!(listed.iter().any(|p| p.starts_with("pkg:cargo/nix@")));
        }
        eprintln!(
            "SBOM {name}: {} images, {} Debian packages, {} crates, {} packages, {} bytes",
            images.len(),
            listed.iter().filter(|p| p.starts_with("pkg:deb/")).count(),
            listed
                .iter()
                .filter(|p| p.starts_with("pkg:cargo/"))
                .count(),
            sbom["packages"].as_array().unwrap().len(),
            fs::metadata(&sbom_path).unwrap().len()
        );
    }

    // minimal.yml again, into another directory and as a tar: the same SBOM,
    // and the same one at sbom.spdx.json in the image.
    let minimal = pkgs.example("minimal.yml");
    let first = fs::read(out.path().join("minimal.spdx.json")).unwrap();
    let again = tempfile::tempdir().unwrap();
    let tar = again.path().join("minimal.tar");
    let sbom_again = again.path().join("sbom.json");
    run(&[
        "--cache",
        pkgs.cache.to_str().unwrap(),
        "build",
        "--offline",
        "--format",
        "tar",
        "-o",
        tar.to_str().unwrap(),
        "--sbom-file",
        sbom_again.to_str().unwrap(),
        minimal.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read(&sbom_again).unwrap(),
        first,
        "the SBOM differs between two builds"
    );
    let mut archive = tar::Archive::new(fs::File::open(&tar).unwrap());
    let mut inside = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == Path::new("sbom.spdx.json") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            inside = Some(bytes);
        }
    }
    assert_eq!(
        inside.as_deref(),
        Some(first.as_slice()),
        "sbom.spdx.json in the image"
    );

    // --no-sbom leaves it out; --sbom-output moves it.
    let moved = again.path().join("moved.tar");
    run(&[
        "--cache",
        pkgs.cache.to_str().unwrap(),
        "build",
        "--offline",
        "--format",
        "tar",
        "-o",
        moved.to_str().unwrap(),
        "--sbom-output",
        "/usr/share/sbom/image.spdx.json",
        minimal.to_str().unwrap(),
    ]);
    let names = |path: &Path| -> Vec<String> {
        tar::Archive::new(fs::File::open(path).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .filter(|n| n.contains("spdx"))
            .collect()
    };
    assert_eq!(names(&moved), ["usr/share/sbom/image.spdx.json"]);
    let none = again.path().join("none.tar");
    run(&[
        "--cache",
        pkgs.cache.to_str().unwrap(),
        "build",
        "--offline",
        "--format",
        "tar",
        "-o",
        none.to_str().unwrap(),
        "--no-sbom",
        minimal.to_str().unwrap(),
    ]);
    assert!(names(&none).is_empty());
}

/// A TCP listener recording the first line of every request sent to it
/// (`GET http://host/...`, `CONNECT host:443`): Chromium's proxy.
fn recording_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&lines);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 512];
            let n = stream.read(&mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]);
            let line = text.lines().next().unwrap_or("(nothing read)").to_owned();
            seen.lock().unwrap().push(line);
            // Dropped at once: the request fails, which is all it needs.
        }
    });
    (port, lines)
}

/// The requests of a page: what the proxy saw, less Chromium's own calls
/// home (update checks, the time service, account sign-in), which it makes
/// for any page, an empty one too, whatever the flags.
fn page_requests(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| {
            let target = line.split_whitespace().nth(1).unwrap_or("");
            let host = target
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .split(['/', ':'])
                .next()
                .unwrap_or("");
            !(host == "google.com"
                || host.ends_with(".google.com")
                || host.ends_with(".googleapis.com")
                || host.ends_with(".gstatic.com"))
        })
        .cloned()
        .collect()
}

/// `chromium --headless --dump-dom` of a file, every request through the
/// proxy at `port`; the DOM.
fn dump_dom(page: &Path, port: u16, profile: &Path) -> String {
    need("chromium");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--proxy-server=http://127.0.0.1:{port}"))
        // Loopback too goes through the proxy.
        .arg("--proxy-bypass-list=<-loopback>")
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut dom = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        stdout.read_to_string(&mut dom).unwrap();
        dom
    });
    // Chromium gets two minutes on a loaded two-core machine.
    for _ in 0..1200 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        panic!("chromium did not finish with {}", page.display());
    }
    reader.join().unwrap()
}

/// The size report of minimal.yml: the text form adds up to the initrd;
/// the HTML page shows units and totals in Chromium without a request.
#[test]
fn size_report_adds_up_and_the_page_makes_no_request() {
    let pkgs = packages::standard(slipway());
    let out = tempfile::tempdir().unwrap();
    let minimal = pkgs.example("minimal.yml");
    let html = out.path().join("minimal.html");
    let report_arg = format!("--report={}", html.display());
    let prefix = build_with(
        slipway(),
        &pkgs.cache,
        &[&minimal],
        out.path(),
        "minimal",
        &["--offline", &report_arg],
    );
    let mut initrd = prefix.as_os_str().to_owned();
    initrd.push("-initrd.img");
    let initrd_size = fs::metadata(PathBuf::from(&initrd)).unwrap().len();

    // The text form, from a second (warm) build.
    let text_out = run(&[
        "--cache",
        pkgs.cache.to_str().unwrap(),
        "-q",
        "build",
        "--offline",
        "--dir",
        out.path().to_str().unwrap(),
        "--name",
        "minimal",
        "--report",
        "-",
        minimal.to_str().unwrap(),
    ]);
    let text = String::from_utf8(text_out.stdout).unwrap();
    let mut stored = 0u64;
    let mut kinds = Vec::new();
    let mut init_images = 0;
    let mut in_units = false;
    for line in text.lines() {
        if line.starts_with("units") {
            in_units = true;
            continue;
        }
        if !in_units {
            continue;
        }
        if line.trim_start().starts_with("total") || line.is_empty() {
            break;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        kinds.push(words[0].to_owned());
        if words[..2] == ["init", "init"] {
            init_images += 1;
        }
        if line.ends_with("(beside the initrd)") {
            continue;
        }
        // ... files bytes uncompressed stored saved
        stored += words[words.len() - 2]
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert_eq!(
        stored, initrd_size,
        "the units' stored sizes do not add up to the initrd:\n{text}"
    );
    for kind in [
        "kernel",
        "modules",
        "init",
        "onboot",
        "onshutdown",
        "service",
        "files",
        "sbom",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} unit:\n{text}");
    }
    // init, crun and ca-certificates (beside them, the unit of their
    // merged apk databases, which is empty here).
    assert_eq!(init_images, 3, "{text}");

    // The page, in Chromium, behind a proxy that records requests.
    let page = fs::read_to_string(&html).unwrap();
    let report = slipway_report::size::SizeReport::parse(&page).unwrap();
    assert_eq!(report.initrd_bytes, Some(initrd_size));
    let (port, requests) = recording_proxy();
    let dom = dump_dom(&html, port, &out.path().join("profile"));
    assert!(dom.contains("slipway size report: minimal"), "{dom}");
    for unit in &report.units {
        assert!(
            dom.contains(&format!("data-location=\"{}\"", unit.location)),
            "{}: not on the page",
            unit.location
        );
    }
    for title in ["init ", "onboot dhcpcd", "services www", "onshutdown bye"] {
        assert!(dom.contains(title), "{title:?} is not on the page");
    }
    assert!(
        dom.contains(&format!("{initrd_size} bytes")),
        "the initrd's size is not on the page"
    );
    assert!(
        dom.contains(&format!("{} bytes", report.total_bytes())),
        "the total is not on the page"
    );
    assert!(dom.contains("<svg"), "no treemap");
    let seen = requests.lock().unwrap().clone();
    assert_eq!(
        page_requests(&seen),
        Vec::<String>::new(),
        "the report made a network request"
    );
    // The control: the same browser and proxy see a page that does ask.
    let asking = out.path().join("asking.html");
    fs::write(
        &asking,
        "<!doctype html><img src=\"http://203.0.113.9/x.png\"><p>x</p>",
    )
    .unwrap();
    let _ = dump_dom(&asking, port, &out.path().join("profile2"));
    let seen = requests.lock().unwrap().clone();
    assert!(
        page_requests(&seen)
            .iter()
            .any(|l| l.contains("203.0.113.9")),
        "the proxy saw no request from a page that makes one: {seen:?}"
    );

    // report diff reads the page back.
    let diff = run(&[
        "report",
        "diff",
        html.to_str().unwrap(),
        html.to_str().unwrap(),
    ]);
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.contains("(no change)"), "{diff}");
    if let Some(keep) = std::env::var_os("SLIPWAY_KEEP_REPORT") {
        // `docs/`'s picture comes from this build (docs/insight.md).
        fs::copy(&html, PathBuf::from(keep).join("size-report.html")).unwrap();
    }
}

/// A package image with its SBOM attestation, pushed to a registry and
/// pulled into an empty cache: the attestation comes along, and a build
/// with the pulled image merges its Debian packages.
#[test]
fn pulled_image_brings_its_sbom() {
    let pkgs = packages::standard(slipway());
    let registry = Registry::start().unwrap();
    let source = String::from_utf8(
        run(&["pkg", "show-tag", pkgs.package("busybox").to_str().unwrap()]).stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let tag = source.rsplit(':').next().unwrap();
    let remote = format!("{}/test/busybox:{tag}", registry.host());
    let cache = pkgs.cache.to_str().unwrap();
    run(&[
        "--cache",
        cache,
        "cache",
        "push",
        &source,
        "--remote-name",
        &remote,
    ]);

    let empty = tempfile::tempdir().unwrap();
    let fresh = empty.path().join("cache");
    let fresh_s = fresh.to_str().unwrap();
    run(&["--cache", fresh_s, "cache", "pull", &remote]);
    let index: Value =
        serde_json::from_slice(&fs::read(fresh.join("index.json")).unwrap()).unwrap();
    let root = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap_or("")
                .ends_with(tag)
        })
        .unwrap();
    let hex = root["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let image_index: Value =
        serde_json::from_slice(&fs::read(fresh.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    let attestation = image_index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .expect("the package's index has no attestation");
    let att_hex = attestation["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert!(
        fresh.join("blobs/sha256").join(att_hex).is_file(),
        "cache pull left the attestation behind"
    );

    let config = empty.path().join("pulled.yml");
    fs::write(
        &config,
        format!("onboot:\n  - name: hello\n    image: {remote}\n    command: [\"/bin/true\"]\n"),
    )
    .unwrap();
    let sbom = empty.path().join("sbom.json");
    run(&[
        "--cache",
        fresh_s,
        "build",
        "--offline",
        "--format",
        "tar",
        "-o",
        empty.path().join("pulled.tar").to_str().unwrap(),
        "--sbom-file",
        sbom.to_str().unwrap(),
        config.to_str().unwrap(),
    ]);
    validate(&sbom);
    let doc: Value = serde_json::from_slice(&fs::read(&sbom).unwrap()).unwrap();
    let listed = purls(&doc);
    for (n, v, a) in locked_debs(&pkgs.package("busybox")) {
        let purl = slipway_report::spdx::deb_purl(&n, &v, &a);
        assert!(listed.contains(&purl), "{purl} was not merged: {listed:?}");
    }
    let contains = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "CONTAINS")
        .count();
    assert!(contains > 0, "the image contains nothing");
}
