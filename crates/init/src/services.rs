//! Services: started in parallel with the OCI runtime, each supervised by a
//! thread of its own (`org.slipway.restart`, `org.slipway.ready`,
//! `org.slipway.after`), logged to LinuxKit's files.

use slipway_contract::errors::chain;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use slipway_contract::annotations::Restart;
use slipway_contract::timeline::Event;

use crate::bundle::{Bundle, OciRuntime};
use crate::ready::is_ready;
use crate::sys::{Exit, LOG_CAP, Output, Sys};
use crate::timeline::Timeline;

/// `SIGTERM`.
pub const SIGTERM: i32 = 15;
/// `SIGKILL`.
pub const SIGKILL: i32 = 9;

/// Restart back-off: 1 s, doubling up to 60 s, back to 1 s after 10 s up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Backoff::INITIAL,
        }
    }
}

impl Backoff {
    /// The first delay.
    pub const INITIAL: Duration = Duration::from_secs(1);
    /// The largest delay.
    pub const MAX: Duration = Duration::from_secs(60);
    /// A run at least this long resets the delay.
    pub const RESET_AFTER: Duration = Duration::from_secs(10);

    /// The delay before the next start, given how long the last run lasted.
    pub fn next_delay(&mut self, uptime: Duration) -> Duration {
        if uptime >= Backoff::RESET_AFTER {
            self.next = Backoff::INITIAL;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(Backoff::MAX);
        delay
    }
}

/// Whether a service that ended with `exit` is started again.
/// `stopped_by_init`: the init asked it to stop (a `service stop`, shutdown).
pub fn should_restart(policy: Restart, exit: Exit, stopped_by_init: bool) -> bool {
    if stopped_by_init {
        return false;
    }
    match policy {
        Restart::Never => false,
        Restart::Always => true,
        Restart::OnFailure => !exit.success(),
    }
}

/// Where a service is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Waiting for the services in `org.slipway.after`.
    Waiting,
    /// Being created and started.
    Starting,
    /// Running, not (yet) ready.
    Running,
    /// Running and ready (or running with no readiness condition).
    Ready,
    /// Waiting out the back-off before a restart.
    BackingOff,
    /// Ended and not restarted.
    Exited(String),
    /// Could not be started.
    Failed(String),
    /// Stopped on request.
    Stopped,
}

impl Status {
    fn text(&self) -> String {
        match self {
            Status::Waiting => "waiting".into(),
            Status::Starting => "starting".into(),
            Status::Running => "running".into(),
            Status::Ready => "ready".into(),
            Status::BackingOff => "backing-off".into(),
            Status::Exited(why) => format!("exited ({why})"),
            Status::Failed(why) => format!("failed ({why})"),
            Status::Stopped => "stopped".into(),
        }
    }

    /// The state's name, without its detail (`exited`, `ready`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Ready => "ready",
            Status::BackingOff => "backing-off",
            Status::Exited(_) => "exited",
            Status::Failed(_) => "failed",
            Status::Stopped => "stopped",
        }
    }

    /// What an exited or failed state refers to (the exit status, the
    /// error); empty for the others.
    pub fn detail(&self) -> &str {
        match self {
            Status::Exited(why) | Status::Failed(why) => why,
            _ => "",
        }
    }

    /// Whether a service that waits for this one may go ahead: it is ready,
    /// or it will not become ready in this boot without a request.
    fn releases_dependents(&self, was_ready: bool) -> bool {
        was_ready
            || matches!(
                self,
                Status::Exited(_) | Status::Failed(_) | Status::Stopped
            )
    }
}

/// Whether every service in `after` lets a dependent start. Unknown names
/// do not block (the config validator reports them).
pub fn after_satisfied(after: &[String], states: &HashMap<String, (Status, bool)>) -> bool {
    after.iter().all(|name| {
        states
            .get(name)
            .is_none_or(|(status, was_ready)| status.releases_dependents(*was_ready))
    })
}

#[derive(Debug)]
struct Service {
    bundle: Option<Bundle>,
    status: Status,
    pid: Option<i32>,
    restarts: u32,
    was_ready: bool,
    want_running: bool,
    stop_requested: bool,
    /// Bumped on every start request, to wake a thread that has ended.
    generation: u64,
}

/// All services and their supervisor threads.
pub struct Supervisor {
    sys: Arc<dyn Sys>,
    timeline: Arc<Timeline>,
    runtime: OciRuntime,
    log_dir: PathBuf,
    services: Mutex<BTreeMap<String, Service>>,
    changed: Condvar,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").finish_non_exhaustive()
    }
}

/// Why `service start` or `service stop` refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// No service has this name.
    #[error("no service {0}")]
    Unknown(String),
    /// The service has no usable bundle; `status` says why.
    #[error("service {name} cannot run: {status}")]
    CannotRun {
        /// The service.
        name: String,
        /// Its status.
        status: String,
    },
    /// The service is running, starting or waiting to restart.
    #[error("service {name} is already {status}")]
    Already {
        /// The service.
        name: String,
        /// Its status.
        status: String,
    },
}

/// One line of `service list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The service's name.
    pub name: String,
    /// Its status.
    pub status: String,
    /// Its container's pid while running.
    pub pid: Option<i32>,
    /// How often it was restarted.
    pub restarts: u32,
    /// The state's name ([`Status::name`]).
    pub state: &'static str,
    /// What the state refers to: [`Status::detail`], or for a waiting
    /// service the services it waits for.
    pub detail: String,
    /// Its `org.slipway.restart` policy (`never` when it has no bundle).
    pub restart: &'static str,
}

impl Supervisor {
    /// A supervisor for the bundles in `dirs`, logging into `log_dir`.
    pub fn new(
        sys: Arc<dyn Sys>,
        timeline: Arc<Timeline>,
        runtime: OciRuntime,
        log_dir: PathBuf,
    ) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            sys,
            timeline,
            runtime,
            log_dir,
            services: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            shutting_down: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Service>> {
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, event: Event, name: &str, detail: Option<&str>) {
        self.timeline
            .event(self.sys.as_ref(), event, Some(name), detail);
    }

    /// Load every bundle in `dirs` and start a supervisor thread for each.
    /// Bundles that cannot be read are reported and marked failed.
    pub fn start_all(self: &Arc<Self>, dirs: &[PathBuf]) -> Vec<std::thread::JoinHandle<()>> {
        let mut names = Vec::new();
        {
            let mut services = self.lock();
            for dir in dirs {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (bundle, status) = match Bundle::load(self.sys.as_ref(), dir) {
                    Ok(bundle) => (Some(bundle), Status::Waiting),
                    Err(e) => {
                        self.event(Event::ServiceFailed, &name, Some(&chain(&e)));
                        (None, Status::Failed(chain(&e)))
                    }
                };
                let runnable = bundle.is_some();
                services.insert(
                    name.clone(),
                    Service {
                        bundle,
                        status,
                        pid: None,
                        restarts: 0,
                        was_ready: false,
                        want_running: runnable,
                        stop_requested: false,
                        generation: 0,
                    },
                );
                if runnable {
                    names.push(name);
                }
            }
        }
        names
            .into_iter()
            .filter_map(|name| {
                let me = Arc::clone(self);
                std::thread::Builder::new()
                    .name(format!("svc-{name}"))
                    .spawn(move || me.supervise(&name))
                    .ok()
            })
            .collect()
    }

    /// Wait until no service is `Waiting` or `Starting` any more, or until
    /// `timeout` passes on the system's clock.
    pub fn wait_started(&self, timeout: Duration) {
        let deadline = self.sys.now_ms() + timeout.as_millis() as u64;
        let mut services = self.lock();
        loop {
            let pending = services.values().any(|s| {
                matches!(s.status, Status::Starting)
                    || (matches!(s.status, Status::Waiting)
                        && s.want_running
                        && !self.blocked(&services, s))
            });
            if !pending || self.sys.now_ms() >= deadline {
                return;
            }
            services = self
                .changed
                .wait_timeout(services, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn blocked(&self, services: &BTreeMap<String, Service>, svc: &Service) -> bool {
        let Some(bundle) = &svc.bundle else {
            return false;
        };
        !after_satisfied(bundle.annotations.after.names(), &dep_states(services))
    }

    fn set_status(&self, name: &str, status: Status) {
        let mut services = self.lock();
        if let Some(svc) = services.get_mut(name) {
            if status == Status::Ready {
                svc.was_ready = true;
            }
            svc.status = status;
        }
        self.changed.notify_all();
    }

    /// The supervision loop of one service.
    fn supervise(&self, name: &str) {
        let mut backoff = Backoff::default();
        loop {
            // Wait to be wanted and for the services it comes after.
            let (bundle, generation) = {
                let mut services = self.lock();
                loop {
                    if self.shutting_down.load(Ordering::SeqCst) {
                        return;
                    }
                    let states = dep_states(&services);
                    let Some(svc) = services.get(name) else {
                        return;
                    };
                    let Some(bundle) = svc.bundle.clone() else {
                        return;
                    };
                    if svc.want_running
                        && after_satisfied(bundle.annotations.after.names(), &states)
                    {
                        let generation = svc.generation;
                        if let Some(svc) = services.get_mut(name) {
                            svc.status = Status::Starting;
                            svc.stop_requested = false;
                        }
                        break (bundle, generation);
                    }
                    services = self
                        .changed
                        .wait_timeout(services, Duration::from_millis(200))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            };
            let exit = self.run_once(name, &bundle);
            let Some((exit, uptime)) = exit else {
                // Could not start: treated like a failed run.
                if !self.after_run(
                    name,
                    &bundle,
                    Exit::Code(-1),
                    Duration::ZERO,
                    &mut backoff,
                    generation,
                ) {
                    return;
                }
                continue;
            };
            if !self.after_run(name, &bundle, exit, uptime, &mut backoff, generation) {
                return;
            }
        }
    }

    /// Start the container, wait for readiness and for its end.
    fn run_once(&self, name: &str, bundle: &Bundle) -> Option<(Exit, Duration)> {
        let sys = self.sys.as_ref();
        let console = bundle.annotations.console.then(|| format!("{name}: "));
        let log = |suffix: &str| Output::Log {
            path: self.log_dir.join(format!("{name}{suffix}")),
            console: console.clone(),
            cap: LOG_CAP,
        };
        let (pid, mounted) = match bundle.launch(sys, &self.runtime, log(".out.log"), log(".log")) {
            Ok(started) => started,
            Err(e) => {
                self.event(Event::ServiceFailed, name, Some(&chain(&e)));
                self.set_status(name, Status::Failed(chain(&e)));
                return None;
            }
        };
        let started_ms = sys.now_ms();
        {
            let mut services = self.lock();
            if let Some(svc) = services.get_mut(name) {
                svc.pid = Some(pid);
            }
        }
        self.event(Event::ServiceStart, name, Some(&format!("pid {pid}")));
        match &bundle.annotations.ready {
            None => self.set_status(name, Status::Ready),
            Some(ready) => {
                self.set_status(name, Status::Running);
                let mut poll = Duration::from_millis(10);
                loop {
                    if is_ready(sys, ready, pid, &bundle.rootfs) {
                        self.event(Event::ServiceReady, name, Some(&ready.to_string()));
                        self.set_status(name, Status::Ready);
                        break;
                    }
                    if !sys.alive(pid) {
                        break;
                    }
                    sys.sleep(poll);
                    poll = (poll * 2).min(Duration::from_millis(100));
                }
            }
        }
        let exit = sys.wait(pid).unwrap_or(Exit::Code(-1));
        let uptime = Duration::from_millis(sys.now_ms().saturating_sub(started_ms));
        {
            let mut services = self.lock();
            if let Some(svc) = services.get_mut(name) {
                svc.pid = None;
            }
        }
        self.event(Event::ServiceExit, name, Some(&exit.to_string()));
        bundle.finish(sys, &self.runtime, &mounted);
        Some((exit, uptime))
    }

    /// Decide what follows a run. Returns false when the thread should end.
    fn after_run(
        &self,
        name: &str,
        bundle: &Bundle,
        exit: Exit,
        uptime: Duration,
        backoff: &mut Backoff,
        generation: u64,
    ) -> bool {
        let stopped = self.shutting_down.load(Ordering::SeqCst)
            || self.lock().get(name).is_some_and(|s| s.stop_requested);
        if should_restart(bundle.annotations.restart, exit, stopped) {
            let delay = backoff.next_delay(uptime);
            self.event(
                Event::ServiceRestart,
                name,
                Some(&format!("in {} ms", delay.as_millis())),
            );
            {
                let mut services = self.lock();
                if let Some(svc) = services.get_mut(name) {
                    svc.status = Status::BackingOff;
                    svc.restarts += 1;
                }
            }
            // Sleep in slices so that a stop or a shutdown interrupts the back-off.
            let mut left = delay;
            while !left.is_zero() {
                if self.shutting_down.load(Ordering::SeqCst)
                    || self.lock().get(name).is_some_and(|s| s.stop_requested)
                {
                    break;
                }
                let slice = left.min(Duration::from_millis(100));
                self.sys.sleep(slice);
                left -= slice;
            }
            return !self.shutting_down.load(Ordering::SeqCst);
        }
        {
            let mut services = self.lock();
            if let Some(svc) = services.get_mut(name) {
                svc.status = if stopped {
                    Status::Stopped
                } else if svc.status == Status::Starting || matches!(svc.status, Status::Failed(_))
                {
                    svc.status.clone()
                } else {
                    Status::Exited(exit.to_string())
                };
                svc.want_running = false;
            }
            self.changed.notify_all();
        }
        // Wait for a `service start` (a new generation) or the shutdown.
        let mut services = self.lock();
        loop {
            if self.shutting_down.load(Ordering::SeqCst) {
                return false;
            }
            match services.get(name) {
                Some(svc) if svc.generation != generation && svc.want_running => {
                    *backoff = Backoff::default();
                    return true;
                }
                Some(_) => {}
                None => return false,
            }
            services = self
                .changed
                .wait_timeout(services, Duration::from_millis(500))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// `service list`.
    pub fn list(&self) -> Vec<ServiceInfo> {
        self.lock()
            .iter()
            .map(|(name, svc)| {
                let detail = match (&svc.status, &svc.bundle) {
                    (Status::Waiting, Some(bundle)) => bundle.annotations.after.names().join(","),
                    (status, _) => status.detail().to_owned(),
                };
                ServiceInfo {
                    name: name.clone(),
                    status: svc.status.text(),
                    pid: svc.pid,
                    restarts: svc.restarts,
                    state: svc.status.name(),
                    detail,
                    restart: svc
                        .bundle
                        .as_ref()
                        .map_or("never", |b| b.annotations.restart.as_str()),
                }
            })
            .collect()
    }

    /// The OCI runtime's name (`crun`, `runc`).
    pub fn runtime_name(&self) -> String {
        self.runtime.name()
    }

    /// `service start NAME`: start a service that is not running.
    pub fn start(&self, name: &str) -> Result<(), ServiceError> {
        let mut services = self.lock();
        let svc = services
            .get_mut(name)
            .ok_or_else(|| ServiceError::Unknown(name.to_string()))?;
        if svc.bundle.is_none() {
            return Err(ServiceError::CannotRun {
                name: name.to_string(),
                status: svc.status.text(),
            });
        }
        if svc.pid.is_some() || matches!(svc.status, Status::Starting | Status::BackingOff) {
            return Err(ServiceError::Already {
                name: name.to_string(),
                status: svc.status.text(),
            });
        }
        svc.want_running = true;
        svc.stop_requested = false;
        svc.generation += 1;
        svc.status = Status::Waiting;
        self.changed.notify_all();
        Ok(())
    }

    /// `service stop NAME`: TERM, `grace`, KILL. Returns once it has ended
    /// and its thread has marked it stopped (or after another `grace`).
    pub fn stop(&self, name: &str, grace: Duration) -> Result<(), ServiceError> {
        let pid = {
            let mut services = self.lock();
            let svc = services
                .get_mut(name)
                .ok_or_else(|| ServiceError::Unknown(name.to_string()))?;
            svc.stop_requested = true;
            svc.want_running = false;
            if svc.pid.is_none() && matches!(svc.status, Status::Waiting | Status::BackingOff) {
                // Its thread waits to be wanted again: nothing else would
                // say it is stopped.
                svc.status = Status::Stopped;
            }
            svc.pid
        };
        self.changed.notify_all();
        if let Some(pid) = pid {
            self.terminate(&[pid], grace);
            // The thread deletes the container, then marks it stopped
            // (and says so on `changed`).
            let slice = Duration::from_millis(20);
            let mut services = self.lock();
            for _ in 0..=grace.as_millis() / slice.as_millis() {
                let ended = services.get(name).is_none_or(|s| {
                    s.pid.is_none()
                        && matches!(
                            s.status,
                            Status::Stopped | Status::Exited(_) | Status::Failed(_)
                        )
                });
                if ended {
                    break;
                }
                services = self
                    .changed
                    .wait_timeout(services, slice)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        Ok(())
    }

    /// Send TERM, wait up to `grace` for the processes to end, then KILL.
    fn terminate(&self, pids: &[i32], grace: Duration) {
        let sys = self.sys.as_ref();
        for pid in pids {
            let _ = sys.kill(*pid, SIGTERM);
        }
        let deadline = sys.now_ms() + grace.as_millis() as u64;
        while pids.iter().any(|p| sys.alive(*p)) && sys.now_ms() < deadline {
            sys.sleep(Duration::from_millis(20));
        }
        for pid in pids {
            if sys.alive(*pid) {
                let _ = sys.kill(*pid, SIGKILL);
            }
        }
    }

    /// Shutdown: no more restarts; every running service gets TERM, then
    /// KILL after `grace`; returns when their threads have cleaned up (or
    /// after another `grace`).
    pub fn stop_all(&self, grace: Duration) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.changed.notify_all();
        let pids: Vec<i32> = self.lock().values().filter_map(|s| s.pid).collect();
        self.terminate(&pids, grace);
        let deadline = self.sys.now_ms() + grace.as_millis() as u64;
        while self.lock().values().any(|s| s.pid.is_some()) && self.sys.now_ms() < deadline {
            self.sys.sleep(Duration::from_millis(20));
        }
    }
}

fn dep_states(services: &BTreeMap<String, Service>) -> HashMap<String, (Status, bool)> {
    services
        .iter()
        .map(|(n, s)| (n.clone(), (s.status.clone(), s.was_ready)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;
    use slipway_contract::timeline::Entry;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(100);
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.next_delay(Duration::from_secs(10)).as_secs(), 1);
        assert_eq!(b.next_delay(Duration::from_secs(9)).as_secs(), 2);
    }

    #[test]
    fn restart_policy() {
        let ok = Exit::Code(0);
        let bad = Exit::Code(2);
        let killed = Exit::Signal(9);
        assert!(!should_restart(Restart::Never, bad, false));
        assert!(should_restart(Restart::Always, ok, false));
        assert!(should_restart(Restart::OnFailure, bad, false));
        assert!(should_restart(Restart::OnFailure, killed, false));
        assert!(!should_restart(Restart::OnFailure, ok, false));
        assert!(!should_restart(Restart::Always, killed, true));
    }

    #[test]
    fn after_waits_for_ready_or_for_the_end() {
        let mut states = HashMap::new();
        states.insert("db".to_owned(), (Status::Running, false));
        let after = vec!["db".to_owned(), "missing".to_owned()];
        assert!(!after_satisfied(&after, &states));
        states.insert("db".to_owned(), (Status::Ready, true));
        assert!(after_satisfied(&after, &states));
        states.insert("db".to_owned(), (Status::BackingOff, true));
        assert!(after_satisfied(&after, &states), "was ready once");
        states.insert("db".to_owned(), (Status::Failed("x".into()), false));
        assert!(after_satisfied(&after, &states));
        states.insert("db".to_owned(), (Status::Starting, false));
        assert!(!after_satisfied(&after, &states));
    }

    fn service(sys: &FakeSys, name: &str, annotations: &str, pid: i32) -> PathBuf {
        let dir = format!("/containers/services/{name}");
        sys.add_file(
            &format!("{dir}/config.json"),
            &format!(r#"{{"root": {{"path": "rootfs"}}, "annotations": {{{annotations}}}}}"#),
        );
        sys.add_file(&format!("/run/slipway/{name}.pid"), &pid.to_string());
        PathBuf::from(dir)
    }

    fn supervisor(sys: &Arc<FakeSys>) -> (Arc<Supervisor>, Arc<Timeline>) {
        let timeline = Arc::new(Timeline::default());
        let rt = OciRuntime {
            program: "/usr/bin/crun".into(),
            root: "/run/crun".into(),
            no_pivot: false,
            timeout: crate::bundle::RUNTIME_TIMEOUT,
        };
        let sys_dyn: Arc<dyn Sys> = sys.clone();
        (
            Supervisor::new(sys_dyn, Arc::clone(&timeline), rt, "/var/log".into()),
            timeline,
        )
    }

    fn events(timeline: &Timeline, name: &str) -> Vec<String> {
        timeline
            .entries()
            .iter()
            .filter(|e| e.name.as_deref() == Some(name))
            .map(|e: &Entry| format!("{} {}", e.event, e.detail.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn restarts_with_backoff_then_stops_on_success() {
        let sys = Arc::new(FakeSys::new());
        let dir = service(&sys, "flaky", r#""org.slipway.restart": "on-failure""#, 500);
        // Two quick failures, a long failed run (resets the back-off), then success.
        sys.script_exits(
            "pid500",
            &[Exit::Code(1), Exit::Signal(9), Exit::Code(3), Exit::Code(0)],
        );
        let (sup, timeline) = supervisor(&sys);
        for handle in sup.start_all(&[dir]) {
            // The thread waits for a `service start` after the final exit: stop it.
            std::thread::sleep(Duration::from_millis(50));
            while !sup.list()[0].status.starts_with("exited") {
                std::thread::sleep(Duration::from_millis(5));
            }
            sup.stop_all(Duration::from_millis(100));
            handle.join().unwrap();
        }
        let restarts: Vec<String> = events(&timeline, "flaky")
            .into_iter()
            .filter(|e| e.starts_with("service-restart"))
            .collect();
        assert_eq!(
            restarts,
            [
                "service-restart in 1000 ms",
                "service-restart in 2000 ms",
                "service-restart in 4000 ms"
            ]
        );
        assert_eq!(sup.list()[0].restarts, 3);
        assert_eq!(
            sys.calls_starting("spawn /usr/bin/crun --root /run/crun --log /run/slipway/flaky.runtime.log run --detach")
                .len(),
            4
        );
    }

    #[test]
    fn never_is_not_restarted_and_after_is_honoured() {
        let sys = Arc::new(FakeSys::new());
        let db = service(&sys, "db", r#""org.slipway.ready": "file:/run/ready""#, 600);
        let web = service(&sys, "web", r#""org.slipway.after": "db""#, 601);
        sys.add_file("/containers/services/db/rootfs/run/ready", "");
        sys.script_exits("pid600", &[Exit::Code(1)]);
        let (sup, timeline) = supervisor(&sys);
        let handles = sup.start_all(&[db, web]);
        sup.wait_started(Duration::from_secs(5));
        while sup.list().iter().any(|s| !s.status.starts_with("exited")) {
            std::thread::sleep(Duration::from_millis(5));
        }
        sup.stop_all(Duration::from_millis(100));
        for h in handles {
            h.join().unwrap();
        }
        let all: Vec<(String, String)> = timeline
            .entries()
            .iter()
            .map(|e| (e.event.to_string(), e.name.clone().unwrap_or_default()))
            .collect();
        let pos = |ev: &str, n: &str| {
            all.iter()
                .position(|(e, name)| e == ev && name == n)
                .unwrap()
        };
        assert!(pos("service-ready", "db") < pos("service-start", "web"));
        assert!(!all.iter().any(|(e, _)| e == "service-restart"));
        assert_eq!(sup.list()[0].status, "exited (exit status 1)");
    }

    #[test]
    fn stop_returns_once_the_service_is_stopped() {
        let sys = Arc::new(FakeSys::new());
        let web = service(&sys, "web", "", 800);
        sys.hold("pid800");
        // db never becomes ready, so api waits for it.
        let db = service(&sys, "db", r#""org.slipway.ready": "file:/never""#, 801);
        sys.hold("pid801");
        let api = service(&sys, "api", r#""org.slipway.after": "db""#, 802);
        let (sup, timeline) = supervisor(&sys);
        let handles = sup.start_all(&[web, db, api]);
        while events(&timeline, "db").is_empty() || events(&timeline, "web").is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        sup.stop("web", Duration::from_secs(5)).unwrap();
        let status = |name: &str| {
            let s = sup.list().into_iter().find(|s| s.name == name).unwrap();
            (s.status, s.pid)
        };
        assert_eq!(status("web"), ("stopped".to_owned(), None));
        // Stopped while it waits for db: stopped, and not started later.
        assert_eq!(status("api"), ("waiting".to_owned(), None));
        sup.stop("api", Duration::from_secs(5)).unwrap();
        assert_eq!(status("api"), ("stopped".to_owned(), None));
        sup.stop_all(Duration::from_millis(100));
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(status("api"), ("stopped".to_owned(), None));
        assert!(events(&timeline, "api").is_empty());
    }

    #[test]
    fn unreadable_service_is_reported_and_others_run() {
        let sys = Arc::new(FakeSys::new());
        sys.add_file("/containers/services/bad/config.json", "{");
        let good = service(&sys, "good", "", 700);
        let (sup, timeline) = supervisor(&sys);
        let handles = sup.start_all(&[PathBuf::from("/containers/services/bad"), good]);
        sup.wait_started(Duration::from_secs(5));
        sup.stop_all(Duration::from_millis(100));
        for h in handles {
            h.join().unwrap();
        }
        assert!(events(&timeline, "bad")[0].starts_with("service-failed bundle"));
        assert!(events(&timeline, "good")[0].starts_with("service-start pid 700"));
    }
}
