//! The machine's control channel on the host (docs/control.md): qemu's
//! chardev socket for the guest's `org.slipway.control` port, and the
//! bridge ([`slipway_mux::Bridge`]) that holds it and serves local gRPC
//! clients (`slipway ctl`) on `<state>/control.sock`.
//!
//! | file | what |
//! |---|---|
//! | `control.chardev` | qemu's end of the virtio-serial port (one client: the bridge) |
//! | `control.sock` | the bridge: any number of gRPC clients |
//! | `control.pid` | a detached machine's bridge process |
//! | `control.log` | what a detached machine's bridge said |
//!
//! A foreground `slipway run` serves the bridge on a thread of its own
//! ([`BridgeThread`]); a detached machine gets a bridge process of its own
//! ([`spawn_detached_bridge`], running [`serve_until_exit`]) that outlives
//! `slipway run` and ends when qemu does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use slipway_mux::Bridge;
use tokio::net::UnixListener;

use crate::{RunError, io as io_err};

/// The guest's port name, as the multiplexer looks for it.
pub const PORT_NAME: &str = "org.slipway.control";

/// qemu's chardev socket: `<state>/control.chardev`.
pub fn chardev_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.chardev")
}

/// The bridge's socket, for gRPC clients: `<state>/control.sock`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// A detached machine's bridge pid: `<state>/control.pid`.
pub fn pid_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.pid")
}

/// A detached machine's bridge messages: `<state>/control.log`.
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.log")
}

/// qemu's arguments for the control port.
pub fn qemu_args(state_dir: &Path) -> [String; 6] {
    [
        "-device".into(),
        "virtio-serial-pci".into(),
        "-chardev".into(),
        format!(
            "socket,id=control,path={},server=on,wait=off",
            chardev_path(state_dir).display()
        ),
        "-device".into(),
        format!("virtserialport,chardev=control,name={PORT_NAME}"),
    ]
}

/// Bind `socket`, replacing a stale one (a bridge that died leaves it).
fn bind(socket: &Path) -> Result<std::os::unix::net::UnixListener, RunError> {
    match fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(RunError::Io {
                what: format!("removing the stale {}", socket.display()),
                source: e,
            });
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .map_err(io_err(format!("binding {}", socket.display())))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err(format!("binding {}", socket.display())))?;
    Ok(listener)
}

fn runtime() -> Result<tokio::runtime::Runtime, RunError> {
    // One thread: the bridge copies bytes, a second core gains it nothing.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the control bridge's runtime"))
}

/// The bridge of a foreground machine: serves `socket` for the guest behind
/// `chardev` on a thread with its own runtime until dropped, which stops it
/// and removes the socket.
#[derive(Debug)]
pub struct BridgeThread {
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BridgeThread {
    /// Bind `socket` (now: clients can connect once this returns) and serve
    /// it on a new thread.
    pub fn start(chardev: &Path, socket: &Path) -> Result<BridgeThread, RunError> {
        let listener = bind(socket)?;
        let runtime = runtime()?;
        let bridge = Bridge::unix(chardev);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("control-bridge".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = UnixListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = bridge.serve(listener) => {}
                        _ = stopped => {}
                    }
                });
            })
            .map_err(io_err("starting the control bridge's thread"))?;
        Ok(BridgeThread {
            socket: socket.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The socket clients connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for BridgeThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = fs::remove_file(&self.socket);
    }
}

/// Process `pid`'s start time (clock ticks after boot, field 22 of
/// `/proc/<pid>/stat`), while it runs: `None` once it is gone or a zombie.
/// A pid with another start time is another process that reused the pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether process `pid` still runs (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    start_time(pid).is_some()
}

/// How often a detached bridge checks that qemu still runs: qemu
/// daemonized, so it is not our child and cannot be waited for.
const QEMU_CHECK: Duration = Duration::from_millis(250);

/// A detached machine's bridge: serve `<state>/control.sock` for the guest
/// behind `<state>/control.chardev` until process `qemu_pid` exits, then
/// remove the socket and the pid file. Blocks; the process running it
/// should have left `slipway run`'s session (`setsid`).
pub fn serve_until_exit(state_dir: &Path, qemu_pid: u32) -> Result<(), RunError> {
    let socket = socket_path(state_dir);
    let listener = bind(&socket)?;
    let bridge = Bridge::unix(chardev_path(state_dir));
    let result = runtime()?.block_on(async move {
        let listener = UnixListener::from_std(listener)
            .map_err(io_err(format!("serving {}", socket.display())))?;
        let started = start_time(qemu_pid);
        let qemu_gone = async {
            while started.is_some() && start_time(qemu_pid) == started {
                tokio::time::sleep(QEMU_CHECK).await;
            }
        };
        tokio::select! {
            r = bridge.serve(listener) => r.map_err(io_err(format!("serving {}", socket.display()))),
            () = qemu_gone => Ok(()),
        }
    });
    let _ = fs::remove_file(socket_path(state_dir));
    let _ = fs::remove_file(pid_path(state_dir));
    let _ = fs::remove_file(chardev_path(state_dir));
    result
}

/// How long [`spawn_detached_bridge`] waits for the bridge's socket.
const BRIDGE_START: Duration = Duration::from_secs(10);

/// Start a detached machine's bridge: `program` with `args` (a command
/// that runs [`serve_until_exit`] for `state_dir`), its standard error in
/// `<state>/control.log`, its pid written to `<state>/control.pid`.
/// Returns its pid once `<state>/control.sock` answers.
#[allow(
    clippy::disallowed_methods,
    reason = "how long the bridge may take to start"
)]
pub fn spawn_detached_bridge(
    program: &Path,
    args: &[String],
    state_dir: &Path,
) -> Result<u32, RunError> {
    let socket = socket_path(state_dir);
    let _ = fs::remove_file(&socket);
    let log_file = log_path(state_dir);
    let log =
        fs::File::create(&log_file).map_err(io_err(format!("creating {}", log_file.display())))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(io_err(format!(
            "starting the control bridge {}",
            program.display()
        )))?;
    let pid = child.id();
    crate::state::write_atomic(&pid_path(state_dir), format!("{pid}\n").as_bytes())?;
    let start = Instant::now();
    loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = fs::read_to_string(&log_file).unwrap_or_default();
            return Err(RunError::Bridge {
                reason: format!("it exited with {status}: {}", said.trim()),
            });
        }
        if start.elapsed() > BRIDGE_START {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::Bridge {
                reason: format!("{} did not appear in time", socket.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_runs_until_it_ends() {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id();
        assert!(start_time(pid).is_some());
        assert_eq!(start_time(pid), start_time(pid));
        assert!(alive(std::process::id()));
        child.kill().unwrap();
        // A zombie until reaped: not running.
        let mut waited = 0;
        while alive(pid) {
            assert!(waited < 500, "sleep {pid} survived SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
            waited += 1;
        }
        child.wait().unwrap();
        assert!(!alive(pid));
    }

    #[test]
    fn qemu_args_name_the_port() {
        let args = qemu_args(Path::new("/s"));
        assert_eq!(
            args.join(" "),
            "-device virtio-serial-pci \
             -chardev socket,id=control,path=/s/control.chardev,server=on,wait=off \
             -device virtserialport,chardev=control,name=org.slipway.control"
        );
    }
}
