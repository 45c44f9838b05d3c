//! Loading grows linearly with the file: a configuration four times as
//! large takes about four times as long, not sixteen (positions were once
//! found by rescanning the text before every node).
//!
//! A ratio of two sizes, measured in the same process as the fastest of
//! several runs each, so a busy machine shifts both alike; the absolute
//! figure for the largest file is `cargo xtask bench validate`'s.

#![allow(
    clippy::disallowed_methods,
    reason = "compares the time of two sizes, no output depends on it"
)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

/// `n` onboot entries shaped like LinuxKit's dhcpcd example.
fn config(n: usize) -> String {
    let mut text = String::from(
        "kernel:\n  image: linuxkit/kernel:6.6.71\n  cmdline: \"console=ttyS0\"\n\
         init:\n  - linuxkit/init:8f1e6a0747acbbb4d7e24dc98f97faa8d1c6cec7\nonboot:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
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
        ));
    }
    text
}

fn fastest_load(text: &str) -> Duration {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let loaded = slipway_config::load_str("scale.yml", text).expect("valid");
            let took = start.elapsed();
            assert!(loaded.config.onboot.is_some());
            took
        })
        .min()
        .unwrap()
}

#[test]
fn four_times_the_entries_take_well_under_eight_times_as_long() {
    let small = config(400);
    let large = config(1600);
    assert!(large.len() > 390 * 1024, "{}", large.len());
    // Warm up allocator and caches before measuring.
    fastest_load(&small);
    let (t1, t4) = (fastest_load(&small), fastest_load(&large));
    let ratio = t4.as_secs_f64() / t1.as_secs_f64();
    assert!(
        ratio < 8.0,
        "{} bytes took {t1:?}, {} bytes {t4:?}: {ratio:.1}x for 4x the size",
        small.len(),
        large.len()
    );
}
