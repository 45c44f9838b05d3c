//! The crash campaign: `cache pull`, `build`, `pkg build` and `cache
//! clean` killed with SIGKILL at random moments (seeded, printed), builds
//! and a pull racing on one cache, and a cache on a full file system.
//!
//! After every kill: `cache verify` finds nothing wrong, `index.json`
//! parses and names only blobs that are present (and, through them, their
//! manifests' blobs), every output is whole (the previous build's bytes or
//! the new build's, never anything else), and the same command then runs
//! to the end and leaves no temporary file behind: what the killed process
//! left, the next run removes.
//!
//! `SLIPWAY_CHAOS_KILLS` (kills per command; 3 here, 50 in `cargo xtask
//! chaos`), `SLIPWAY_CHAOS_SEED` and `SLIPWAY_CHAOS_RACES` size the
//! campaign; each test prints one `CHAOS` line with its tally.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(
    clippy::disallowed_methods,
    reason = "a kill's moment is drawn from how long the command takes; no output depends on it"
)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_testkit::image::sha256_digest;
use slipway_testkit::initramfs::target_dir;
use slipway_testkit::packages::{self, Packages};
use slipway_testkit::{Artifact, Entry, ImageBuilder, PushTarget, Registry};

const SLIPWAY: &str = env!("CARGO_BIN_EXE_slipway");

/// The campaign's size.
struct Plan {
    kills: usize,
    seed: u64,
    races: usize,
}

fn plan() -> Plan {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
            .unwrap_or(default)
    };
    Plan {
        kills: var("SLIPWAY_CHAOS_KILLS", 3) as usize,
        seed: var("SLIPWAY_CHAOS_SEED", 20_261_205),
        races: var("SLIPWAY_CHAOS_RACES", 1) as usize,
    }
}

/// SplitMix64: a fixed generator, so a seed replays the same campaign.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: &str) -> Rng {
        // One stream per test, so tests do not shift each other's moments.
        let salt = stream
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Rng(seed ^ salt)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A moment in `[0, max)`.
    fn moment(&mut self, max: Duration) -> Duration {
        let micros = max.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % micros)
    }
}

/// One command's tally: one `CHAOS` line.
#[derive(Default)]
struct Tally {
    trials: usize,
    kills: usize,
    finished_first: usize,
    scratch_after_kill: usize,
    outputs_previous: usize,
    outputs_new: usize,
    outputs_mixed: usize,
}

impl Tally {
    /// Runs `cmd`, SIGKILLs it `at` its start unless it ends first (then
    /// successfully), and counts which; returns `context` with the moment.
    fn kill(&mut self, cmd: &mut Command, at: Duration, work: &Path, context: &str) -> String {
        let log = work.join("log");
        match kill_after(cmd, at, &log) {
            Ran::Killed => self.kills += 1,
            Ran::Finished(status) => {
                assert!(
                    status.success(),
                    "{context}: {status}\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
                self.finished_first += 1;
            }
        }
        format!("{context}, killed at {at:?}")
    }

    /// Prints the tally and checks the campaign's size was reached.
    fn finish(&self, command: &str, plan: &Plan) {
        self.print(command, plan.seed);
        assert!(
            self.kills >= plan.kills,
            "{command}: only {} kills landed",
            self.kills
        );
    }

    fn print(&self, command: &str, seed: u64) {
        println!(
            "CHAOS command={command} seed={seed} trials={} kills={} finished-before-kill={} \
             scratch-left-by-kills={} outputs-previous={} outputs-new={} outputs-mixed={}",
            self.trials,
            self.kills,
            self.finished_first,
            self.scratch_after_kill,
            self.outputs_previous,
            self.outputs_new,
            self.outputs_mixed
        );
    }
}

fn slipway(cache: &Path, tmp: &Path) -> Command {
    let mut cmd = Command::new(SLIPWAY);
    cmd.arg("--cache")
        .arg(cache)
        .env("TMPDIR", tmp)
        .env_remove("SLIPWAY_CACHE");
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(cmd: &mut Command, context: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{context}: {cmd:?}: {}\n{}",
        out.status,
        text(&out)
    );
    out
}

enum Ran {
    Killed,
    Finished(ExitStatus),
}

/// Runs `cmd` and SIGKILLs it `after` its start, unless it ends first.
fn kill_after(cmd: &mut Command, after: Duration, log: &Path) -> Ran {
    cmd.stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Ran::Finished(status);
        }
        if start.elapsed() >= after {
            let _ = child.kill();
            let status = child.wait().unwrap();
            // It may have ended between the two calls.
            return if status.signal() == Some(SIGKILL) {
                Ran::Killed
            } else {
                Ran::Finished(status)
            };
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

const SIGKILL: i32 = 9;

/// How long `cmd` takes when left alone: the span kills are drawn from.
fn timed(cmd: &mut Command, context: &str) -> Duration {
    let start = Instant::now();
    run_ok(cmd, context);
    start.elapsed()
}

fn blob_path(cache: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap();
    cache.join("blobs").join(algorithm).join(hex)
}

fn json_blob(cache: &Path, digest: &str, context: &str) -> Value {
    serde_json::from_slice(&fs::read(blob_path(cache, digest)).unwrap())
        .unwrap_or_else(|e| panic!("{context}: blob {digest} is not JSON: {e}"))
}

/// `d` names a blob of its size in `cache`, and so does everything it
/// refers to (an index's platforms that were pulled, a manifest's config
/// and layers).
fn present(cache: &Path, d: &Value, context: &str) {
    let digest = d["digest"].as_str().unwrap();
    let size = d["size"].as_u64().unwrap();
    let meta = fs::metadata(blob_path(cache, digest)).unwrap_or_else(|e| {
        panic!("{context}: index.json reaches {digest}, which is not in the cache: {e}")
    });
    assert_eq!(meta.len(), size, "{context}: {digest}: size");
    let media = d["mediaType"].as_str().unwrap_or_default();
    if media.contains("image.index") || media.contains("manifest.list") {
        let doc = json_blob(cache, digest, context);
        let children = doc["manifests"].as_array().unwrap();
        // A multi-platform index keeps only the platforms pulled.
        let stored: Vec<&Value> = children
            .iter()
            .filter(|c| blob_path(cache, c["digest"].as_str().unwrap()).exists())
            .collect();
        assert!(
            !stored.is_empty() || children.is_empty(),
            "{context}: index {digest} has none of its manifests"
        );
        for child in stored {
            present(cache, child, context);
        }
    } else if media.contains("manifest") {
        let doc = json_blob(cache, digest, context);
        present(cache, &doc["config"], context);
        for layer in doc["layers"].as_array().unwrap() {
            present(cache, layer, context);
        }
    }
}

/// Every invariant of a cache a process was killed in.
fn check_cache(cache: &Path, tmp: &Path, context: &str) -> Value {
    let index = cache.join("index.json");
    if index.exists() {
        let doc: Value = serde_json::from_slice(&fs::read(&index).unwrap())
            .unwrap_or_else(|e| panic!("{context}: index.json does not parse: {e}"));
        for d in doc["manifests"].as_array().unwrap() {
            present(cache, d, context);
        }
    }
    let out = slipway(cache, tmp)
        .args(["cache", "verify", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{context}: cache verify --json: {e}\n{}", text(&out)));
    assert!(
        out.status.success() && report["sound"] == true,
        "{context}: cache verify: {}\n{}",
        out.status,
        text(&out)
    );
    assert_eq!(report["corruptBlobs"], serde_json::json!([]), "{context}");
    report
}

/// The digest `cache verify --json` reports for image `name`, if named.
fn image_digest(report: &Value, name: &str) -> Option<String> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name && i["status"] == "ok")
        .map(|i| i["digest"].as_str().unwrap().to_string())
}

/// Temporary files: dot files in the cache's directories (its two lock
/// files aside), slipway's scratch names in `others` (the spares kept
/// beside outputs are not scratch: they outlive a build by design),
/// anything in `tmp`.
fn scratch(cache: &Path, others: &[&Path], tmp: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let dot = |name: &str| name.starts_with('.') && name != ".lock" && name != ".gc.lock";
    let mut scan = |dir: &Path, pick: &dyn Fn(&str) -> bool| {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if pick(&e.file_name().to_string_lossy()) {
                    found.push(e.path());
                }
            }
        }
    };
    for dir in [
        cache.to_path_buf(),
        cache.join("blobs/sha256"),
        cache.join("blobs/sha512"),
        cache.join("segments"),
    ] {
        scan(&dir, &dot);
    }
    for dir in others {
        scan(dir, &|n: &str| {
            n.starts_with(".slipway-") && !n.starts_with(".slipway-spare-")
        });
    }
    scan(tmp, &|_| true);
    found
}

/// No temporary file is left: what the killed run left, this one removed.
fn nothing_left(cache: &Path, others: &[&Path], tmp: &Path, context: &str) {
    let left = scratch(cache, others, tmp);
    assert!(left.is_empty(), "{context}: left behind: {left:?}");
}

/// Text that compresses about as well as real files do.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "kernel", "module", "layer", "segment", "blob", "index", "manifest", "digest", "init",
        "service", "onboot", "runc", "cgroup", "mount", "proc", "sysfs", "\n", "0x7f", "ELF",
    ];
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let r = rng.next();
        out.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
        out.push(b' ');
        // Some bytes no dictionary has, as binaries carry.
        if r >> 60 == 0 {
            out.extend_from_slice(&r.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Images in a real registry on loopback: what the pulls fetch.
struct Images {
    registry: Registry,
    /// Pulled, removed and pulled again by the trials.
    churn: Vec<String>,
    /// Pulled once, never removed: a previous output of the cache.
    keep: String,
    /// The churn images' compressed bytes.
    churn_bytes: u64,
}

impl Images {
    fn push() -> Images {
        let registry = Registry::start().unwrap();
        let mut churn_bytes = 0;
        let mut push = |name: &str, seed: u64, layers: usize, files: usize| {
            let mut builder = ImageBuilder::new();
            for l in 0..layers {
                builder = builder.layer((0..files).map(|f| {
                    let s = seed * 1000 + (l * 100 + f) as u64;
                    Entry::file(format!("data/{l}/{f}"), filler(s, 1 << 20))
                }));
            }
            let image = builder.build().unwrap();
            churn_bytes += image.blobs().iter().map(|b| b.size()).sum::<u64>();
            PushTarget::new(&registry, &format!("chaos/{name}"))
                .push(&Artifact::from(image), Some("1"))
                .unwrap();
            format!("{}/chaos/{name}:1", registry.host())
        };
        // Four images of 24 MiB in many blobs, and one kept.
        let churn = (0..4)
            .map(|i| push(&format!("churn{i}"), i + 1, 4, 6))
            .collect();
        let keep = push("keep", 99, 2, 2);
        Images {
            registry,
            churn,
            keep,
            churn_bytes,
        }
    }
}

/// A scratch area for one test: under the target directory, so a cache
/// copied from the shared package cache can be hard links.
fn workdir() -> tempfile::TempDir {
    let base = target_dir().join("tmp");
    fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn fresh_tmp(work: &Path) -> PathBuf {
    let tmp = work.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    tmp
}

/// The images pushed, a work directory, a cache there holding the kept
/// image (and its digest), and the commands' `TMPDIR`.
fn with_kept_image() -> (Images, tempfile::TempDir, PathBuf, PathBuf, String) {
    let images = Images::push();
    let work = workdir();
    let (cache, tmp) = (work.path().join("cache"), fresh_tmp(work.path()));
    run_ok(
        slipway(&cache, &tmp).args(["cache", "pull", &images.keep]),
        "keep",
    );
    let kept = image_digest(&check_cache(&cache, &tmp, "keep"), &images.keep).unwrap();
    (images, work, cache, tmp, kept)
}

#[test]
fn pulls_killed_at_random_moments_lose_nothing() {
    let plan = plan();
    let mut rng = Rng::new(plan.seed, "pull");
    let (images, work, cache, tmp, kept) = with_kept_image();
    let pull = || {
        let mut cmd = slipway(&cache, &tmp);
        cmd.args(["cache", "pull"]).args(&images.churn);
        cmd
    };
    let span = timed(&mut pull(), "first pull");
    let mut tally = Tally::default();
    while tally.kills < plan.kills && tally.trials < plan.kills * 4 {
        tally.trials += 1;
        let context = format!("pull trial {} (seed {})", tally.trials, plan.seed);
        // Start cold: the churn images out of the index, their blobs gone.
        run_ok(
            slipway(&cache, &tmp)
                .args(["cache", "rm"])
                .args(&images.churn),
            &context,
        );
        run_ok(slipway(&cache, &tmp).args(["cache", "clean"]), &context);
        let context = tally.kill(&mut pull(), rng.moment(span), work.path(), &context);
        let report = check_cache(&cache, &tmp, &context);
        assert_eq!(image_digest(&report, &images.keep), Some(kept.clone()));
        tally.scratch_after_kill += scratch(&cache, &[], &tmp).len();
        // The next pull finishes, and removes what the killed one left.
        run_ok(&mut pull(), &context);
        let report = check_cache(&cache, &tmp, &context);
        for name in &images.churn {
            assert!(image_digest(&report, name).is_some(), "{context}: {name}");
        }
        nothing_left(&cache, &[], &tmp, &context);
    }
    tally.finish("cache-pull", &plan);
    drop(images.registry);
}

#[test]
fn cleans_killed_at_random_moments_lose_nothing() {
    let plan = plan();
    let mut rng = Rng::new(plan.seed, "clean");
    let (images, work, cache, tmp, kept) = with_kept_image();
    let blobs = |cache: &Path| fs::read_dir(cache.join("blobs/sha256")).unwrap().count();
    let kept_blobs = blobs(&cache);
    let garbage = |context: &str| {
        run_ok(
            slipway(&cache, &tmp)
                .args(["cache", "pull"])
                .args(&images.churn),
            context,
        );
        run_ok(
            slipway(&cache, &tmp)
                .args(["cache", "rm"])
                .args(&images.churn),
            context,
        );
    };
    garbage("first");
    let clean = || {
        let mut cmd = slipway(&cache, &tmp);
        cmd.args(["cache", "clean"]);
        cmd
    };
    let span = timed(&mut clean(), "first clean");
    let mut tally = Tally::default();
    while tally.kills < plan.kills && tally.trials < plan.kills * 6 {
        tally.trials += 1;
        let context = format!("clean trial {} (seed {})", tally.trials, plan.seed);
        garbage(&context);
        let context = tally.kill(&mut clean(), rng.moment(span), work.path(), &context);
        let report = check_cache(&cache, &tmp, &context);
        assert_eq!(image_digest(&report, &images.keep), Some(kept.clone()));
        tally.scratch_after_kill += scratch(&cache, &[], &tmp).len();
        run_ok(&mut clean(), &context);
        check_cache(&cache, &tmp, &context);
        assert_eq!(blobs(&cache), kept_blobs, "{context}: garbage left");
        nothing_left(&cache, &[], &tmp, &context);
    }
    tally.finish("cache-clean", &plan);
}

/// A package of local files only (no Debian archive), big enough to take
/// a while: `variant` changes one file and so the package's tag.
fn write_package(dir: &Path, variant: &str) {
    let root = dir.join("rootfs");
    for i in 0..24u64 {
        let path = root.join(format!("usr/share/chaos/{i}"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        if !path.exists() {
            fs::write(&path, filler(500 + i, 1 << 20)).unwrap();
        }
    }
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/variant"), variant).unwrap();
    fs::write(
        dir.join("build.yml"),
        "image: chaos\norg: slipway\nsteps:\n  - root: rootfs\n",
    )
    .unwrap();
}

#[test]
fn package_builds_killed_at_random_moments_lose_nothing() {
    let plan = plan();
    let mut rng = Rng::new(plan.seed, "pkg");
    let work = workdir();
    let (cache, tmp) = (work.path().join("cache"), fresh_tmp(work.path()));
    let dir = work.path().join("chaos");
    let build = || {
        let mut cmd = slipway(&cache, &tmp);
        cmd.args(["pkg", "build", "--force", "--json"]).arg(&dir);
        cmd
    };
    let built = |out: &Output| -> (String, String) {
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let image = &doc["images"][0];
        (
            image["reference"].as_str().unwrap().to_string(),
            image["digest"].as_str().unwrap().to_string(),
        )
    };
    // Each variant built once, whole: what every later build must give.
    let mut expected = BTreeMap::new();
    let mut span = Duration::ZERO;
    for variant in ["a", "b"] {
        write_package(&dir, variant);
        let start = Instant::now();
        let out = run_ok(&mut build(), variant);
        span = span.max(start.elapsed());
        expected.insert(variant, built(&out));
    }
    let mut tally = Tally::default();
    while tally.kills < plan.kills && tally.trials < plan.kills * 4 {
        tally.trials += 1;
        let (variant, previous) = if tally.trials % 2 == 1 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        let context = format!("pkg trial {} (seed {})", tally.trials, plan.seed);
        write_package(&dir, variant);
        let context = tally.kill(&mut build(), rng.moment(span), work.path(), &context);
        let report = check_cache(&cache, &tmp, &context);
        let (name, digest) = &expected[previous];
        assert_eq!(
            image_digest(&report, name).as_ref(),
            Some(digest),
            "{context}: the previous package"
        );
        tally.outputs_previous += 1;
        tally.scratch_after_kill += scratch(&cache, &[], &tmp).len();
        let out = run_ok(&mut build(), &context);
        assert_eq!(&built(&out), &expected[variant], "{context}: rebuilt");
        check_cache(&cache, &tmp, &context);
        nothing_left(&cache, &[], &tmp, &context);
    }
    tally.finish("pkg-build", &plan);
}

/// The standard packages' images in a cache of this test's own: hard
/// links to the shared cache's blobs (never changed in place; a repair
/// would unlink only this copy's name), no segments.
fn cache_copy(pkgs: &Packages, to: &Path) {
    fs::create_dir_all(to.join("blobs/sha256")).unwrap();
    for e in fs::read_dir(pkgs.cache.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if !name.to_string_lossy().starts_with('.') {
            fs::hard_link(e.path(), to.join("blobs/sha256").join(name)).unwrap();
        }
    }
    for name in ["index.json", "oci-layout"] {
        fs::copy(pkgs.cache.join(name), to.join(name)).unwrap();
    }
}

/// A build of examples/minimal.yml with one `files` entry of its own, as
/// kernel+initrd and a hybrid ISO.
struct Build {
    pkgs: Packages,
    configs: BTreeMap<&'static str, PathBuf>,
}

const FORMATS: &[&str] = &["kernel+initrd", "iso-bios"];

impl Build {
    fn new(work: &Path) -> Build {
        let pkgs = packages::standard(Path::new(SLIPWAY));
        let mut configs = BTreeMap::new();
        for variant in ["a", "b"] {
            let path = work.join(format!("{variant}.yml"));
            fs::write(
                &path,
                format!("files:\n  - path: etc/chaos\n    contents: \"{variant}\"\n"),
            )
            .unwrap();
            configs.insert(variant, path);
        }
        Build { pkgs, configs }
    }

    fn command(&self, cache: &Path, tmp: &Path, variant: &str, out: &Path) -> Command {
        let mut cmd = slipway(cache, tmp);
        cmd.args(["build", "--offline", "--name", "chaos", "--dir"])
            .arg(out);
        for f in FORMATS {
            cmd.args(["-f", f]);
        }
        cmd.arg(self.pkgs.example("minimal.yml"))
            .arg(&self.configs[variant]);
        cmd
    }
}

/// Each output's digest, by name.
fn outputs(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with('.') && e.file_type().unwrap().is_file() {
            found.insert(name, sha256_digest(&fs::read(e.path()).unwrap()));
        }
    }
    found
}

#[test]
fn builds_killed_at_random_moments_keep_their_outputs_whole() {
    let plan = plan();
    let mut rng = Rng::new(plan.seed, "build");
    let work = workdir();
    let build = Build::new(work.path());
    let (cache, tmp) = (work.path().join("cache"), fresh_tmp(work.path()));
    cache_copy(&build.pkgs, &cache);
    // Each variant built cold, whole: the bytes every later build must give.
    let mut expected = BTreeMap::new();
    for variant in ["a", "b"] {
        let dir = work.path().join(format!("ref-{variant}"));
        let _ = fs::remove_dir_all(cache.join("segments"));
        run_ok(&mut build.command(&cache, &tmp, variant, &dir), variant);
        expected.insert(variant, outputs(&dir));
    }
    assert_ne!(expected["a"], expected["b"]);
    // The moment is drawn from a build as the trials run it: cold, into
    // `out`, written over the spares the builds before left (faster than
    // a build into an empty directory).
    let out = work.path().join("out");
    run_ok(&mut build.command(&cache, &tmp, "a", &out), "first");
    let mut span = Duration::ZERO;
    for variant in ["b", "a"] {
        let _ = fs::remove_dir_all(cache.join("segments"));
        span = span.max(timed(
            &mut build.command(&cache, &tmp, variant, &out),
            variant,
        ));
    }
    let mut tally = Tally::default();
    while tally.kills < plan.kills && tally.trials < plan.kills * 4 {
        tally.trials += 1;
        let (variant, previous) = if tally.trials % 2 == 1 {
            ("b", "a")
        } else {
            ("a", "b")
        };
        let context = format!("build trial {} (seed {})", tally.trials, plan.seed);
        // Cold: the moment falls anywhere in a whole build.
        let _ = fs::remove_dir_all(cache.join("segments"));
        let context = tally.kill(
            &mut build.command(&cache, &tmp, variant, &out),
            rng.moment(span),
            work.path(),
            &context,
        );
        check_cache(&cache, &tmp, &context);
        // Every output is whole: the previous build's or this one's.
        let now = outputs(&out);
        assert_eq!(
            now.keys().collect::<Vec<_>>(),
            expected[previous].keys().collect::<Vec<_>>(),
            "{context}"
        );
        for (name, digest) in &now {
            assert!(
                digest == &expected[previous][name] || digest == &expected[variant][name],
                "{context}: {name} is neither the previous build's nor this one's"
            );
        }
        if now == expected[previous] {
            tally.outputs_previous += 1;
        } else if now == expected[variant] {
            tally.outputs_new += 1;
        } else {
            // Killed between two renames of the commit: each file whole.
            tally.outputs_mixed += 1;
        }
        tally.scratch_after_kill += scratch(&cache, &[&out], &tmp).len();
        run_ok(&mut build.command(&cache, &tmp, variant, &out), &context);
        assert_eq!(outputs(&out), expected[variant], "{context}: rebuilt");
        nothing_left(&cache, &[&out], &tmp, &context);
    }
    tally.finish("build", &plan);
}

#[test]
fn two_builds_and_a_pull_racing_on_one_cache_all_succeed() {
    let plan = plan();
    let images = Images::push();
    let work = workdir();
    let build = Build::new(work.path());
    let (cache, tmp) = (work.path().join("cache"), fresh_tmp(work.path()));
    cache_copy(&build.pkgs, &cache);
    let mut expected = BTreeMap::new();
    for variant in ["a", "b"] {
        let dir = work.path().join(format!("ref-{variant}"));
        run_ok(&mut build.command(&cache, &tmp, variant, &dir), variant);
        expected.insert(variant, outputs(&dir));
    }
    for race in 1..=plan.races {
        let context = format!("race {race}");
        // Cold, and the pull's images absent: all three write at once.
        let _ = fs::remove_dir_all(cache.join("segments"));
        let _ = slipway(&cache, &tmp)
            .args(["cache", "rm"])
            .args(&images.churn)
            .output();
        run_ok(slipway(&cache, &tmp).args(["cache", "clean"]), &context);
        let dirs: Vec<PathBuf> = (0..2)
            .map(|i| work.path().join(format!("race-{race}-{i}")))
            .collect();
        let mut children = vec![
            build
                .command(&cache, &tmp, "a", &dirs[0])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            build
                .command(&cache, &tmp, "b", &dirs[1])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ];
        children.push(
            slipway(&cache, &tmp)
                .args(["cache", "pull"])
                .args(&images.churn)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{context}: {}", text(&out));
        }
        assert_eq!(outputs(&dirs[0]), expected["a"], "{context}");
        assert_eq!(outputs(&dirs[1]), expected["b"], "{context}");
        let report = check_cache(&cache, &tmp, &context);
        for name in &images.churn {
            assert!(image_digest(&report, name).is_some(), "{context}: {name}");
        }
        let left = scratch(&cache, &[&dirs[0], &dirs[1]], &tmp);
        assert!(left.is_empty(), "{context}: left behind: {left:?}");
    }
    println!("CHAOS command=race seed={} races={}", plan.seed, plan.races);
}

/// A tmpfs of `bytes` at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={}k,mode=0755", bytes.div_ceil(1024)))
            .arg("tmpfs")
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    /// Makes room: the same file system, grown to `bytes`.
    fn grow(&self, bytes: u64) {
        let status = Command::new("mount")
            .args(["-o"])
            .arg(format!("remount,size={}k", bytes.div_ceil(1024)))
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// The bytes a tmpfs needs to hold `dir`'s files (each rounded to pages).
fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let meta = e.metadata().unwrap();
        total += if meta.is_dir() {
            tree_bytes(&e.path()) + 4096
        } else {
            meta.len().div_ceil(4096) * 4096
        };
    }
    total
}

#[test]
fn a_full_disk_mid_pull_and_mid_build_is_a_clear_error_with_nothing_half_written() {
    if !is_root() {
        // Mounting the small tmpfs needs root (as CI runs).
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let images = Images::push();
    let work = workdir();
    let tmp = fresh_tmp(work.path());

    // A pull into a third of the room it needs.
    let small = Tmpfs::mount(&work.path().join("small"), images.churn_bytes / 3);
    let cache = small.0.join("cache");
    let out = slipway(&cache, &tmp)
        .args(["cache", "pull"])
        .args(&images.churn)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "the pull fitted: {said}");
    assert!(said.contains("No space left on device"), "{said}");
    let report = check_cache(&cache, &tmp, "full mid-pull");
    for image in report["images"].as_array().unwrap() {
        assert_eq!(image["status"], "ok", "{image}");
    }
    let left = scratch(&cache, &[], &tmp);
    assert!(left.is_empty(), "mid-pull: left behind: {left:?}");
    // With room made, the same pull completes.
    small.grow(images.churn_bytes * 2);
    run_ok(
        slipway(&cache, &tmp)
            .args(["cache", "pull"])
            .args(&images.churn),
        "pull after making room",
    );
    check_cache(&cache, &tmp, "pull after making room");
    drop(small);

    // A build whose segments do not fit beside the blobs: previous outputs
    // (on another disk) stay.
    let build = Build::new(work.path());
    let outputs_dir = work.path().join("out");
    let scratch_cache = work.path().join("cache");
    cache_copy(&build.pkgs, &scratch_cache);
    run_ok(
        &mut build.command(&scratch_cache, &tmp, "a", &outputs_dir),
        "previous",
    );
    let previous = outputs(&outputs_dir);
    fs::remove_dir_all(scratch_cache.join("segments")).unwrap();
    let need = tree_bytes(&scratch_cache) + (8 << 20);
    let small = Tmpfs::mount(&work.path().join("small-build"), need);
    let cache = small.0.join("cache");
    run_ok(
        Command::new("cp").arg("-a").arg(&scratch_cache).arg(&cache),
        "copy",
    );
    let out = build
        .command(&cache, &tmp, "b", &outputs_dir)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "the build fitted: {said}");
    assert!(said.contains("No space left on device"), "{said}");
    assert_eq!(outputs(&outputs_dir), previous, "the previous outputs");
    check_cache(&cache, &tmp, "full mid-build");
    let left = scratch(&cache, &[&outputs_dir], &tmp);
    assert!(left.is_empty(), "mid-build: left behind: {left:?}");
    // With room made, the same build completes.
    small.grow(need + (512 << 20));
    run_ok(
        &mut build.command(&cache, &tmp, "b", &outputs_dir),
        "build after making room",
    );
    assert_ne!(outputs(&outputs_dir), previous);
    check_cache(&cache, &tmp, "build after making room");
    let left = scratch(&cache, &[&outputs_dir], &tmp);
    assert!(left.is_empty(), "after making room: left behind: {left:?}");
    println!("CHAOS command=full-disk pull=refused build=refused");
}
