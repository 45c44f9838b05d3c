//! The containerd backend against a real containerd (Debian's, started here
//! with its own root, state and socket) running busybox bundles with runc.
//! Needs root; skipped with a message otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use slipway_contract::timeline::Event;
use slipway_control::SERVICES_NAMESPACE;
use slipway_control::channel::connect_unix;
use slipway_control::containerd::services::containers::v1::{
    ListContainersRequest, containers_client::ContainersClient,
};
use slipway_control::containerd::services::tasks::v1::{
    ListTasksRequest, tasks_client::TasksClient,
};
use slipway_control::services::{Service, service::State};
use slipway_init::bundle::OciRuntime;
use slipway_init::sys::Sys;
use slipway_init::sys::real::RealSys;
use slipway_services::ServiceError;
use slipway_services::containerd::client::Client;
use slipway_services::containerd::{Containerd, Options, ShimOptions, spec};
use tempfile::TempDir;
use tonic::Request;

type Events = Arc<Mutex<Vec<(Event, String, String)>>>;

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: containerd runs containers only as root");
    false
}

/// A containerd of its own, killed (with what it left running) on drop.
struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    /// containerd on a socket in `dir`. For crun, on a host with hybrid
    /// cgroups (v1 controllers and the unified hierarchy beside them), which
    /// crun refuses and the guest never has: containerd and its shims get a
    /// mount namespace of their own without the unified hierarchy.
    fn start(dir: &Path, runtime: &str) -> Daemon {
        let socket = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{socket}\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            socket = socket.display(),
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let config = dir.join("config.toml");
        let mut command = if runtime == "crun" && hybrid_cgroups() {
            let mut unshare = Command::new("unshare");
            unshare.args(["--mount", "--propagation", "private", "sh", "-c"]);
            unshare.arg("umount /sys/fs/cgroup/unified && exec containerd --config \"$0\"");
            unshare.arg(&config);
            unshare
        } else {
            let mut containerd = Command::new("containerd");
            containerd.arg("--config").arg(&config);
            containerd
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd is installed (cargo xtask deps)");
        Daemon {
            child,
            dir: dir.to_owned(),
            socket,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed test can leave tasks: their processes and shims outlive
        // containerd. End them by their pids: the tasks' from the shims'
        // bundles, the shims' as the processes started for this socket.
        let tasks = self.dir.join("state/io.containerd.runtime.v2.task");
        for namespace in fs::read_dir(&tasks).into_iter().flatten().flatten() {
            for id in fs::read_dir(namespace.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let pid = fs::read_to_string(id.path().join("init.pid")).ok();
                kill(pid.and_then(|p| p.trim().parse().ok()));
            }
        }
        let socket = self.socket.to_string_lossy().into_owned();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args
                .first()
                .is_some_and(|a| a.ends_with("containerd-shim-runc-v2"))
                && args.contains(&socket)
            {
                kill(entry.file_name().to_str().and_then(|p| p.parse().ok()));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hybrid_cgroups() -> bool {
    fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup/unified"))
    })
}

fn kill(pid: Option<i64>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A bundle running busybox's `sh -c script`.
fn bundle(
    dir: &Path,
    name: &str,
    script: &str,
    annotations: serde_json::Value,
    readonly: bool,
) -> PathBuf {
    let bundle = dir.join("services").join(name);
    let rootfs = bundle.join("rootfs");
    for sub in ["bin", "proc", "dev", "tmp"] {
        fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/busybox", "sh", "-c", script],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": readonly},
        "hostname": name,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]
        },
        "annotations": annotations
    });
    fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    bundle
}

/// Fields drop in order: the daemon (and what it left) before the directory.
struct Fixture {
    containerd: Containerd,
    daemon: Daemon,
    dir: PathBuf,
    events: Events,
    console: Arc<Mutex<Vec<String>>>,
    _tmp: TempDir,
}

async fn fixture(tmp: TempDir) -> Fixture {
    fixture_with(tmp, "runc").await
}

/// containerd, and the backend with `runtime` (crun or runc) as the shim's binary.
async fn fixture_with(tmp: TempDir, runtime: &str) -> Fixture {
    let dir = tmp.path().to_owned();
    let daemon = Daemon::start(&dir, runtime);
    let sys: Arc<dyn Sys> = Arc::new(RealSys::start().unwrap());
    let events: Events = Arc::default();
    let seen = Arc::clone(&events);
    let console: Arc<Mutex<Vec<String>>> = Arc::default();
    let lines = Arc::clone(&console);
    let chosen =
        OciRuntime::choose(sys.as_ref(), Some(runtime), false).expect("the runtime is installed");
    assert_eq!(chosen.name(), runtime, "{runtime} is installed");
    let mut options = Options::new(
        daemon.socket.clone(),
        Arc::clone(&sys),
        Arc::new(move |event, name, detail| {
            seen.lock().unwrap().push((
                event,
                name.unwrap_or_default().to_owned(),
                detail.unwrap_or_default().to_owned(),
            ));
        }),
        Some(runtime),
        false,
    );
    assert_eq!(options.shim.binary, chosen.program.to_string_lossy());
    options.shim = ShimOptions {
        binary: chosen.program.to_string_lossy().into_owned(),
        root: dir.join("runc").to_string_lossy().into_owned(),
        no_pivot: false,
    };
    options.log_dir = dir.join("log");
    options.fifo_dir = dir.join("fifo");
    options.console = Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned()));
    let containerd = Containerd::connect(options).await.unwrap();
    Fixture {
        _tmp: tmp,
        dir,
        daemon,
        events,
        console,
        containerd,
    }
}

impl Fixture {
    /// The tasks containerd has in `services.linuxkit`: id → (pid, status).
    async fn tasks(&self) -> HashMap<String, (u32, i32)> {
        self.tasks_in(SERVICES_NAMESPACE).await
    }

    async fn tasks_in(&self, namespace: &str) -> HashMap<String, (u32, i32)> {
        let channel = connect_unix(&self.daemon.socket).await.unwrap();
        let mut request = Request::new(ListTasksRequest::default());
        request
            .metadata_mut()
            .insert("containerd-namespace", namespace.parse().unwrap());
        let tasks = TasksClient::new(channel)
            .list(request)
            .await
            .unwrap()
            .into_inner()
            .tasks;
        tasks
            .into_iter()
            .map(|t| (t.id, (t.pid, t.status)))
            .collect()
    }

    async fn containers(&self) -> Vec<String> {
        let channel = connect_unix(&self.daemon.socket).await.unwrap();
        let mut request = Request::new(ListContainersRequest::default());
        request
            .metadata_mut()
            .insert("containerd-namespace", SERVICES_NAMESPACE.parse().unwrap());
        let mut ids: Vec<String> = ContainersClient::new(channel)
            .list(request)
            .await
            .unwrap()
            .into_inner()
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort();
        ids
    }

    fn status(&self, name: &str) -> Service {
        self.containerd.status(name).unwrap()
    }

    fn events_of(&self, name: &str) -> Vec<(Event, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, n, _)| n == name)
            .map(|(e, _, d)| (*e, d.clone()))
            .collect()
    }

    /// Poll `check` until it holds; panics with `what` after a minute.
    async fn eventually(&self, what: &str, mut check: impl FnMut(&Fixture) -> bool) {
        for _ in 0..600 {
            if check(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{what} never happened; services: {:?}; events: {:?}",
            self.containerd.list(),
            self.events.lock().unwrap()
        );
    }
}

const RUNNING: i32 = 2;

fn state(service: &Service) -> State {
    State::try_from(service.state).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn services_run_as_containerd_tasks_and_are_supervised() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let web = bundle(
        &dir,
        "web",
        "echo web up; echo web oops >&2; exec sleep 600",
        json!({"org.slipway.console": "true"}),
        true,
    );
    let flaky = bundle(
        &dir,
        "flaky",
        "echo try; exit 3",
        json!({"org.slipway.restart": "on-failure"}),
        true,
    );
    let late = bundle(
        &dir,
        "late",
        "echo late; exec sleep 600",
        json!({"org.slipway.after": "web"}),
        true,
    );
    let broken = dir.join("services/broken");
    fs::create_dir_all(&broken).unwrap();
    fs::write(broken.join("config.json"), "{").unwrap();
    let f = fixture(tmp).await;

    f.containerd.start_all(&[broken, flaky, late, web]).await;
    assert!(f.events.lock().unwrap().contains(&(
        Event::ServicesStarted,
        String::new(),
        "4".into()
    )));

    // A broken bundle is FAILED; the others run.
    let failed = f.status("broken");
    assert_eq!(state(&failed), State::Failed);
    assert!(failed.detail.contains("invalid config.json"), "{failed:?}");
    assert_eq!(f.events_of("broken")[0].0, Event::ServiceFailed);
    let web = f.status("web");
    assert_eq!(
        (state(&web), web.runtime.as_str()),
        (State::Ready, "containerd")
    );
    let late = f.status("late");
    assert_eq!(state(&late), State::Ready);

    // They are containerd tasks in services.linuxkit, run by runc under the
    // shim's options (its state is in the runc root given).
    let tasks = f.tasks().await;
    assert_eq!(tasks.get("web"), Some(&(web.pid, RUNNING)), "{tasks:?}");
    assert_eq!(tasks.get("late"), Some(&(late.pid, RUNNING)), "{tasks:?}");
    assert!(f.dir.join("runc/services.linuxkit/web/state.json").exists());

    // Output lands in the init's log files; the console gets web's (and
    // only web's: the others are not console services), prefixed.
    let log = f.dir.join("log");
    f.eventually("web's logs", |_| {
        fs::read_to_string(log.join("web.out.log")).is_ok_and(|l| l == "web up\n")
            && fs::read_to_string(log.join("web.log")).is_ok_and(|l| l == "web oops\n")
    })
    .await;
    f.eventually("web's console lines", |f| {
        let mut lines = f.console.lock().unwrap().clone();
        lines.sort();
        lines == ["web: web oops", "web: web up"]
    })
    .await;

    // on-failure restarts with the init's back-off, into the same log.
    f.eventually("a restart of flaky", |f| f.status("flaky").restarts >= 1)
        .await;
    let flaky_events = f.events_of("flaky");
    assert!(flaky_events.contains(&(Event::ServiceExit, "exit status 3".into())));
    assert!(flaky_events.contains(&(Event::ServiceRestart, "in 1000 ms".into())));
    f.eventually("flaky's second run logged", |_| {
        fs::read_to_string(log.join("flaky.out.log")).is_ok_and(|l| l.starts_with("try\ntry\n"))
    })
    .await;

    // A crash-looping service stops for good, between two runs or in one.
    let flaky = f
        .containerd
        .stop("flaky", Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!((state(&flaky), flaky.pid), (State::Stopped, 0));
    assert!(!f.tasks().await.contains_key("flaky"));

    // stop: `sleep` as the container's PID 1 ignores SIGTERM, so this is
    // SIGKILL after the grace; the task is gone.
    let stopped = f
        .containerd
        .stop("web", Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!((state(&stopped), stopped.pid), (State::Stopped, 0));
    assert!(!f.tasks().await.contains_key("web"));
    assert!(
        f.events_of("web")
            .contains(&(Event::ServiceExit, "killed by signal 9".into()))
    );
    let restarts = f.status("web").restarts;

    // start and restart make new tasks.
    let started = f.containerd.start("web").await.unwrap();
    assert_eq!(state(&started), State::Ready);
    assert_ne!(started.pid, web.pid);
    assert_eq!(f.tasks().await.get("web"), Some(&(started.pid, RUNNING)));
    let again = f
        .containerd
        .restart("web", Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(state(&again), State::Ready);
    assert_ne!(again.pid, started.pid);
    assert_eq!(f.tasks().await.get("web"), Some(&(again.pid, RUNNING)));
    assert_eq!(
        again.restarts, restarts,
        "requested starts are not restarts"
    );
    assert!(matches!(
        f.containerd.start("web").await,
        Err(ServiceError::Precondition { .. })
    ));
    assert!(matches!(
        f.containerd.start("broken").await,
        Err(ServiceError::Precondition { .. })
    ));
    assert!(matches!(
        f.containerd.status("nope"),
        Err(ServiceError::Unknown(_))
    ));

    // Shutdown leaves no task and no container.
    f.containerd.stop_all(Duration::from_millis(500)).await;
    assert_eq!(f.tasks().await, HashMap::new());
    assert_eq!(f.containers().await, Vec::<String>::new());
    assert!(
        f.containerd
            .list()
            .iter()
            .all(|s| s.pid == 0 && state(s) != State::Ready)
    );
    assert!(matches!(
        f.containerd.start("web").await,
        Err(ServiceError::Precondition { .. })
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn after_waits_for_readiness_and_runtime_json_is_honoured() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let db = bundle(
        &dir,
        "db",
        "sleep 1; busybox touch /ready; exec sleep 600",
        json!({"org.slipway.ready": "file:/ready"}),
        false,
    );
    let app = bundle(
        &dir,
        "app",
        "exec sleep 600",
        json!({"org.slipway.after": "db"}),
        true,
    );
    // runtime.json: a tmpfs mounted and a directory made before the task,
    // the network namespace bound after it is created.
    let mnt = dir.join("mnt");
    let made = dir.join("made/here");
    let bound = dir.join("netns/app");
    let runtime = json!({
        "mounts": [{"type": "tmpfs", "source": "tmpfs", "destination": mnt}],
        "mkdir": [made],
        "bindNS": {"net": bound}
    });
    fs::write(app.join("runtime.json"), runtime.to_string()).unwrap();
    let f = fixture(tmp).await;

    // start_all returns with app still waiting for db to be ready.
    f.containerd.start_all(&[app, db]).await;
    f.eventually("app started", |f| state(&f.status("app")) == State::Ready)
        .await;
    let order: Vec<(Event, String)> = f
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|(e, n, _)| (*e, n.clone()))
        .collect();
    let at = |event: Event, name: &str| {
        order
            .iter()
            .position(|(e, n)| *e == event && n == name)
            .unwrap_or_else(|| panic!("no {event} {name} in {order:?}"))
    };
    assert!(at(Event::ServiceReady, "db") < at(Event::ServiceStart, "app"));
    assert!(
        f.events_of("db")
            .contains(&(Event::ServiceReady, "file:/ready".into()))
    );
    let app = f.status("app");
    assert_eq!(state(&app), State::Ready);

    assert!(made.is_dir());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounted = |path: &Path| {
        mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
    };
    assert!(mounted(&mnt), "{} not mounted", mnt.display());
    let ns = fs::metadata(format!("/proc/{}/ns/net", app.pid)).unwrap();
    let bound_ns = fs::metadata(&bound).unwrap();
    assert_eq!(
        (bound_ns.dev(), bound_ns.ino()),
        (ns.dev(), ns.ino()),
        "the bound file is the task's network namespace"
    );

    f.containerd.stop_all(Duration::from_millis(500)).await;
    assert_eq!(f.tasks().await, HashMap::new());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap())),
        "runtime.json's mount is undone after the run"
    );
    // The bound namespace stays mounted, as with the init; unmount it so the
    // temporary directory can go.
    let _ = nix::mount::umount2(&bound, nix::mount::MntFlags::MNT_DETACH);
}

#[tokio::test(flavor = "current_thread")]
async fn stale_containers_namespaces_and_failed_creates() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let ok = bundle(&dir, "ok", "exec sleep 600", json!({}), true);
    let elsewhere = bundle(&dir, "elsewhere", "exec sleep 600", json!({}), true);
    fs::write(
        elsewhere.join("runtime.json"),
        r#"{"namespace": "slipway.other"}"#,
    )
    .unwrap();
    let missing = bundle(&dir, "missing", "true", json!({}), true);
    // The command is not in the image: the runtime refuses it.
    let config = fs::read_to_string(missing.join("config.json"))
        .unwrap()
        .replace("/bin/busybox", "/bin/absent");
    fs::write(missing.join("config.json"), config).unwrap();
    let f = fixture(tmp).await;

    // What an earlier boot leaves: container "ok" with a running task.
    let client = Client::connect(
        &f.daemon.socket,
        SERVICES_NAMESPACE,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let shim = ShimOptions {
        binary: String::new(),
        root: f.dir.join("runc").to_string_lossy().into_owned(),
        no_pivot: false,
    };
    let config = fs::read(ok.join("config.json")).unwrap();
    let spec = spec::spec_any(&ok, &config, &ok.join("rootfs")).unwrap();
    client
        .create_container(spec::container("ok", spec, &shim))
        .await
        .unwrap();
    let stale = client
        .create_task("ok", Path::new(""), Path::new(""), Some(shim.to_any()))
        .await
        .unwrap();
    client.start_task("ok").await.unwrap();
    assert_eq!(f.tasks().await.get("ok"), Some(&(stale, RUNNING)));

    f.containerd.start_all(&[elsewhere, missing, ok]).await;
    let replaced = f.status("ok");
    assert_eq!(state(&replaced), State::Ready);
    assert_ne!(replaced.pid, stale);
    assert_eq!(f.tasks().await.get("ok"), Some(&(replaced.pid, RUNNING)));
    let failed = f.status("missing");
    assert_eq!(state(&failed), State::Failed, "{failed:?}");
    assert!(
        failed.detail.contains("task missing") && failed.detail.contains("/bin/absent"),
        "{failed:?}"
    );
    assert!(
        f.events_of("missing")
            .iter()
            .any(|(e, d)| *e == Event::ServiceFailed && d == &failed.detail)
    );
    assert!(!f.tasks().await.contains_key("missing"));

    // runtime.json's namespace puts the service's task there.
    let elsewhere = f.status("elsewhere");
    assert_eq!(state(&elsewhere), State::Ready);
    assert_eq!(
        f.tasks_in("slipway.other").await,
        HashMap::from([("elsewhere".to_owned(), (elsewhere.pid, RUNNING))])
    );
    assert!(!f.tasks().await.contains_key("elsewhere"));

    f.containerd.stop_all(Duration::from_millis(500)).await;
    assert_eq!(f.tasks().await, HashMap::new());
    assert_eq!(f.tasks_in("slipway.other").await, HashMap::new());
}

#[tokio::test(flavor = "current_thread")]
async fn crun_runs_the_services_too() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let web = bundle(
        &dir,
        "web",
        "echo served by crun; exec sleep 600",
        json!({"org.slipway.console": "true"}),
        true,
    );
    let f = fixture_with(tmp, "crun").await;
    f.containerd.start_all(&[web]).await;
    let web = f.status("web");
    assert_eq!(state(&web), State::Ready, "{web:?}");
    assert_eq!(f.tasks().await.get("web"), Some(&(web.pid, RUNNING)));
    // crun's state (status), not runc's (state.json), in the shim's root.
    let state_dir = f.dir.join("runc/services.linuxkit/web");
    assert!(state_dir.join("status").exists());
    assert!(!state_dir.join("state.json").exists());
    f.eventually("web's console line", |f| {
        f.console.lock().unwrap().as_slice() == ["web: served by crun"]
    })
    .await;
    f.containerd.stop_all(Duration::from_millis(500)).await;
    assert_eq!(f.tasks().await, HashMap::new());
}
