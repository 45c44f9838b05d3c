//! `cargo xtask bench [pull|assemble|formats|validate]`: every benchmark,
//! or one.
//!
//! `pull` (this file): slipway's pulls against `skopeo copy` of the same
//! images from the same loopback registry, in one command, as ratios.
//! `assemble` ([`assemble`]): `slipway build --format kernel+initrd` of a
//! large image, cold and warm, against `tar` + `cpio | gzip`.
//! `formats` ([`formats`]): the hybrid ISO and `qcow2-bios` of that image,
//! cold and warm, against its `kernel+initrd`.
//! `validate` ([`validate`]): `slipway validate` of 1 to 4 MiB configs.
//! `boot` ([`boot`]): the guest's boot under TCG against LinuxKit's init.
//!
//! It starts Debian's `docker-registry` on a free loopback port, seeds it
//! (one large image of incompressible layers; a config of small images) by
//! writing a `docker save` tar that `slipway cache import` reads and
//! `slipway cache push` uploads, then times, each from an empty cache:
//!
//! - one large image: `slipway cache pull` vs `skopeo copy docker://… oci:DIR`;
//! - the small images: `slipway build --resolve-only CONFIG` (all at once)
//!   vs one `skopeo copy` per image (skopeo copies one image at a time);
//! - a warm, no-op `build --resolve-only` of the same config;
//!
//! and the peak resident memory of each process (VmHWM, polled from /proc).
//! Nothing is asserted: it prints a table.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod assemble;
mod boot;
mod formats;
mod validate;

const USAGE: &str = "\
usage: cargo xtask bench [pull|assemble|formats|validate|boot] [OPTIONS]
  pull [--large-mb N] [--small N] [--small-kb N]
  assemble [--runs N] [--keep]
  formats [--runs N] [--keep]
  validate [--runs N]
  boot [--runs N] [--examples]
  (no subcommand: all of them, with their default options)";

struct Options {
    large_mb: u64,
    small: usize,
    small_kb: u64,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        large_mb: 200,
        small: 10,
        small_kb: 512,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || -> Result<u64> {
            it.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))?
                .parse()
                .with_context(|| format!("{arg} needs a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--large-mb" => o.large_mb = value()?,
            "--small" => o.small = usize::try_from(value()?)?,
            "--small-kb" => o.small_kb = value()?,
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    if o.small < 1 || o.large_mb < 1 {
        bail!("sizes must be at least 1\n{USAGE}");
    }
    Ok(o)
}

/// A measured run: wall time and peak resident memory.
#[derive(Clone, Copy)]
struct Run {
    time: Duration,
    peak_kib: u64,
}

/// Runs `cmd` to completion, polling its VmHWM; fails if it fails.
fn measure(mut cmd: Command) -> Result<Run> {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child: Child = cmd
        .spawn()
        .with_context(|| format!("could not start {:?}", cmd.get_program()))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let time = start.elapsed();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        bail!("{cmd:?} failed with {status}:\n{err}");
    }
    Ok(Run { time, peak_kib })
}

/// xorshift64*: deterministic bytes that do not compress.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A ustar header for a regular file.
fn tar_header(name: &str, size: u64) -> Result<[u8; 512]> {
    let mut h = [0u8; 512];
    if name.len() > 99 {
        bail!("tar name too long: {name}");
    }
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}", width = field.len() - 1);
        field[..text.len()].copy_from_slice(text.as_bytes());
    };
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    Ok(h)
}

fn pad(out: &mut impl Write, size: u64) -> Result<()> {
    let rem = (512 - size % 512) % 512;
    out.write_all(&vec![0u8; usize::try_from(rem)?])?;
    Ok(())
}

/// Writes a layer tar of one file of `size` noise bytes to `path`.
fn write_layer(path: &Path, seed: u64, size: u64) -> Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(&tar_header("data", size)?)?;
    let mut noise = Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64))?;
        noise.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    pad(&mut out, size)?;
    out.write_all(&[0u8; 1024])?;
    out.flush()?;
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    if !out.status.success() || hex.len() != 64 {
        bail!("sha256sum {} failed", path.display());
    }
    Ok(format!("sha256:{hex}"))
}

/// Appends `path` to the tar `out` as `name`, streaming it.
fn append_file(out: &mut impl Write, name: &str, path: &Path) -> Result<()> {
    let size = std::fs::metadata(path)?.len();
    out.write_all(&tar_header(name, size)?)?;
    std::io::copy(&mut File::open(path)?, out)?;
    pad(out, size)
}

fn append_bytes(out: &mut impl Write, name: &str, bytes: &[u8]) -> Result<()> {
    out.write_all(&tar_header(name, bytes.len() as u64)?)?;
    out.write_all(bytes)?;
    pad(out, bytes.len() as u64)
}

/// An image to seed: its tag and its layers' sizes.
struct Seed {
    tag: String,
    layers: Vec<u64>,
}

/// Writes one `docker save` tar holding every seed image.
fn write_docker_save(dir: &Path, seeds: &[Seed], out_path: &Path) -> Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(out_path)?);
    let mut manifest = String::from("[");
    let mut seed_no = 0u64;
    for (i, seed) in seeds.iter().enumerate() {
        let mut layer_names = Vec::new();
        let mut diff_ids = Vec::new();
        for size in &seed.layers {
            seed_no += 1;
            let path = dir.join(format!("layer-{seed_no}.tar"));
            write_layer(&path, seed_no, *size)?;
            diff_ids.push(sha256_file(&path)?);
            let name = format!("l{seed_no}/layer.tar");
            append_file(&mut out, &name, &path)?;
            std::fs::remove_file(&path)?;
            layer_names.push(name);
        }
        let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
        let config = format!(
            "{{\"architecture\":\"{}\",\"os\":\"linux\",\"config\":{{\"Cmd\":[\"/data\"]}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[{}]}}}}",
            host_arch(),
            ids.join(",")
        );
        let config_name = format!("config-{i}.json");
        append_bytes(&mut out, &config_name, config.as_bytes())?;
        let layers: Vec<String> = layer_names.iter().map(|l| format!("\"{l}\"")).collect();
        if i > 0 {
            manifest.push(',');
        }
        let _ = write!(
            manifest,
            "{{\"Config\":\"{config_name}\",\"RepoTags\":[\"{}\"],\"Layers\":[{}]}}",
            seed.tag,
            layers.join(",")
        );
    }
    manifest.push(']');
    append_bytes(&mut out, "manifest.json", manifest.as_bytes())?;
    out.write_all(&[0u8; 1024])?;
    out.flush()?;
    Ok(())
}

pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Debian's docker-registry on a free loopback port; killed on drop.
struct RegistryProcess {
    child: Child,
    host: String,
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(dir: &Path) -> Result<RegistryProcess> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let host = format!("127.0.0.1:{port}");
    let storage = dir.join("registry");
    std::fs::create_dir_all(&storage)?;
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: {host}, secret: bench-only}}\n",
            storage.display()
        ),
    )?;
    let log = File::create(dir.join("registry.log"))?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("could not start docker-registry (cargo xtask deps --install)")?;
    let registry = RegistryProcess { child, host };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(&registry.host) {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let request = format!(
                "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                registry.host
            );
            let mut answer = String::new();
            if s.write_all(request.as_bytes()).is_ok()
                && s.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return Ok(registry);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "docker-registry did not answer within 20 s; log:\n{}",
                std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn slipway_cmd(bin: &Path, cache: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--cache")
        .arg(cache)
        .arg("-q")
        .env_remove("SLIPWAY_CACHE")
        .env_remove("LINUXKIT_MIRROR");
    cmd
}

fn skopeo_copy(host: &str, repo: &str, layout: &Path) -> Command {
    let mut cmd = Command::new("skopeo");
    // The seeded layers are uncompressed tars: without these flags skopeo
    // would gzip them on the way into the OCI layout, and time that instead.
    cmd.args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-oci-accept-uncompressed-layers",
        "--preserve-digests",
    ])
    .arg(format!("docker://{host}/{repo}:1"))
    .arg(format!(
        "oci:{}:{}",
        layout.display(),
        repo.replace('/', "-")
    ));
    cmd
}

/// The value of `--runs`: a positive number.
fn positive_runs(value: Option<&String>, usage: &str) -> Result<usize> {
    value
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .with_context(|| format!("--runs needs a positive number\n{usage}"))
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

pub fn command(args: &[String]) -> Result<()> {
    let (mut pull, mut assemble, mut formats, mut validate) = (None, None, None, None);
    let mut boot = None;
    match args.first().map(String::as_str) {
        Some("pull") => pull = Some(options(&args[1..])?),
        Some("assemble") => assemble = Some(assemble::options(&args[1..], assemble::USAGE)?),
        Some("formats") => formats = Some(assemble::options(&args[1..], formats::USAGE)?),
        Some("validate") => validate = Some(validate::options(&args[1..])?),
        Some("boot") => boot = Some(boot::options(&args[1..])?),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return Ok(());
        }
        // Bare options are the pull benchmark's, as before.
        Some(_) => pull = Some(options(args)?),
        None => {
            pull = Some(options(&[])?);
            assemble = Some(assemble::options(&[], assemble::USAGE)?);
            formats = Some(assemble::options(&[], formats::USAGE)?);
            validate = Some(validate::options(&[])?);
            boot = Some(boot::options(&[])?);
        }
    }
    super::deps::ensure()?;
    let mut build = super::cargo();
    build.args(["build", "--release", "--quiet", "--package", "slipway"]);
    super::run_checked(build)?;
    let bin = super::target_dir().join("release/slipway");
    if let Some(o) = pull {
        let work = std::env::temp_dir().join(format!("slipway-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let result = run(&o, &bin, &work);
        let _ = std::fs::remove_dir_all(&work);
        result?;
    }
    if let Some(o) = assemble {
        assemble::run(&o, &bin)?;
    }
    if let Some(o) = formats {
        formats::run(&o, &bin)?;
    }
    if let Some(o) = validate {
        validate::run(&o, &bin)?;
    }
    if let Some(o) = boot {
        boot::run(&o)?;
    }
    Ok(())
}

fn run(o: &Options, bin: &Path, work: &Path) -> Result<()> {
    let registry = start_registry(work)?;
    let host = registry.host.clone();
    // Large: layers of at most 64 MiB, as real large images have several.
    let total = o.large_mb << 20;
    let mut layers = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(64 << 20);
        layers.push(n);
        left -= n;
    }
    let mut seeds = vec![Seed {
        tag: format!("{host}/bench/large:1"),
        layers,
    }];
    for i in 0..o.small {
        seeds.push(Seed {
            tag: format!("{host}/bench/small{i}:1"),
            layers: vec![o.small_kb << 10, 16 << 10],
        });
    }
    eprintln!(
        "xtask: seeding {host} with one {} MiB image and {} images of {} KiB",
        o.large_mb,
        o.small,
        o.small_kb + 16
    );
    let archive = work.join("seed.tar");
    write_docker_save(work, &seeds, &archive)?;
    let seed_cache = work.join("seed-cache");
    let mut import = slipway_cmd(bin, &seed_cache);
    import.args(["cache", "import"]).arg(&archive);
    measure(import)?;
    std::fs::remove_file(&archive)?;
    for seed in &seeds {
        let mut push = slipway_cmd(bin, &seed_cache);
        push.args(["cache", "push", &seed.tag]);
        measure(push)?;
    }
    let _ = std::fs::remove_dir_all(&seed_cache);

    let config = work.join("small.yml");
    let mut yaml = String::from("onboot:\n");
    for i in 0..o.small {
        let _ = writeln!(yaml, "  - name: s{i}\n    image: {host}/bench/small{i}:1");
    }
    std::fs::write(&config, yaml)?;

    eprintln!("xtask: one large image");
    let cache = work.join("c-large");
    let mut cmd = slipway_cmd(bin, &cache);
    cmd.args(["cache", "pull", &format!("{host}/bench/large:1")]);
    let slipway_large = measure(cmd)?;
    let skopeo_large = measure(skopeo_copy(&host, "bench/large", &work.join("s-large")))?;

    eprintln!("xtask: {} small images", o.small);
    let cache = work.join("c-small");
    let mut cmd = slipway_cmd(bin, &cache);
    cmd.args(["build", "--resolve-only"]).arg(&config);
    let slipway_small = measure(cmd)?;
    let layout = work.join("s-small");
    let mut skopeo_small = Run {
        time: Duration::ZERO,
        peak_kib: 0,
    };
    for i in 0..o.small {
        let run = measure(skopeo_copy(&host, &format!("bench/small{i}"), &layout))?;
        skopeo_small.time += run.time;
        skopeo_small.peak_kib = skopeo_small.peak_kib.max(run.peak_kib);
    }

    eprintln!("xtask: warm no-op resolution");
    let mut warm: Vec<Run> = Vec::new();
    for _ in 0..7 {
        let mut cmd = slipway_cmd(bin, &cache);
        cmd.args(["build", "--resolve-only"]).arg(&config);
        warm.push(measure(cmd)?);
    }
    warm.sort_by_key(|r| r.time);
    let warm_median = warm[warm.len() / 2];
    drop(registry);

    let ratio = |a: Run, b: Run| a.time.as_secs_f64() / b.time.as_secs_f64().max(1e-9);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<34} {:>10} {:>10} {:>8} {:>10} {:>10}  goal",
        "case", "slipway", "skopeo", "ratio", "slipway RSS", "skopeo RSS"
    );
    let _ = writeln!(
        table,
        "{:<34} {:>10} {:>10} {:>8.2} {:>11} {:>10}  ratio <= 1.0",
        format!("one image, {} MiB", o.large_mb),
        secs(slipway_large.time),
        secs(skopeo_large.time),
        ratio(slipway_large, skopeo_large),
        mib(slipway_large.peak_kib),
        mib(skopeo_large.peak_kib)
    );
    let _ = writeln!(
        table,
        "{:<34} {:>10} {:>10} {:>8.2} {:>11} {:>10}  ratio <= 0.5",
        format!("{} small images (config)", o.small),
        secs(slipway_small.time),
        secs(skopeo_small.time),
        ratio(slipway_small, skopeo_small),
        mib(slipway_small.peak_kib),
        mib(skopeo_small.peak_kib)
    );
    let _ = writeln!(
        table,
        "{:<34} {:>10} {:>10} {:>8} {:>11} {:>10}  < 50 ms",
        format!("warm no-op resolve, {} images", o.small),
        format!("{:.1} ms", warm_median.time.as_secs_f64() * 1000.0),
        "-",
        "-",
        mib(warm_median.peak_kib),
        "-"
    );
    print!("{table}");
    Ok(())
}
