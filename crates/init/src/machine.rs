//! The machine's own settings, made after the mounts and modules as
//! `rc.init` makes them: hostname, loopback, resource limits and
//! `/etc/resolv.conf`.

use slipway_contract::errors::chain;
use std::path::Path;

use crate::sys::{LinkOp, Sys};

/// LinuxKit's limits: 1048576 open files, unlimited processes.
pub const NOFILE: u64 = 1_048_576;

/// The hostname: `/etc/hostname` when it has one, else `linuxkit-<mac of
/// eth0 without colons>` as LinuxKit names machines, else `slipway`.
pub fn hostname(sys: &dyn Sys) -> String {
    if let Ok(data) = sys.read(Path::new("/etc/hostname")) {
        let name = String::from_utf8_lossy(&data).trim().to_owned();
        if !name.is_empty() {
            return name;
        }
    }
    if let Ok(mac) = sys.read(Path::new("/sys/class/net/eth0/address")) {
        let mac: String = String::from_utf8_lossy(&mac)
            .trim()
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if !mac.is_empty() {
            return format!("linuxkit-{mac}");
        }
    }
    "slipway".to_owned()
}

/// Set up the system after the mounts and modules. Failures are reported
/// in the returned list but are not fatal.
pub fn setup(sys: &dyn Sys) -> (String, Vec<String>) {
    let mut problems = Vec::new();
    let name = hostname(sys);
    if let Err(e) = sys.sethostname(&name) {
        problems.push(format!("sethostname {name}: {}", chain(&e)));
    }
    if let Err(e) = sys.link(&LinkOp::Up("lo".into())) {
        problems.push(format!("loopback up: {}", chain(&e)));
    }
    if let Err(e) = sys.set_rlimits(NOFILE, None) {
        problems.push(format!("rlimits: {}", chain(&e)));
    }
    // A symlinked /etc/resolv.conf (LinuxKit points it into /run/resolvconf)
    // needs its target's directory.
    let resolv = sys
        .read_dir(Path::new("/etc"))
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "resolv.conf")
        .and_then(|e| e.link);
    if let Some(link) = resolv {
        let target = if link.is_absolute() {
            link
        } else {
            Path::new("/etc").join(link)
        };
        if let Some(parent) = target.parent() {
            let _ = sys.mkdir_all(parent, 0o755);
        }
        if !sys.exists(&target) {
            let _ = sys.write(&target, b"", false);
        }
    }
    (name, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn hostname_sources() {
        let sys = FakeSys::new();
        assert_eq!(hostname(&sys), "slipway");
        sys.add_file("/sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        assert_eq!(hostname(&sys), "linuxkit-525400123456");
        sys.add_file("/etc/hostname", "  box \n");
        assert_eq!(hostname(&sys), "box");
    }

    #[test]
    fn setup_sets_everything() {
        let sys = FakeSys::new();
        sys.add_link("/etc/resolv.conf", "/run/resolvconf/resolv.conf");
        let (name, problems) = setup(&sys);
        assert_eq!(name, "slipway");
        assert!(problems.is_empty());
        assert_eq!(
            sys.calls(),
            [
                "sethostname slipway",
                "link Up(\"lo\")",
                "rlimits nofile=1048576 nproc=None",
                "mkdir /run/resolvconf 755",
            ]
        );
        assert_eq!(sys.file("/run/resolvconf/resolv.conf").as_deref(), Some(""));
    }
}
