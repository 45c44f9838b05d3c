//! `slipway run` booting the boot tests' initramfs (built by
//! `slipway_testkit::initramfs`) under qemu with TCG: a clean poweroff from
//! inside the guest exits 0 and leaves the console file; Ctrl-C powers the
//! guest off through the ACPI power button after a published port answered.
//!
//! Needs what `slipway_testkit::initramfs` needs, and qemu-system-x86_64
//! and qemu-img.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(
    clippy::disallowed_methods,
    reason = "deadlines for the machines the tests wait on"
)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use slipway_testkit::initramfs::{self, Spec, kernel_dir, need};
use slipway_testkit::tiny;

/// `<dir>/img-kernel`, `-initrd.img`, `-cmdline`, as `slipway build` writes
/// them; returns the prefix.
fn image(dir: &Path, spec: Spec) -> PathBuf {
    need("qemu-system-x86_64");
    need("qemu-img");
    let initrd = initramfs::build(&dir.join("work"), spec);
    let prefix = dir.join("img");
    fs::copy(kernel_dir().join("vmlinuz"), dir.join("img-kernel")).unwrap();
    fs::rename(initrd, dir.join("img-initrd.img")).unwrap();
    // no_timer_check: a loaded host makes TCG fail the IO-APIC timer check;
    // panic=-1: a panic ends the run at once.
    fs::write(
        dir.join("img-cmdline"),
        "console=ttyS0 quiet no_timer_check panic=-1 slipway.runtime=crun\n",
    )
    .unwrap();
    prefix
}

fn slipway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
}

fn wait_until(child: &mut Child, deadline: Instant) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("slipway run did not end in time");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn boots_a_prefix_and_exits_zero_after_poweroff() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = image(dir.path(), Spec::default());
    let console = dir.path().join("console.log");
    let disk = dir.path().join("data.qcow2");
    let output = slipway()
        .arg("run")
        .arg("qemu")
        .args(["--accel", "tcg", "--mem", "512", "--timeout", "240"])
        .arg("--console-file")
        .arg(&console)
        .arg("--disk")
        .arg(format!("file={},size=16M", disk.display()))
        .arg(&prefix)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "slipway run: {}\n{stdout}\n{stderr}",
        output.status
    );
    let text = fs::read_to_string(&console).unwrap();
    for marker in [
        "HELLO-FROM-ONBOOT",
        "web: SERVICE-UP",
        "BYE-FROM-ONSHUTDOWN",
        "slipway: ",
        "reboot: Power down",
    ] {
        assert!(text.contains(marker), "{marker} is not in the console file");
    }
    // The console went to standard output too.
    assert!(stdout.contains("HELLO-FROM-ONBOOT"));
    assert!(disk.is_file(), "the missing disk was not created");
    // The state directory is `<prefix>-state`; the MAC address stays.
    let mac = fs::read_to_string(dir.path().join("img-state/mac-addr")).unwrap();
    assert_eq!(mac.trim().len(), 17, "{mac}");
    // Private; the control channel's sockets gone with the machine.
    let state = dir.path().join("img-state");
    let mode = fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    for socket in ["control.sock", "control.chardev"] {
        assert!(!state.join(socket).exists(), "{socket} left behind");
    }
}

#[test]
fn run_rejects_what_it_cannot_boot() {
    let dir = tempfile::tempdir().unwrap();
    let output = slipway()
        .args(["run", "qemu"])
        .arg(dir.path().join("nothing"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("it does not exist, and neither does"),
        "{stderr}"
    );
    let output = slipway().args(["run", "vbox", "x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));

    // A configuration, random bytes, and a prefix whose kernel is a YAML
    // file: refused at once with what they are, qemu never started and no
    // state directory made.
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/minimal.yml");
    let random = dir.path().join("random.img");
    let bytes: Vec<u8> = (0u32..1 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&random, bytes).unwrap();
    fs::copy(&yaml, dir.path().join("cfg-kernel")).unwrap();
    fs::write(dir.path().join("cfg-initrd.img"), b"070701").unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let called = dir.path().join("called");
    let fake = bin.join("qemu-system-x86_64");
    fs::write(&fake, format!("#!/bin/sh\ntouch '{}'\n", called.display())).unwrap();
    fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for (target, says) in [
        (
            yaml.clone(),
            "it is a text file (a YAML configuration?), not an image: build it first",
        ),
        (random.clone(), "it is a file of unknown kind (it starts "),
        (
            dir.path().join("cfg"),
            "cfg-kernel: it should be a kernel, but it is a text file",
        ),
    ] {
        let output = slipway()
            .args(["run", "--accel", "tcg"])
            .arg(&target)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{target:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{target:?}: {stderr}");
        assert!(!called.exists(), "qemu started for {target:?}");
    }
    assert!(!dir.path().join("random-state").exists());
    assert!(!dir.path().join("cfg-state").exists());
}

/// `--arch` picks the machine: amd64 starts qemu-system-x86_64 (a stand-in
/// on PATH that records its arguments), any other architecture is refused
/// before anything starts.
#[test]
fn run_follows_arch_and_refuses_a_foreign_one() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("img");
    // A bzImage's setup header is all a kernel needs to be taken for one.
    let mut kernel = vec![0u8; 1024];
    kernel[0x202..0x206].copy_from_slice(b"HdrS");
    fs::write(dir.path().join("img-kernel"), kernel).unwrap();
    fs::write(dir.path().join("img-initrd.img"), b"070701").unwrap();
    fs::write(dir.path().join("img-cmdline"), b"console=ttyS0\n").unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let called = dir.path().join("called");
    let fake = bin.join("qemu-system-x86_64");
    fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" > '{}'\n", called.display()),
    )
    .unwrap();
    fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    for arch in ["arm64", "riscv64", "s390x"] {
        let output = slipway()
            .args(["--arch", arch, "run", "--accel", "tcg"])
            .arg(&prefix)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{arch}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "boots amd64 machines (qemu-system-x86_64, q35), not {arch}"
            )),
            "{stderr}"
        );
        assert!(!called.exists(), "qemu started for {arch}");
        assert!(!dir.path().join("img-state").exists(), "{arch} left state");
    }

    let output = slipway()
        .args([
            "--arch",
            "amd64",
            "run",
            "--accel",
            "tcg",
            "--timeout",
            "60",
        ])
        .arg(&prefix)
        .env("PATH", &path)
        .output()
        .unwrap();
    let args = fs::read_to_string(&called).unwrap_or_else(|_| {
        panic!(
            "qemu-system-x86_64 was not started: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(args.contains("-machine q35,accel=tcg"), "{args}");
    assert!(args.contains("-kernel"), "{args}");
}

/// A published port answers; Ctrl-C (SIGINT to `slipway run`) presses the
/// ACPI power button through qemu's monitor, the init powers off cleanly
/// (onshutdown runs) and `slipway run` exits 0.
#[test]
fn publish_then_ctrl_c_powers_off_through_acpi() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = image(
        dir.path(),
        Spec {
            self_poweroff: false,
            network: true,
            ..Spec::default()
        },
    );
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = slipway()
        .args(["run", "--accel", "tcg", "--mem", "512", "--timeout", "300"])
        .args(["--grace", "120", "--publish"])
        .arg(format!("{port}:8080"))
        .arg(&prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            // The init's own modules (the power button) come last.
            Ok(line) if line.contains("modules-done later") => break,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("the boot never finished: {}", reader.join().unwrap());
            }
        }
    }
    // The guest's httpd through the published port.
    let mut answer = String::new();
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            if stream
                .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                .is_ok()
            {
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/") {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if !answer.starts_with("HTTP/1.") {
        let _ = child.kill();
        panic!("no HTTP answer: {answer:?}\n{}", reader.join().unwrap());
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait_until(&mut child, Instant::now() + Duration::from_secs(180));
    let console = reader.join().unwrap();
    assert!(status.success(), "slipway run: {status}\n{console}");
    for marker in ["slipway: ", "BYE-FROM-ONSHUTDOWN", "reboot: Power down"] {
        assert!(console.contains(marker), "{marker} not seen:\n{console}");
    }
    assert!(
        console.lines().any(|l| l.contains(" shutdown")),
        "no shutdown on the timeline:\n{console}"
    );
}

/// `<dir>/tiny-kernel`, `-initrd.img`, `-cmdline`: the test kernel with
/// testkit's tiny initramfs running `script`; returns the prefix.
fn tiny_prefix(dir: &Path, modules: &[&str], script: &str) -> PathBuf {
    need("qemu-system-x86_64");
    let initrd = tiny::initramfs(&dir.join("work"), modules, script);
    fs::copy(kernel_dir().join("vmlinuz"), dir.join("tiny-kernel")).unwrap();
    fs::rename(initrd, dir.join("tiny-initrd.img")).unwrap();
    fs::write(
        dir.join("tiny-cmdline"),
        "console=ttyS0 quiet no_timer_check panic=-1\n",
    )
    .unwrap();
    dir.join("tiny")
}

/// `slipway run PREFIX` in the background, its console lines on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: std::thread::JoinHandle<String>,
}

fn start(prefix: &Path) -> Running {
    fs::create_dir_all(prefix.parent().unwrap().join("work")).unwrap();
    let mut child = slipway()
        .args([
            "run",
            "--accel",
            "tcg",
            "--mem",
            "256",
            "--networking",
            "none",
        ])
        .args(["--timeout", "300", "--grace", "120"])
        .arg(prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    Running {
        child,
        lines,
        stdout,
    }
}

impl Running {
    /// Wait for a console line containing `marker`.
    fn wait_for(&mut self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return,
                Ok(_) => {}
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("{marker} never came on the console");
                }
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the end; returns the status, stdout and stderr.
    fn finish(mut self, within: Duration) -> (ExitStatus, String, String) {
        let status = wait_until(&mut self.child, Instant::now() + within);
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, self.stdout.join().unwrap(), stderr)
    }
}

/// The pid qemu wrote in the state directory.
fn qemu_pid(prefix: &Path) -> u32 {
    let file = PathBuf::from(format!("{}-state/qemu.pid", prefix.display()));
    fs::read_to_string(&file).unwrap().trim().parse().unwrap()
}

/// A process that is gone, or a zombie nobody reaped yet: it runs no more.
fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    gone(pid)
}

/// SIGTERM acts as Ctrl-C: the ACPI power button, and the guest, waiting
/// for it, powers off; `slipway run` exits 0.
#[test]
fn sigterm_presses_the_power_button() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = tiny_prefix(
        dir.path(),
        tiny::POWER_BUTTON_MODULES,
        tiny::WAIT_FOR_POWER_BUTTON,
    );
    let mut running = start(&prefix);
    running.wait_for("WAITING-FOR-POWER-BUTTON");
    running.signal("TERM");
    let (status, stdout, stderr) = running.finish(Duration::from_secs(120));
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(stdout.contains("POWER-BUTTON-PRESSED"), "{stdout}");
    assert!(!stdout.contains("NO-POWER-BUTTON"), "{stdout}");
}

/// A guest that ignores the power button: a second interrupt (here two
/// SIGTERMs) stops the machine at once, long before the grace ends.
#[test]
fn a_second_interrupt_stops_the_machine_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = tiny_prefix(dir.path(), &[], tiny::SLEEP_FOREVER);
    let mut running = start(&prefix);
    running.wait_for("SLEEPING-FOREVER");
    let qemu = qemu_pid(&prefix);
    running.signal("TERM");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "one SIGTERM ended the run without a poweroff"
    );
    assert!(!gone(qemu), "qemu ended after one SIGTERM");
    running.signal("INT");
    // The grace is 120 s: ending within 20 is "at once".
    let (status, stdout, stderr) = running.finish(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("stopped at once by a second interrupt"),
        "{stderr}"
    );
    assert!(
        wait_gone(qemu, Duration::from_secs(5)),
        "qemu {qemu} still runs"
    );
}

/// qemu never outlives `slipway run`, even one killed with SIGKILL, which
/// no handler sees.
#[test]
fn qemu_dies_with_a_killed_slipway_run() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = tiny_prefix(dir.path(), &[], tiny::SLEEP_FOREVER);
    let mut running = start(&prefix);
    running.wait_for("SLEEPING-FOREVER");
    let qemu = qemu_pid(&prefix);
    assert!(!gone(qemu), "qemu {qemu} is not running");
    running.signal("KILL");
    // Not `finish`: qemu shares slipway's standard error, and reading it to
    // the end would wait for a qemu that outlived slipway.
    let status = wait_until(&mut running.child, Instant::now() + Duration::from_secs(20));
    assert!(status.code().is_none(), "{status}");
    assert!(
        wait_gone(qemu, Duration::from_secs(10)),
        "qemu {qemu} outlived slipway run"
    );
}

/// `--detached`: qemu and the control bridge (the hidden `control-bridge`
/// command, in a session of its own) outlive `slipway run`; the bridge ends
/// when the guest powers off and takes its sockets with it.
#[test]
fn a_detached_machine_keeps_its_control_bridge_until_qemu_ends() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = image(dir.path(), Spec::default());
    let output = slipway()
        .arg("run")
        .args(["--accel", "tcg", "--mem", "512", "--detached"])
        .arg(&prefix)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "slipway run: {stderr}");
    assert!(stderr.contains("control bridge pid"), "{stderr}");
    let state = dir.path().join("img-state");
    let qemu = qemu_pid(&prefix);
    let bridge: u32 = fs::read_to_string(state.join("control.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!gone(bridge), "the bridge outlives slipway run");
    let stat = fs::read_to_string(format!("/proc/{bridge}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Field 6 of stat, the session id: its own.
    assert_eq!(fields[3], bridge.to_string(), "{stat}");
    assert!(state.join("control.sock").exists());
    // The guest powers off by itself; qemu, then the bridge, end.
    assert!(wait_gone(qemu, Duration::from_secs(240)), "qemu still runs");
    assert!(
        wait_gone(bridge, Duration::from_secs(10)),
        "the bridge still runs"
    );
    for file in ["control.sock", "control.pid", "control.chardev"] {
        assert!(!state.join(file).exists(), "{file} left behind");
    }
    let console = fs::read_to_string(state.join("console.log")).unwrap();
    assert!(console.contains("reboot: Power down"), "{console}");
}
