//! Daemons: host processes (not containers) the init starts and keeps
//! running for the life of the machine: the multiplexer, the service
//! manager, containerd. Each is started again with the services' back-off
//! when it exits, logs to `<log dir>/<name>.log`, and is stopped at
//! shutdown in reverse start order.

use slipway_contract::errors::chain;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use slipway_contract::timeline::Event;

use crate::services::{Backoff, SIGKILL, SIGTERM};
use crate::sys::{Cmd, Exit, LOG_CAP, Output, Sys};
use crate::timeline::Timeline;

/// The multiplexer's program (daemon `mux`).
pub const MUX: &str = "/usr/bin/slipway-mux";
/// The service manager's program (daemon `services`).
pub const SERVICES: &str = "/usr/bin/slipway-services";
/// containerd's program (daemon `containerd`).
pub const CONTAINERD: &str = "/usr/bin/containerd";
/// The socket containerd serves (its default, from `/etc/containerd/config.toml`).
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

#[derive(Debug)]
struct Daemon {
    name: String,
    pid: Option<i32>,
    restarts: u32,
}

/// The daemons, in start order.
pub struct Daemons {
    sys: Arc<dyn Sys>,
    timeline: Arc<Timeline>,
    log_dir: PathBuf,
    daemons: Mutex<Vec<Daemon>>,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for Daemons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemons").finish_non_exhaustive()
    }
}

/// One line of the daemons' listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonInfo {
    /// The daemon's name.
    pub name: String,
    /// Its pid while it runs.
    pub pid: Option<i32>,
    /// How often it was started again.
    pub restarts: u32,
}

impl Daemons {
    /// No daemons yet; their logs go to `log_dir`.
    pub fn new(sys: Arc<dyn Sys>, timeline: Arc<Timeline>, log_dir: PathBuf) -> Arc<Daemons> {
        Arc::new(Daemons {
            sys,
            timeline,
            log_dir,
            daemons: Mutex::new(Vec::new()),
            shutting_down: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Daemon>> {
        self.daemons.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, event: Event, name: &str, detail: &str) {
        self.timeline
            .event(self.sys.as_ref(), event, Some(name), Some(detail));
    }

    fn set_pid(&self, name: &str, pid: Option<i32>, restarted: bool) {
        if let Some(d) = self.lock().iter_mut().find(|d| d.name == name) {
            d.pid = pid;
            if restarted {
                d.restarts += 1;
            }
        }
    }

    /// Start `program` as daemon `name` now (its first run is started
    /// before this returns, so daemons start in call order), and keep it
    /// running on a thread of its own. Returns that thread.
    pub fn start(
        self: &Arc<Self>,
        name: &str,
        program: &Path,
        args: &[&str],
    ) -> Option<std::thread::JoinHandle<()>> {
        let log = Output::Log {
            path: self.log_dir.join(format!("{name}.log")),
            console: None,
            cap: LOG_CAP,
        };
        let cmd = Cmd {
            program: program.to_path_buf(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            stdout: log.clone(),
            stderr: log,
        };
        self.lock().push(Daemon {
            name: name.to_owned(),
            pid: None,
            restarts: 0,
        });
        let first = self.spawn(name, &cmd);
        let me = Arc::clone(self);
        let name = name.to_owned();
        std::thread::Builder::new()
            .name(format!("daemon-{name}"))
            .spawn(move || me.supervise(&name, &cmd, first))
            .ok()
    }

    /// One run's start; `None` when it could not be started (reported).
    fn spawn(&self, name: &str, cmd: &Cmd) -> Option<(i32, u64)> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return None;
        }
        match self.sys.spawn(cmd) {
            Ok(pid) => {
                self.set_pid(name, Some(pid), false);
                if self.shutting_down.load(Ordering::SeqCst) {
                    // The shutdown began while it was being started, and
                    // may have missed it.
                    let _ = self.sys.kill(pid, SIGTERM);
                }
                self.event(Event::DaemonStart, name, &format!("pid {pid}"));
                Some((pid, self.sys.now_ms()))
            }
            Err(e) => {
                self.event(Event::DaemonFailed, name, &chain(&e));
                None
            }
        }
    }

    fn supervise(&self, name: &str, cmd: &Cmd, first: Option<(i32, u64)>) {
        let sys = self.sys.as_ref();
        let mut backoff = Backoff::default();
        let mut run = first;
        loop {
            let uptime = match run {
                Some((pid, started)) => {
                    let exit = sys.wait(pid).unwrap_or(Exit::Code(-1));
                    self.set_pid(name, None, false);
                    self.event(Event::DaemonExit, name, &exit.to_string());
                    Duration::from_millis(sys.now_ms().saturating_sub(started))
                }
                None => Duration::ZERO,
            };
            if self.shutting_down.load(Ordering::SeqCst) {
                return;
            }
            let delay = backoff.next_delay(uptime);
            self.event(
                Event::DaemonRestart,
                name,
                &format!("in {} ms", delay.as_millis()),
            );
            // In slices, so that the shutdown interrupts the back-off.
            let mut left = delay;
            while !left.is_zero() {
                if self.shutting_down.load(Ordering::SeqCst) {
                    return;
                }
                let slice = left.min(Duration::from_millis(100));
                sys.sleep(slice);
                left -= slice;
            }
            self.set_pid(name, None, true);
            run = self.spawn(name, cmd);
        }
    }

    /// The daemons in start order.
    pub fn list(&self) -> Vec<DaemonInfo> {
        self.lock()
            .iter()
            .map(|d| DaemonInfo {
                name: d.name.clone(),
                pid: d.pid,
                restarts: d.restarts,
            })
            .collect()
    }

    /// Shutdown: no more restarts; each daemon, the last started first,
    /// gets TERM, then KILL if it is still there after `grace`.
    pub fn stop_all(&self, grace: Duration) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let sys = self.sys.as_ref();
        let pids: Vec<i32> = self.lock().iter().rev().filter_map(|d| d.pid).collect();
        for pid in pids {
            let _ = sys.kill(pid, SIGTERM);
            let deadline = sys.now_ms() + grace.as_millis() as u64;
            while sys.alive(pid) && sys.now_ms() < deadline {
                sys.sleep(Duration::from_millis(20));
            }
            if sys.alive(pid) {
                let _ = sys.kill(pid, SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    fn daemons(fake: &Arc<FakeSys>) -> (Arc<Daemons>, Arc<Timeline>) {
        let timeline = Arc::new(Timeline::default());
        let sys: Arc<dyn Sys> = fake.clone();
        (
            Daemons::new(sys, Arc::clone(&timeline), "/var/log".into()),
            timeline,
        )
    }

    fn events(timeline: &Timeline) -> Vec<String> {
        timeline
            .entries()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e.event,
                    e.name.clone().unwrap_or_default(),
                    e.detail.clone().unwrap_or_default()
                )
            })
            .collect()
    }

    fn wait_for(what: impl Fn() -> bool) {
        for _ in 0..5000 {
            if what() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("timed out");
    }

    #[test]
    fn restarted_with_backoff_logged_and_stopped() {
        let fake = Arc::new(FakeSys::new());
        fake.add_file("/usr/bin/slipway-mux", "");
        // Two quick failures, then it runs until signalled.
        fake.script_exits("slipway-mux", &[Exit::Code(1), Exit::Signal(9)]);
        fake.hold("slipway-mux");
        let (d, timeline) = daemons(&fake);
        let handle = d.start("mux", Path::new(MUX), &["--no-port"]).unwrap();
        wait_for(|| d.list()[0].restarts == 2 && d.list()[0].pid.is_some());
        assert_eq!(
            events(&timeline),
            [
                "daemon-start mux pid 101",
                "daemon-exit mux exit status 1",
                "daemon-restart mux in 1000 ms",
                "daemon-start mux pid 102",
                "daemon-exit mux killed by signal 9",
                "daemon-restart mux in 2000 ms",
                "daemon-start mux pid 103",
            ]
        );
        d.stop_all(Duration::from_secs(1));
        handle.join().unwrap();
        assert_eq!(
            events(&timeline).last().unwrap(),
            "daemon-exit mux killed by signal 15"
        );
        // Not started again after the shutdown's TERM.
        assert_eq!(fake.calls_starting("spawn").len(), 3);
        assert_eq!(
            fake.calls_starting("spawn")[0],
            "spawn /usr/bin/slipway-mux --no-port"
        );
        assert_eq!(fake.calls_starting("kill"), ["kill 103 15"]);
    }

    #[test]
    fn logs_to_one_capped_file() {
        let fake = Arc::new(FakeSys::new());
        fake.hold("containerd");
        let (d, _) = daemons(&fake);
        let handle = d.start("containerd", Path::new(CONTAINERD), &[]);
        let cmd = fake.command(d.list()[0].pid.unwrap()).unwrap();
        let log = Output::Log {
            path: "/var/log/containerd.log".into(),
            console: None,
            cap: LOG_CAP,
        };
        assert_eq!((&cmd.stdout, &cmd.stderr), (&log, &log));
        d.stop_all(Duration::from_secs(1));
        handle.unwrap().join().unwrap();
    }

    #[test]
    fn stopped_in_reverse_start_order() {
        let fake = Arc::new(FakeSys::new());
        for program in ["slipway-mux", "containerd", "slipway-services"] {
            fake.hold(program);
        }
        let (d, timeline) = daemons(&fake);
        let handles: Vec<_> = [
            ("mux", MUX),
            ("containerd", CONTAINERD),
            ("services", SERVICES),
        ]
        .into_iter()
        .filter_map(|(name, program)| d.start(name, Path::new(program), &[]))
        .collect();
        d.stop_all(Duration::from_secs(1));
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            fake.calls_starting("kill"),
            ["kill 103 15", "kill 102 15", "kill 101 15"]
        );
        let exits: Vec<String> = events(&timeline)
            .into_iter()
            .filter(|e| e.starts_with("daemon-exit"))
            .collect();
        assert_eq!(exits.len(), 3);
        assert!(d.list().iter().all(|d| d.pid.is_none()));
    }

    #[test]
    fn a_program_that_cannot_start_is_retried() {
        let fake = Arc::new(FakeSys::new());
        fake.fail_spawn("slipway-mux");
        let (d, timeline) = daemons(&fake);
        let handle = d.start("mux", Path::new(MUX), &[]);
        wait_for(|| timeline.entries().len() >= 4);
        d.stop_all(Duration::from_secs(1));
        handle.unwrap().join().unwrap();
        let events = events(&timeline);
        assert_eq!(
            events[..4],
            [
                "daemon-failed mux entity not found",
                "daemon-restart mux in 1000 ms",
                "daemon-failed mux entity not found",
                "daemon-restart mux in 2000 ms",
            ]
        );
        assert!(d.list()[0].pid.is_none());
    }
}
