//! The boot sequence: root, mounts, modules, the machine's settings
//! ([`crate::machine`]), `/etc/init.d` with
//! LinuxKit's hooks as built-in phases (volumes, onboot, services).

use slipway_contract::errors::chain;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use slipway_contract::bundle::{LOWER, MERGED, ONBOOT_DIR, SERVICES_DIR, TMP, VOLUMES_DIR};
use slipway_contract::timeline::Event;

use crate::bundle::{OciRuntime, list, run_once};
use crate::control::{self, Control, Held};
use crate::daemons::{self, Daemons};
use crate::mounts::{self, RootStrategy};
use crate::root::{self, RootParams};
use crate::services::Supervisor;
use crate::sys::{Cmd, MountSpec, MsFlags, Sys};
use crate::timeline::Timeline;
use crate::{Error, Result, machine, modules};

/// A built-in phase, and the `/etc/init.d` hook names that stand for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Mount `/containers/volumes/*` (`005-volumes`).
    Volumes,
    /// Run `/containers/onboot/*` (`010-onboot`).
    Onboot,
    /// Start `/containers/services/*` (`020-containerd`, `020-services`).
    Services,
}

/// Which phase an `/etc/init.d` entry stands for: LinuxKit's hooks are
/// links to `/usr/bin/service`, named after what they do.
pub fn hook_phase(name: &str, link: Option<&Path>) -> Option<Phase> {
    let to_service = link.is_some_and(|l| l.file_name().is_some_and(|n| n == "service"));
    let phase = match name.split_once('-').map(|(_, rest)| rest) {
        Some("volumes") => Phase::Volumes,
        Some("onboot") => Phase::Onboot,
        Some("containerd") | Some("services") => Phase::Services,
        _ => return None,
    };
    // A real containerd script (not a link) is LinuxKit's, but slipway
    // runs the services itself: it stands for the phase either way.
    (to_service || phase == Phase::Services || link.is_none()).then_some(phase)
}

const PHASES: &[Phase] = &[Phase::Volumes, Phase::Onboot, Phase::Services];

/// Where the services and the daemons log.
const LOG_DIR: &str = "/var/log";

/// Boot settings from the kernel command line (`slipway.*=` parameters,
/// which the kernel hands to init as environment variables).
#[derive(Clone, Debug)]
pub struct Options {
    /// How to leave the initramfs.
    pub root: RootStrategy,
    /// `crun` or `runc`.
    pub runtime: Option<String>,
    /// Threads loading modules (`slipway.module_threads=`); default: one
    /// per CPU.
    pub module_threads: Option<usize>,
    /// `slipway.modules=early`: every module of `modules.load` before the
    /// first container, none on demand (for containers that need one the
    /// kernel does not ask for).
    pub modules_early: bool,
    /// `slipway.runtime_timeout=SECONDS`: see [`crate::bundle::OciRuntime::timeout`].
    pub runtime_timeout: Option<Duration>,
    /// A root device (`root=` and the other `root*` parameters), which
    /// replaces the initramfs (and `root`).
    pub root_device: Option<RootParams>,
    /// Where to serve the control socket once the services phase begins
    /// (PID 1: [`CONTROL_SOCKET`]; not from the command line).
    pub control_socket: Option<PathBuf>,
}

impl Options {
    /// From the kernel command line. `slipway.root=` and `slipway.runtime=`
    /// contain a dot, so the kernel treats them as module parameters and
    /// does not hand them to init: they are read from `/proc/cmdline`.
    pub fn from_cmdline(cmdline: &str) -> Options {
        let param = |key: &str| {
            cmdline
                .split_whitespace()
                .filter_map(|w| w.strip_prefix(key))
                .next_back()
                .map(str::to_owned)
        };
        Options {
            root: RootStrategy::from_param(param("slipway.root=").as_deref()),
            runtime: param("slipway.runtime="),
            module_threads: param("slipway.module_threads=")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0),
            modules_early: param("slipway.modules=").as_deref() == Some("early"),
            runtime_timeout: param("slipway.runtime_timeout=")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .map(Duration::from_secs),
            root_device: RootParams::from_cmdline(cmdline),
            control_socket: None,
        }
    }

    /// Read the kernel command line before anything else is mounted:
    /// mount `/proc`. It stays mounted on the initramfs root, which the
    /// init then leaves (out of sight below the new root): unmounting
    /// waits for an RCU grace period, 10-20 ms under emulation. [`boot`]
    /// unmounts it when the init stays on its root.
    pub fn read(sys: &dyn Sys) -> Options {
        let proc_dir = Path::new("/proc");
        let _ = sys.mkdir_all(proc_dir, 0o555);
        let spec = MountSpec::fs("proc", "proc", "/proc", MsFlags::empty(), "");
        let _ = sys.mount(&spec);
        let cmdline = sys
            .read(Path::new("/proc/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default();
        Options::from_cmdline(&cmdline)
    }
}

/// What boot hands to the rest of PID 1.
#[derive(Debug)]
pub struct Booted {
    /// The OCI runtime, if the image has one.
    pub runtime: Option<OciRuntime>,
    /// The services' supervisor, once started (not when the service
    /// manager runs them in containerd).
    pub supervisor: Option<Arc<Supervisor>>,
    /// The daemons started so far.
    pub daemons: Arc<Daemons>,
    control_socket: Option<PathBuf>,
    /// The thread loading the modules that wait ([`modules::Plan::later`]).
    pub modules_later: Option<JoinHandle<()>>,
}

/// Everything from the first instruction to the services started. An error
/// is fatal; problems that are not (a module, a bundle) go on the timeline.
pub fn boot(sys: &Arc<dyn Sys>, timeline: &Arc<Timeline>, options: &Options) -> Result<Booted> {
    let s = sys.as_ref();
    let threads = options.module_threads.unwrap_or_else(|| s.cpus());
    let how = match &options.root_device {
        Some(device) if root::on_initramfs(s)? => root::switch(s, timeline, device, threads)?,
        _ => mounts::leave_initramfs(s, options.root)?,
    };
    let stayed = how.contains("stayed");
    if stayed {
        // Options::read's /proc, which the base plan mounts again.
        let _ = s.umount(Path::new("/proc"), false);
    }
    timeline.event(s, Event::RootDone, None, Some(&how));
    mounts::apply(s, &mounts::base_plan())?;
    timeline.enable_json(s);
    timeline.event(s, Event::MountsDone, None, None);

    let release = s
        .read(Path::new("/proc/sys/kernel/osrelease"))
        .map(|r| String::from_utf8_lossy(&r).trim().to_owned())
        .unwrap_or_default();
    // Before the first module: loading one can make the kernel ask for
    // another (ext4 its checksum algorithm).
    if !options.modules_early {
        modules::serve_requests(s);
    }
    let plan = modules::plan(s, &release, options.modules_early);
    report_modules(s, timeline, None, &plan.load_now(s, threads));
    let modules_later = load_later(sys, timeline, plan, threads);
    let (hostname, problems) = machine::setup(s);
    for problem in problems {
        s.console(&format!("slipway-init: {problem}"));
    }
    timeline.event(s, Event::SystemDone, None, Some(&hostname));

    let mut runtime = OciRuntime::choose(s, options.runtime.as_deref(), stayed);
    if let (Some(rt), Some(timeout)) = (runtime.as_mut(), options.runtime_timeout) {
        rt.timeout = timeout;
    }
    let mut booted = Booted {
        runtime,
        supervisor: None,
        daemons: Daemons::new(
            Arc::clone(sys),
            Arc::clone(timeline),
            PathBuf::from(LOG_DIR),
        ),
        control_socket: options.control_socket.clone(),
        modules_later,
    };
    let mut done = Vec::new();
    let mut scripts: Vec<(String, Option<PathBuf>)> = s
        .read_dir(Path::new("/etc/init.d"))
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.is_dir)
        .map(|e| (e.name, e.link))
        .collect();
    scripts.sort();
    for (name, link) in scripts {
        match hook_phase(&name, link.as_deref()) {
            Some(phase) => {
                // Earlier phases first (volumes before onboot before services).
                for earlier in PHASES.iter().take_while(|p| **p != phase).chain([&phase]) {
                    if !done.contains(earlier) {
                        run_phase(sys, timeline, *earlier, &mut booted)?;
                        done.push(*earlier);
                    }
                }
            }
            None => {
                let path = Path::new("/etc/init.d").join(&name);
                let status = match s.spawn(&Cmd::new(&path, &[])).and_then(|pid| s.wait(pid)) {
                    Ok(exit) => exit.to_string(),
                    Err(e) => chain(&e),
                };
                timeline.event(s, Event::InitdScript, Some(&name), Some(&status));
            }
        }
    }
    for phase in PHASES {
        if !done.contains(phase) {
            run_phase(sys, timeline, *phase, &mut booted)?;
        }
    }
    Ok(booted)
}

/// Load the plan's [`modules::Plan::later`] on a thread of the lowest
/// priority, so that the containers go first and the modules take the
/// time they leave (`modules-done later` when done). `None` when the
/// thread could not start: they are loaded here.
fn load_later(
    sys: &Arc<dyn Sys>,
    timeline: &Arc<Timeline>,
    plan: modules::Plan,
    threads: usize,
) -> Option<JoinHandle<()>> {
    let load = {
        let sys = Arc::clone(sys);
        let timeline = Arc::clone(timeline);
        move || {
            let s = sys.as_ref();
            s.lower_priority();
            report_modules(s, &timeline, Some("later"), &plan.load_later(s, threads));
        }
    };
    std::thread::Builder::new()
        .name("modules".into())
        .spawn(load)
        .map_err(|e| {
            sys.console(&format!(
                "slipway-init: no thread for the later modules: {e}"
            ))
        })
        .ok()
}

/// `modules-done` (named `later` for [`load_later`]'s) says what loading
/// did and how long it took.
fn report_modules(s: &dyn Sys, timeline: &Timeline, name: Option<&str>, loaded: &modules::Loaded) {
    for (module, error) in &loaded.failed {
        s.console(&format!("slipway-init: module {module}: {error}"));
    }
    timeline.event(
        s,
        Event::ModulesDone,
        name,
        Some(&format!(
            "{} loaded, {} failed, {} threads; index and devices {} ms, loading {} ms",
            loaded.loaded,
            loaded.failed.len(),
            loaded.workers,
            loaded.prepare_ms,
            loaded.load_ms
        )),
    );
}

fn run_phase(
    sys: &Arc<dyn Sys>,
    timeline: &Arc<Timeline>,
    phase: Phase,
    booted: &mut Booted,
) -> Result<()> {
    let s = sys.as_ref();
    match phase {
        Phase::Volumes => {
            let count = mount_volumes(s)?;
            timeline.event(s, Event::VolumesDone, None, Some(&count.to_string()));
        }
        Phase::Onboot => {
            let bundles = list(s, &Path::new("/").join(ONBOOT_DIR));
            if !bundles.is_empty() {
                let rt = booted
                    .runtime
                    .as_ref()
                    .ok_or_else(|| no_runtime("onboot"))?;
                for dir in &bundles {
                    let name = dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    timeline.event(s, Event::OnbootStart, Some(&name), None);
                    match run_once(s, rt, dir, Path::new("/run/log/onboot"), "onboot") {
                        Ok(exit) if exit.success() => timeline.event(
                            s,
                            Event::OnbootExit,
                            Some(&name),
                            Some(&exit.to_string()),
                        ),
                        Ok(exit) => timeline.event(
                            s,
                            Event::OnbootFailed,
                            Some(&name),
                            Some(&exit.to_string()),
                        ),
                        Err(e) => {
                            timeline.event(s, Event::OnbootFailed, Some(&name), Some(&chain(&e)))
                        }
                    }
                }
            }
            timeline.event(s, Event::OnbootDone, None, Some(&bundles.len().to_string()));
            if s.exists(Path::new(daemons::MUX)) {
                start_daemon(booted, "mux", daemons::MUX, &[]);
            }
        }
        Phase::Services => {
            let dirs = list(s, &Path::new("/").join(SERVICES_DIR));
            let manager = s.exists(Path::new(daemons::SERVICES));
            if !dirs.is_empty() && manager && s.exists(Path::new(daemons::CONTAINERD)) {
                // The service manager runs the services in containerd; the
                // init serves its socket first, for the manager's events.
                serve_control(sys, timeline, booted, Held::Elsewhere);
                start_daemon(booted, "containerd", daemons::CONTAINERD, &[]);
                // The shim runs the OCI runtime the init chose, as it would.
                let mut args = vec![
                    "--containerd".to_owned(),
                    daemons::CONTAINERD_SOCKET.to_owned(),
                ];
                if let Some(rt) = &booted.runtime {
                    args.push("--runtime".into());
                    args.push(rt.program.to_string_lossy().into_owned());
                    if rt.no_pivot {
                        args.push("--no-pivot".into());
                    }
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                start_daemon(booted, "services", daemons::SERVICES, &args);
                return Ok(());
            }
            let held = if dirs.is_empty() {
                Held::Nothing
            } else {
                let rt = booted
                    .runtime
                    .clone()
                    .ok_or_else(|| no_runtime("services"))?;
                let supervisor = Supervisor::new(
                    Arc::clone(sys),
                    Arc::clone(timeline),
                    rt,
                    PathBuf::from(LOG_DIR),
                );
                // The threads run for the life of the machine.
                drop(supervisor.start_all(&dirs));
                supervisor.wait_started(Duration::from_secs(120));
                timeline.event(
                    s,
                    Event::ServicesStarted,
                    None,
                    Some(&dirs.len().to_string()),
                );
                booted.supervisor = Some(Arc::clone(&supervisor));
                Held::Init(supervisor)
            };
            serve_control(sys, timeline, booted, held);
            // The service manager serves the init's services (and the
            // timeline, logs and power) to the multiplexer's clients.
            if manager && s.exists(Path::new(daemons::MUX)) {
                start_daemon(booted, "services", daemons::SERVICES, &[]);
            }
        }
    }
    Ok(())
}

/// Start a daemon; its thread runs for the life of the machine.
fn start_daemon(booted: &Booted, name: &str, program: &str, args: &[&str]) {
    drop(booted.daemons.start(name, Path::new(program), args));
}

/// Serve the control socket, when there is one to serve; a failure is
/// reported, and the machine goes on without it.
fn serve_control(sys: &Arc<dyn Sys>, timeline: &Arc<Timeline>, booted: &Booted, held: Held) {
    let Some(path) = &booted.control_socket else {
        return;
    };
    let control = Control {
        held,
        sys: Arc::clone(sys),
        timeline: Arc::clone(timeline),
    };
    if let Err(e) = control::serve(Arc::new(control), path) {
        sys.console(&format!(
            "slipway-init: control socket {}: {}",
            path.display(),
            chain(&e)
        ));
    }
}

fn no_runtime(what: &str) -> Error {
    Error::io(
        format!("{what} bundles need an OCI runtime"),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "neither crun nor runc is in /usr/bin, /usr/sbin, /bin or /sbin",
        ),
    )
}

/// LinuxKit's `005-volumes`: a tmpfs on `tmp/` and an overlay of `lower`
/// on `merged/`; read-only (a bind) when the volume has no `tmp/`.
pub fn mount_volumes(sys: &dyn Sys) -> Result<usize> {
    let volumes = list(sys, &Path::new("/").join(VOLUMES_DIR));
    for dir in &volumes {
        let lower = dir.join(LOWER);
        let tmp = dir.join(TMP);
        let merged = dir.join(MERGED);
        let mut specs = Vec::new();
        if sys.exists(&tmp) {
            specs.push(MountSpec::fs(
                "tmpfs",
                "tmpfs",
                &tmp.to_string_lossy(),
                MsFlags::empty(),
                "",
            ));
            specs.push(MountSpec::fs(
                "overlay",
                "overlay",
                &merged.to_string_lossy(),
                MsFlags::empty(),
                &format!(
                    "lowerdir={},upperdir={}/upper,workdir={}/work",
                    lower.display(),
                    tmp.display(),
                    tmp.display()
                ),
            ));
        } else {
            specs.push(MountSpec {
                source: Some(lower.to_string_lossy().into_owned()),
                target: merged.clone(),
                fstype: None,
                flags: MsFlags::MS_BIND,
                data: None,
            });
            specs.push(MountSpec::flags_only(
                &merged.to_string_lossy(),
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            ));
        }
        for (i, spec) in specs.iter().enumerate() {
            if i == 1 && sys.exists(&tmp) {
                for sub in ["upper", "work"] {
                    sys.mkdir_all(&tmp.join(sub), 0o755)
                        .map_err(|e| Error::io(format!("mkdir {}/{sub}", tmp.display()), e))?;
                }
            }
            sys.mount(spec).map_err(|e| Error::mount(spec, e))?;
        }
    }
    Ok(volumes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Exit;
    use crate::sys::fake::FakeSys;

    #[test]
    fn options_from_the_command_line() {
        let o =
            Options::from_cmdline("console=ttyS0 slipway.runtime=runc quiet slipway.root=copy\n");
        assert_eq!(
            (o.root, o.runtime.as_deref()),
            (RootStrategy::Copy, Some("runc"))
        );
        assert_eq!(
            Options::from_cmdline("slipway.module_threads=1").module_threads,
            Some(1)
        );
        assert_eq!(
            Options::from_cmdline("slipway.module_threads=x").module_threads,
            None
        );
        assert!(Options::from_cmdline("slipway.modules=early").modules_early);
        assert_eq!(
            Options::from_cmdline("slipway.runtime_timeout=5").runtime_timeout,
            Some(Duration::from_secs(5))
        );
        assert!(!Options::from_cmdline("slipway.modules=x").modules_early);
        let o = Options::from_cmdline("console=ttyS0");
        assert_eq!((o.root, o.runtime), (RootStrategy::Bind, None));
        let fake = FakeSys::new();
        fake.add_file("/proc/cmdline", "slipway.root=stay\n");
        assert_eq!(Options::read(&fake).root, RootStrategy::Stay);
        assert_eq!(
            fake.calls()[1..],
            ["mount proc on /proc type proc flags 0x0".to_owned()]
        );
    }

    #[test]
    fn hooks() {
        let service = Some(Path::new("/usr/bin/service"));
        assert_eq!(hook_phase("010-onboot", service), Some(Phase::Onboot));
        assert_eq!(hook_phase("005-volumes", service), Some(Phase::Volumes));
        assert_eq!(hook_phase("020-containerd", service), Some(Phase::Services));
        assert_eq!(hook_phase("020-containerd", None), Some(Phase::Services));
        assert_eq!(hook_phase("000-issue", None), None);
        assert_eq!(
            hook_phase("010-onboot", Some(Path::new("/bin/other"))),
            None
        );
    }

    #[test]
    fn whole_boot_in_order() {
        let fake = Arc::new(FakeSys::new());
        fake.add_file("/proc/sys/kernel/osrelease", "6.12.0\n");
        fake.add_file("/usr/bin/crun", "");
        fake.add_file("/etc/init.d/000-issue", "#!/bin/sh");
        fake.add_link("/etc/init.d/010-onboot", "/usr/bin/service");
        fake.add_file("/containers/onboot/000-a/config.json", "{}");
        fake.add_file("/containers/onboot/001-bad/config.json", "{");
        fake.add_file("/containers/onboot/002-c/config.json", "{}");
        fake.add_file("/run/slipway/000-a.pid", "10");
        fake.add_file("/run/slipway/002-c.pid", "12");
        fake.script_exits("pid12", &[Exit::Code(3)]);
        fake.add_dir("/containers/volumes/data/tmp");
        let sys: Arc<dyn Sys> = fake.clone();
        let timeline = Arc::new(Timeline::default());
        let options = Options {
            root: RootStrategy::Bind,
            runtime: None,
            module_threads: None,
            modules_early: false,
            runtime_timeout: None,
            root_device: None,
            control_socket: None,
        };
        let booted = joined(boot(&sys, &timeline, &options).unwrap(), &timeline);
        assert_eq!(booted.runtime.unwrap().name(), "crun");
        let events = named_events(&timeline);
        assert_eq!(
            events,
            [
                "root-done",
                "mounts-done",
                "modules-done",
                "system-done",
                "initd 000-issue",
                "volumes-done",
                "onboot-start 000-a",
                "onboot-exit 000-a",
                "onboot-start 001-bad",
                "onboot-failed 001-bad",
                "onboot-start 002-c",
                "onboot-failed 002-c",
                "onboot-done",
            ]
        );
        let overlay = fake.calls_starting("mount overlay on /containers/volumes/data/merged");
        assert_eq!(overlay.len(), 1);
        // Left on the initramfs root: nothing unmounts Options::read's /proc.
        assert!(fake.calls_starting("umount /proc").is_empty());
    }

    /// `booted` once its later modules are loaded; they were, once.
    fn joined(mut booted: Booted, timeline: &Timeline) -> Booted {
        if let Some(loading) = booted.modules_later.take() {
            loading.join().unwrap();
        }
        let later = timeline
            .entries()
            .iter()
            .filter(|e| e.event == Event::ModulesDone && e.name.as_deref() == Some("later"))
            .count();
        assert_eq!(later, 1);
        booted
    }

    /// The timeline's events with their names, but the later modules'
    /// (whose time depends on the scheduler: see [`joined`]).
    fn named_events(timeline: &Timeline) -> Vec<String> {
        timeline
            .entries()
            .iter()
            .filter(|e| e.event != Event::ModulesDone || e.name.as_deref() != Some("later"))
            .map(|e| {
                format!("{} {}", e.event, e.name.clone().unwrap_or_default())
                    .trim()
                    .to_owned()
            })
            .collect()
    }

    /// A machine with one service ("web", running until signalled) and the
    /// given programs in /usr/bin.
    fn with_service(programs: &[&str]) -> Arc<FakeSys> {
        let fake = Arc::new(FakeSys::new());
        fake.add_file("/usr/bin/crun", "");
        fake.add_file(
            "/containers/services/web/config.json",
            r#"{"root": {"path": "rootfs"}}"#,
        );
        fake.add_file("/run/slipway/web.pid", "700");
        fake.hold("pid700");
        for program in programs {
            fake.add_file(&format!("/usr/bin/{program}"), "");
            fake.hold(program);
        }
        fake
    }

    fn boot_and_stop(
        fake: &Arc<FakeSys>,
        control_socket: Option<PathBuf>,
    ) -> (Booted, Arc<Timeline>) {
        let sys: Arc<dyn Sys> = fake.clone();
        let timeline = Arc::new(Timeline::default());
        let options = Options {
            root: RootStrategy::Bind,
            runtime: None,
            module_threads: None,
            modules_early: false,
            runtime_timeout: None,
            root_device: None,
            control_socket,
        };
        let booted = joined(boot(&sys, &timeline, &options).unwrap(), &timeline);
        if let Some(supervisor) = &booted.supervisor {
            supervisor.stop_all(Duration::from_secs(1));
        }
        booted.daemons.stop_all(Duration::from_secs(1));
        (booted, timeline)
    }

    #[test]
    fn init_mode_starts_the_mux_after_onboot_and_the_manager_after_the_services() {
        let fake = with_service(&["slipway-mux", "slipway-services"]);
        let dir = tempfile_dir("init-mode");
        let socket = dir.join("init.sock");
        let (booted, timeline) = boot_and_stop(&fake, Some(socket.clone()));
        let events: Vec<String> = named_events(&timeline)
            .into_iter()
            .filter(|e| !e.starts_with("daemon-exit") && !e.starts_with("service-exit"))
            .collect();
        assert_eq!(
            events[4..],
            [
                "volumes-done",
                "onboot-done",
                "daemon-start mux",
                "service-start web",
                "services-started",
                "daemon-start services",
            ]
        );
        assert!(booted.supervisor.is_some());
        assert_eq!(
            fake.calls_starting("spawn /usr/bin/slipway"),
            [
                "spawn /usr/bin/slipway-mux",
                "spawn /usr/bin/slipway-services"
            ]
        );
        // The control socket was up before the manager started.
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        std::io::Write::write_all(&mut stream, b"list-json\n").unwrap();
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut stream, &mut reply).unwrap();
        assert!(
            reply.starts_with("ok\n{\"runtime\":\"crun\",\"services\":[{"),
            "{reply}"
        );
        assert!(reply.contains("\"name\":\"web\""), "{reply}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn containerd_mode_leaves_the_services_to_the_manager() {
        let fake = with_service(&["slipway-mux", "slipway-services", "containerd"]);
        let (booted, timeline) = boot_and_stop(&fake, None);
        let events: Vec<String> = named_events(&timeline)
            .into_iter()
            .filter(|e| !e.starts_with("daemon-exit"))
            .collect();
        assert_eq!(
            events[5..],
            [
                "onboot-done",
                "daemon-start mux",
                "daemon-start containerd",
                "daemon-start services",
            ]
        );
        assert!(booted.supervisor.is_none());
        assert!(fake.calls_starting("spawn /usr/bin/crun").is_empty());
        assert_eq!(
            fake.calls_starting("spawn /usr/bin/slipway-services"),
            [
                "spawn /usr/bin/slipway-services --containerd /run/containerd/containerd.sock --runtime /usr/bin/crun"
            ]
        );
        // Stopped in reverse order: the manager, containerd, the mux.
        let names: Vec<String> = booted.daemons.list().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["mux", "containerd", "services"]);
        assert_eq!(
            fake.calls_starting("kill"),
            ["kill 103 15", "kill 102 15", "kill 101 15"]
        );
    }

    #[test]
    fn containerd_without_the_manager_is_init_mode() {
        // Neither the manager nor the mux: the init runs the services.
        let fake = with_service(&["containerd"]);
        let (booted, timeline) = boot_and_stop(&fake, None);
        assert!(booted.supervisor.is_some());
        assert!(booted.daemons.list().is_empty());
        assert!(named_events(&timeline).contains(&"service-start web".to_owned()));
        // The manager without the mux, in init mode: nobody would reach it.
        let fake = with_service(&["slipway-services"]);
        let (booted, _) = boot_and_stop(&fake, None);
        assert!(booted.supervisor.is_some());
        assert!(booted.daemons.list().is_empty());
        let fake = with_service(&["containerd", "slipway-mux"]);
        let (booted, _) = boot_and_stop(&fake, None);
        assert!(booted.supervisor.is_some());
        let names: Vec<String> = booted.daemons.list().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["mux"]);
    }

    fn tempfile_dir(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("slipway-init-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_root_device_replaces_the_initramfs() {
        let fake = Arc::new(FakeSys::new());
        fake.add_file(
            "/proc/cmdline",
            "console=ttyS0 root=/dev/vda slipway.root=copy\n",
        );
        let mut squashfs = vec![0u8; 4096];
        squashfs[..4].copy_from_slice(b"hsqs");
        fake.add_bytes("/dev/vda", &squashfs);
        for dir in ["dev", "proc", "sys", "run", "tmp", "var"] {
            fake.add_dir(&format!("/newroot/{dir}"));
        }
        let options = Options::read(fake.as_ref());
        let sys: Arc<dyn Sys> = fake.clone();
        let timeline = Arc::new(Timeline::default());
        let booted = boot(&sys, &timeline, &options).unwrap();
        assert!(booted.supervisor.is_none());
        let entries = timeline.entries();
        let root_done = entries.iter().find(|e| e.event == Event::RootDone).unwrap();
        assert_eq!(
            root_done.detail.as_deref(),
            Some("moved to /dev/vda (squashfs, read-only); 1 initramfs entries freed")
        );
        // Neither the copy nor the bind of the initramfs happened; the
        // runtime may pivot_root (the root is a real mount).
        assert!(fake.calls_starting("copy").is_empty());
        assert!(fake.calls_starting("mount / on /mnt").is_empty());
        assert!(fake.calls_starting("umount /proc").is_empty());
        let names: Vec<String> = entries.iter().map(|e| e.event.to_string()).collect();
        assert_eq!(
            names[..4],
            ["modules-done", "root-found", "modules-done", "root-done"]
        );
        // On a root that is no initramfs, root= changes nothing.
        let fake = Arc::new(FakeSys::new());
        fake.set_root_fstype("0x73717368");
        fake.add_file("/proc/cmdline", "root=/dev/vda\n");
        let options = Options::read(fake.as_ref());
        let sys: Arc<dyn Sys> = fake.clone();
        let timeline = Arc::new(Timeline::default());
        boot(&sys, &timeline, &options).unwrap();
        assert_eq!(
            timeline.entries()[0].detail.as_deref(),
            Some("root is 0x73717368: stayed")
        );
        assert!(
            fake.calls_starting("mount dev on /dev type devtmpfs flags 0xa (mode=0755)")
                .is_empty()
        );
    }

    #[test]
    fn staying_on_the_root_unmounts_the_early_proc() {
        let fake = Arc::new(FakeSys::new());
        fake.add_file("/proc/cmdline", "slipway.root=stay\n");
        let options = Options::read(fake.as_ref());
        let sys: Arc<dyn Sys> = fake.clone();
        boot(&sys, &Arc::new(Timeline::default()), &options).unwrap();
        // Mounted by Options::read, unmounted, mounted by the base plan.
        let proc: Vec<String> = fake
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("mount proc on /proc ") || c == "umount /proc")
            .collect();
        assert_eq!(
            proc,
            [
                "mount proc on /proc type proc flags 0x0",
                "umount /proc",
                "mount proc on /proc type proc flags 0xe"
            ]
        );
    }
}
