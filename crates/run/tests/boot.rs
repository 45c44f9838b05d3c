//! Real boots under qemu (TCG) of a test initramfs: the static
//! `slipway-init` as `/init`, Debian's static busybox, runc and crun with
//! their libraries from the host, one onboot bundle (read-write, through
//! its `runtime.json` overlay), one onshutdown bundle and two services.
//!
//! The image is built by `slipway_testkit::initramfs`; besides what it
//! needs, the boots need qemu-system-x86_64. A missing piece fails the test
//! with a message saying how to get it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use slipway_contract::timeline::{Entry, Event};
use slipway_run::{Accel, Boot, Interrupt, Options, Outcome, run};
use slipway_testkit::initramfs::{self, Spec, kernel_dir, need};

fn ms(timeline: &[Entry], event: Event, name: Option<&str>) -> u64 {
    timeline
        .iter()
        .find(|e| e.event == event && (name.is_none() || e.name.as_deref() == name))
        .unwrap_or_else(|| panic!("no {event} {name:?} in the timeline"))
        .ms
}

/// Boot `initrd` under TCG with `cpus` vCPUs and `extra` kernel parameters.
fn boot_once(work: &Path, initrd: &Path, runtime: &str, cpus: u32, extra: &str) -> Outcome {
    let boot = Boot::Kernel {
        kernel: kernel_dir().join("vmlinuz"),
        initrd: initrd.to_path_buf(),
        // no_timer_check: a loaded host makes TCG fail the IO-APIC timer check;
        // panic=-1: a panic ends the run at once (and is seen on the console).
        cmdline: format!(
            "console=ttyS0 quiet no_timer_check panic=-1 slipway.runtime={runtime} {extra}"
        ),
    };
    let mut options = Options::new(work.join("state"));
    options.qemu = need("qemu-system-x86_64");
    options.accel = Accel::Tcg;
    options.cpus = cpus;
    options.mem_mb = 512;
    options.echo = false;
    options.timeout = Some(Duration::from_secs(180));
    options.grace = Duration::from_secs(10);
    run(&boot, &options, &Interrupt::new()).unwrap()
}

fn boot_with(runtime: &str, spec: Spec) {
    need("qemu-system-x86_64");
    need("cpio");
    let work = tempfile::tempdir().unwrap();
    let initrd = initramfs::build(work.path(), spec);
    let outcome = boot_once(work.path(), &initrd, runtime, 1, "");
    let console = &outcome.console;
    println!("{console}");
    assert!(!outcome.timed_out, "the boot did not finish in time");
    assert!(outcome.success(), "the boot failed: {outcome:?}");
    for marker in [
        "ISSUE-SCRIPT-RAN",
        "HELLO-FROM-ONBOOT",
        "written",
        "web: SERVICE-UP",
        "zz-poweroff: POWEROFF-SERVICE",
        "BYE-FROM-ONSHUTDOWN",
        "reboot: Power down",
    ] {
        assert!(console.contains(marker), "{marker} is not on the console");
    }
    let timeline = outcome.timeline();
    let names: Vec<String> = timeline
        .iter()
        .map(|e| {
            format!("{} {}", e.event, e.name.clone().unwrap_or_default())
                .trim()
                .to_owned()
        })
        .collect();
    for expected in [
        "init-start",
        "root-done",
        "onboot-exit 000-hello",
        "onboot-done",
        "service-start web",
        "service-ready web",
        "service-start zz-poweroff",
        "services-started",
        "shutdown",
        "onshutdown-start 000-bye",
        "poweroff",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("onboot-failed") || n.starts_with("service-failed")),
        "{names:?}"
    );
    // Order from the timeline's own stamps: `after` waited for readiness.
    assert!(
        ms(&timeline, Event::ServiceReady, Some("web"))
            <= ms(&timeline, Event::ServiceStart, Some("zz-poweroff"))
    );
    let root = timeline
        .iter()
        .find(|e| e.event == Event::RootDone)
        .unwrap();
    assert_eq!(root.detail.as_deref(), Some("bind"));

    // The numbers for the report (printed, never asserted).
    let kind = if spec.uncompressed_modules {
        ".ko"
    } else {
        ".ko.xz"
    };
    let modules = timeline
        .iter()
        .find(|e| e.event == Event::ModulesDone)
        .and_then(|e| e.detail.clone())
        .unwrap_or_default();
    eprintln!(
        "TIMELINE {runtime} {kind}: {} [modules: {modules}]",
        summary(&timeline)
    );
}

/// The boot's numbers: kernel start to init, init to onboot done, onboot
/// done to the first service, and the init's own steps before onboot.
fn summary(timeline: &[Entry]) -> String {
    let init = ms(timeline, Event::InitStart, None);
    let onboot_start = ms(timeline, Event::OnbootStart, Some("000-hello"));
    let onboot_exit = ms(timeline, Event::OnbootExit, Some("000-hello"));
    let onboot_done = ms(timeline, Event::OnbootDone, None);
    let first_start = ms(timeline, Event::ServiceStart, Some("web"));
    let root = ms(timeline, Event::RootDone, None);
    let mounts = ms(timeline, Event::MountsDone, None);
    let modules = ms(timeline, Event::ModulesDone, None);
    format!(
        "kernel->init {init} ms; init->onboot done {} ms (container {} ms); onboot done->service web started {} ms; init overhead before onboot {} ms (root {} ms, mounts {} ms, modules {} ms, rest {} ms)",
        onboot_done - init,
        onboot_exit - onboot_start,
        first_start - onboot_done,
        onboot_start - init,
        root - init,
        mounts - root,
        modules - mounts,
        onboot_start - modules,
    )
}

/// The numbers behind issue 6's overhead goal, several boots each: modules
/// as `.ko.xz` or `.ko`, loaded by one thread or in parallel on two vCPUs,
/// the root left by bind+move or by copying it. Prints, asserts nothing about time.
/// `cargo nextest run -p slipway-run --run-ignored only timeline_matrix --no-capture`
#[test]
#[ignore = "a measurement, about five minutes of TCG boots"]
fn timeline_matrix() {
    let runs: usize = std::env::var("SLIPWAY_TIMELINE_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let work = tempfile::tempdir().unwrap();
    let xz = initramfs::build(&work.path().join("xz"), Spec::default());
    let plain = initramfs::build(
        &work.path().join("plain"),
        Spec {
            uncompressed_modules: true,
            ..Spec::default()
        },
    );
    let one = "slipway.module_threads=1";
    let configs: [(&str, &Path, u32, &str); 6] = [
        (".ko.xz 2cpu 1-thread bind", &xz, 2, one),
        (".ko.xz 2cpu parallel bind", &xz, 2, ""),
        (".ko 2cpu 1-thread bind", &plain, 2, one),
        (".ko 2cpu parallel bind", &plain, 2, ""),
        (".ko.xz 1cpu bind", &xz, 1, ""),
        (".ko.xz 1cpu copy", &xz, 1, "slipway.root=copy"),
    ];
    for (label, initrd, cpus, extra) in configs {
        for _ in 0..runs {
            let outcome = boot_once(work.path(), initrd, "crun", cpus, extra);
            assert!(outcome.success(), "{label}: {outcome:?}");
            let timeline = outcome.timeline();
            let detail = |event: Event| {
                timeline
                    .iter()
                    .find(|e| e.event == event)
                    .and_then(|e| e.detail.clone())
                    .unwrap_or_default()
            };
            eprintln!(
                "TIMELINE crun {label}: {} [root: {}; modules: {}]",
                summary(&timeline),
                detail(Event::RootDone),
                detail(Event::ModulesDone)
            );
        }
    }
}

#[test]
fn boots_with_crun() {
    boot_with("crun", Spec::default());
}

#[test]
fn boots_with_runc() {
    boot_with("runc", Spec::default());
}

/// Modules shipped decompressed (`.ko`), loaded without the kernel's xz.
#[test]
fn boots_with_uncompressed_modules() {
    boot_with(
        "crun",
        Spec {
            uncompressed_modules: true,
            ..Spec::default()
        },
    );
}
