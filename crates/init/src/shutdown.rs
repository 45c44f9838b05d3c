//! Shutdown: stop the services, then the daemons (TERM, grace, KILL), run `/etc/shutdown.d`
//! with the onshutdown bundles, signal what is left, sync, unmount, then
//! power off, reboot or halt.

use slipway_contract::errors::chain;
use std::path::Path;
use std::time::Duration;

use slipway_contract::bundle::ONSHUTDOWN_DIR;
use slipway_contract::timeline::Event;

use crate::bundle::{OciRuntime, list, run_once};
use crate::daemons::Daemons;
use crate::services::{SIGKILL, SIGTERM, Supervisor};
use crate::sys::{Cmd, PowerAction, Sys};
use crate::timeline::Timeline;

/// Filesystems unmounted at shutdown (others are virtual or go away with the machine).
const UNMOUNT_TYPES: &[&str] = &[
    "ext2", "ext3", "ext4", "btrfs", "xfs", "vfat", "msdos", "overlay",
];
/// Network filesystems, detached lazily.
const LAZY_TYPES: &[&str] = &["nfs", "nfs4", "cifs", "smb3"];

/// `(mountpoint, fstype)` from `/proc/self/mountinfo` text, in mount order.
pub fn parse_mountinfo(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let mountpoint = fields.get(4)?;
            let fstype = fields.get(sep + 1)?;
            Some(((*mountpoint).replace("\\040", " "), (*fstype).to_owned()))
        })
        .collect()
}

/// Whether an `/etc/shutdown.d` entry is LinuxKit's onshutdown hook: named
/// `*-onshutdown`, a link to `/usr/bin/service` (LinuxKit's runc package,
/// `pkg/init`) or a script of that name.
pub fn is_onshutdown_hook(name: &str, link: Option<&Path>) -> bool {
    let to_service = link.is_some_and(|l| l.file_name().is_some_and(|n| n == "service"));
    name.split_once('-').map(|(_, rest)| rest) == Some("onshutdown")
        && (to_service || link.is_none())
}

/// `/etc/shutdown.d` in name order, as LinuxKit's `rc.shutdown` runs it:
/// the onshutdown hook runs the onshutdown bundles, other scripts run and
/// are waited for. Without a hook the bundles run after the scripts.
fn shutdown_d(sys: &dyn Sys, timeline: &Timeline, runtime: Option<&OciRuntime>) {
    let dir = Path::new("/etc/shutdown.d");
    let mut entries: Vec<(String, Option<std::path::PathBuf>)> = sys
        .read_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.is_dir)
        .map(|e| (e.name, e.link))
        .collect();
    entries.sort();
    let mut bundles_done = false;
    for (name, link) in entries {
        if is_onshutdown_hook(&name, link.as_deref()) {
            if !bundles_done {
                onshutdown(sys, timeline, runtime);
                bundles_done = true;
            }
            continue;
        }
        let status = match sys
            .spawn(&Cmd::new(dir.join(&name), &[]))
            .and_then(|pid| sys.wait(pid))
        {
            Ok(exit) => exit.to_string(),
            Err(e) => chain(&e),
        };
        timeline.event(sys, Event::ShutdowndScript, Some(&name), Some(&status));
    }
    if !bundles_done {
        onshutdown(sys, timeline, runtime);
    }
}

/// Run the onshutdown bundles in order; failures are reported and the
/// shutdown goes on.
fn onshutdown(sys: &dyn Sys, timeline: &Timeline, runtime: Option<&OciRuntime>) {
    let Some(rt) = runtime else {
        return;
    };
    let bundles = list(sys, &Path::new("/").join(ONSHUTDOWN_DIR));
    for dir in &bundles {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        timeline.event(sys, Event::OnshutdownStart, Some(&name), None);
        match run_once(sys, rt, dir, Path::new("/run/log/onshutdown"), "onshutdown") {
            Ok(exit) if exit.success() => {}
            Ok(exit) => timeline.event(
                sys,
                Event::OnbootFailed,
                Some(&name),
                Some(&exit.to_string()),
            ),
            Err(e) => timeline.event(sys, Event::OnbootFailed, Some(&name), Some(&chain(&e))),
        }
    }
    if !bundles.is_empty() {
        timeline.event(sys, Event::OnshutdownDone, None, None);
    }
}

/// What runs when the shutdown begins.
#[derive(Clone, Copy, Debug, Default)]
pub struct Running<'a> {
    /// The init's services.
    pub supervisor: Option<&'a Supervisor>,
    /// The daemons.
    pub daemons: Option<&'a Daemons>,
    /// The OCI runtime, for the onshutdown bundles.
    pub runtime: Option<&'a OciRuntime>,
}

/// Everything after the decision to shut down, up to the power call.
pub fn run(
    sys: &dyn Sys,
    timeline: &Timeline,
    running: Running<'_>,
    action: PowerAction,
    why: &str,
    grace: Duration,
) -> std::io::Error {
    timeline.event(
        sys,
        Event::Shutdown,
        None,
        Some(&format!("{} ({why})", action.as_str())),
    );
    let Running {
        supervisor,
        daemons,
        runtime,
    } = running;
    if let Some(supervisor) = supervisor {
        supervisor.stop_all(grace);
    }
    // After the services (the service manager stops those it runs itself
    // on its TERM), before the onshutdown containers.
    if let Some(daemons) = daemons {
        daemons.stop_all(grace);
    }
    shutdown_d(sys, timeline, runtime);
    let _ = sys.kill(-1, SIGTERM);
    sys.sleep(Duration::from_millis(100));
    let _ = sys.kill(-1, SIGKILL);
    sys.sync();
    let mounts = sys
        .read(Path::new("/proc/self/mountinfo"))
        .map(|t| parse_mountinfo(&String::from_utf8_lossy(&t)))
        .unwrap_or_default();
    for (mountpoint, fstype) in mounts.iter().rev() {
        if mountpoint == "/" {
            continue;
        }
        if UNMOUNT_TYPES.contains(&fstype.as_str()) {
            // A busy filesystem stays mounted; it was synced above.
            let _ = sys.umount(Path::new(mountpoint), false);
        } else if LAZY_TYPES.contains(&fstype.as_str()) {
            let _ = sys.umount(Path::new(mountpoint), true);
        }
    }
    sys.sync();
    let event = match action {
        PowerAction::Poweroff => Event::Poweroff,
        PowerAction::Reboot => Event::Reboot,
        PowerAction::Halt => Event::Halt,
    };
    timeline.event(sys, event, None, None);
    sys.power(action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;
    use std::sync::Arc;

    const MOUNTINFO: &str = "\
22 1 0:20 / / rw shared:1 - tmpfs rootfs rw
23 22 0:21 / /proc rw,nosuid shared:2 - proc proc rw
30 22 253:0 / /var/lib/data rw shared:9 - ext4 /dev/vda1 rw
31 22 0:40 / /containers/services/web/rootfs rw - overlay overlay rw,lowerdir=/x
32 22 0:41 / /mnt/share rw - nfs4 host:/share rw
";

    #[test]
    fn mountinfo() {
        let parsed = parse_mountinfo(MOUNTINFO);
        assert_eq!(parsed[2], ("/var/lib/data".to_owned(), "ext4".to_owned()));
        assert_eq!(parsed.len(), 5);
    }

    #[test]
    fn onshutdown_hooks() {
        let service = Some(Path::new("/usr/bin/service"));
        assert!(is_onshutdown_hook("010-onshutdown", service));
        assert!(is_onshutdown_hook("010-onshutdown", None));
        assert!(!is_onshutdown_hook(
            "010-onshutdown",
            Some(Path::new("/bin/x"))
        ));
        assert!(!is_onshutdown_hook("000-save", None));
    }

    /// LinuxKit's `rc.shutdown` order: scripts and the hook by name.
    #[test]
    fn shutdown_d_scripts_around_the_hook() {
        let sys = FakeSys::new();
        sys.add_file("/containers/onshutdown/000-bye/config.json", "{}");
        sys.add_file("/run/slipway/000-bye.pid", "77");
        sys.add_file("/etc/shutdown.d/000-first", "#!/bin/sh");
        sys.add_link("/etc/shutdown.d/010-onshutdown", "/usr/bin/service");
        sys.add_file("/etc/shutdown.d/020-last", "#!/bin/sh");
        let rt = OciRuntime {
            program: "/usr/bin/crun".into(),
            root: "/run/crun".into(),
            no_pivot: false,
            timeout: crate::bundle::RUNTIME_TIMEOUT,
        };
        let timeline = Timeline::default();
        run(
            &sys,
            &timeline,
            Running {
                runtime: Some(&rt),
                ..Running::default()
            },
            PowerAction::Reboot,
            "SIGTERM",
            Duration::from_secs(1),
        );
        let spawned: Vec<String> = sys.calls_starting("spawn");
        assert_eq!(
            spawned[..3],
            [
                "spawn /etc/shutdown.d/000-first",
                "spawn /usr/bin/crun --root /run/crun --log /run/slipway/000-bye.runtime.log run --detach --bundle /containers/onshutdown/000-bye --pid-file /run/slipway/000-bye.pid 000-bye",
                "spawn /usr/bin/crun --root /run/crun --log /run/slipway/000-bye.runtime.log delete --force 000-bye",
            ]
        );
        assert_eq!(spawned.last().unwrap(), "spawn /etc/shutdown.d/020-last");
        let events: Vec<String> = timeline
            .entries()
            .iter()
            .map(|e| format!("{} {}", e.event, e.name.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            events,
            [
                "shutdown ",
                "shutdownd 000-first",
                "onshutdown-start 000-bye",
                "onshutdown-done ",
                "shutdownd 020-last",
                "reboot "
            ]
        );
    }

    #[test]
    fn daemons_stop_after_the_services_and_before_onshutdown() {
        let sys = Arc::new(FakeSys::new());
        sys.add_file("/containers/onshutdown/000-bye/config.json", "{}");
        sys.add_file("/run/slipway/000-bye.pid", "77");
        sys.hold("slipway-mux");
        sys.hold("slipway-services");
        let dyn_sys: Arc<dyn Sys> = sys.clone();
        let timeline = Arc::new(Timeline::default());
        let daemons = Daemons::new(dyn_sys, Arc::clone(&timeline), "/var/log".into());
        let mux = daemons.start("mux", Path::new("/usr/bin/slipway-mux"), &[]);
        let services = daemons.start("services", Path::new("/usr/bin/slipway-services"), &[]);
        let rt = OciRuntime {
            program: "/usr/bin/crun".into(),
            root: "/run/crun".into(),
            no_pivot: false,
            timeout: crate::bundle::RUNTIME_TIMEOUT,
        };
        run(
            sys.as_ref(),
            &timeline,
            Running {
                supervisor: None,
                daemons: Some(&daemons),
                runtime: Some(&rt),
            },
            PowerAction::Poweroff,
            "SIGUSR2",
            Duration::from_secs(1),
        );
        for handle in [mux, services].into_iter().flatten() {
            handle.join().unwrap();
        }
        let calls: Vec<String> = sys
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("kill") || c.starts_with("spawn /usr/bin/crun"))
            .map(|c| c.split(" --").next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            calls,
            [
                "kill 102 15",
                "kill 101 15",
                "spawn /usr/bin/crun",
                "spawn /usr/bin/crun",
                "kill -1 15",
                "kill -1 9"
            ]
        );
    }

    #[test]
    fn sequence() {
        let sys = FakeSys::new();
        sys.add_file("/proc/self/mountinfo", MOUNTINFO);
        sys.add_file("/containers/onshutdown/000-bye/config.json", "{}");
        sys.add_file("/run/slipway/000-bye.pid", "77");
        let rt = OciRuntime {
            program: "/usr/bin/crun".into(),
            root: "/run/crun".into(),
            no_pivot: false,
            timeout: crate::bundle::RUNTIME_TIMEOUT,
        };
        let timeline = Timeline::default();
        let err = run(
            &sys,
            &timeline,
            Running {
                runtime: Some(&rt),
                ..Running::default()
            },
            PowerAction::Poweroff,
            "SIGUSR2",
            Duration::from_secs(1),
        );
        assert!(err.to_string().contains("fake"));
        let calls: Vec<String> = sys
            .calls()
            .into_iter()
            .filter(|c| !c.starts_with("wait") && !c.starts_with("sleep"))
            .collect();
        assert_eq!(
            calls,
            [
                "spawn /usr/bin/crun --root /run/crun --log /run/slipway/000-bye.runtime.log run --detach --bundle /containers/onshutdown/000-bye --pid-file /run/slipway/000-bye.pid 000-bye",
                "spawn /usr/bin/crun --root /run/crun --log /run/slipway/000-bye.runtime.log delete --force 000-bye",
                "kill -1 15",
                "kill -1 9",
                "sync",
                "umount /mnt/share lazy",
                "umount /containers/services/web/rootfs",
                "umount /var/lib/data",
                "sync",
                "power poweroff",
            ]
        );
        let events: Vec<String> = timeline
            .entries()
            .iter()
            .map(|e| e.event.to_string())
            .collect();
        assert_eq!(
            events,
            [
                "shutdown",
                "onshutdown-start",
                "onshutdown-done",
                "poweroff"
            ]
        );
    }
}
