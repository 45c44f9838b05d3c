//! Services as containerd containers and tasks in `services.linuxkit`.
//!
//! Every bundle under `/containers/services/<name>` becomes container
//! `<name>` (its `config.json` with `root.path` made absolute, the runc v2
//! shim with crun or runc as the binary) and a task, supervised here with
//! the init's rules: `runtime.json` (mounts, mkdir, cgroups before the task
//! is created; interfaces and bound namespaces between create and start),
//! `org.slipway.restart` with the init's back-off, `org.slipway.ready`,
//! `org.slipway.after`, the same statuses, logs and timeline events. The
//! init's own code for bundles and for those rules is used, not copied.
//!
//! ```text
//! Containerd::connect(options) -> Result<Containerd, ServiceError>
//! containerd.start_all(bundle_dirs)        // supervision tasks; returns once every
//!                                          // service is started or waiting (services-started)
//! containerd.list() -> Vec<Service>
//! containerd.status(name) / start(name) / stop(name, grace) / restart(name, grace)
//!     -> Result<Service, ServiceError>
//! containerd.stop_all(grace)               // at shutdown
//! ```

pub mod client;
mod logs;
pub mod spec;
mod supervise;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use slipway_contract::timeline::Event;
use slipway_control::SERVICES_NAMESPACE;
use slipway_control::services::{Service, service::State};
use slipway_init::bundle::OciRuntime;
use slipway_init::services::{Status, after_satisfied};
use slipway_init::sys::Sys;

use crate::ServiceError;
pub use logs::{Console, device_console, stdout_console};
pub use spec::ShimOptions;
use supervise::{Inner, Refusal, Svc, dep_states};

/// Where timeline events go: `(event, service name, detail)`. The caller
/// hands them to the init's timeline.
pub type EventSink = Arc<dyn Fn(Event, Option<&str>, Option<&str>) + Send + Sync>;

/// The `runtime` of every [`Service`] this backend reports.
pub const RUNTIME: &str = "containerd";

/// How to reach containerd and where things go.
pub struct Options {
    /// containerd's socket (`/run/containerd/containerd.sock`).
    pub socket: PathBuf,
    /// The containerd namespace of the services.
    pub namespace: String,
    /// How long to wait for containerd to answer at start-up.
    pub connect_timeout: Duration,
    /// How long [`Containerd::start_all`] waits for the services to start
    /// (the init waits as long for its own).
    pub start_timeout: Duration,
    /// How the shim runs the OCI runtime.
    pub shim: ShimOptions,
    /// Where `<name>.log` and `<name>.out.log` go.
    pub log_dir: PathBuf,
    /// Where the services' output FIFOs are made.
    pub fifo_dir: PathBuf,
    /// Mounts, `runtime.json`'s links and namespaces, readiness probes: the
    /// init's system layer (`RealSys` on the guest).
    pub sys: Arc<dyn Sys>,
    /// The timeline.
    pub events: EventSink,
    /// Where `org.slipway.console` services' lines go.
    pub console: Console,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("socket", &self.socket)
            .field("namespace", &self.namespace)
            .field("shim", &self.shim)
            .field("log_dir", &self.log_dir)
            .field("fifo_dir", &self.fifo_dir)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// The guest's settings: containerd on `socket`, namespace
    /// `services.linuxkit`, logs in `/var/log`, FIFOs in
    /// `/run/slipway/containerd`, the shim running the OCI runtime the init
    /// would pick (`preference`: `crun` or `runc`, from
    /// `slipway.runtime=`), output on this process's stdout.
    pub fn new(
        socket: PathBuf,
        sys: Arc<dyn Sys>,
        events: EventSink,
        preference: Option<&str>,
        no_pivot: bool,
    ) -> Options {
        let binary = OciRuntime::choose(sys.as_ref(), preference, no_pivot)
            .map(|rt| rt.program.to_string_lossy().into_owned())
            // The shim's own default, which it looks up in its PATH.
            .unwrap_or_default();
        Options {
            socket,
            namespace: SERVICES_NAMESPACE.to_owned(),
            connect_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(120),
            shim: ShimOptions {
                binary,
                root: String::new(),
                no_pivot,
            },
            log_dir: PathBuf::from("/var/log"),
            fifo_dir: PathBuf::from("/run/slipway/containerd"),
            sys,
            events,
            console: stdout_console(),
        }
    }
}

/// The services, run by containerd. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Containerd {
    inner: Arc<Inner>,
}

impl Containerd {
    /// Wait for containerd to answer, and make the namespace if missing.
    pub async fn connect(options: Options) -> Result<Containerd, ServiceError> {
        let client =
            client::Client::connect(&options.socket, &options.namespace, options.connect_timeout)
                .await
                .map_err(|e| ServiceError::Backend {
                    what: "connecting to containerd".into(),
                    source: Box::new(e),
                })?;
        Ok(Containerd {
            inner: Arc::new(Inner::new(client, options)),
        })
    }

    /// containerd's version.
    pub fn version(&self) -> &str {
        &self.inner.client.version
    }

    /// Read every bundle and start supervising it; returns once every
    /// service is started (or failed), or waits for others
    /// (`org.slipway.after`), or after the start timeout, and records
    /// `services-started` as the init does. A broken bundle is FAILED and
    /// the others go on. Call once.
    pub async fn start_all(&self, dirs: &[PathBuf]) {
        for name in self.inner.load(dirs) {
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move { inner.supervise(name).await });
        }
        self.inner
            .wait_until(self.inner.opts.start_timeout, |s| !Inner::pending(s))
            .await;
        self.inner
            .event(Event::ServicesStarted, None, Some(&dirs.len().to_string()));
    }

    /// Every service, by name.
    pub fn list(&self) -> Vec<Service> {
        let services = self.inner.lock();
        let states = dep_states(&services);
        services
            .iter()
            .map(|(name, svc)| message(name, svc, &states))
            .collect()
    }

    /// One service.
    pub fn status(&self, name: &str) -> Result<Service, ServiceError> {
        let services = self.inner.lock();
        let states = dep_states(&services);
        services
            .get(name)
            .map(|svc| message(name, svc, &states))
            .ok_or_else(|| ServiceError::Unknown(name.to_owned()))
    }

    /// Start a service that is not running; returns once it has started
    /// (or failed to), or waits for the services it comes after.
    pub async fn start(&self, name: &str) -> Result<Service, ServiceError> {
        self.inner
            .request_start(name)
            .map_err(|r| refused(name, r))?;
        let key = name.to_owned();
        self.inner
            .wait_until(self.inner.opts.start_timeout, |services| {
                let states = dep_states(services);
                services.get(&key).is_none_or(|s| match s.status {
                    Status::Starting => false,
                    Status::Waiting => !s
                        .bundle
                        .as_ref()
                        .is_some_and(|b| after_satisfied(b.annotations.after.names(), &states)),
                    _ => true,
                })
            })
            .await;
        self.status(name)
    }

    /// Stop a service: no restart, SIGTERM, SIGKILL after `grace`, its
    /// task deleted. Returns once it has ended.
    pub async fn stop(&self, name: &str, grace: Duration) -> Result<Service, ServiceError> {
        self.inner
            .request_stop(name, grace)
            .await
            .map_err(|r| refused(name, r))?;
        self.status(name)
    }

    /// Stop (as [`Containerd::stop`]) a service if it runs, then start it.
    pub async fn restart(&self, name: &str, grace: Duration) -> Result<Service, ServiceError> {
        self.stop(name, grace).await?;
        self.start(name).await
    }

    /// Shutdown: no more starts or restarts; every task ended (SIGTERM,
    /// SIGKILL after `grace`) and deleted, then every container.
    pub async fn stop_all(&self, grace: Duration) {
        self.inner.stop_all(grace).await;
    }
}

fn refused(name: &str, refusal: Refusal) -> ServiceError {
    match refusal {
        Refusal::Unknown => ServiceError::Unknown(name.to_owned()),
        Refusal::ShuttingDown => ServiceError::Precondition {
            name: name.to_owned(),
            why: "the machine is shutting down".into(),
        },
        Refusal::CannotRun(status) => ServiceError::Precondition {
            name: name.to_owned(),
            why: format!("cannot run: {status}"),
        },
        Refusal::Already(status) => ServiceError::Precondition {
            name: name.to_owned(),
            why: format!("is already {status}"),
        },
    }
}

/// The API's view of a service.
fn message(
    name: &str,
    svc: &Svc,
    states: &std::collections::HashMap<String, (Status, bool)>,
) -> Service {
    let (state, detail) = match &svc.status {
        Status::Waiting => {
            let waits_for: Vec<&str> = svc
                .bundle
                .iter()
                .flat_map(|b| b.annotations.after.names())
                .filter(|dep| !after_satisfied(std::slice::from_ref(*dep), states))
                .map(String::as_str)
                .collect();
            (State::Waiting, waits_for.join(", "))
        }
        Status::Starting => (State::Starting, String::new()),
        Status::Running => (State::Running, String::new()),
        Status::Ready => (State::Ready, String::new()),
        Status::BackingOff => (State::BackingOff, String::new()),
        Status::Exited(why) => (State::Exited, why.clone()),
        Status::Failed(why) => (State::Failed, why.clone()),
        Status::Stopped => (State::Stopped, String::new()),
    };
    Service {
        name: name.to_owned(),
        state: state as i32,
        detail,
        pid: svc.pid.unwrap_or(0),
        restarts: svc.restarts,
        runtime: RUNTIME.to_owned(),
        restart: svc
            .bundle
            .as_ref()
            .map(|b| b.annotations.restart.as_str().to_owned())
            .unwrap_or_default(),
    }
}
