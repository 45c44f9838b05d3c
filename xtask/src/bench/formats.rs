//! `cargo xtask bench formats`: the bootable formats of the bench image
//! (`xtask/bench/bench.yml`, the image of `bench assemble`) against its
//! `kernel+initrd`, in one command, as ratios.
//!
//! Each `--runs` times, for `kernel+initrd`, `iso-bios` (the hybrid ISO,
//! the same file as `iso-efi`) and `qcow2-bios` (that ISO at the start of
//! a 1 GiB disk, as qcow2), one after the other:
//!
//! - cold: `slipway build --format F` with an empty `<cache>/segments/`
//!   and an empty output directory;
//! - first warm: the same build right after, with one `files` entry
//!   changed (no spare yet: the output is written anew);
//! - warm: once more with the entry changed again, the steady state of an
//!   edit-and-build loop (written over the spare the last build kept).
//!
//! Goals: each format's cold time at most 1.2x the `kernel+initrd` cold
//! time, its warm time at most 0.05x its own cold time, the peak resident
//! memory of slipway (GNU time's `%M`, as `bench assemble`) under 150 MiB.
//! It also checks that the hybrid ISO stores the initrd once: the ISO is
//! smaller than the initrd twice over (isolinux's `/boot/initrd.img` is
//! an extent inside the UKI, which is inside the El Torito FAT image).
//! Nothing is asserted: it prints a table.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::assemble::{
    CONFIG, Options, PACKAGES, Run, empty_dir, in_work_dir, measure, median, mib, mib_bytes,
    sha256, size, slipway, yes,
};

pub const USAGE: &str = "usage: cargo xtask bench formats [--runs N] [--keep]";

/// Each format against the `kernel+initrd` build of the same image.
const COLD_GOAL: f64 = 1.2;
const WARM_GOAL: f64 = 0.05;
const PEAK_GOAL_MIB: f64 = 150.0;

/// `--format` and the suffix of the file timed (after the name `bench`).
const FORMATS: &[(&str, &str)] = &[
    ("kernel+initrd", "-initrd.img"),
    ("iso-bios", ".iso"),
    ("qcow2-bios", ".qcow2"),
];

pub fn run(o: &Options, bin: &Path) -> Result<()> {
    in_work_dir(o, "bench-formats", |cache, work| {
        run_in(o, bin, cache, work)
    })
}

/// What one format measured: medians and its output's size.
struct Measured {
    cold: Run,
    first_warm: Run,
    warm: Run,
    bytes: u64,
    deterministic: bool,
}

fn run_in(o: &Options, bin: &Path, cache: &Path, work: &Path) -> Result<()> {
    eprintln!(
        "xtask: building the bench packages and the boot loader into {} (not timed)",
        cache.display()
    );
    let mut pkg = slipway(bin, cache);
    pkg.args(["pkg", "build"])
        .args(PACKAGES)
        .arg("pkg/bootloader");
    crate::run_checked(pkg)?;

    let config = crate::workspace_root().join(CONFIG);
    let stamp = work.join("stamp.yml");
    let write_stamp = |text: &str| {
        std::fs::write(
            &stamp,
            format!("files:\n  - path: etc/bench-stamp\n    contents: \"{text}\"\n"),
        )
    };
    let report = work.join("time.txt");
    let out = work.join("out");
    std::fs::create_dir_all(&out)?;
    let args = |format: &str| -> Vec<std::ffi::OsString> {
        vec![
            "--cache".into(),
            cache.into(),
            "-q".into(),
            "build".into(),
            "--format".into(),
            format.into(),
            "--name".into(),
            "bench".into(),
            "--dir".into(),
            out.clone().into(),
            config.clone().into(),
            stamp.clone().into(),
        ]
    };

    let mut cold: Vec<Vec<Run>> = vec![Vec::new(); FORMATS.len()];
    let mut warm: Vec<Vec<Run>> = vec![Vec::new(); FORMATS.len()];
    let mut first_warm: Vec<Vec<Run>> = vec![Vec::new(); FORMATS.len()];
    let mut hashes: Vec<Vec<String>> = vec![Vec::new(); FORMATS.len()];
    let mut bytes = vec![0; FORMATS.len()];
    let mut kernel_bytes = 0;
    for i in 0..o.runs {
        for (f, (format, suffix)) in FORMATS.iter().enumerate() {
            let a = args(format);
            let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
            let file = out.join(format!("bench{suffix}"));
            eprintln!("xtask: run {}/{}: {format} cold", i + 1, o.runs);
            let _ = std::fs::remove_dir_all(cache.join("segments"));
            empty_dir(&out)?;
            write_stamp("cold")?;
            cold[f].push(measure(bin, &a, &report)?);
            hashes[f].push(sha256(&file)?);
            bytes[f] = size(&file)?;
            if *format == "kernel+initrd" {
                kernel_bytes = size(&out.join("bench-kernel"))?;
            }
            eprintln!("xtask: run {}/{}: {format} warm, first", i + 1, o.runs);
            write_stamp(&format!("warm {i}"))?;
            first_warm[f].push(measure(bin, &a, &report)?);
            eprintln!("xtask: run {}/{}: {format} warm", i + 1, o.runs);
            write_stamp(&format!("warm {i} again"))?;
            warm[f].push(measure(bin, &a, &report)?);
        }
    }
    let measured: Vec<Measured> = (0..FORMATS.len())
        .map(|f| Measured {
            cold: median(cold[f].clone()),
            first_warm: median(first_warm[f].clone()),
            warm: median(warm[f].clone()),
            bytes: bytes[f],
            deterministic: hashes[f].windows(2).all(|w| w[0] == w[1]),
        })
        .collect();
    print!("{}", table(o, &measured, kernel_bytes));
    if o.keep {
        eprintln!("xtask: kept {}", work.display());
    }
    Ok(())
}

fn table(o: &Options, m: &[Measured], kernel_bytes: u64) -> String {
    let secs = |r: Run| r.time.as_secs_f64();
    let base = secs(m[0].cold).max(1e-9);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "image: {CONFIG} (+ one files entry); median of {} runs",
        o.runs
    );
    let _ = writeln!(
        t,
        "{:<14} {:>8} {:>18} {:>16} {:>8} {:>18} {:>14} {:>10} {:>9}",
        "format",
        "cold s",
        "cold/k+i cold",
        "1st warm (/cold)",
        "warm s",
        "warm/cold",
        "peak MiB",
        "output",
        "same"
    );
    let mut all_met = true;
    for ((format, _), r) in FORMATS.iter().zip(m) {
        let cold_ratio = secs(r.cold) / base;
        let warm_ratio = secs(r.warm) / secs(r.cold).max(1e-9);
        let peak = mib(r
            .cold
            .peak_kib
            .max(r.warm.peak_kib)
            .max(r.first_warm.peak_kib));
        let first = secs(r.first_warm);
        let cold_met = *format == "kernel+initrd" || cold_ratio <= COLD_GOAL;
        let warm_met = warm_ratio <= WARM_GOAL;
        let peak_met = peak < PEAK_GOAL_MIB;
        all_met &= cold_met && warm_met && peak_met;
        let cold_cell = if *format == "kernel+initrd" {
            "1 (the base)".to_string()
        } else {
            format!("{cold_ratio:.3} <= {COLD_GOAL} {}", yes(cold_met))
        };
        let _ = writeln!(
            t,
            "{:<14} {:>8.3} {:>18} {:>16} {:>8.3} {:>18} {:>14} {:>10} {:>9}",
            format,
            secs(r.cold),
            cold_cell,
            format!("{first:.3} ({:.3})", first / secs(r.cold).max(1e-9)),
            secs(r.warm),
            format!("{warm_ratio:.3} <= {WARM_GOAL} {}", yes(warm_met)),
            format!("{peak:.0} < {PEAK_GOAL_MIB:.0} {}", yes(peak_met)),
            mib_bytes(r.bytes),
            if r.deterministic { "yes" } else { "NO" }
        );
    }
    // The hybrid ISO holds the kernel and the initrd once each (isolinux's
    // files are extents inside the UKI): well under the initrd twice over.
    let initrd = m[0].bytes;
    let iso = m[1].bytes;
    let once = iso < initrd + initrd / 2;
    let _ = writeln!(
        t,
        "iso-bios holds the initrd once: {} (ISO {}, initrd {}, kernel {})",
        if once { "yes" } else { "NO" },
        mib_bytes(iso),
        mib_bytes(initrd),
        mib_bytes(kernel_bytes)
    );
    let _ = writeln!(
        t,
        "goals (cold <= {COLD_GOAL}x kernel+initrd cold, warm <= {WARM_GOAL}x cold, peak < {PEAK_GOAL_MIB} MiB): {}",
        if all_met { "all met" } else { "MISSED" }
    );
    t
}
