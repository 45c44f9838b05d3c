//! End-to-end boots of the guest's features, on images built by the real
//! `slipway build` from slipway's own packages (`pkg/`, built once into a
//! shared cache by `slipway_testkit::packages`) and booted by `slipway run`
//! under TCG:
//!
//! * `base.yml` + `supervision.yml` + `bundles.yml`: restart policies and
//!   their back-off, readiness and `after`, read-only and read-write roots,
//!   a shared volume, `runtime.json`'s mkdir, a veth pair, a bound network
//!   namespace;
//! * `linuxkit.yml` + `broken.yml`: a LinuxKit-style image (the onboot hook
//!   comes with the runc package, the runtime is runc), with broken bundles
//!   that are reported while the boot goes on;
//! * `base.yml` + `control.yml`: the control plane's daemons, the
//!   multiplexer and the service manager, started by the init in order,
//!   registered, and stopped at shutdown.
//!
//! The configs are in `tests/guest/`; each test copies them beside its copy
//! of `pkg/` so that their `@pkg:../pkg/...` references resolve there.
//! Timings are checked only on the guest's own timeline stamps. Each boot
//! ends with a clean poweroff from inside the guest; every wait has a
//! deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use slipway_contract::timeline::{Entry, Event, parse_transcript};
use slipway_testkit::boot::{Guest, build};
use slipway_testkit::packages::{Packages, standard};

/// How long one boot may take, from `slipway run` to its exit: generous,
/// for a loaded machine emulating the guest.
const BOOT_DEADLINE: Duration = Duration::from_secs(540);

fn slipway() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_slipway"))
}

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest")
}

/// Copy `tests/guest/<name>` to `<copy>/guest/<name>`; its path.
fn config(packages: &Packages, name: &str) -> PathBuf {
    let dir = packages.root.path().join("guest");
    fs::create_dir_all(&dir).unwrap();
    let to = dir.join(name);
    fs::copy(configs_dir().join(name), &to).unwrap();
    to
}

/// A finished boot: its console and its timeline.
struct Boot {
    console: String,
    timeline: Vec<Entry>,
}

/// Build `configs` (in this order) into a kernel+initrd, boot it, and wait
/// for a clean poweroff.
fn boot(packages: &Packages, configs: &[&str]) -> Boot {
    boot_with(packages, configs, &[])
}

/// [`boot`] with more `slipway run` arguments.
fn boot_with(packages: &Packages, configs: &[&str], run_args: &[String]) -> Boot {
    let paths: Vec<PathBuf> = configs.iter().map(|c| config(packages, c)).collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let out = packages.root.path().join("out");
    let prefix = build(slipway(), &packages.cache, &refs, &out, "guest");
    let guest = Guest::start(slipway(), &prefix, run_args);
    let (status, console) = guest.wait(BOOT_DEADLINE);
    // Shown by the test runner for a failing test, or with --no-capture.
    eprintln!("console of {configs:?}:\n{console}");
    let timeline = parse_transcript(&console);
    let boot = Boot { console, timeline };
    boot.check(
        status.success(),
        "slipway run exits 0 after a clean poweroff",
    );
    boot.check(
        boot.all(Event::Poweroff, None).len() == 1,
        "the init powered off",
    );
    boot.check(boot.all(Event::Fatal, None).is_empty(), "no fatal error");
    boot
}

impl Boot {
    fn check(&self, ok: bool, what: &str) {
        if !ok {
            panic!("{what}: not so. Console:\n{}", self.console);
        }
    }

    /// The entries of `event` (for `name`, when given), in order.
    fn all(&self, event: Event, name: Option<&str>) -> Vec<&Entry> {
        self.timeline
            .iter()
            .filter(|e| e.event == event && (name.is_none() || e.name.as_deref() == name))
            .collect()
    }

    /// The only entry of `event` for `name`.
    fn one(&self, event: Event, name: &str) -> &Entry {
        let found = self.all(event, Some(name));
        self.check(found.len() == 1, &format!("exactly one {event} {name}"));
        found[0]
    }

    /// Where the only entry of `event` for `name` is in the timeline.
    fn index(&self, event: Event, name: Option<&str>) -> usize {
        let found: Vec<usize> = (0..self.timeline.len())
            .filter(|i| {
                let e = &self.timeline[*i];
                e.event == event && e.name.as_deref() == name
            })
            .collect();
        self.check(
            found.len() == 1,
            &format!("exactly one {event} {}", name.unwrap_or("-")),
        );
        found[0]
    }

    /// Whether a console line contains `text`.
    fn printed(&self, text: &str) -> bool {
        self.console.lines().any(|l| l.contains(text))
    }

    fn expect_printed(&self, text: &str) {
        self.check(self.printed(text), &format!("the console shows {text:?}"));
    }

    fn detail<'a>(&self, entry: &'a Entry) -> &'a str {
        entry.detail.as_deref().unwrap_or_default()
    }
}

/// A service that exits at once and is restarted: its starts follow its
/// exits after the back-off, 1 s then 2 s, by the guest's stamps.
fn check_backoff(boot: &Boot, name: &str, exit: &str) {
    let starts = boot.all(Event::ServiceStart, Some(name));
    let exits = boot.all(Event::ServiceExit, Some(name));
    let restarts = boot.all(Event::ServiceRestart, Some(name));
    boot.check(starts.len() >= 3, &format!("{name} started three times"));
    boot.check(
        exits.len() >= 2 && restarts.len() >= 2,
        &format!("{name} exited and was restarted twice"),
    );
    for (i, min_gap) in [(0, 1000), (1, 2000)] {
        boot.check(
            boot.detail(exits[i]) == exit,
            &format!("{name}'s run {i} ended with {exit}"),
        );
        boot.check(
            boot.detail(restarts[i]) == format!("in {min_gap} ms"),
            &format!("{name}'s restart {i} waits {min_gap} ms"),
        );
        let gap = starts[i + 1].ms.saturating_sub(exits[i].ms);
        boot.check(
            starts[i + 1].ms >= exits[i].ms && gap >= min_gap,
            &format!("{name} restarted {gap} ms after its exit {i}, at least {min_gap} ms"),
        );
    }
}

/// A service that ran once, ended with `exit` and was not restarted.
fn check_not_restarted(boot: &Boot, name: &str, exit: &str) {
    boot.one(Event::ServiceStart, name);
    let ended = boot.one(Event::ServiceExit, name);
    boot.check(
        boot.detail(ended) == exit,
        &format!("{name} ended with {exit}"),
    );
    boot.check(
        boot.all(Event::ServiceRestart, Some(name)).is_empty(),
        &format!("{name} is not restarted"),
    );
}

#[test]
fn supervision_and_bundles() {
    let packages = standard(slipway());
    let boot = boot(&packages, &["base.yml", "supervision.yml", "bundles.yml"]);

    // Restart policies.
    check_backoff(&boot, "always", "exit status 0");
    check_backoff(&boot, "onfail", "exit status 3");
    let killed = boot.all(Event::ServiceExit, Some("onfail-signal"));
    let restarted = boot.all(Event::ServiceRestart, Some("onfail-signal"));
    boot.check(
        boot.all(Event::ServiceStart, Some("onfail-signal")).len() >= 2
            && !restarted.is_empty()
            && boot.detail(killed[0]) == "killed by signal 9"
            && boot.detail(restarted[0]) == "in 1000 ms",
        "onfail-signal, killed by a signal the init did not send, is restarted",
    );
    check_not_restarted(&boot, "onfail-ok", "exit status 0");
    check_not_restarted(&boot, "never", "exit status 1");

    // Readiness and order: first ready, then second started and ready,
    // then third started; by stamps and by place in the timeline.
    let chain = [
        (Event::ServiceStart, "first"),
        (Event::ServiceReady, "first"),
        (Event::ServiceStart, "second"),
        (Event::ServiceReady, "second"),
        (Event::ServiceStart, "third"),
        (Event::ServiceStart, "zz-poweroff"),
    ];
    for pair in chain.windows(2) {
        let (a, b) = (
            boot.one(pair[0].0, pair[0].1),
            boot.one(pair[1].0, pair[1].1),
        );
        boot.check(
            a.ms <= b.ms
                && boot.index(pair[0].0, Some(pair[0].1)) < boot.index(pair[1].0, Some(pair[1].1)),
            &format!(
                "{} {} comes before {} {}",
                pair[0].0, pair[0].1, pair[1].0, pair[1].1
            ),
        );
    }
    for name in ["first", "second"] {
        let ready = boot.one(Event::ServiceReady, name);
        boot.check(
            boot.detail(ready) == "file:/ready",
            &format!("{name} is ready by its file"),
        );
    }
    let listener = [
        boot.index(Event::ServiceStart, Some("listener")),
        boot.index(Event::ServiceReady, Some("listener")),
        boot.index(Event::ServiceStart, Some("third")),
    ];
    boot.check(
        listener.windows(2).all(|w| w[0] < w[1])
            && boot.detail(boot.one(Event::ServiceReady, "listener")) == "tcp:7777",
        "listener is ready by its port, then third starts",
    );

    // Bundles: every onboot ran to success, in order.
    let onboot = ["ro", "rw", "writer", "mkdirs", "vnet", "vhost", "vjoin"];
    boot.check(
        boot.all(Event::OnbootFailed, None).is_empty(),
        "no onboot bundle failed",
    );
    for (i, name) in onboot.iter().enumerate() {
        let id = format!("{i:03}-{name}");
        boot.check(
            boot.detail(boot.one(Event::OnbootExit, &id)) == "exit status 0",
            &format!("onboot {id} succeeded"),
        );
    }
    for text in [
        "CHECK ro-root=read-only",
        "CHECK rw-root=writable",
        "CHECK rw-root-type=overlay",
        "CHECK writer=wrote",
        "reader: CHECK volume=hello-from-writer",
        "CHECK mkdir-absolute=yes",
        "CHECK mkdir-relative=yes",
        "CHECK veth-inside=veth1",
        "CHECK veth-ns=new",
        "CHECK veth-peer=host",
        "CHECK veth1-in-host=no",
        "CHECK netns-joined=veth1",
    ] {
        boot.expect_printed(text);
    }
    check_not_restarted(&boot, "reader", "exit status 0");
    check_runtime_reason(&boot, "crun");

    // The machine went down through the init.
    let shutdown = boot.index(Event::Shutdown, None);
    boot.check(
        shutdown < boot.index(Event::Poweroff, None),
        "shutdown before poweroff",
    );
}

/// Build the test's own packages `init-lk` (slipway-init from the standard
/// `init` package, without the onboot hook) and `runc-lk` (the standard
/// runc with LinuxKit's hook links) into the shared cache.
fn linuxkit_packages(packages: &Packages) {
    let src = configs_dir().join("pkg");
    let init_lk = packages.package("init-lk");
    let runc_lk = packages.package("runc-lk");
    for (name, dir) in [("init-lk", &init_lk), ("runc-lk", &runc_lk)] {
        fs::create_dir_all(dir).unwrap();
        fs::copy(src.join(name).join("build.yml"), dir.join("build.yml")).unwrap();
    }
    fs::copy(
        packages.package("runc").join("debs.lock"),
        runc_lk.join("debs.lock"),
    )
    .unwrap();

    // /init out of the standard init image's filesystem.
    let run = |args: &[&str]| {
        let output = Command::new(slipway())
            .arg("--cache")
            .arg(&packages.cache)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "slipway {args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let init_dir = packages.package("init");
    let reference = run(&["pkg", "show-tag", init_dir.to_str().unwrap()]);
    let tar_path = packages.root.path().join("init-fs.tar");
    run(&[
        "cache",
        "export",
        "--format",
        "filesystem",
        "--output",
        tar_path.to_str().unwrap(),
        reference.trim(),
    ]);
    let mut archive = tar::Archive::new(fs::File::open(&tar_path).unwrap());
    let mut init = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        if path == Path::new("init") || path == Path::new("./init") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            init = Some(bytes);
        }
    }
    let init = init.expect("the init image has /init");
    let rootfs = init_lk.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    fs::write(rootfs.join("init"), init).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(rootfs.join("init"), fs::Permissions::from_mode(0o755)).unwrap();

    packages.build(slipway(), &[init_lk, runc_lk]);
}

/// A service whose command is not in its image: its failure on the console
/// carries the runtime's own reason, which its log keeps too (an onshutdown
/// bundle greps the log).
fn check_runtime_reason(boot: &Boot, runtime: &str) {
    let failed = boot.one(Event::ServiceFailed, "nobinary-svc");
    let detail = boot.detail(failed);
    boot.check(
        detail.contains(&format!("{runtime} run nobinary-svc: exit status"))
            && detail.contains("/no/such/binary"),
        &format!("nobinary-svc's failure says what {runtime} said: {detail}"),
    );
    boot.expect_printed("CHECK runtime-reason-logged=yes");
}

#[test]
fn linuxkit_style_image_and_broken_bundles() {
    let packages = standard(slipway());
    linuxkit_packages(&packages);
    let boot = boot(&packages, &["linuxkit.yml", "broken.yml"]);

    // The runc package's 010-onboot link is the onboot phase: onboot runs
    // after the init package's 005-volumes and before the 015 script.
    let order = [
        boot.index(Event::VolumesDone, None),
        boot.index(Event::OnbootStart, Some("000-hello")),
        boot.index(Event::OnbootDone, None),
        boot.index(Event::InitdScript, Some("015-after-onboot")),
        boot.index(Event::ServicesStarted, None),
    ];
    boot.check(
        order.windows(2).all(|w| w[0] < w[1]),
        "volumes, onboot, the 015 script, then the services",
    );
    boot.expect_printed("CHECK onboot=ran");
    boot.expect_printed("CHECK initd-after-onboot=yes");

    // Broken bundles are reported, with why, and the boot goes on.
    let broken = boot.one(Event::OnbootFailed, "001-broken");
    boot.check(
        boot.detail(broken).contains("invalid config.json"),
        "001-broken is reported for its config.json",
    );
    let missing = boot.one(Event::OnbootFailed, "002-nobinary");
    boot.check(
        boot.detail(missing).contains("/no/such/binary"),
        "002-nobinary's failure says what runc said: the command is missing",
    );
    check_runtime_reason(&boot, "runc");
    boot.check(
        boot.detail(boot.one(Event::OnbootExit, "003-after-broken")) == "exit status 0",
        "the onboot after the broken ones ran",
    );
    boot.expect_printed("CHECK onboot-after-broken=ran");
    let svc = boot.one(Event::ServiceFailed, "broken-svc");
    boot.check(
        boot.detail(svc).contains("invalid config.json"),
        "broken-svc is reported for its config.json",
    );
    boot.one(Event::ServiceStart, "poweroff");

    // A clean shutdown ran /etc/shutdown.d in order, the runc package's
    // 010-onshutdown hook running the onshutdown bundle.
    let order = [
        boot.index(Event::Shutdown, None),
        boot.index(Event::ShutdowndScript, Some("005-before")),
        boot.index(Event::OnshutdownStart, Some("000-bye")),
        boot.index(Event::OnshutdownDone, None),
        boot.index(Event::ShutdowndScript, Some("020-after")),
        boot.index(Event::Poweroff, None),
    ];
    boot.check(
        order.windows(2).all(|w| w[0] < w[1]),
        "shutdown, 005-before, onshutdown, 020-after, poweroff",
    );
    for text in [
        "CHECK shutdown-script=before",
        "CHECK onshutdown=ran",
        "CHECK shutdown-script=after",
    ] {
        boot.expect_printed(text);
    }
}

/// Faults the boot survives (`tests/guest/faults.yml`): a runtime that
/// never answers, a module nobody has, a service that crash-loops, a full
/// persistent volume, a service that ignores SIGTERM. The boot goes on,
/// the timeline says what happened, and the poweroff stays clean.
#[test]
fn guest_faults() {
    let packages = standard(slipway());
    let disk = packages.root.path().join("faults.qcow2");
    let boot = boot_with(
        &packages,
        &["base.yml", "faults.yml"],
        &[
            "--append".to_owned(),
            "slipway.runtime_timeout=10".to_owned(),
            "--disk".to_owned(),
            format!("file={},size=64M", disk.display()),
        ],
    );
    // The hook that sleeps: the runtime is killed after 10 s.
    let hang = boot.one(Event::OnbootFailed, "000-hang");
    boot.check(
        boot.detail(hang)
            .contains("crun run 000-hang: no answer in 10 s"),
        "000-hang failed for the runtime that did not answer",
    );
    // The next onboot task ran: the kernel asked for the filesystem's
    // module, the init said it has none, the mount failed.
    boot.check(
        boot.printed("CHECK nomodule-mount=") && !boot.printed("CHECK nomodule-mount=0"),
        "the mount of a filesystem without a module failed",
    );
    boot.expect_printed("CHECK nomodule-logged=yes");
    boot.expect_printed("format: /dev/vda as ext4, LABEL=faults");
    boot.check(
        boot.detail(boot.one(Event::OnbootExit, "003-mount")) == "exit status 0",
        "the volume was mounted",
    );
    // The volume filled up, and the service said so.
    let free: u64 = boot
        .console
        .lines()
        .find_map(|l| {
            l.split_once("CHECK filler-free-kb=")
                .map(|(_, n)| n.trim().to_owned())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no free space reported:\n{}", boot.console));
    boot.check(free < 1024, "the volume is full");
    // crashloop restarted with its back-off while the others ran.
    boot.check(
        boot.all(Event::ServiceRestart, Some("crashloop")).len() >= 3,
        "crashloop was restarted at least three times",
    );
    boot.expect_printed("CHECK stubborn=up");
    // stubborn ignored SIGTERM and was killed after the grace period; the
    // onshutdown task still ran, then the machine powered off.
    let stubborn = boot.all(Event::ServiceExit, Some("stubborn"));
    boot.check(
        stubborn
            .last()
            .is_some_and(|e| boot.detail(e).contains("killed by signal 9")),
        "stubborn was killed by SIGKILL",
    );
    let order = [
        boot.index(Event::Shutdown, None),
        boot.index(Event::OnshutdownStart, Some("000-bye")),
        boot.index(Event::OnshutdownDone, None),
        boot.index(Event::Poweroff, None),
    ];
    boot.check(
        order.windows(2).all(|w| w[0] < w[1]),
        "shutdown, onshutdown, poweroff",
    );
    boot.expect_printed("CHECK onshutdown=ran");
}

#[test]
fn control_plane_daemons() {
    let packages = standard(slipway());
    let boot = boot(&packages, &["base.yml", "control.yml"]);

    // The multiplexer after the onboot phase, the service manager once the
    // init's services are started and its socket is up.
    let order = [
        boot.index(Event::OnbootDone, None),
        boot.index(Event::DaemonStart, Some("mux")),
        boot.index(Event::ServiceStart, Some("registrations")),
        boot.index(Event::ServicesStarted, None),
        boot.index(Event::DaemonStart, Some("services")),
        boot.index(Event::Shutdown, None),
        boot.index(Event::DaemonExit, Some("services")),
        boot.index(Event::DaemonExit, Some("mux")),
        boot.index(Event::Poweroff, None),
    ];
    boot.check(
        order.windows(2).all(|w| w[0] < w[1]),
        "onboot, mux, the services, the manager; at shutdown the manager, then the mux, stop",
    );
    boot.check(
        boot.all(Event::DaemonRestart, None).is_empty()
            && boot.all(Event::DaemonFailed, None).is_empty(),
        "no daemon failed or was restarted",
    );
    // Both handle their TERM: the manager removes its registration, the
    // multiplexer its socket, once the calls under way have answered.
    for (name, status) in [("services", "exit status 0"), ("mux", "exit status 0")] {
        let exit = boot.one(Event::DaemonExit, name);
        boot.check(
            boot.detail(exit) == status,
            &format!("{name} ended by its TERM: {}", boot.detail(exit)),
        );
    }
    for text in [
        "registrations: CHECK components=services.json ",
        concat!(
            r#"registrations: CHECK registration={"name":"services","socket":"/run/slipway/services.sock","#,
            r#""services":["slipway.services.v1.Power","slipway.services.v1.Services"],"#,
            r#""descriptors":"/run/slipway/services.binpb"}"#
        ),
        "registrations: CHECK sockets=/run/slipway/init.sock /run/slipway/mux.sock /run/slipway/services.sock ",
    ] {
        boot.expect_printed(text);
    }
    // The service manager's API through the multiplexer, from a container:
    // the init stopped sleeper on request, and lists it so.
    boot.expect_printed("registrations: CHECK stopped=sleeper");
    boot.check(
        boot.index(Event::ServiceExit, Some("sleeper")) < boot.index(Event::Shutdown, None)
            && boot.all(Event::ServiceRestart, Some("sleeper")).is_empty(),
        "sleeper exited before the shutdown, and was not restarted",
    );
    let listed = |name: &str, status: &str| {
        boot.console.lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() >= 6 && words[1..5] == ["CHECK", "list:", name, status]
        })
    };
    boot.check(
        listed("registrations", "ready") && listed("sleeper", "stopped"),
        "the manager lists registrations ready and sleeper stopped",
    );
    boot.expect_printed("registrations: CHECK unknown=1");
    let descriptors: u64 = boot
        .console
        .lines()
        .find_map(|l| l.split("registrations: CHECK descriptors=").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    boot.check(
        descriptors > 1000,
        "the manager's descriptor set is beside its socket",
    );
}
