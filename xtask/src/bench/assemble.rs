//! `cargo xtask bench assemble`: `slipway build --format kernel+initrd` of
//! a large image, cold and warm, against the plain pipeline of standard
//! tools over the same content, in one command, as ratios.
//!
//! The image (`xtask/bench/bench.yml`) has LinuxKit's measured shape: a
//! Debian 6.1 kernel with every module in `kernel.tar` (about 400 MB), runc
//! and containerd as init images, busybox onboot tasks and a busybox getty
//! service. Its packages are built with `slipway pkg build` into a bench
//! cache under the target directory (not timed). Then, each `--runs` times:
//!
//! - baseline: a shell script extracts every image's gzip layers with `tar`
//!   into a directory laid out as the image (`kernel.tar` unpacked at the
//!   root, init images at the root, each bundle under `containers/`), then
//!   `find . | cpio -o -H newc | gzip -6 > initrd`;
//! - cold: the release `slipway build --format kernel+initrd` with an empty
//!   `<cache>/segments/` and an empty output directory;
//! - first warm: the same build right after, with one `files` entry
//!   changed (the output is replaced; there is no spare yet);
//! - warm: once more, that entry changed again: the steady state of an
//!   edit-and-build loop, where the new output is written over the spare
//!   the previous build kept (docs/formats.md, "Outputs").
//!
//! The builds use `--compress gzip`, as LinuxKit. Once after the runs, two
//! more cold builds: with a service whose image is one 200 MB file (memory
//! must stay bounded when a segment is too large for one buffer), and with
//! `--compress zstd`.
//!
//! Times are medians; CPU time (user + system) and peak memory (the largest
//! child's `ru_maxrss`) are as reported by GNU time (`wait4`). Cold is
//! printed against the baseline and against LinuxKit's reference figures
//! (`linuxkit build` of the same shape on the same machine shape). Nothing
//! is asserted: it prints a table with the goals (cold <= 0.25x LinuxKit and
//! <= 0.25x baseline, warm <= 0.05x cold, peak memory < 150 MiB).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub const USAGE: &str = "usage: cargo xtask bench assemble [--runs N] [--keep]";

/// The bench's own kernel package; the rest come from the standard `pkg/`.
pub(super) const PACKAGES: &[&str] = &[
    "xtask/bench/kernel-6.1",
    "pkg/runc",
    "pkg/containerd",
    "pkg/busybox",
    "pkg/getty",
];
pub(super) const CONFIG: &str = "xtask/bench/bench.yml";

/// `linuxkit build --format kernel+initrd` of the same image shape on the
/// same 2-core machine shape, measured 2026-12-04 (docs/performance.md).
const LINUXKIT_COLD_SECS: f64 = 16.2;
const LINUXKIT_PEAK_MIB: f64 = 1162.0;
const LINUXKIT_DATE: &str = "2026-12-04";
/// The size of the single file of the large service the memory case adds.
const BIG_FILE_BYTES: usize = 200_000_000;

/// Goals on a 2-core machine.
const COLD_GOAL: f64 = 0.25;
/// Cold at most this much of LinuxKit's reference time.
const LINUXKIT_GOAL: f64 = 0.25;
const WARM_GOAL: f64 = 0.05;
const PEAK_GOAL_MIB: f64 = 150.0;

/// `--runs N` and `--keep`, for `bench assemble` and `bench formats`.
pub struct Options {
    pub(super) runs: usize,
    pub(super) keep: bool,
}

pub fn options(args: &[String], usage: &str) -> Result<Options> {
    let mut o = Options {
        runs: 3,
        keep: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => {
                o.runs = it
                    .next()
                    .with_context(|| format!("--runs needs a value\n{usage}"))?
                    .parse()
                    .with_context(|| format!("--runs needs a number\n{usage}"))?;
            }
            "--keep" => o.keep = true,
            _ => bail!("unknown option {arg:?}\n{usage}"),
        }
    }
    if o.runs < 1 {
        bail!("--runs must be at least 1\n{usage}");
    }
    Ok(o)
}

/// A measured run: wall time, CPU time (user + system, of the process and
/// its children) and the peak resident memory of the largest process (GNU
/// time's `%U`, `%S` and `%M`, from `wait4`).
#[derive(Clone, Copy)]
pub(super) struct Run {
    pub(super) time: Duration,
    pub(super) cpu_secs: f64,
    pub(super) peak_kib: u64,
}

/// Runs `program args` under `/usr/bin/time`; fails if it fails.
/// Empties `dir` (outputs and their spares), so a cold build writes every
/// output anew.
pub(super) fn empty_dir(dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    Ok(())
}

pub(super) fn measure(program: &Path, args: &[&std::ffi::OsStr], report: &Path) -> Result<Run> {
    // Each run starts with nothing dirty to write: the run before it (the
    // baseline's 500 MB of unpacked files) would otherwise be written back
    // during this one, and an fsync on ext4 waits for it.
    let synced = Command::new("sync")
        .status()
        .context("could not start sync")?;
    if !synced.success() {
        bail!("sync failed with {synced}");
    }
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(report)
        .arg(program);
    cmd.args(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd
        .output()
        .context("could not start /usr/bin/time (cargo xtask deps --install)")?;
    let time = start.elapsed();
    if !out.status.success() {
        bail!(
            "{} failed with {}:\n{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(report)?;
    let (user, sys, peak_kib) = text
        .lines()
        .rev()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let user = f.next()?.parse::<f64>().ok()?;
            let sys = f.next()?.parse::<f64>().ok()?;
            let peak = f.next()?.parse::<u64>().ok()?;
            Some((user, sys, peak))
        })
        .with_context(|| format!("no CPU time and peak memory in GNU time's report: {text:?}"))?;
    Ok(Run {
        time,
        cpu_secs: user + sys,
        peak_kib,
    })
}

/// The median wall time and CPU time (each on its own), the largest peak.
pub(super) fn median(mut runs: Vec<Run>) -> Run {
    let mut cpu: Vec<f64> = runs.iter().map(|r| r.cpu_secs).collect();
    cpu.sort_by(f64::total_cmp);
    runs.sort_by_key(|r| r.time);
    let time = runs[runs.len() / 2].time;
    let peak_kib = runs.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    Run {
        time,
        cpu_secs: cpu[cpu.len() / 2],
        peak_kib,
    }
}

pub(super) fn slipway(bin: &Path, cache: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(crate::workspace_root())
        .arg("--cache")
        .arg(cache)
        .env_remove("SLIPWAY_CACHE")
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

pub(super) fn output_of(mut cmd: Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A blob of the cache's OCI layout.
fn blob(cache: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    cache.join("blobs").join(alg).join(hex)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The layer blobs of `digest` (an index: its amd64/linux manifest).
fn layers(cache: &Path, digest: &str) -> Result<Vec<PathBuf>> {
    let mut doc = read_json(&blob(cache, digest))?;
    if let Some(manifests) = doc["manifests"].as_array() {
        let arch = crate::bench::host_arch();
        let child = manifests
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .and_then(|m| m["digest"].as_str())
            .with_context(|| format!("{digest}: no {arch} manifest"))?;
        doc = read_json(&blob(cache, child))?;
    }
    let layers = doc["layers"]
        .as_array()
        .with_context(|| format!("{digest}: a manifest without layers"))?;
    layers
        .iter()
        .map(|l| {
            l["digest"]
                .as_str()
                .map(|d| blob(cache, d))
                .context("a layer without a digest")
        })
        .collect()
}

/// `p` as one shell word.
fn quote(p: &Path) -> String {
    let text = p.display().to_string();
    // Only a NUL byte cannot be quoted, and no path holds one.
    shlex::try_quote(&text).map_or_else(|_| text.clone(), |q| q.into_owned())
}

/// The plain pipeline as a shell script: extract every image's layers into
/// `root` laid out as the image, then cpio | gzip into `initrd`.
fn baseline_script(cache: &Path, resolved: &[(String, String)], work: &Path) -> Result<String> {
    let root = work.join("root");
    let kimg = work.join("kernel-image");
    let mut s = String::from("set -eu\n");
    let _ = writeln!(
        s,
        "rm -rf {r} {k}\nmkdir -p {r} {k}",
        r = quote(&root),
        k = quote(&kimg)
    );
    let extract = |s: &mut String, digest: &str, into: &Path| -> Result<()> {
        let _ = writeln!(s, "mkdir -p {}", quote(into));
        for layer in layers(cache, digest)? {
            let _ = writeln!(s, "tar -xzf {} -C {}", quote(&layer), quote(into));
        }
        Ok(())
    };
    // In the order of bench.yml: kernel, runc, containerd, 2 onboot, getty.
    let names = ["kernel", "init", "init", "onboot", "onboot", "service"];
    if resolved.len() != names.len() {
        bail!(
            "{CONFIG} resolved to {} images, the baseline expects {}",
            resolved.len(),
            names.len()
        );
    }
    let mut onboot = 0;
    for ((_, digest), kind) in resolved.iter().zip(names) {
        match kind {
            "kernel" => {
                extract(&mut s, digest, &kimg)?;
                let _ = writeln!(
                    s,
                    "tar -xf {} -C {}",
                    quote(&kimg.join("kernel.tar")),
                    quote(&root)
                );
            }
            "init" => extract(&mut s, digest, &root)?,
            "onboot" => {
                let dir = root.join(format!("containers/onboot/{onboot:03}/rootfs"));
                onboot += 1;
                extract(&mut s, digest, &dir)?;
            }
            _ => extract(
                &mut s,
                digest,
                &root.join("containers/services/getty/lower"),
            )?,
        }
    }
    let _ = writeln!(
        s,
        "printf bench > {}/etc/hostname\ncd {}\nfind . -mindepth 1 | cpio -o -H newc --quiet | gzip -6 > {}",
        quote(&root),
        quote(&root),
        quote(&work.join("baseline-initrd.img"))
    );
    Ok(s)
}

pub(super) fn sha256(path: &Path) -> Result<String> {
    let out = output_of({
        let mut c = Command::new("sha256sum");
        c.arg(path);
        c
    })?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

pub(super) fn size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}

pub(super) fn mib_bytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A package whose image holds one file of [`BIG_FILE_BYTES`] (text-like
/// bytes, each MiB different from the one before it by more than deflate's
/// window), and a config adding it as a service, under `dir` (kept across
/// runs: the file is written once). Returns the config.
fn big_service(dir: &Path) -> Result<PathBuf> {
    let pkg = dir.join("pkg");
    let file = pkg.join("rootfs/srv/big");
    if size(&file).ok() != Some(BIG_FILE_BYTES as u64) {
        std::fs::create_dir_all(pkg.join("rootfs/srv"))?;
        let words = [
            "module ",
            "kernel ",
            "segment ",
            "initrd ",
            "deflate\n",
            "0x7f ",
            "ELF ",
        ];
        let mut block = Vec::with_capacity((1 << 20) + 16);
        let mut x: u32 = 7;
        while block.len() < 1 << 20 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            block.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
            block.push((x >> 8) as u8);
        }
        block.truncate(1 << 20);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let mut written = 0;
        let mut n: u64 = 0;
        while written < BIG_FILE_BYTES {
            n += 1;
            let take = (BIG_FILE_BYTES - written).min(block.len());
            let chunk = &mut block[..take];
            // Each MiB differs, so no copy falls inside the previous one.
            chunk[..8].copy_from_slice(&n.to_le_bytes());
            std::io::Write::write_all(&mut out, chunk)?;
            written += take;
        }
        std::io::Write::flush(&mut out)?;
    }
    std::fs::write(
        pkg.join("build.yml"),
        "image: bench-big\norg: slipway\nsteps:\n  - root: rootfs\nentrypoint: [/srv/big]\n",
    )?;
    let config = dir.join("big.yml");
    std::fs::write(
        &config,
        "services:\n  - name: big\n    image: \"@pkg:pkg\"\n",
    )?;
    Ok(config)
}

pub(super) fn yes(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

pub fn run(o: &Options, bin: &Path) -> Result<()> {
    in_work_dir(o, "bench-assemble", |cache, work| {
        run_in(o, bin, cache, work)
    })
}

/// Runs `bench` with the shared bench cache and a fresh `target/NAME` work
/// directory, removed afterwards unless `--keep`.
pub(super) fn in_work_dir(
    o: &Options,
    name: &str,
    bench: impl FnOnce(&Path, &Path) -> Result<()>,
) -> Result<()> {
    let target = crate::target_dir();
    let cache = target.join("bench-cache");
    let work = target.join(name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = bench(&cache, &work);
    if !o.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn run_in(o: &Options, bin: &Path, cache: &Path, work: &Path) -> Result<()> {
    eprintln!(
        "xtask: building the bench packages into {} (not timed)",
        cache.display()
    );
    let big_dir = crate::target_dir().join("bench-big");
    let big = big_service(&big_dir)?;
    let mut pkg = slipway(bin, cache);
    pkg.args(["pkg", "build"])
        .args(PACKAGES)
        .arg(big_dir.join("pkg"));
    crate::run_checked(pkg)?;

    let config = crate::workspace_root().join(CONFIG);
    let stamp = work.join("stamp.yml");
    let write_stamp = |text: &str| {
        std::fs::write(
            &stamp,
            format!("files:\n  - path: etc/bench-stamp\n    contents: \"{text}\"\n"),
        )
    };
    write_stamp("cold")?;
    let mut resolve = slipway(bin, cache);
    resolve
        .args(["-q", "build", "--resolve-only"])
        .arg(&config)
        .arg(&stamp);
    let resolved: Vec<(String, String)> = output_of(resolve)?
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, d)| (r.to_string(), d.trim().to_string()))
        .collect();
    let gz: u64 = resolved
        .iter()
        .map(|(_, d)| layers(cache, d))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .map(|l| size(&l))
        .sum::<Result<u64>>()?;

    let script = work.join("baseline.sh");
    std::fs::write(&script, baseline_script(cache, &resolved, work)?)?;
    let report = work.join("time.txt");
    let out = work.join("out");
    std::fs::create_dir_all(&out)?;
    let mut build_args: Vec<&std::ffi::OsStr> = vec![
        "--cache".as_ref(),
        cache.as_os_str(),
        "-q".as_ref(),
        "build".as_ref(),
        "--format".as_ref(),
        "kernel+initrd".as_ref(),
        // As LinuxKit, whatever the kernel unpacks; zstd is measured apart.
        "--compress".as_ref(),
        "gzip".as_ref(),
        "--name".as_ref(),
        "bench".as_ref(),
        "--dir".as_ref(),
        out.as_os_str(),
    ];
    build_args.push(config.as_os_str());
    build_args.push(stamp.as_os_str());
    let initrd = out.join("bench-initrd.img");

    let (mut base, mut cold, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_warm = Vec::new();
    let mut cold_hashes = Vec::new();
    let mut cold_size = 0;
    for i in 0..o.runs {
        eprintln!("xtask: run {}/{}: baseline", i + 1, o.runs);
        base.push(measure(Path::new("bash"), &[script.as_os_str()], &report)?);
        eprintln!("xtask: run {}/{}: slipway cold", i + 1, o.runs);
        let _ = std::fs::remove_dir_all(cache.join("segments"));
        empty_dir(&out)?;
        write_stamp("cold")?;
        cold.push(measure(bin, &build_args, &report)?);
        cold_hashes.push(sha256(&initrd)?);
        cold_size = size(&initrd)?;
        eprintln!("xtask: run {}/{}: slipway warm, first", i + 1, o.runs);
        write_stamp(&format!("warm {i}"))?;
        first_warm.push(measure(bin, &build_args, &report)?);
        eprintln!("xtask: run {}/{}: slipway warm", i + 1, o.runs);
        write_stamp(&format!("warm {i} again"))?;
        warm.push(measure(bin, &build_args, &report)?);
    }
    // The last run's warm output.
    let warm_size = size(&initrd)?;
    eprintln!("xtask: slipway cold with a {BIG_FILE_BYTES}-byte single-file service");
    let _ = std::fs::remove_dir_all(cache.join("segments"));
    let mut big_args = build_args.clone();
    big_args.push(big.as_os_str());
    let big_run = measure(bin, &big_args, &report)?;
    let big_size = size(&initrd)?;
    eprintln!("xtask: slipway cold with --compress zstd");
    let _ = std::fs::remove_dir_all(cache.join("segments"));
    let zstd_args: Vec<&std::ffi::OsStr> = build_args
        .iter()
        .map(|a| if *a == "gzip" { "zstd".as_ref() } else { *a })
        .collect();
    let zstd_run = measure(bin, &zstd_args, &report)?;
    let zstd_size = size(&initrd)?;
    let base_initrd = work.join("baseline-initrd.img");
    let base_size = size(&base_initrd)?;
    let entries = output_of({
        let mut c = Command::new("find");
        c.arg(work.join("root")).arg("-mindepth").arg("1");
        c
    })?
    .lines()
    .count();
    let uncompressed = output_of({
        let mut c = Command::new("du");
        c.args(["-sb", "--apparent-size"]).arg(work.join("root"));
        c
    })?
    .split_whitespace()
    .next()
    .and_then(|n| n.parse::<u64>().ok())
    .unwrap_or(0);
    let deterministic = cold_hashes.windows(2).all(|w| w[0] == w[1]);

    let (b, c, w) = (median(base), median(cold), median(warm));
    let w1 = median(first_warm);
    let secs = |r: Run| r.time.as_secs_f64();
    let cold_ratio = secs(c) / secs(b).max(1e-9);
    let warm_ratio = secs(w) / secs(c).max(1e-9);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "image: {CONFIG}: {} of content, {entries} entries, {} of gzip layers; median of {} runs",
        mib_bytes(uncompressed),
        mib_bytes(gz),
        o.runs
    );
    let lk = |seconds: f64| seconds / LINUXKIT_COLD_SECS;
    let _ = writeln!(
        t,
        "{:<34} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9} {:>11}",
        "case", "seconds", "CPU s", "vs base", "vs LinuxKit", "warm/cold", "peak MiB", "initrd"
    );
    let _ = writeln!(
        t,
        "{:<34} {:>8.3} {:>8.2} {:>8} {:>10.3} {:>9} {:>9.0} {:>11}",
        "baseline tar + cpio | gzip -6",
        secs(b),
        b.cpu_secs,
        "1.00",
        lk(secs(b)),
        "-",
        mib(b.peak_kib),
        mib_bytes(base_size)
    );
    let _ = writeln!(
        t,
        "{:<34} {:>8.1} {:>8} {:>8} {:>10} {:>9} {:>9.0} {:>11}",
        format!("LinuxKit reference ({LINUXKIT_DATE})"),
        LINUXKIT_COLD_SECS,
        "-",
        "-",
        "1.00",
        "-",
        LINUXKIT_PEAK_MIB,
        "-"
    );
    let _ = writeln!(
        t,
        "{:<34} {:>8.3} {:>8.2} {:>8.3} {:>10.3} {:>9} {:>9.0} {:>11}",
        "slipway cold",
        secs(c),
        c.cpu_secs,
        cold_ratio,
        lk(secs(c)),
        "-",
        mib(c.peak_kib),
        mib_bytes(cold_size)
    );
    for (label, run) in [
        ("slipway first warm (no spare yet)", w1),
        ("slipway warm (1 file changed)", w),
    ] {
        let _ = writeln!(
            t,
            "{:<34} {:>8.3} {:>8.2} {:>8.3} {:>10.3} {:>9.3} {:>9.0} {:>11}",
            label,
            secs(run),
            run.cpu_secs,
            secs(run) / secs(b).max(1e-9),
            lk(secs(run)),
            secs(run) / secs(c).max(1e-9),
            mib(run.peak_kib),
            mib_bytes(warm_size)
        );
    }
    let _ = writeln!(
        t,
        "{:<34} {:>8.3} {:>8.2} {:>8} {:>10} {:>9} {:>9.0} {:>11}",
        "slipway cold + 200 MB file service",
        secs(big_run),
        big_run.cpu_secs,
        "-",
        "-",
        "-",
        mib(big_run.peak_kib),
        mib_bytes(big_size)
    );
    let _ = writeln!(
        t,
        "{:<34} {:>8.3} {:>8.2} {:>8.3} {:>10.3} {:>9} {:>9.0} {:>11}",
        "slipway cold, --compress zstd",
        secs(zstd_run),
        zstd_run.cpu_secs,
        secs(zstd_run) / secs(b).max(1e-9),
        lk(secs(zstd_run)),
        "-",
        mib(zstd_run.peak_kib),
        mib_bytes(zstd_size)
    );
    let peak = mib(c.peak_kib.max(w.peak_kib).max(big_run.peak_kib));
    let lk_ratio = lk(secs(c));
    let _ = writeln!(
        t,
        "goals: cold <= {LINUXKIT_GOAL}x LinuxKit: {} ({lk_ratio:.3}); cold <= {COLD_GOAL}x baseline: {} ({cold_ratio:.3}); warm <= {WARM_GOAL}x cold: {} ({warm_ratio:.3}); peak < {PEAK_GOAL_MIB} MiB: {} ({peak:.0}, LinuxKit {LINUXKIT_PEAK_MIB:.0})",
        yes(lk_ratio <= LINUXKIT_GOAL),
        yes(cold_ratio <= COLD_GOAL),
        yes(warm_ratio <= WARM_GOAL),
        yes(peak < PEAK_GOAL_MIB)
    );
    let _ = writeln!(
        t,
        "cold initrd identical across runs: {}",
        if deterministic { "yes" } else { "NO" }
    );
    print!("{t}");
    if o.keep {
        eprintln!("xtask: kept {}", work.display());
    }
    Ok(())
}
