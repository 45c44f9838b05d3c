//! The supervision of every service, one tokio task each, with the init's
//! rules (its `Status`, `Backoff`, `should_restart` and `after_satisfied`
//! are used as they are): wait for `org.slipway.after`, launch, probe
//! `org.slipway.ready`, wait for the end, restart per `org.slipway.restart`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use slipway_contract::errors::chain;
use slipway_contract::timeline::Event;
use slipway_init::bundle::{Bundle, cleanup_mounts};
use slipway_init::ready::is_ready;
use slipway_init::services::{Backoff, Status, after_satisfied, should_restart};
use slipway_init::sys::Exit;
use tokio::sync::watch;

use super::Options;
use super::client::Client;
use super::logs::Fifos;
use super::spec::{self, SIGKILL, SIGTERM};

/// The monotonic clock, for timeouts and a run's uptime (which the
/// back-off depends on, as the init's does).
#[expect(
    clippy::disallowed_methods,
    reason = "timeouts and the back-off's uptime; no output depends on it"
)]
fn now() -> Instant {
    Instant::now()
}

/// One service's state.
#[derive(Debug)]
pub(super) struct Svc {
    pub bundle: Option<Bundle>,
    pub status: Status,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub was_ready: bool,
    want_running: bool,
    stop_requested: bool,
    /// Bumped on every start request, to wake a supervisor that has ended.
    generation: u64,
    fifos: Option<Fifos>,
    /// The container exists in containerd (made at the first launch).
    container: bool,
    /// The connection, in the service's namespace (`runtime.json`'s
    /// `namespace`, else the default).
    client: Client,
}

/// What `start` refuses.
pub(super) enum Refusal {
    Unknown,
    ShuttingDown,
    CannotRun(String),
    Already(String),
}

/// Every service and what they share.
pub(super) struct Inner {
    pub client: Client,
    pub opts: Options,
    services: Mutex<BTreeMap<String, Svc>>,
    changed: watch::Sender<u64>,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

/// The text of a status, as the init's `service list` shows it.
pub(super) fn status_text(status: &Status) -> String {
    match status {
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

/// Whether a service is on its way up or up: a stop has something to end.
fn active(status: &Status) -> bool {
    matches!(
        status,
        Status::Starting | Status::Running | Status::Ready | Status::BackingOff
    )
}

pub(super) fn dep_states(services: &BTreeMap<String, Svc>) -> HashMap<String, (Status, bool)> {
    services
        .iter()
        .map(|(n, s)| (n.clone(), (s.status.clone(), s.was_ready)))
        .collect()
}

impl Inner {
    pub fn new(client: Client, opts: Options) -> Inner {
        Inner {
            client,
            opts,
            services: Mutex::new(BTreeMap::new()),
            changed: watch::Sender::new(0),
            shutting_down: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Svc>> {
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn event(&self, event: Event, name: Option<&str>, detail: Option<&str>) {
        (self.opts.events)(event, name, detail);
    }

    fn set_status(&self, name: &str, status: Status) {
        {
            let mut services = self.lock();
            if let Some(svc) = services.get_mut(name) {
                if status == Status::Ready {
                    svc.was_ready = true;
                }
                svc.status = status;
            }
        }
        self.notify();
    }

    /// The connection in the service's namespace.
    fn client_of(&self, name: &str) -> Client {
        self.lock()
            .get(name)
            .map_or_else(|| self.client.clone(), |s| s.client.clone())
    }

    fn stopping(&self, name: &str) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
            || self.lock().get(name).is_some_and(|s| s.stop_requested)
    }

    /// Wait until `done` holds for the services or `timeout` passes; true
    /// when it holds. Changes wake the waiter; a slow poll covers the rest.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&BTreeMap<String, Svc>) -> bool,
    ) -> bool {
        let deadline = now() + timeout;
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if done(&self.lock()) {
                return true;
            }
            let left = deadline.saturating_duration_since(now());
            if left.is_zero() {
                return false;
            }
            let slice = left.min(Duration::from_millis(200));
            let _ = tokio::time::timeout(slice, changed.changed()).await;
        }
    }

    /// Read the bundles; those that cannot be read are FAILED now. Returns
    /// the names of the runnable ones.
    pub fn load(&self, dirs: &[PathBuf]) -> Vec<String> {
        let mut names = Vec::new();
        for dir in dirs {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (bundle, status) = match Bundle::load(self.opts.sys.as_ref(), dir) {
                Ok(bundle) => (Some(bundle), Status::Waiting),
                Err(e) => {
                    self.event(Event::ServiceFailed, Some(&name), Some(&chain(&e)));
                    (None, Status::Failed(chain(&e)))
                }
            };
            if bundle.is_some() {
                names.push(name.clone());
            }
            let client = match bundle.as_ref().map(|b| b.runtime.namespace.as_str()) {
                Some(namespace) if !namespace.is_empty() => self.client.in_namespace(namespace),
                _ => self.client.clone(),
            };
            self.lock().insert(
                name,
                Svc {
                    want_running: bundle.is_some(),
                    bundle,
                    status,
                    pid: None,
                    restarts: 0,
                    was_ready: false,
                    stop_requested: false,
                    generation: 0,
                    fifos: None,
                    container: false,
                    client,
                },
            );
        }
        self.notify();
        names
    }

    /// Whether a service is still to be started in this round: starting,
    /// or waiting, wanted and not held back by `after`.
    pub fn pending(services: &BTreeMap<String, Svc>) -> bool {
        let states = dep_states(services);
        services.values().any(|s| match s.status {
            Status::Starting => true,
            Status::Waiting => {
                s.want_running
                    && s.bundle
                        .as_ref()
                        .is_some_and(|b| after_satisfied(b.annotations.after.names(), &states))
            }
            _ => false,
        })
    }

    /// The supervision loop of one service.
    pub async fn supervise(&self, name: String) {
        let name = name.as_str();
        let mut backoff = Backoff::default();
        loop {
            let Some((bundle, generation)) = self.wait_for_turn(name).await else {
                return;
            };
            let (exit, uptime) = match self.run_once(name, &bundle).await {
                Some(ended) => ended,
                // Could not start: treated like a failed run.
                None => (Exit::Code(-1), Duration::ZERO),
            };
            if !self
                .after_run(name, &bundle, exit, uptime, &mut backoff, generation)
                .await
            {
                return;
            }
        }
    }

    /// Wait to be wanted and for the services named in `after`; the
    /// service is then STARTING. None when the supervisor is to end.
    async fn wait_for_turn(&self, name: &str) -> Option<(Bundle, u64)> {
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            {
                if self.shutting_down.load(Ordering::SeqCst) {
                    return None;
                }
                let mut services = self.lock();
                let states = dep_states(&services);
                let svc = services.get_mut(name)?;
                let bundle = svc.bundle.clone()?;
                if svc.want_running && after_satisfied(bundle.annotations.after.names(), &states) {
                    svc.status = Status::Starting;
                    svc.stop_requested = false;
                    let generation = svc.generation;
                    drop(services);
                    self.notify();
                    return Some((bundle, generation));
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), changed.changed()).await;
        }
    }

    /// Launch, probe readiness, wait for the end; None when it could not start.
    async fn run_once(&self, name: &str, bundle: &Bundle) -> Option<(Exit, Duration)> {
        let sys = self.opts.sys.as_ref();
        let client = self.client_of(name);
        let (pid, mounted) = match self.launch(name, bundle).await {
            Ok(started) => started,
            Err(why) => {
                self.event(Event::ServiceFailed, Some(name), Some(&why));
                self.set_status(name, Status::Failed(why));
                return None;
            }
        };
        let started = now();
        if let Some(svc) = self.lock().get_mut(name) {
            svc.pid = Some(pid);
        }
        self.event(Event::ServiceStart, Some(name), Some(&format!("pid {pid}")));
        let wait = client.wait(name);
        tokio::pin!(wait);
        let mut ended = None;
        match &bundle.annotations.ready {
            None => self.set_status(name, Status::Ready),
            Some(ready) => {
                self.set_status(name, Status::Running);
                let mut poll = Duration::from_millis(10);
                loop {
                    if is_ready(sys, ready, pid as i32, &bundle.rootfs) {
                        self.event(Event::ServiceReady, Some(name), Some(&ready.to_string()));
                        self.set_status(name, Status::Ready);
                        break;
                    }
                    tokio::select! {
                        status = &mut wait => {
                            ended = Some(status);
                            break;
                        }
                        () = tokio::time::sleep(poll) => {}
                    }
                    poll = (poll * 2).min(Duration::from_millis(100));
                }
            }
        }
        let status = match ended {
            Some(status) => status,
            None => wait.await,
        };
        // containerd unreachable: the end is unknown, as a lost child is to the init.
        let exit = status.map(spec::exit_of).unwrap_or(Exit::Code(-1));
        let uptime = started.elapsed();
        self.event(Event::ServiceExit, Some(name), Some(&exit.to_string()));
        // A failed delete leaves the task behind; the next create reports it.
        let _ = client.delete_task(name).await;
        cleanup_mounts(sys, &mounted);
        // Cleared once the task is gone, so that whoever waits for the pid to
        // go (a stop, the shutdown) finds nothing left of the run.
        if let Some(svc) = self.lock().get_mut(name) {
            svc.pid = None;
        }
        self.notify();
        Some((exit, uptime))
    }

    /// `runtime.json`'s mounts, mkdir and cgroups; the container (made at the
    /// first launch); the task, created; interfaces and bound namespaces;
    /// the task, started. Everything done is undone on failure.
    async fn launch(&self, name: &str, bundle: &Bundle) -> Result<(u32, Vec<PathBuf>), String> {
        let sys = self.opts.sys.as_ref();
        let mounted = bundle.prepare_fs(sys).map_err(|e| chain(&e))?;
        match self.create_and_start(name, bundle).await {
            Ok(pid) => Ok((pid, mounted)),
            Err(why) => {
                cleanup_mounts(sys, &mounted);
                Err(why)
            }
        }
    }

    async fn create_and_start(&self, name: &str, bundle: &Bundle) -> Result<u32, String> {
        let fifos = self.fifos(name, bundle)?;
        let client = self.client_of(name);
        self.ensure_container(name, bundle).await?;
        let options = Some(self.opts.shim.to_any());
        let pid = client
            .create_task(name, &fifos.stdout, &fifos.stderr, options)
            .await
            .map_err(|e| chain(&e))?;
        let started = async {
            if bundle.needs_pid_before_start() {
                bundle
                    .prepare_process(self.opts.sys.as_ref(), pid as i32)
                    .map_err(|e| chain(&e))?;
            }
            client.start_task(name).await.map_err(|e| chain(&e))
        }
        .await;
        if let Err(why) = started {
            let _ = client.kill(name, SIGKILL).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), client.wait(name)).await;
            let _ = client.delete_task(name).await;
            return Err(why);
        }
        Ok(pid)
    }

    /// The service's FIFOs, made at its first launch and kept.
    fn fifos(&self, name: &str, bundle: &Bundle) -> Result<Fifos, String> {
        if let Some(fifos) = self.lock().get(name).and_then(|s| s.fifos.clone()) {
            return Ok(fifos);
        }
        let console = bundle
            .annotations
            .console
            .then(|| self.opts.console.clone());
        let fifos = Fifos::open(&self.opts.fifo_dir, &self.opts.log_dir, name, console)
            .map_err(|e| format!("service {name}: making its output FIFOs: {e}"))?;
        if let Some(svc) = self.lock().get_mut(name) {
            svc.fifos = Some(fifos.clone());
        }
        Ok(fifos)
    }

    /// Create the container at the first launch, replacing one of the same
    /// id an earlier boot left in containerd's root.
    async fn ensure_container(&self, name: &str, bundle: &Bundle) -> Result<(), String> {
        if self.lock().get(name).is_some_and(|s| s.container) {
            return Ok(());
        }
        let client = self.client_of(name);
        if client.namespace() != self.client.namespace() {
            client.ensure_namespace().await.map_err(|e| chain(&e))?;
        }
        let config_path = bundle.dir.join(slipway_contract::bundle::CONFIG_JSON);
        let config = self
            .opts
            .sys
            .read(&config_path)
            .map_err(|e| format!("reading {}: {e}", config_path.display()))?;
        let spec = spec::spec_any(&bundle.dir, &config, &bundle.rootfs).map_err(|e| chain(&e))?;
        client.remove(name).await.map_err(|e| chain(&e))?;
        let container = spec::container(name, spec, &self.opts.shim);
        client
            .create_container(container)
            .await
            .map_err(|e| chain(&e))?;
        if let Some(svc) = self.lock().get_mut(name) {
            svc.container = true;
        }
        Ok(())
    }

    /// Decide what follows a run. Returns false when the supervisor ends.
    async fn after_run(
        &self,
        name: &str,
        bundle: &Bundle,
        exit: Exit,
        uptime: Duration,
        backoff: &mut Backoff,
        generation: u64,
    ) -> bool {
        let stopped = self.stopping(name);
        if should_restart(bundle.annotations.restart, exit, stopped) {
            let delay = backoff.next_delay(uptime);
            self.event(
                Event::ServiceRestart,
                Some(name),
                Some(&format!("in {} ms", delay.as_millis())),
            );
            if let Some(svc) = self.lock().get_mut(name) {
                svc.status = Status::BackingOff;
                svc.restarts += 1;
            }
            self.notify();
            // A stop or the shutdown cuts the back-off short.
            let mut left = delay;
            while !left.is_zero() && !self.stopping(name) {
                let slice = left.min(Duration::from_millis(100));
                tokio::time::sleep(slice).await;
                left -= slice;
            }
            if self.stopping(name) && !self.shutting_down.load(Ordering::SeqCst) {
                // Stopped while backing off: no run follows.
                return self.park(name, Status::Stopped, generation, backoff).await;
            }
            return !self.shutting_down.load(Ordering::SeqCst);
        }
        let status = {
            let services = self.lock();
            match services.get(name).map(|s| &s.status) {
                _ if stopped => Status::Stopped,
                Some(s @ (Status::Starting | Status::Failed(_))) => s.clone(),
                _ => Status::Exited(exit.to_string()),
            }
        };
        self.park(name, status, generation, backoff).await
    }

    /// The service has ended for good: record `status` and wait for a
    /// start request (true) or the shutdown (false).
    async fn park(
        &self,
        name: &str,
        status: Status,
        generation: u64,
        backoff: &mut Backoff,
    ) -> bool {
        if let Some(svc) = self.lock().get_mut(name) {
            svc.status = status;
            svc.want_running = false;
        }
        self.notify();
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if self.shutting_down.load(Ordering::SeqCst) {
                return false;
            }
            match self.lock().get(name) {
                Some(svc) if svc.generation != generation && svc.want_running => {
                    *backoff = Backoff::default();
                    return true;
                }
                Some(_) => {}
                None => return false,
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), changed.changed()).await;
        }
    }

    /// `start NAME`: want a service that is not running to run.
    pub fn request_start(&self, name: &str) -> Result<(), Refusal> {
        {
            let mut services = self.lock();
            let svc = services.get_mut(name).ok_or(Refusal::Unknown)?;
            if self.shutting_down.load(Ordering::SeqCst) {
                return Err(Refusal::ShuttingDown);
            }
            if svc.bundle.is_none() {
                return Err(Refusal::CannotRun(status_text(&svc.status)));
            }
            if svc.pid.is_some() || matches!(svc.status, Status::Starting | Status::BackingOff) {
                return Err(Refusal::Already(status_text(&svc.status)));
            }
            svc.want_running = true;
            svc.stop_requested = false;
            svc.generation += 1;
            svc.status = Status::Waiting;
        }
        self.notify();
        Ok(())
    }

    /// `stop NAME`: no restart, TERM, `grace`, KILL; returns once the
    /// service has settled (or after a bounded wait).
    pub async fn request_stop(&self, name: &str, grace: Duration) -> Result<(), Refusal> {
        {
            let mut services = self.lock();
            let svc = services.get_mut(name).ok_or(Refusal::Unknown)?;
            svc.stop_requested = true;
            svc.want_running = false;
            // Held back by `after`: it now waits for a start request only.
            if svc.status == Status::Waiting {
                svc.status = Status::Stopped;
            }
        }
        self.notify();
        self.terminate(&[name.to_owned()], grace).await;
        let name = name.to_owned();
        self.wait_until(grace + Duration::from_secs(10), |services| {
            services
                .get(&name)
                .is_none_or(|s| s.pid.is_none() && !active(&s.status))
        })
        .await;
        Ok(())
    }

    /// TERM the services' tasks, wait up to `grace` for them to end, KILL
    /// those left. A service still starting is waited for first (within the
    /// same `grace`), so that its task is not missed.
    pub async fn terminate(&self, names: &[String], grace: Duration) {
        let deadline = now() + grace;
        self.wait_until(grace, |services| {
            names
                .iter()
                .all(|n| services.get(n).is_none_or(|s| s.status != Status::Starting))
        })
        .await;
        let running = |signal_left: &BTreeMap<String, Svc>| -> Vec<String> {
            names
                .iter()
                .filter(|n| signal_left.get(*n).is_some_and(|s| s.pid.is_some()))
                .cloned()
                .collect()
        };
        let targets = running(&self.lock());
        for name in &targets {
            let _ = self.client_of(name).kill(name, SIGTERM).await;
        }
        let left = deadline.saturating_duration_since(now());
        self.wait_until(left, |services| running(services).is_empty())
            .await;
        let stubborn = running(&self.lock());
        for name in &stubborn {
            let _ = self.client_of(name).kill(name, SIGKILL).await;
        }
    }

    /// Shutdown: no more starts or restarts; every task is ended (TERM,
    /// `grace`, KILL) and deleted, and then every container.
    pub async fn stop_all(&self, grace: Duration) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.notify();
        let names: Vec<String> = self.lock().keys().cloned().collect();
        self.terminate(&names, grace).await;
        self.wait_until(grace, |services| services.values().all(|s| s.pid.is_none()))
            .await;
        let containers: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.container)
            .map(|(n, _)| n.clone())
            .collect();
        for name in containers {
            if self.client_of(&name).remove(&name).await.is_ok()
                && let Some(svc) = self.lock().get_mut(&name)
            {
                svc.container = false;
            }
        }
    }
}
