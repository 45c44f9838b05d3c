//! A service's stdout and stderr: FIFOs the shim writes to, copied into the
//! same size-capped files the init writes (`<name>.out.log`, `<name>.log`)
//! and, for `org.slipway.console` services, to the console line by line
//! with the prefix `<name>: `, as the init does.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::stat::Mode;
use slipway_init::sys::LOG_CAP;
use slipway_init::sys::real::CappedLog;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// Where console lines go (the process's stdout on the guest, which is the
/// console the init gave it).
pub type Console = Arc<dyn Fn(&str) + Send + Sync>;

/// The two FIFOs of one service, read for the life of the process: a
/// restarted task writes to the same ones, so its output continues the
/// same files.
#[derive(Clone, Debug)]
pub struct Fifos {
    /// The task's stdout.
    pub stdout: PathBuf,
    /// The task's stderr.
    pub stderr: PathBuf,
}

impl Fifos {
    /// Make the FIFOs of `name` in `dir` and start copying them into
    /// `log_dir`. Must run inside the tokio runtime.
    pub fn open(
        dir: &Path,
        log_dir: &Path,
        name: &str,
        console: Option<Console>,
    ) -> io::Result<Fifos> {
        fs::create_dir_all(dir)?;
        let fifos = Fifos {
            stdout: dir.join(format!("{name}.stdout")),
            stderr: dir.join(format!("{name}.stderr")),
        };
        for (fifo, suffix) in [(&fifos.stdout, ".out.log"), (&fifos.stderr, ".log")] {
            let log = CappedLog::open(log_dir.join(format!("{name}{suffix}")), LOG_CAP)?;
            let reader = open_fifo(fifo)?;
            let prefix = format!("{name}: ");
            tokio::spawn(copy(reader, log, console.clone().map(|c| (c, prefix))));
        }
        Ok(fifos)
    }
}

/// A fresh FIFO at `path`, opened for reading. It is opened read-write so
/// that it never reads end-of-file between two tasks: the shim opens and
/// closes the write side with every task.
fn open_fifo(path: &Path) -> io::Result<pipe::Receiver> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)).map_err(io::Error::from)?;
    pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(path)
}

async fn copy(mut reader: pipe::Receiver, mut log: CappedLog, console: Option<(Console, String)>) {
    let mut buf = vec![0u8; 8192];
    let mut pending = Vec::new();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // A full disk must not stop the service: the log is best effort.
        let _ = log.write(&buf[..n]);
        if let Some((console, prefix)) = &console {
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                console(&format!("{prefix}{text}"));
            }
        }
    }
    if let Some((console, prefix)) = &console
        && !pending.is_empty()
    {
        console(&format!("{prefix}{}", String::from_utf8_lossy(&pending)));
    }
}

/// The console of the process: its stdout, one whole line at a time.
pub fn stdout_console() -> Console {
    Arc::new(|line: &str| {
        let mut out = io::stdout().lock();
        // The console is all there is: a failed write has nowhere to go.
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    })
}

/// A console device (`/dev/console`), opened once, one whole line at a
/// time: the service manager's own stdout is its log file, not the console.
/// Falls back to stdout when the device cannot be opened.
pub fn device_console(path: &Path) -> Console {
    let device = OpenOptions::new()
        .append(true)
        // Not the controlling terminal of this process.
        .custom_flags(nix::fcntl::OFlag::O_NOCTTY.bits())
        .open(path);
    match device {
        Ok(file) => {
            let file = std::sync::Mutex::new(file);
            Arc::new(move |line: &str| {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                // The console is all there is: a failed write has nowhere to go.
                let _ = file.write_all(format!("{line}\n").as_bytes());
            })
        }
        Err(_) => stdout_console(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn device_console_appends_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("console");
        fs::write(&device, "boot\n").unwrap();
        let console = device_console(&device);
        console("web: one");
        console("web: two");
        assert_eq!(
            fs::read_to_string(&device).unwrap(),
            "boot\nweb: one\nweb: two\n"
        );
    }

    #[test]
    fn capped_log_rotates_once_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        let mut log = CappedLog::open(path.clone(), 10).unwrap();
        log.write(b"123456").unwrap();
        log.write(b"7890").unwrap();
        log.write(b"abc").unwrap();
        assert_eq!(
            fs::read(dir.path().join("web.log.0")).unwrap(),
            b"1234567890"
        );
        assert_eq!(fs::read(&path).unwrap(), b"abc");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn fifo_output_reaches_the_logs_and_the_console() {
        let dir = tempfile::tempdir().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        let console: Console = Arc::new(move |l: &str| seen.lock().unwrap().push(l.to_owned()));
        let fifos = Fifos::open(
            &dir.path().join("fifo"),
            &dir.path().join("log"),
            "web",
            Some(console),
        )
        .unwrap();
        // Two writers one after the other, as two runs of a task.
        for text in ["one\ntw", "o\n"] {
            let mut w = OpenOptions::new().write(true).open(&fifos.stdout).unwrap();
            w.write_all(text.as_bytes()).unwrap();
        }
        OpenOptions::new()
            .write(true)
            .open(&fifos.stderr)
            .unwrap()
            .write_all(b"err\n")
            .unwrap();
        let out = dir.path().join("log/web.out.log");
        for _ in 0..200 {
            if lines.lock().unwrap().len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(fs::read_to_string(out).unwrap(), "one\ntwo\n");
        assert_eq!(
            fs::read_to_string(dir.path().join("log/web.log")).unwrap(),
            "err\n"
        );
        let mut got = lines.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, ["web: err", "web: one", "web: two"]);
    }
}
