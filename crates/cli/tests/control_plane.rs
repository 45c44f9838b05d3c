//! The control plane end to end, on a machine booted under TCG by the real
//! `slipway run`: slipway's init with containerd packaged as LinuxKit's (its
//! `020-containerd` hook), so the services are containerd tasks in
//! `services.linuxkit`, managed by `slipway-services`; the multiplexer; a
//! third-party component (`machine-info`). Everything is driven from the
//! host through `slipway ctl` over the run's control socket, and checked
//! from the guest with containerd's own `ctr`.
//!
//! The configs are `tests/guest/base.yml` and `tests/guest/containerd.yml`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod control;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use control::Ctl;
use serde_json::Value;
use slipway_contract::timeline::{Event, parse_transcript};
use slipway_testkit::boot::{Guest, build};
use slipway_testkit::packages::{Packages, copy_dir, standard};

/// From `slipway run` to the services: generous, for a loaded machine
/// emulating the guest.
const BOOT_DEADLINE: Duration = Duration::from_secs(420);

fn slipway() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_slipway"))
}

fn guest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest")
}

/// `tests/guest/<name>`, copied beside the test's copy of `pkg/`.
fn config(packages: &Packages, name: &str) -> PathBuf {
    let dir = packages.root.path().join("guest");
    fs::create_dir_all(&dir).unwrap();
    let to = dir.join(name);
    fs::copy(guest_dir().join(name), &to).unwrap();
    to
}

/// The test package `containerd-lk`: pkg/containerd with LinuxKit's hook.
fn containerd_lk(packages: &Packages) {
    let dir = packages.package("containerd-lk");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        guest_dir().join("pkg/containerd-lk/build.yml"),
        dir.join("build.yml"),
    )
    .unwrap();
    let standard = packages.package("containerd");
    fs::copy(standard.join("debs.lock"), dir.join("debs.lock")).unwrap();
    copy_dir(&standard.join("rootfs"), &dir.join("rootfs"));
    packages.build(slipway(), &[dir]);
}

/// Retry `f` every 250 ms until it gives `Some`; panics with `what` and the
/// console after `timeout`.
#[allow(clippy::disallowed_methods, reason = "a timeout")]
fn until<T>(guest: &Guest, what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not within {timeout:?}. Console:\n{}",
                guest.console()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The lines a background `slipway ctl logs -f` prints, as they come.
struct Follow {
    child: Child,
    lines: Receiver<String>,
}

impl Follow {
    fn start(ctl: &Ctl, service: &str) -> Follow {
        let mut child = ctl.spawn(&["logs", "-f", "--tail", "1", service]);
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follow { child, lines }
    }

    /// The next line containing `needle`, within `timeout`.
    #[allow(clippy::disallowed_methods, reason = "a timeout")]
    fn next(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("logs -f: no line with {needle:?}: {e}"),
            }
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python with grpcio and grpcio-reflection (`cargo xtask deps` makes it).
fn python() -> PathBuf {
    let python = std::env::var_os("SLIPWAY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("python-test/bin/python3")
        });
    assert!(
        python.is_file(),
        "{} is missing: `cargo xtask test` creates it",
        python.display()
    );
    python
}

fn pid(service: &Value) -> u64 {
    service["pid"].as_u64().unwrap_or_default()
}

#[test]
fn services_in_containerd_managed_from_the_host() {
    let packages = standard(slipway());
    containerd_lk(&packages);
    let configs = [
        config(&packages, "base.yml"),
        config(&packages, "containerd.yml"),
    ];
    let refs: Vec<&Path> = configs.iter().map(PathBuf::as_path).collect();
    let out = packages.root.path().join("out");
    let prefix = build(slipway(), &packages.cache, &refs, &out, "ctd");
    // containerd's package twice (init and the ctr service) unpacks to more
    // than 512 MiB leaves room for.
    let mut guest = Guest::start(slipway(), &prefix, &["--mem".into(), "1024".into()]);
    let ctl = Ctl::new(&out.join("ctd-state"));
    guest.wait_for("services-started", BOOT_DEADLINE);
    // A failed check shows the guest's console and its services.
    let checks = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        checks(&mut guest, &ctl);
    }));
    if let Err(failure) = checks {
        eprintln!("console:\n{}", guest.console());
        eprintln!("ps:\n{:?}", ctl.run(&["ps"]));
        std::panic::resume_unwind(failure);
    }

    // Powered off from the host: the init stops the tasks and goes down.
    ctl.ok(&["poweroff"]);
    let (status, console) = guest.wait(BOOT_DEADLINE);
    assert!(
        status.success(),
        "slipway run: {status}. Console:\n{console}"
    );
    assert!(console.contains("reboot: Power down"), "{console}");
}

/// What the machine must show, from the host and from the guest.
fn checks(guest: &mut Guest, ctl: &Ctl) {
    // Every service is a containerd task, as `ps` and containerd's API say.
    let ticker = until(
        guest,
        "ticker running in containerd",
        Duration::from_secs(60),
        || {
            let s = ctl.service("ticker");
            (pid(&s) > 0).then_some(s)
        },
    );
    for s in ctl.ps() {
        assert_eq!(s["runtime"], "containerd", "{s}");
    }
    let containers: Value = serde_json::from_str(&ctl.ok(&["containers", "--json"])).unwrap();
    let listed = containers.to_string();
    for name in ["ticker", "machine-info", "killer"] {
        assert!(
            listed.contains(&format!("\"{name}\"")),
            "{name} not in {listed}"
        );
    }
    let task = containers
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "ticker")
        .unwrap_or_else(|| panic!("no ticker in {containers}"));
    assert_eq!(task["pid"].as_u64(), Some(pid(&ticker)), "{task}");

    // From the guest, with containerd's ctr: the same tasks.
    let listing = guest.wait_for("ctr: ticker", Duration::from_secs(120));
    assert!(listing.contains("RUNNING"), "{listing}");

    // A crashing service is restarted under containerd.
    until(guest, "crasher restarted", Duration::from_secs(120), || {
        (ctl.service("crasher")["restarts"]
            .as_u64()
            .unwrap_or_default()
            >= 1)
            .then_some(())
    });

    // Logs followed through the multiplexer, across a restart.
    let follow = Follow::start(ctl, "ticker");
    follow.next("tick", Duration::from_secs(30));
    let restarted = ctl.ok(&["restart", "ticker"]);
    assert!(
        restarted.is_empty() || !restarted.contains("error"),
        "{restarted}"
    );
    let after = until(
        guest,
        "ticker back with a new pid",
        Duration::from_secs(60),
        || {
            let s = ctl.service("ticker");
            (pid(&s) > 0 && pid(&s) != pid(&ticker)).then_some(s)
        },
    );
    assert_eq!(
        after["restarts"], ticker["restarts"],
        "a requested restart is not counted"
    );
    follow.next("tick 1", Duration::from_secs(60));

    // The third-party component answers through the multiplexer.
    let info: Value =
        serde_json::from_str(ctl.ok(&["call", "slipway.machine.v1.Info/Get"]).trim()).unwrap();
    assert!(
        info["kernelRelease"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{info}"
    );

    // Killed (SIGKILL: its registration stays): UNAVAILABLE naming it; the
    // open logs stream goes on; back once started again.
    ctl.ok(&["restart", "killer"]);
    let unavailable = until(
        guest,
        "machine-info unavailable",
        Duration::from_secs(60),
        || {
            let said = ctl.run(&["call", "slipway.machine.v1.Info/Get"]);
            (said.code == 1 && said.stderr.contains("UNAVAILABLE")).then_some(said.stderr)
        },
    );
    assert!(unavailable.contains("\"machine-info\""), "{unavailable}");
    follow.next("tick", Duration::from_secs(30));
    let killer = ctl.ok(&["logs", "killer"]);
    assert!(killer.contains("killed "), "killer: {killer}");
    until(guest, "machine-info ended", Duration::from_secs(60), || {
        (ctl.service("machine-info")["state"] == "EXITED").then_some(())
    });
    ctl.ok(&["start", "machine-info"]);
    until(guest, "machine-info back", Duration::from_secs(60), || {
        (ctl.run(&["call", "slipway.machine.v1.Info/Get"]).code == 0).then_some(())
    });
    follow.next("tick", Duration::from_secs(30));
    drop(follow);

    // A client that knows nothing of slipway lists every service.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../mux/tests/python/generic_client.py");
    let output = std::process::Command::new(python())
        .arg(script)
        .arg(ctl.state.join("control.sock"))
        .arg("--list")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let services: Vec<&str> = listed["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for wanted in [
        "slipway.services.v1.Services",
        "slipway.services.v1.Power",
        "slipway.machine.v1.Info",
        "containerd.services.tasks.v1.Tasks",
        "slipway.mux.v1.Components",
    ] {
        assert!(services.contains(&wanted), "{wanted} not in {services:?}");
    }
    assert!(
        listed["methods"]["containerd.services.tasks.v1.Tasks"]
            .to_string()
            .contains("containerd.services.tasks.v1.Tasks.List"),
        "{listed}"
    );
}

/// `/init` → the onboot task's output and the first service's, with and
/// without containerd, on guest clock under TCG: the same kernel, one
/// trivial onboot task and one trivial service that print `/proc/uptime`
/// (the service then powers the machine off),
/// crun, no DHCP (`tests/guest/first-service.yml`, alone and after
/// `tests/guest/with-containerd.yml`). Boots alternate;
/// `SLIPWAY_TIMELINE_RUNS` (default 3) of each. docs/guest.md has the
/// figures.
#[test]
#[ignore = "a measurement: several boots under TCG"]
fn first_service_output_with_and_without_containerd() {
    let packages = standard(slipway());
    let runs: usize = std::env::var("SLIPWAY_TIMELINE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let out = packages.root.path().join("out");
    let base = config(&packages, "base.yml");
    let first = config(&packages, "first-service.yml");
    let with = config(&packages, "with-containerd.yml");
    let plain = build(slipway(), &packages.cache, &[&base, &first], &out, "plain");
    let ctd = build(
        slipway(),
        &packages.cache,
        &[&base, &with, &first],
        &out,
        "ctd",
    );
    println!(
        "MEASURE how | kernel->init | init->onboot output | init->onboot-done | onboot-done->first output | init->first output"
    );
    for _ in 0..runs {
        for (how, prefix) in [("crun", &plain), ("containerd", &ctd)] {
            let guest = Guest::start(slipway(), prefix, &[]);
            let (status, console) = guest.wait(BOOT_DEADLINE);
            assert!(status.success(), "{how}: {status}\n{console}");
            let timeline = parse_transcript(&console);
            let at = |event: Event| {
                timeline
                    .iter()
                    .find(|e| e.event == event)
                    .map(|e| e.ms)
                    .unwrap_or_else(|| panic!("{how}: no {event}\n{console}"))
            };
            let uptime_ms = |tag: &str| {
                console
                    .lines()
                    .find_map(|l| l.split_once(tag).map(|(_, up)| up.trim().to_owned()))
                    .and_then(|up| up.parse::<f64>().ok())
                    .map(|s| (s * 1000.0).round() as u64)
                    .unwrap_or_else(|| panic!("{how}: no {tag}line\n{console}"))
            };
            let onboot_ms = uptime_ms("ONBOOT ");
            let first_ms = uptime_ms("FIRST ");
            let init = at(Event::InitStart);
            let onboot = at(Event::OnbootDone);
            println!(
                "MEASURE {how} | {init} ms | {} ms | {} ms | {} ms | {} ms",
                onboot_ms.saturating_sub(init),
                onboot - init,
                first_ms.saturating_sub(onboot),
                first_ms.saturating_sub(init)
            );
        }
    }
}
