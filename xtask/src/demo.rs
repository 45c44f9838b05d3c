//! `cargo xtask demo`: the README's first command. Builds the packages of
//! `pkg/` into the cache, builds `examples/minimal.yml` as kernel+initrd
//! into `<target>/demo/`, boots it with `slipway run` (KVM when it works,
//! else TCG), asks its web server for a page through a published port, then
//! powers it off through the example's poweroff script (SIGUSR2 to the
//! guest's PID 1). `slipway run` prints the boot timeline's summary as it
//! ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Generous: TCG on a busy machine boots in a minute or two.
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

/// `GET path` on the published port, retried until an answer comes; the
/// whole answer.
fn http_get(port: u16, path: &str) -> Result<String> {
    let until = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            let request = format!("GET {path} HTTP/1.0\r\nHost: demo\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/")
            {
                return Ok(answer);
            }
        }
        if Instant::now() > until {
            bail!("nothing answered GET {path} on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The body of an HTTP answer.
fn body(answer: &str) -> &str {
    answer
        .split_once("\r\n\r\n")
        .map_or(answer, |(_, body)| body)
        .trim_end()
}

pub fn command() -> Result<()> {
    crate::deps::ensure()?;
    // Builds slipway (debug) first; packages already cached are skipped.
    crate::packages::command(&[])?;
    let root = crate::workspace_root();
    let slipway = crate::target_dir().join("debug/slipway");
    let out = crate::target_dir().join("demo");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let mut build = Command::new(&slipway);
    build.current_dir(&root).args([
        "build",
        "--format",
        "kernel+initrd",
        "--name",
        "minimal",
        "--dir",
    ]);
    build.arg(&out).arg("examples/minimal.yml");
    crate::run_checked(build)?;

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let mut run = Command::new(&slipway);
    run.current_dir(&root)
        .args(["run", "qemu", "--accel", "auto", "--timeout", "900"])
        // A busy host makes TCG fail the kernel's IO-APIC timer check.
        .args(["--append", "no_timer_check", "--publish"])
        .arg(format!("{port}:80"))
        .arg(out.join("minimal"))
        .stdout(Stdio::piped());
    eprintln!("xtask: running {run:?}");
    let mut child = run.spawn().context("starting slipway run")?;
    let stdout = child.stdout.take().context("slipway run's output")?;
    let (tx, lines) = channel();
    let echo = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            let _ = tx.send(line);
        }
    });

    // The console until the services are up.
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(" services-started") => break,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                bail!("the guest did not start its services in time");
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                bail!("slipway run ended ({status}) before the services started");
            }
        }
    }
    let page = http_get(port, "/")?;
    eprintln!(
        "xtask: the guest's web server, through 127.0.0.1:{port}:\n{}",
        body(&page)
    );
    let answer = http_get(port, "/cgi-bin/poweroff")?;
    eprintln!("xtask: /cgi-bin/poweroff: {}", body(&answer));

    let deadline = Instant::now() + STEP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the guest did not power off in time");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = echo.join();
    if !status.success() {
        bail!("slipway run failed: {status}");
    }
    eprintln!(
        "xtask: done; the image is {}-kernel, -initrd.img and -cmdline",
        out.join("minimal").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::body;

    #[test]
    fn body_of_an_answer() {
        assert_eq!(body("HTTP/1.1 200 OK\r\nA: b\r\n\r\nhello\n"), "hello");
        assert_eq!(body("no headers"), "no headers");
    }
}
