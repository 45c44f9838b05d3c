//! Build an image with the real `slipway build` and boot it with the real
//! `slipway run` under TCG, watching the serial console as it comes.
//!
//! The boot tests' common moves: [`build`] a kernel+initrd from configs,
//! [`Guest::start`] it, [`Guest::wait_for`] a console line, talk to it
//! ([`http_get`] through `--publish`), then [`Guest::wait`] for the end.
//! Every wait has a deadline; a missed one kills qemu and fails the test
//! with the console so far. Like the other boot helpers these panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::initramfs::need;

/// Kernel parameters every TCG boot gets: a loaded host makes TCG fail the
/// IO-APIC timer check, and a panic should end the run at once.
pub const TCG_APPEND: [&str; 2] = ["no_timer_check", "panic=-1"];

/// `slipway --cache CACHE build --format kernel+initrd --name NAME --dir DIR
/// CONFIG...`; returns the prefix `DIR/NAME` that `slipway run` boots.
pub fn build(slipway: &Path, cache: &Path, configs: &[&Path], dir: &Path, name: &str) -> PathBuf {
    build_with(slipway, cache, configs, dir, name, &[])
}

/// [`build`] with more `slipway build` options (`--offline`, ...).
pub fn build_with(
    slipway: &Path,
    cache: &Path,
    configs: &[&Path],
    dir: &Path,
    name: &str,
    options: &[&str],
) -> PathBuf {
    let output = Command::new(slipway)
        .arg("--cache")
        .arg(cache)
        .args([
            "build",
            "--format",
            "kernel+initrd",
            "--name",
            name,
            "--dir",
        ])
        .arg(dir)
        .args(options)
        .args(configs)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "slipway build {configs:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    dir.join(name)
}

/// A free TCP port on the loopback interface (for `--publish`).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `GET path` on `127.0.0.1:port`, retried until an HTTP answer comes or
/// `timeout` passes; the whole answer (status line, headers, body), or
/// `None` when nothing answered.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<String> {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let request = format!("GET {path} HTTP/1.0\r\nHost: guest\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/")
            {
                return Some(answer);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

/// A running `slipway run`.
#[derive(Debug)]
pub struct Guest {
    child: Child,
    lines: Receiver<String>,
    console: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    /// qemu's pid file: qemu runs in its own process group, so killing
    /// `slipway run` alone would leave it running.
    qemu_pid_file: PathBuf,
}

impl Guest {
    /// `slipway run qemu --accel tcg --mem 512 ARGS... PREFIX` (`--mem` in
    /// ARGS replaces the 512), with
    /// [`TCG_APPEND`] on the kernel command line and a hard `--timeout`
    /// of 600 s as the last line of defence.
    pub fn start(slipway: &Path, prefix: &Path, args: &[String]) -> Guest {
        need("qemu-system-x86_64");
        let mut cmd = Command::new(slipway);
        cmd.args(["run", "qemu", "--accel", "tcg"]);
        if !args.iter().any(|a| a == "--mem") {
            cmd.args(["--mem", "512"]);
        }
        cmd.args(["--timeout", "600"]);
        for a in TCG_APPEND {
            cmd.arg("--append").arg(a);
        }
        cmd.args(args).arg(prefix);
        let state = args
            .iter()
            .position(|a| a == "--state")
            .and_then(|i| args.get(i + 1))
            .map_or_else(
                || {
                    let mut dir = prefix.as_os_str().to_owned();
                    dir.push("-state");
                    PathBuf::from(dir)
                },
                PathBuf::from,
            );
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        let console = Arc::new(Mutex::new(String::new()));
        let all = Arc::clone(&console);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                {
                    let mut all = all.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        Guest {
            child,
            lines,
            console,
            reader: Some(reader),
            qemu_pid_file: state.join("qemu.pid"),
        }
    }

    /// The console so far.
    pub fn console(&self) -> String {
        self.console.lock().unwrap().clone()
    }

    /// Wait for a console line containing `needle`; returns that line.
    /// Lines seen while waiting are consumed: wait for markers in the order
    /// the guest prints them, or search [`Guest::console`] afterwards.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    panic!(
                        "{needle:?} did not appear within {timeout:?}:\n{}",
                        self.console()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!(
                        "slipway run ended ({status}) before {needle:?} appeared:\n{}",
                        self.console()
                    );
                }
            }
        }
    }

    /// Wait until a console line containing each of `needles` has been
    /// seen, in any order (for output of concurrent services); returns
    /// those lines in the order of `needles`. Consumes lines as
    /// [`Guest::wait_for`] does.
    pub fn wait_for_all(&mut self, needles: &[&str], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut found: Vec<Option<String>> = vec![None; needles.len()];
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    for (needle, slot) in needles.iter().zip(found.iter_mut()) {
                        if slot.is_none() && line.contains(needle) {
                            *slot = Some(line.clone());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    panic!(
                        "not all of {needles:?} appeared within {timeout:?}:\n{}",
                        self.console()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!(
                        "slipway run ended ({status}) before all of {needles:?} appeared:\n{}",
                        self.console()
                    );
                }
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Ctrl-C: `slipway run` asks the guest to power off (ACPI).
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -INT failed");
    }

    fn kill(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.qemu_pid_file) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for `slipway run` to end; its status and the whole console.
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "slipway run did not end within {timeout:?}:\n{}",
                    self.console()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status, self.console())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // A failing test must not leave qemu running.
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
    }
}
