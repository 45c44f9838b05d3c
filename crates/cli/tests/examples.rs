//! The configurations of `examples/`, built from the standard packages
//! (`slipway_testkit::packages`) with `slipway build --offline`, and booted
//! under qemu (TCG) with `slipway run`:
//!
//! * every example builds offline once the packages are in the cache;
//! * `minimal.yml`: the onboot tasks' output (DHCP's address included) on
//!   the console, its web server answering through `--publish`, then a
//!   poweroff by SIGUSR2 to PID 1 (its CGI script) that runs the onshutdown
//!   task and ends `slipway run` with 0;
//! * `web.yml`: the service after the web server starts once it is ready;
//! * `persistent.yml`: `format` and `mount` on a qcow2 disk; what the
//!   service wrote on the first boot is there on the second;
//! * the boot of `minimal.yml` also saves its timeline (`--timeline`) and
//!   boot chart (`--boot-chart`): the chart parses as XML with a row per
//!   onboot container and service, `slipway timeline` redraws the same
//!   bytes from the saved JSON, and `rsvg-convert` renders it to PNG.
//!
//! Order is checked on the timeline's own stamps, never on wall-clock time.
//! Needs what `slipway_testkit::packages` needs (Debian's mirror, once, for
//! the packages) and qemu-system-x86_64 and qemu-img.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_contract::timeline::{Entry, Event, Summary, parse_transcript};
use slipway_testkit::boot::{Guest, build_with, free_port, http_get};
use slipway_testkit::initramfs::need;
use slipway_testkit::packages;

/// Generous: TCG on a loaded two-core host.
const BOOT: Duration = Duration::from_secs(420);
const STEP: Duration = Duration::from_secs(180);

fn slipway() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_slipway"))
}

fn build_offline(pkgs: &packages::Packages, example: &str, dir: &Path) -> PathBuf {
    let name = example.trim_end_matches(".yml");
    build_with(
        slipway(),
        &pkgs.cache,
        &[&pkgs.example(example)],
        dir,
        name,
        &["--offline"],
    )
}

/// The stamp of the first `event` (for `name`, when given).
fn stamp(timeline: &[Entry], event: Event, name: Option<&str>) -> u64 {
    timeline
        .iter()
        .find(|e| e.event == event && (name.is_none() || e.name.as_deref() == name))
        .unwrap_or_else(|| panic!("no {event} {name:?} on the timeline: {timeline:#?}"))
        .ms
}

fn assert_no_failures(timeline: &[Entry], console: &str) {
    let failed: Vec<&Entry> = timeline
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                Event::OnbootFailed | Event::ServiceFailed | Event::Fatal
            )
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}\n{console}");
}

/// Every `examples/*.yml` builds with `--offline` from the package cache:
/// each `@pkg:` reference resolves to a package built from this tree.
#[test]
fn every_example_builds_offline() {
    let pkgs = packages::standard(slipway());
    let out = tempfile::tempdir().unwrap();
    let mut examples: Vec<String> = fs::read_dir(pkgs.root.path().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    examples.sort();
    for must in ["minimal.yml", "persistent.yml", "web.yml"] {
        assert!(examples.iter().any(|e| e == must), "{must}: {examples:?}");
    }
    for example in &examples {
        let prefix = build_offline(&pkgs, example, out.path());
        for suffix in ["-kernel", "-initrd.img", "-cmdline"] {
            let mut file = prefix.as_os_str().to_owned();
            file.push(suffix);
            let len = fs::metadata(PathBuf::from(&file)).unwrap().len();
            assert!(len > 0, "{example}: {file:?} is empty");
        }
    }
}

/// The README's example, end to end: onboot output, HTTP through
/// `--publish`, poweroff by SIGUSR2 to PID 1 with the onshutdown output.
#[test]
fn minimal_serves_http_and_powers_off_on_sigusr2() {
    need("qemu-system-x86_64");
    let pkgs = packages::standard(slipway());
    let out = tempfile::tempdir().unwrap();
    let prefix = build_offline(&pkgs, "minimal.yml", out.path());
    let port = free_port();
    let chart = out.path().join("minimal.svg");
    let saved = out.path().join("minimal.json");
    let mut guest = Guest::start(
        slipway(),
        &prefix,
        &[
            "--publish".to_owned(),
            format!("{port}:80"),
            "--timeline".to_owned(),
            saved.display().to_string(),
            "--boot-chart".to_owned(),
            chart.display().to_string(),
        ],
    );
    // dhcpcd ran first: the onboot task sees the address qemu's DHCP gives.
    guest.wait_for("hello from onboot: eth0 is 10.0.2.15/24", BOOT);
    guest.wait_for("services-started", STEP);

    let Some(page) = http_get(port, "/", STEP) else {
        panic!("no HTTP answer on port {port}:\n{}", guest.console());
    };
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("hello from slipway's minimal example"),
        "{page}"
    );
    // The CGI script sends SIGUSR2 to PID 1 a second after answering.
    let Some(answer) = http_get(port, "/cgi-bin/poweroff", STEP) else {
        panic!("no answer from the poweroff script:\n{}", guest.console());
    };
    assert!(answer.contains("powering off"), "{answer}");
    let (status, console) = guest.wait(STEP);
    assert!(status.success(), "slipway run: {status}\n{console}");

    let timeline = parse_transcript(&console);
    assert_no_failures(&timeline, &console);
    let shutdown = timeline
        .iter()
        .find(|e| e.event == Event::Shutdown)
        .unwrap_or_else(|| panic!("no shutdown:\n{console}"));
    assert_eq!(
        shutdown.detail.as_deref(),
        Some("poweroff (SIGUSR2)"),
        "{console}"
    );
    // The timeline's order: onboot in the YAML's order, services after
    // onboot, the onshutdown task after the shutdown began.
    let order = [
        stamp(&timeline, Event::InitStart, None),
        stamp(&timeline, Event::OnbootExit, Some("000-sysctl")),
        stamp(&timeline, Event::OnbootExit, Some("001-dhcpcd")),
        stamp(&timeline, Event::OnbootExit, Some("002-hello")),
        stamp(&timeline, Event::OnbootDone, None),
        stamp(&timeline, Event::ServiceStart, Some("www")).max(stamp(
            &timeline,
            Event::ServiceStart,
            Some("getty"),
        )),
        stamp(&timeline, Event::ServicesStarted, None),
        shutdown.ms,
        stamp(&timeline, Event::OnshutdownStart, Some("000-bye")),
        stamp(&timeline, Event::OnshutdownDone, None),
        stamp(&timeline, Event::Poweroff, None),
    ];
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "out of order {order:?}:\n{console}"
    );
    // The onshutdown task's line, between its start and the end of onshutdown.
    let lines: Vec<&str> = console.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not on the console:\n{console}"))
    };
    let bye = at("goodbye from onshutdown");
    assert!(at("onshutdown-start 000-bye") < bye && bye < at("onshutdown-done"));
    assert!(console.contains("reboot: Power down"), "{console}");

    // The numbers for the documentation (printed, never asserted).
    let summary = Summary::of(&timeline).unwrap();
    eprintln!("TIMELINE minimal.yml:\n{summary}");

    check_boot_chart(&timeline, &saved, &chart, out.path());
}

/// The saved timeline is the console's; the chart has a row per onboot
/// container, service and onshutdown task, labelled with its name; the
/// saved JSON redraws to the same bytes; rsvg-convert renders it.
fn check_boot_chart(timeline: &[Entry], saved: &Path, chart: &Path, dir: &Path) {
    let json: Vec<Entry> = serde_json::from_slice(&fs::read(saved).unwrap()).unwrap();
    assert_eq!(
        json, timeline,
        "--timeline saved another timeline than the console's"
    );
    let svg = fs::read_to_string(chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let rows = |kind: &str| -> Vec<String> {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(&format!("row {kind}")))
            .map(|n| {
                let label = n
                    .children()
                    .find(|c| c.attribute("class") == Some("label"))
                    .and_then(|c| c.text())
                    .unwrap_or_else(|| panic!("a {kind} row without a label"));
                assert_eq!(Some(label), n.attribute("data-name"));
                let bars = n
                    .children()
                    .filter(|c| c.tag_name().name() == "rect")
                    .count();
                assert!(bars >= 1, "{kind} {label}: no bar");
                label.to_owned()
            })
            .collect()
    };
    assert_eq!(rows("onboot"), ["000-sysctl", "001-dhcpcd", "002-hello"]);
    let mut services = rows("service");
    services.sort();
    assert_eq!(services, ["getty", "www"]);
    assert_eq!(rows("onshutdown"), ["000-bye"]);
    assert_eq!(rows("kernel"), ["kernel"]);
    assert!(!svg.contains("<script"), "{svg}");

    let again = dir.join("again.svg");
    let out = std::process::Command::new(slipway())
        .arg("timeline")
        .arg(saved)
        .arg("--svg")
        .arg(&again)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("001-dhcpcd"), "{text}");
    assert!(
        fs::read_to_string(&again).unwrap() == svg,
        "the chart drawn from the saved timeline differs from the one run drew"
    );

    need("rsvg-convert");
    let png = dir.join("minimal.png");
    let status = std::process::Command::new("rsvg-convert")
        .arg("--output")
        .arg(&png)
        .arg(chart)
        .status()
        .unwrap();
    assert!(status.success(), "rsvg-convert: {status}");
    let bytes = fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // IHDR: the width and height the SVG declares.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let declared: u32 = doc
        .root_element()
        .attribute("width")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(width, declared);
    if let Some(keep) = std::env::var_os("SLIPWAY_KEEP_BOOT_CHART") {
        // `docs/`'s picture comes from this boot (docs/insight.md).
        let keep = PathBuf::from(keep);
        fs::copy(chart, keep.join("boot-chart.svg")).unwrap();
        fs::copy(&png, keep.join("boot-chart.png")).unwrap();
        fs::copy(saved, keep.join("boot-timeline.json")).unwrap();
    }
}

/// The supervised web service: `check` starts only once `web` is ready
/// (port 80 listening) and prints the page on the console; the page comes
/// through `--publish` too; Ctrl-C powers the machine off.
#[test]
fn web_service_is_ready_before_the_service_after_it() {
    need("qemu-system-x86_64");
    let pkgs = packages::standard(slipway());
    let out = tempfile::tempdir().unwrap();
    let prefix = build_offline(&pkgs, "web.yml", out.path());
    let port = free_port();
    let mut guest = Guest::start(
        slipway(),
        &prefix,
        &["--publish".to_owned(), format!("{port}:80")],
    );
    guest.wait_for_all(
        &[
            "check: hello from slipway's web example",
            "modules-done later",
        ],
        BOOT,
    );
    let Some(page) = http_get(port, "/", STEP) else {
        panic!("no HTTP answer on port {port}:\n{}", guest.console());
    };
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("hello from slipway's web example"), "{page}");
    // The power button's reader starts just after the init's last step.
    std::thread::sleep(Duration::from_secs(3));
    guest.interrupt();
    let (status, console) = guest.wait(STEP);
    assert!(status.success(), "slipway run: {status}\n{console}");
    let timeline = parse_transcript(&console);
    assert_no_failures(&timeline, &console);
    let order = [
        stamp(&timeline, Event::OnbootExit, Some("000-dhcpcd")),
        stamp(&timeline, Event::ServiceStart, Some("web")),
        stamp(&timeline, Event::ServiceReady, Some("web")),
        stamp(&timeline, Event::ServiceStart, Some("check")),
    ];
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "out of order {order:?}:\n{console}"
    );
}

/// `format` makes ext4 on the blank qcow2 disk and `mount` mounts it by
/// label; the service's log written on the first boot is there on the
/// second, when `format` leaves the disk alone.
#[test]
fn persistent_disk_keeps_a_file_across_boots() {
    need("qemu-system-x86_64");
    need("qemu-img");
    let pkgs = packages::standard(slipway());
    let out = tempfile::tempdir().unwrap();
    let prefix = build_offline(&pkgs, "persistent.yml", out.path());
    let disk = out.path().join("data.qcow2");
    let disk_arg = format!("file={},size=256M", disk.display());
    for boot in 1..=2 {
        let mut guest = Guest::start(slipway(), &prefix, &["--disk".to_owned(), disk_arg.clone()]);
        // The service's output and the init's last boot step come in either order.
        guest.wait_for_all(
            &[
                &format!("bootlog: {boot} boot(s) on the disk:"),
                "modules-done later",
            ],
            BOOT,
        );
        // The power button's reader starts just after the init's last step.
        std::thread::sleep(Duration::from_secs(3));
        guest.interrupt();
        let (status, console) = guest.wait(STEP);
        assert!(
            status.success(),
            "boot {boot}: slipway run: {status}\n{console}"
        );
        let timeline = parse_transcript(&console);
        assert_no_failures(&timeline, &console);
        let first = boot == 1;
        assert_eq!(
            console.contains("format: /dev/vda as ext4, LABEL=slipway-data"),
            first,
            "boot {boot}: format ran {}:\n{console}",
            if first { "not" } else { "again" }
        );
        if !first {
            assert!(
                console.contains("format: LABEL=slipway-data exists: /dev/vda"),
                "{console}"
            );
        }
        assert!(
            console.contains("mount: /dev/vda on /var/lib/data"),
            "{console}"
        );
        for line in 1..=boot {
            assert!(
                console.contains(&format!("bootlog: boot {line}")),
                "boot {boot}: the log lacks boot {line}:\n{console}"
            );
        }
        assert!(
            !console.contains(&format!("bootlog: boot {}", boot + 1)),
            "{console}"
        );
        // The disk is mounted before the service starts.
        assert!(
            stamp(&timeline, Event::OnbootExit, Some("001-mount"))
                <= stamp(&timeline, Event::ServiceStart, Some("bootlog"))
        );
    }
}

/// The boot timeline of `minimal.yml` under TCG, several boots (3, or
/// `SLIPWAY_TIMELINE_RUNS`): the numbers in docs/guest.md. Prints them and
/// asserts only that each boot worked.
/// `cargo nextest run -p slipway --test examples --run-ignored only minimal_timeline --no-capture`
#[test]
#[ignore = "a measurement: several TCG boots"]
fn minimal_timeline() {
    need("qemu-system-x86_64");
    let runs: usize = std::env::var("SLIPWAY_TIMELINE_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let pkgs = packages::standard(slipway());
    let out = tempfile::tempdir().unwrap();
    let prefix = build_offline(&pkgs, "minimal.yml", out.path());
    for run in 1..=runs {
        let port = free_port();
        let mut guest = Guest::start(
            slipway(),
            &prefix,
            &["--publish".to_owned(), format!("{port}:80")],
        );
        guest.wait_for("services-started", BOOT);
        assert!(http_get(port, "/cgi-bin/poweroff", STEP).is_some());
        let (status, console) = guest.wait(STEP);
        assert!(status.success(), "run {run}: {status}\n{console}");
        let timeline = parse_transcript(&console);
        assert_no_failures(&timeline, &console);
        let summary = Summary::of(&timeline).unwrap();
        let at = |event: Event| stamp(&timeline, event, None);
        let init = at(Event::InitStart);
        let onboot_done = at(Event::OnbootDone);
        let mut steps = format!(
            "root {} ms, mounts {} ms, modules (index, devices and loading) {} ms, system {} ms, volumes {} ms",
            at(Event::RootDone) - init,
            at(Event::MountsDone) - at(Event::RootDone),
            at(Event::ModulesDone) - at(Event::MountsDone),
            at(Event::SystemDone) - at(Event::ModulesDone),
            at(Event::VolumesDone) - at(Event::SystemDone),
        );
        for e in timeline.iter().filter(|e| e.event == Event::OnbootStart) {
            let name = e.name.as_deref();
            steps.push_str(&format!(
                "; onboot {} {} ms",
                name.unwrap_or("-"),
                stamp(&timeline, Event::OnbootExit, name) - e.ms
            ));
        }
        for e in timeline.iter().filter(|e| e.event == Event::ServiceStart) {
            steps.push_str(&format!(
                "; service {} started {} ms after onboot",
                e.name.as_deref().unwrap_or("-"),
                e.ms - onboot_done
            ));
        }
        eprintln!("TIMELINE minimal.yml run {run}:\n{summary}\n  [{steps}]");
    }
}

/// `onboot-done` and `services-started` (from `init-start`) of
/// `minimal.yml`, `web.yml` and `persistent.yml` (a blank disk each boot,
/// so `format` always makes its filesystem), booted alternately as built
/// (modules that can wait load beside the containers or when the kernel
/// asks for them) and with `slipway.modules=early` (every listed module
/// before the first container), `SLIPWAY_TIMELINE_RUNS` (default 3) times
/// each. Prints them and asserts only that each boot worked and
/// persistent.yml found its disk.
/// `cargo nextest run -p slipway --test examples --run-ignored only modules_early_and_deferred --no-capture`
#[test]
#[ignore = "a measurement: several TCG boots"]
fn modules_early_and_deferred() {
    need("qemu-system-x86_64");
    need("qemu-img");
    let runs: usize = std::env::var("SLIPWAY_TIMELINE_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let pkgs = packages::standard(slipway());
    let out = tempfile::tempdir().unwrap();
    println!(
        "MEASURE example | modules | run | init->onboot-done | init->services-started | later modules done"
    );
    for example in ["minimal.yml", "web.yml", "persistent.yml"] {
        let prefix = build_offline(&pkgs, example, out.path());
        for run in 1..=runs {
            for how in ["deferred", "early"] {
                let mut args = Vec::new();
                if how == "early" {
                    args.extend(["--append".to_owned(), "slipway.modules=early".to_owned()]);
                }
                if example == "persistent.yml" {
                    let disk = out.path().join(format!("data-{run}-{how}.qcow2"));
                    args.extend([
                        "--disk".to_owned(),
                        format!("file={},size=256M", disk.display()),
                    ]);
                }
                let mut guest = Guest::start(slipway(), &prefix, &args);
                guest.wait_for_all(&["services-started", "modules-done later"], BOOT);
                if example == "persistent.yml" {
                    guest.wait_for("bootlog: 1 boot(s) on the disk:", STEP);
                }
                // The power button's reader starts once its modules are in.
                std::thread::sleep(Duration::from_secs(3));
                guest.interrupt();
                let (status, console) = guest.wait(STEP);
                assert!(
                    status.success(),
                    "{example} {how} {run}: {status}\n{console}"
                );
                let timeline = parse_transcript(&console);
                assert_no_failures(&timeline, &console);
                // What the kernel asked the init for, on the kernel's log.
                for line in console.lines().filter(|l| {
                    l.contains("slipway-init: modprobe") || l.contains(" ms modules-done")
                }) {
                    println!("{example} {how} {run}: {line}");
                }
                let init = stamp(&timeline, Event::InitStart, None);
                let at = |event: Event, name: Option<&str>| stamp(&timeline, event, name) - init;
                println!(
                    "MEASURE {example} | {how} | {run} | {} ms | {} ms | {} ms",
                    at(Event::OnbootDone, None),
                    at(Event::ServicesStarted, None),
                    at(Event::ModulesDone, Some("later")),
                );
            }
        }
    }
}
