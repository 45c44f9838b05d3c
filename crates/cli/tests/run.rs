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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use slipway_testkit::initramfs::{self, Spec, kernel_dir, need};

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
    assert!(stderr.contains("not a kernel+initrd prefix"), "{stderr}");
    let output = slipway().args(["run", "vbox", "x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
}

/// `--arch` picks the machine: amd64 starts qemu-system-x86_64 (a stand-in
/// on PATH that records its arguments), any other architecture is refused
/// before anything starts.
#[test]
fn run_follows_arch_and_refuses_a_foreign_one() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("img");
    for part in ["kernel", "initrd.img"] {
        fs::write(dir.path().join(format!("img-{part}")), b"x").unwrap();
    }
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
            Ok(line) if line.contains("modules-done init") => break,
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
