//! One OCI bundle (onboot, onshutdown or service) run with the OCI runtime,
//! honouring its `runtime.json`: mounts and mkdir before `create`, cgroups,
//! then interfaces and bound namespaces between `create` and `start`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_contract::annotations::SlipwayAnnotations;
use slipway_contract::bundle::{CONFIG_JSON, ROOTFS, RUNTIME_JSON};
use slipway_contract::runtime::Runtime;

use crate::mounts::{parse_options, propagation};
use crate::sys::{Cmd, Exit, LOG_CAP, LinkOp, MountSpec, MsFlags, Output, Sys};
use crate::{Error, Result};

/// The OCI runtime binary and how to call it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciRuntime {
    /// `/usr/bin/crun` or `/usr/bin/runc`.
    pub program: PathBuf,
    /// Its state directory (`--root`).
    pub root: PathBuf,
    /// Pass `--no-pivot` (when PID 1 stayed on the initramfs).
    pub no_pivot: bool,
    /// How long a runtime command (`create`, `run --detach`, `start`,
    /// `delete`) may take before it is killed and the container counts
    /// as failed (`slipway.runtime_timeout=SECONDS`).
    pub timeout: Duration,
}

/// The default [`OciRuntime::timeout`]: creating a container takes well
/// under a second even under emulation; a minute is a runtime (or one of
/// the bundle's hooks) that hangs.
pub const RUNTIME_TIMEOUT: Duration = Duration::from_secs(60);

impl OciRuntime {
    /// Pick the runtime: `preference` (`crun` or `runc`, from the kernel
    /// command line's `slipway.runtime=`) when installed, else crun, else runc.
    pub fn choose(sys: &dyn Sys, preference: Option<&str>, no_pivot: bool) -> Option<OciRuntime> {
        let candidates: Vec<&str> = match preference {
            Some("runc") => vec!["runc", "crun"],
            _ => vec!["crun", "runc"],
        };
        candidates.into_iter().find_map(|name| {
            ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
                .iter()
                .map(|dir| Path::new(dir).join(name))
                .find(|p| sys.exists(p))
                .map(|program| OciRuntime {
                    program,
                    root: PathBuf::from(format!("/run/{name}")),
                    no_pivot,
                    timeout: RUNTIME_TIMEOUT,
                })
        })
    }

    /// The runtime's short name.
    pub fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn cmd(&self, args: &[&str]) -> Cmd {
        let root = self.root.to_string_lossy().into_owned();
        let mut all = vec!["--root", root.as_str()];
        all.extend_from_slice(args);
        Cmd::new(&self.program, &all)
    }

    /// [`OciRuntime::cmd`] with the runtime's own messages also written to
    /// `log` (runc and crun both take `--log FILE`), so that why a verb
    /// failed can be told even when the container's stderr is a log file
    /// nobody watches.
    fn logged_cmd(&self, log: &Path, args: &[&str]) -> Cmd {
        let log = log.to_string_lossy().into_owned();
        let mut all = vec!["--log", log.as_str()];
        all.extend_from_slice(args);
        self.cmd(&all)
    }
}

/// The last error a runtime wrote to its `--log` file: runc writes logrus
/// lines (`time=… level=error msg="…"`), crun plain lines.
pub fn runtime_reason(log: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| {
        let l = l.trim();
        !l.is_empty() && (!l.starts_with("time=") || l.contains("level=error"))
    })?;
    let text = match line.split_once(" msg=\"") {
        Some((_, rest)) => unquote_go(rest),
        None => line.trim().to_owned(),
    };
    // One console line: the runtime's reason, not a dump.
    const MAX: usize = 400;
    Some(match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    })
}

/// The body of a Go-quoted string whose opening quote was already read,
/// up to its closing quote.
fn unquote_go(rest: &str) -> String {
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push(' '),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// A bundle read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The container id and display name: the directory's name.
    pub id: String,
    /// Its `runtime.json` (empty when absent).
    pub runtime: Runtime,
    /// slipway's annotations from `config.json`.
    pub annotations: SlipwayAnnotations,
    /// The container's root directory (`root.path`, made absolute).
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Read `config.json` and `runtime.json` of the bundle in `dir`.
    pub fn load(sys: &dyn Sys, dir: &Path) -> Result<Bundle> {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bad = |reason: String| Error::Bundle {
            bundle: dir.display().to_string(),
            reason,
        };
        let config = sys
            .read(&dir.join(CONFIG_JSON))
            .map_err(|e| bad(format!("reading {CONFIG_JSON}: {e}")))?;
        let config: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|e| bad(format!("invalid {CONFIG_JSON}: {e}")))?;
        let root = config
            .pointer("/root/path")
            .and_then(|v| v.as_str())
            .unwrap_or(ROOTFS);
        let rootfs = if Path::new(root).is_absolute() {
            PathBuf::from(root)
        } else {
            dir.join(root)
        };
        let pairs: Vec<(String, String)> = config
            .get("annotations")
            .and_then(|a| a.as_object())
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let annotations = SlipwayAnnotations::from_annotations(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(|errors| {
            let text: Vec<String> = errors.iter().map(|(_, e)| e.to_string()).collect();
            bad(text.join("; "))
        })?;
        let runtime = match sys.read(&dir.join(RUNTIME_JSON)) {
            Ok(bytes) => Runtime::from_json(&bytes).map_err(|e| bad(e.to_string()))?,
            Err(_) => Runtime::default(),
        };
        Ok(Bundle {
            dir: dir.to_path_buf(),
            id,
            runtime,
            annotations,
            rootfs,
        })
    }

    /// Resolve a `runtime.json` path: relative ones are under the rootfs.
    fn resolve(&self, path: &str) -> PathBuf {
        if Path::new(path).is_absolute() {
            PathBuf::from(path)
        } else {
            self.rootfs.join(path)
        }
    }

    /// Mounts, mkdir and cgroups, before `create`. Returns the mountpoints
    /// made, to unmount afterwards (in reverse).
    pub fn prepare_fs(&self, sys: &dyn Sys) -> Result<Vec<PathBuf>> {
        let mut mounted = Vec::new();
        for m in &self.runtime.mounts {
            let target = self.resolve(&m.destination);
            let (flags, data) = parse_options(&m.options);
            for option in &m.options {
                for key in ["upperdir=", "workdir="] {
                    if let Some(dir) = option.strip_prefix(key) {
                        sys.mkdir_all(Path::new(dir), 0o755)
                            .map_err(|e| Error::io(format!("mkdir {dir}"), e))?;
                    }
                }
            }
            if !flags.contains(MsFlags::MS_REMOUNT) && !sys.exists(&target) {
                sys.mkdir_all(&target, 0o755)
                    .map_err(|e| Error::io(format!("mkdir {}", target.display()), e))?;
            }
            let prop = propagation(flags);
            let base = flags - (prop - MsFlags::MS_REC);
            let base = if base.contains(MsFlags::MS_BIND) {
                base
            } else {
                base - MsFlags::MS_REC
            };
            let only_propagation = m.kind.is_empty()
                && m.source.is_empty()
                && !base.contains(MsFlags::MS_BIND)
                && !base.contains(MsFlags::MS_REMOUNT);
            if !only_propagation {
                let spec = MountSpec {
                    source: (!m.source.is_empty()).then(|| m.source.clone()),
                    target: target.clone(),
                    fstype: (!m.kind.is_empty()).then(|| m.kind.clone()),
                    flags: base,
                    data,
                };
                sys.mount(&spec).map_err(|e| Error::mount(&spec, e))?;
                if !base.contains(MsFlags::MS_REMOUNT) {
                    mounted.push(target.clone());
                }
            }
            if !(prop - MsFlags::MS_REC).is_empty() {
                let spec = MountSpec::flags_only(&target.to_string_lossy(), prop);
                sys.mount(&spec).map_err(|e| Error::mount(&spec, e))?;
            }
        }
        for dir in &self.runtime.mkdir {
            let path = self.resolve(dir);
            sys.mkdir_all(&path, 0o755)
                .map_err(|e| Error::io(format!("mkdir {}", path.display()), e))?;
        }
        for cgroup in &self.runtime.cgroups {
            let path = Path::new("/sys/fs/cgroup").join(cgroup.trim_start_matches('/'));
            sys.mkdir_all(&path, 0o755)
                .map_err(|e| Error::io(format!("mkdir {}", path.display()), e))?;
        }
        Ok(mounted)
    }

    /// Interfaces and bound namespaces, between `create` and `start`.
    pub fn prepare_process(&self, sys: &dyn Sys, pid: i32) -> Result<()> {
        for iface in &self.runtime.interfaces {
            if let Some(kind) = iface.link_kind() {
                let op = LinkOp::Create {
                    name: iface.name.clone(),
                    kind: kind.to_owned(),
                    peer: (kind == "veth")
                        .then(|| iface.peer.clone())
                        .filter(|p| !p.is_empty()),
                };
                sys.link(&op)
                    .map_err(|e| Error::io(format!("creating interface {}", iface.name), e))?;
            }
            let op = LinkOp::MoveToPid {
                name: iface.name.clone(),
                pid,
            };
            sys.link(&op).map_err(|e| {
                Error::io(
                    format!("moving interface {} into the container", iface.name),
                    e,
                )
            })?;
        }
        for (ns, path) in self.runtime.bind_ns.entries() {
            let path = Path::new(path);
            if let Some(parent) = path.parent() {
                sys.mkdir_all(parent, 0o755)
                    .map_err(|e| Error::io(format!("mkdir {}", parent.display()), e))?;
            }
            if !sys.exists(path) {
                sys.write(path, b"", false)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            }
            let spec = MountSpec {
                source: Some(format!("/proc/{pid}/ns/{ns}")),
                target: path.to_path_buf(),
                fstype: None,
                flags: MsFlags::MS_BIND,
                data: None,
            };
            sys.mount(&spec).map_err(|e| Error::mount(&spec, e))?;
        }
        Ok(())
    }

    /// Whether `runtime.json` has work to do between the runtime's create
    /// and start, with the container's pid: interfaces to move into its
    /// network namespace, namespaces to bind.
    pub fn needs_pid_before_start(&self) -> bool {
        !self.runtime.interfaces.is_empty() || !self.runtime.bind_ns.entries().is_empty()
    }

    /// `runtime create`, or `runtime run --detach` (create and start in
    /// one runtime process) when `run` is true; returns the container's pid.
    pub fn create(
        &self,
        sys: &dyn Sys,
        rt: &OciRuntime,
        run: bool,
        stdout: Output,
        stderr: Output,
    ) -> Result<i32> {
        let pid_file = PathBuf::from(format!("/run/slipway/{}.pid", self.id));
        let log = self.runtime_log();
        // Only this launch's messages: an earlier run's would mislead.
        let _ = sys.write(&log, b"", false);
        let dir = self.dir.to_string_lossy().into_owned();
        let pid_arg = pid_file.to_string_lossy().into_owned();
        let mut args = if run {
            vec!["run", "--detach"]
        } else {
            vec!["create"]
        };
        args.extend(["--bundle", dir.as_str(), "--pid-file", pid_arg.as_str()]);
        if rt.no_pivot {
            args.push("--no-pivot");
        }
        args.push(&self.id);
        let mut cmd = rt.logged_cmd(&log, &args);
        cmd.stdout = stdout;
        cmd.stderr = stderr;
        let what = format!("{} {} {}", rt.name(), args[0], self.id);
        let runner = sys.spawn(&cmd).map_err(|e| Error::io(&what, e))?;
        let exit = self.wait_runtime(sys, rt, runner, &what)?;
        if !exit.success() {
            return Err(self.failed(sys, &what, exit));
        }
        let pid = sys
            .read(&pid_file)
            .map_err(|e| Error::io(format!("reading {}", pid_file.display()), e))?;
        String::from_utf8_lossy(&pid)
            .trim()
            .parse()
            .map_err(|_| Error::Bundle {
                bundle: self.id.clone(),
                reason: format!("{} holds no pid", pid_file.display()),
            })
    }

    /// `runtime <verb> <id>`, waited for.
    pub fn runtime_verb(&self, sys: &dyn Sys, rt: &OciRuntime, verb: &[&str]) -> Result<()> {
        let mut args: Vec<&str> = verb.to_vec();
        args.push(&self.id);
        let log = self.runtime_log();
        let mut cmd = rt.logged_cmd(&log, &args);
        cmd.stdout = Output::Null;
        let what = format!("{} {} {}", rt.name(), verb.join(" "), self.id);
        let pid = sys.spawn(&cmd).map_err(|e| Error::io(&what, e))?;
        let exit = self.wait_runtime(sys, rt, pid, &what)?;
        if exit.success() {
            Ok(())
        } else {
            Err(self.failed(sys, &what, exit))
        }
    }

    /// Wait for a runtime command, at most [`OciRuntime::timeout`]: one
    /// that does not answer (a hook that hangs, a mount that blocks) is
    /// killed and the container fails, so the boot goes on.
    fn wait_runtime(&self, sys: &dyn Sys, rt: &OciRuntime, pid: i32, what: &str) -> Result<Exit> {
        if let Some(exit) = sys
            .wait_timeout(pid, rt.timeout)
            .map_err(|e| Error::io(what, e))?
        {
            return Ok(exit);
        }
        let _ = sys.kill(pid, 9);
        // Reaped now, or by the reaper later: either way it is gone.
        let _ = sys.wait_timeout(pid, Duration::from_secs(1));
        Err(Error::Bundle {
            bundle: self.id.clone(),
            reason: format!(
                "{what}: no answer in {} s (slipway.runtime_timeout=); killed",
                rt.timeout.as_secs()
            ),
        })
    }

    /// Where the runtime writes its own messages about this container.
    fn runtime_log(&self) -> PathBuf {
        PathBuf::from(format!("/run/slipway/{}.runtime.log", self.id))
    }

    /// A failed runtime verb, with the runtime's own reason when it gave one.
    fn failed(&self, sys: &dyn Sys, what: &str, exit: Exit) -> Error {
        let reason = sys
            .read(&self.runtime_log())
            .ok()
            .and_then(|log| runtime_reason(&String::from_utf8_lossy(&log)));
        Error::Bundle {
            bundle: self.id.clone(),
            reason: match reason {
                Some(why) => format!("{what}: {exit}: {why}"),
                None => format!("{what}: {exit}"),
            },
        }
    }

    /// Create, prepare and start; returns the container's pid. On failure
    /// everything done so far is undone. Without work between create and
    /// start, one `run --detach` does both: one runtime process fewer, each
    /// of which costs tens of milliseconds under emulation.
    pub fn launch(
        &self,
        sys: &dyn Sys,
        rt: &OciRuntime,
        stdout: Output,
        stderr: Output,
    ) -> Result<(i32, Vec<PathBuf>)> {
        let mounted = self.prepare_fs(sys)?;
        let started = if self.needs_pid_before_start() {
            self.create_prepare_start(sys, rt, stdout, stderr)
        } else {
            self.create(sys, rt, true, stdout, stderr).inspect_err(|_| {
                // `run` may fail after creating the container.
                let _ = self.runtime_verb(sys, rt, &["delete", "--force"]);
            })
        };
        match started {
            Ok(pid) => Ok((pid, mounted)),
            Err(e) => {
                cleanup_mounts(sys, &mounted);
                Err(e)
            }
        }
    }

    fn create_prepare_start(
        &self,
        sys: &dyn Sys,
        rt: &OciRuntime,
        stdout: Output,
        stderr: Output,
    ) -> Result<i32> {
        self.create(sys, rt, false, stdout, stderr).and_then(|pid| {
            self.prepare_process(sys, pid)
                .and_then(|()| self.runtime_verb(sys, rt, &["start"]))
                .map(|()| pid)
                .inspect_err(|_| {
                    let _ = self.runtime_verb(sys, rt, &["delete", "--force"]);
                })
        })
    }

    /// After the container's process ended: delete it and unmount.
    pub fn finish(&self, sys: &dyn Sys, rt: &OciRuntime, mounted: &[PathBuf]) {
        // A failed delete leaves state in /run only; the next create reports it.
        let _ = self.runtime_verb(sys, rt, &["delete", "--force"]);
        cleanup_mounts(sys, mounted);
    }
}

/// Unmount what [`Bundle::prepare_fs`] mounted, last first.
pub fn cleanup_mounts(sys: &dyn Sys, mounted: &[PathBuf]) {
    for target in mounted.iter().rev() {
        // Busy mounts are detached; nothing else can be done about them.
        if sys.umount(target, false).is_err() {
            let _ = sys.umount(target, true);
        }
    }
}

/// Run a one-shot bundle (onboot or onshutdown) to completion. Output goes
/// to the console and to `<log_dir>/<prefix>.<id>.log` (stderr) and
/// `.out.log` (stdout).
pub fn run_once(
    sys: &dyn Sys,
    rt: &OciRuntime,
    dir: &Path,
    log_dir: &Path,
    prefix: &str,
) -> Result<Exit> {
    let bundle = Bundle::load(sys, dir)?;
    let log = |suffix: &str| Output::Log {
        path: log_dir.join(format!("{prefix}.{}{suffix}", bundle.id)),
        console: Some(String::new()),
        cap: LOG_CAP,
    };
    let (pid, mounted) = bundle.launch(sys, rt, log(".out.log"), log(".log"))?;
    let exit = sys
        .wait(pid)
        .map_err(|e| Error::io(format!("waiting for {}", bundle.id), e))?;
    bundle.finish(sys, rt, &mounted);
    Ok(exit)
}

/// The bundle directories under `dir`, sorted by name.
pub fn list(sys: &dyn Sys, dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = sys
        .read_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.is_dir)
        .map(|e| e.name)
        .collect();
    names.sort();
    names.into_iter().map(|n| dir.join(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    const DIR: &str = "/containers/onboot/000-net";

    fn rt() -> OciRuntime {
        OciRuntime {
            program: "/usr/bin/crun".into(),
            root: "/run/crun".into(),
            no_pivot: false,
            timeout: RUNTIME_TIMEOUT,
        }
    }

    fn setup(sys: &FakeSys, runtime_json: &str) {
        sys.add_file(
            &format!("{DIR}/config.json"),
            r#"{"root": {"path": "rootfs"}, "annotations": {"org.slipway.restart": "always"}}"#,
        );
        sys.add_file(&format!("{DIR}/runtime.json"), runtime_json);
        sys.add_file("/run/slipway/000-net.pid", "4242\n");
    }

    #[test]
    fn runtime_json_in_order() {
        let sys = FakeSys::new();
        setup(
            &sys,
            r#"{
            "mounts": [
              {"type": "tmpfs", "source": "tmpfs", "destination": "/containers/onboot/000-net/tmp"},
              {"destination": "/containers/onboot/000-net/tmp", "options": ["remount", "private"]},
              {"type": "overlay", "source": "overlay", "destination": "/containers/onboot/000-net/rootfs",
               "options": ["lowerdir=/containers/onboot/000-net/lower", "upperdir=/containers/onboot/000-net/tmp/upper", "workdir=/containers/onboot/000-net/tmp/work"]},
              {"source": "/var", "destination": "/var", "options": ["rbind", "rshared"]}
            ],
            "mkdir": ["/var/lib/net", "etc/net"],
            "cgroups": ["podruntime/net"],
            "interfaces": [{"name": "veth0", "peer": "veth1"}, {"name": "eth1"}],
            "bindNS": {"net": "/run/netns/net"}
        }"#,
        );
        let bundle = Bundle::load(&sys, Path::new(DIR)).unwrap();
        assert_eq!(bundle.id, "000-net");
        assert_eq!(
            bundle.rootfs,
            Path::new("/containers/onboot/000-net/rootfs")
        );
        let (pid, mounted) = bundle
            .launch(&sys, &rt(), Output::Inherit, Output::Inherit)
            .unwrap();
        assert_eq!(pid, 4242);
        let calls: Vec<String> = sys
            .calls()
            .into_iter()
            .filter(|c| !c.starts_with("wait"))
            .collect();
        assert_eq!(
            calls,
            [
                "mkdir /containers/onboot/000-net/tmp 755",
                "mount tmpfs on /containers/onboot/000-net/tmp type tmpfs flags 0x0",
                "mount none on /containers/onboot/000-net/tmp type none flags 0x20",
                "mount none on /containers/onboot/000-net/tmp type none flags 0x40000",
                "mkdir /containers/onboot/000-net/tmp/upper 755",
                "mkdir /containers/onboot/000-net/tmp/work 755",
                "mkdir /containers/onboot/000-net/rootfs 755",
                "mount overlay on /containers/onboot/000-net/rootfs type overlay flags 0x0 (lowerdir=/containers/onboot/000-net/lower,upperdir=/containers/onboot/000-net/tmp/upper,workdir=/containers/onboot/000-net/tmp/work)",
                "mkdir /var 755",
                "mount /var on /var type none flags 0x5000",
                "mount none on /var type none flags 0x104000",
                "mkdir /var/lib/net 755",
                "mkdir /containers/onboot/000-net/rootfs/etc/net 755",
                "mkdir /sys/fs/cgroup/podruntime/net 755",
                "spawn /usr/bin/crun --root /run/crun --log /run/slipway/000-net.runtime.log create --bundle /containers/onboot/000-net --pid-file /run/slipway/000-net.pid 000-net",
                "link Create { name: \"veth0\", kind: \"veth\", peer: Some(\"veth1\") }",
                "link MoveToPid { name: \"veth0\", pid: 4242 }",
                "link MoveToPid { name: \"eth1\", pid: 4242 }",
                "mkdir /run/netns 755",
                "mount /proc/4242/ns/net on /run/netns/net type none flags 0x1000",
                "spawn /usr/bin/crun --root /run/crun --log /run/slipway/000-net.runtime.log start 000-net",
            ]
        );
        assert_eq!(mounted.len(), 3);
        bundle.finish(&sys, &rt(), &mounted);
        assert_eq!(
            sys.calls_starting("umount"),
            [
                "umount /var",
                "umount /containers/onboot/000-net/rootfs",
                "umount /containers/onboot/000-net/tmp"
            ]
        );
    }

    #[test]
    fn a_runtime_that_does_not_answer_is_killed_and_the_bundle_fails() {
        let sys = FakeSys::new();
        setup(&sys, "{}");
        sys.hold("crun");
        let bundle = Bundle::load(&sys, Path::new(DIR)).unwrap();
        let rt = OciRuntime {
            timeout: Duration::from_secs(5),
            ..rt()
        };
        let before = sys.now();
        let err = bundle
            .launch(&sys, &rt, Output::Inherit, Output::Inherit)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("crun run 000-net: no answer in 5 s (slipway.runtime_timeout=); killed"),
            "{err}"
        );
        // The runner, then the delete that cleans up after it (held too).
        assert_eq!(sys.calls_starting("kill"), ["kill 101 9", "kill 102 9"]);
        assert!(sys.now() - before >= 5000);
    }

    #[test]
    fn without_work_between_create_and_start_one_run_does_both() {
        let sys = FakeSys::new();
        setup(
            &sys,
            r#"{"mounts": [{"type": "tmpfs", "source": "tmpfs", "destination": "/x"}]}"#,
        );
        let bundle = Bundle::load(&sys, Path::new(DIR)).unwrap();
        assert!(!bundle.needs_pid_before_start());
        let no_pivot = OciRuntime {
            no_pivot: true,
            ..rt()
        };
        let (pid, mounted) = bundle
            .launch(&sys, &no_pivot, Output::Inherit, Output::Inherit)
            .unwrap();
        assert_eq!((pid, mounted.len()), (4242, 1));
        assert_eq!(
            sys.calls_starting("spawn"),
            [
                "spawn /usr/bin/crun --root /run/crun --log /run/slipway/000-net.runtime.log run --detach --bundle /containers/onboot/000-net --pid-file /run/slipway/000-net.pid --no-pivot 000-net"
            ]
        );
        sys.add_file(
            &format!("{DIR}/runtime.json"),
            r#"{"bindNS": {"net": "/run/netns/net"}}"#,
        );
        let bound = Bundle::load(&sys, Path::new(DIR)).unwrap();
        assert!(bound.needs_pid_before_start());
    }

    #[test]
    fn failed_run_is_deleted_and_undoes_the_mounts() {
        let sys = FakeSys::new();
        setup(
            &sys,
            r#"{"mounts": [{"type": "tmpfs", "source": "tmpfs", "destination": "/x"}]}"#,
        );
        sys.script_exits("crun", &[Exit::Code(1)]);
        let bundle = Bundle::load(&sys, Path::new(DIR)).unwrap();
        let err = bundle
            .launch(&sys, &rt(), Output::Inherit, Output::Inherit)
            .unwrap_err();
        assert!(
            err.to_string().contains("crun run 000-net: exit status 1"),
            "{err}"
        );
        let spawned = sys.calls_starting("spawn");
        assert_eq!(spawned.len(), 2);
        assert!(
            spawned[1].ends_with("delete --force 000-net"),
            "{spawned:?}"
        );
        assert_eq!(sys.calls_starting("umount"), ["umount /x"]);
    }

    #[test]
    fn a_failed_run_says_what_the_runtime_said() {
        let sys = FakeSys::new();
        setup(&sys, "{}");
        // What crun writes to its --log when the command is not in the image.
        sys.script_log(
            "crun",
            "executable file `/bin/httpd` not found in $PATH: No such file or directory\n",
        );
        sys.script_exits("crun", &[Exit::Code(1)]);
        let bundle = Bundle::load(&sys, Path::new(DIR)).unwrap();
        let err = bundle
            .launch(&sys, &rt(), Output::Inherit, Output::Inherit)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "crun run 000-net: exit status 1: executable file `/bin/httpd` not found in \
                 $PATH: No such file or directory"
            ),
            "{err}"
        );
        let spawned = sys.calls_starting("spawn");
        assert!(
            spawned[0].contains("--log /run/slipway/000-net.runtime.log run --detach"),
            "{spawned:?}"
        );
    }

    #[test]
    fn runtime_reasons_from_runc_and_crun_logs() {
        let runc = "time=\"2026-12-04T15:40:32Z\" level=warning msg=\"noise\"\n\
                    time=\"2026-12-04T15:40:32Z\" level=error msg=\"runc run failed: unable to \
                    start container process: exec: \\\"/bin/httpd\\\": stat /bin/httpd: no \
                    such file or directory\"\n";
        assert_eq!(
            runtime_reason(runc).as_deref(),
            Some(
                "runc run failed: unable to start container process: exec: \"/bin/httpd\": \
                 stat /bin/httpd: no such file or directory"
            )
        );
        assert_eq!(
            runtime_reason("warning one\nthe real error\n\n").as_deref(),
            Some("the real error")
        );
        assert_eq!(runtime_reason(""), None);
        assert_eq!(runtime_reason("time=\"x\" level=info msg=\"ok\"\n"), None);
        let long = "x".repeat(1000);
        assert_eq!(runtime_reason(&long).unwrap().chars().count(), 401);
    }

    #[test]
    fn failed_create_undoes_the_mounts() {
        let sys = FakeSys::new();
        setup(
            &sys,
            r#"{"mounts": [{"type": "tmpfs", "source": "tmpfs", "destination": "/x"}],
                "bindNS": {"net": "/run/netns/net"}}"#,
        );
        sys.script_exits("crun", &[Exit::Code(1)]);
        let bundle = Bundle::load(&sys, Path::new(DIR)).unwrap();
        let err = bundle
            .launch(&sys, &rt(), Output::Inherit, Output::Inherit)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("crun create 000-net: exit status 1"),
            "{err}"
        );
        assert_eq!(sys.calls_starting("umount"), ["umount /x"]);
    }

    #[test]
    fn bad_bundles_are_reported() {
        let sys = FakeSys::new();
        sys.add_file(&format!("{DIR}/config.json"), "{not json");
        let err = Bundle::load(&sys, Path::new(DIR)).unwrap_err().to_string();
        assert!(
            err.starts_with("bundle /containers/onboot/000-net: invalid config.json"),
            "{err}"
        );
        sys.add_file(
            &format!("{DIR}/config.json"),
            r#"{"annotations": {"org.slipway.restart": "sometimes"}}"#,
        );
        let err = Bundle::load(&sys, Path::new(DIR)).unwrap_err().to_string();
        assert!(err.contains("org.slipway.restart"), "{err}");
        sys.add_file(&format!("{DIR}/config.json"), "{}");
        sys.add_file(&format!("{DIR}/runtime.json"), r#"{"mounts": 1}"#);
        let err = Bundle::load(&sys, Path::new(DIR)).unwrap_err().to_string();
        assert!(err.contains("invalid runtime.json"), "{err}");
    }

    #[test]
    fn chooses_a_runtime() {
        let sys = FakeSys::new();
        assert_eq!(OciRuntime::choose(&sys, None, false), None);
        sys.add_file("/usr/sbin/runc", "");
        assert_eq!(
            OciRuntime::choose(&sys, None, true).unwrap().program,
            Path::new("/usr/sbin/runc")
        );
        sys.add_file("/usr/bin/crun", "");
        assert_eq!(
            OciRuntime::choose(&sys, None, false).unwrap().name(),
            "crun"
        );
        let runc = OciRuntime::choose(&sys, Some("runc"), true).unwrap();
        assert_eq!(
            (runc.name().as_str(), runc.root.as_path(), runc.no_pivot),
            ("runc", Path::new("/run/runc"), true)
        );
    }
}
