//! `cargo xtask bench validate`: `slipway validate` of large configurations
//! shaped like LinuxKit's dhcpcd example (an image with a digest-like tag,
//! a command, capabilities, binds, env and a sysctl per onboot entry), at
//! 1, 2 and 4 MiB (4 MiB is the largest file accepted).
//!
//! The baseline is the 1 MiB file: time per byte should stay flat as the
//! file grows, so each larger file prints its ratio to the baseline next to
//! its size ratio, and the 4 MiB time against the goal of 1 s. Nothing is
//! asserted; the suite checks linear growth on its own.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

const USAGE: &str = "usage: cargo xtask bench validate [--runs N]";
/// The largest file must validate within this.
const GOAL: Duration = Duration::from_secs(1);
const MIB: usize = 1 << 20;

pub struct Options {
    runs: usize,
}

pub fn options(args: &[String]) -> Result<Options> {
    let mut o = Options { runs: 5 };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => {
                o.runs = super::positive_runs(it.next(), USAGE)?;
            }
            _ => anyhow::bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

/// One onboot entry in the dhcpcd example's shape.
fn entry(i: usize) -> String {
    format!(
        "  - name: dhcpcd{i}
    image: linuxkit/dhcpcd:157df9ef45a035f1542ec2270e374f18efef98a5
    command: [\"/sbin/dhcpcd\", \"--nobackground\", \"-f\", \"/dhcpcd.conf\", \"-1\"]
    capabilities:
      - CAP_NET_ADMIN
      - CAP_NET_BIND_SERVICE
      - CAP_NET_RAW
    binds:
      - /var/run:/run
      - /etc/resolv.conf:/etc/resolv.conf
    env:
      - INSTANCE={i}
    sysctl:
      net.ipv4.ip_forward: \"1\"
"
    )
}

/// A configuration of at most `bytes` bytes, as many entries as fit.
fn config(bytes: usize) -> String {
    let mut text = String::from(
        "kernel:\n  image: linuxkit/kernel:6.6.71\n  cmdline: \"console=ttyS0\"\n\
         init:\n  - linuxkit/init:8f1e6a0747acbbb4d7e24dc98f97faa8d1c6cec7\nonboot:\n",
    );
    for i in 0.. {
        let e = entry(i);
        if text.len() + e.len() > bytes {
            break;
        }
        text.push_str(&e);
    }
    text
}

/// The fastest of `runs` validations of `file`.
fn fastest(bin: &Path, file: &Path, runs: usize) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let mut cmd = Command::new(bin);
        cmd.args(["-q", "validate"]).arg(file);
        best = best.min(super::measure(cmd)?.time);
    }
    Ok(best)
}

pub fn run(o: &Options, bin: &Path) -> Result<()> {
    let work = tempfile_dir()?;
    let result = (|| -> Result<()> {
        println!(
            "validate: dhcpcd-shaped onboot entries, fastest of {} runs",
            o.runs
        );
        println!(
            "{:>8}  {:>9}  {:>10}  {:>8}",
            "size", "seconds", "size ratio", "ratio"
        );
        let mut baseline = None;
        for mib in [1, 2, 4] {
            let file = work.join(format!("{mib}.yml"));
            // Leave room below the 4 MiB limit.
            std::fs::write(&file, config(mib * MIB - 1024))?;
            let t = fastest(bin, &file, o.runs)?;
            let base = *baseline.get_or_insert(t);
            println!(
                "{:>6}Mi  {:>9.3}  {:>10}  {:>8.2}",
                mib,
                t.as_secs_f64(),
                mib,
                t.as_secs_f64() / base.as_secs_f64()
            );
            if mib == 4 {
                println!(
                    "4 MiB: {:.3} s, {:.2}x the goal of {} s",
                    t.as_secs_f64(),
                    t.as_secs_f64() / GOAL.as_secs_f64(),
                    GOAL.as_secs()
                );
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("slipway-bench-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
