//! Kernel modules, loaded in-process: the kernel package's `modules.load`
//! list, then the modules the present devices ask for through their
//! `modalias` and `modules.alias`, each after its dependencies
//! (`modules.dep`, `modules.softdep` `pre:`), with `finit_module` (flag 4
//! for compressed modules, which the 6.12 kernel decompresses itself).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::sys::Sys;

/// Modules the init itself wants when present: the ACPI power button and
/// the event interface it reads it through.
pub const INIT_MODULES: &[&str] = &["button", "evdev"];

/// `ext4` for `kernel/fs/ext4/ext4.ko.xz`; `-` becomes `_`.
pub fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .map(|n| n.replace('-', "_"))
}

/// What the module index files of one kernel say.
#[derive(Debug, Default)]
pub struct Index {
    /// Module name → (path relative to the modules dir, dependency paths).
    deps: HashMap<String, (String, Vec<String>)>,
    /// `(pattern, module)` from `modules.alias`.
    aliases: Vec<(String, String)>,
    /// Module → modules to load before it (`softdep ... pre:`).
    softdeps: HashMap<String, Vec<String>>,
    /// Modules built into the kernel.
    builtin: HashSet<String>,
}

impl Index {
    /// Parse `modules.dep`, `modules.alias`, `modules.softdep`, `modules.builtin`.
    pub fn parse(dep: &str, alias: &str, softdep: &str, builtin: &str) -> Index {
        let mut index = Index::default();
        for line in dep.lines() {
            let Some((path, rest)) = line.split_once(':') else {
                continue;
            };
            if let Some(name) = module_name(path) {
                let deps = rest.split_whitespace().map(str::to_owned).collect();
                index.deps.insert(name, (path.trim().to_owned(), deps));
            }
        }
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                index
                    .aliases
                    .push((pattern.to_owned(), module.replace('-', "_")));
            }
        }
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else { continue };
            let mut pre = false;
            for word in words {
                match word {
                    "pre:" => pre = true,
                    "post:" => pre = false,
                    name if pre => index
                        .softdeps
                        .entry(module.replace('-', "_"))
                        .or_default()
                        .push(name.replace('-', "_")),
                    _ => {}
                }
            }
        }
        index.builtin = builtin.lines().filter_map(module_name).collect();
        index
    }

    /// The modules whose aliases match any of `modaliases`, sorted, once each.
    pub fn modules_for(&self, modaliases: &[String]) -> Vec<String> {
        let mut out = BTreeSet::new();
        for modalias in modaliases {
            for (pattern, module) in &self.aliases {
                if glob(pattern.as_bytes(), modalias.as_bytes()) {
                    out.insert(module.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    /// Module paths to load for `wanted` (names or paths), dependencies
    /// first, each once, skipping built-in modules and those in `loaded`.
    pub fn load_order(&self, wanted: &[String], loaded: &HashSet<String>) -> Vec<String> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for item in wanted {
            let name = module_name(item).unwrap_or_else(|| item.replace('-', "_"));
            self.visit(&name, loaded, &mut seen, &mut order, 0);
        }
        order
    }

    fn visit(
        &self,
        name: &str,
        loaded: &HashSet<String>,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 64 || !seen.insert(name.to_owned()) {
            return;
        }
        if self.builtin.contains(name) || loaded.contains(name) {
            return;
        }
        for pre in self.softdeps.get(name).into_iter().flatten() {
            self.visit(pre, loaded, seen, order, depth + 1);
        }
        let Some((path, deps)) = self.deps.get(name) else {
            return;
        };
        // modules.dep lists dependencies so that the last must load first.
        for dep in deps.iter().rev() {
            if let Some(dep_name) = module_name(dep) {
                self.visit(&dep_name, loaded, seen, order, depth + 1);
            }
        }
        order.push(path.clone());
    }
}

/// `fnmatch(3)` without flags: `*`, `?`, `[...]` (with ranges and `!`/`^`).
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(&pattern[p..], text[t])
                        && matched
                    {
                        p += next;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// Match one byte against a `[...]` class; returns (matched, class length).
fn class(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(1), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let ch = pattern[i];
        if ch == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|e| *e != b']') {
            if (ch..=pattern[i + 2]).contains(&c) {
                matched = true;
            }
            i += 3;
        } else {
            if ch == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// The `modalias` of every device on every bus in `/sys/bus`.
pub fn device_modaliases(sys: &dyn Sys) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(buses) = sys.read_dir(Path::new("/sys/bus")) else {
        return out;
    };
    for bus in buses {
        let devices = PathBuf::from("/sys/bus").join(&bus.name).join("devices");
        for device in sys.read_dir(&devices).unwrap_or_default() {
            if let Ok(alias) = sys.read(&devices.join(&device.name).join("modalias")) {
                let alias = String::from_utf8_lossy(&alias).trim().to_owned();
                if !alias.is_empty() {
                    out.push(alias);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What loading did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Modules loaded.
    pub loaded: usize,
    /// `(module path, error)` for each that failed.
    pub failed: Vec<(String, String)>,
}

/// Load everything for this boot from `/lib/modules/<release>`.
pub fn load_all(sys: &dyn Sys, release: &str) -> Loaded {
    let dir = PathBuf::from("/lib/modules").join(release);
    let read = |name: &str| {
        sys.read(&dir.join(name))
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default()
    };
    let index = Index::parse(
        &read("modules.dep"),
        &read("modules.alias"),
        &read("modules.softdep"),
        &read("modules.builtin"),
    );
    let mut wanted: Vec<String> = read("modules.load")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    wanted.extend(index.modules_for(&device_modaliases(sys)));
    wanted.extend(INIT_MODULES.iter().map(|m| (*m).to_owned()));
    let loaded_now: HashSet<String> = sys
        .read_dir(Path::new("/sys/module"))
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut result = Loaded::default();
    for path in index.load_order(&wanted, &loaded_now) {
        let full = dir.join(&path);
        let compressed = !path.ends_with(".ko");
        match sys.load_module(&full, compressed) {
            Ok(()) => result.loaded += 1,
            Err(e) => result.failed.push((path, e.to_string())),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/lib/crc16.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
kernel/drivers/acpi/button.ko.xz:
kernel/drivers/input/evdev.ko.xz:
kernel/fs/overlayfs/overlay.ko:
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias virtio:d00000001v* virtio_net
alias acpi*:LNXPWRBN:* button
alias fs-overlay overlay
alias pci:v00001AF4d00001041sv*sd*bc*sc*i* virtio_net
";
    const SOFTDEP: &str = "softdep ext4 pre: crc32c_generic\n";

    fn index() -> Index {
        Index::parse(DEP, ALIAS, SOFTDEP, "kernel/drivers/virtio/virtio.ko\n")
    }

    #[test]
    fn dependencies_first_each_once() {
        let order = index().load_order(
            &[
                "ext4".into(),
                "kernel/drivers/net/virtio_net.ko.xz".into(),
                "crc16".into(),
            ],
            &HashSet::new(),
        );
        assert_eq!(
            order,
            [
                "kernel/crypto/crc32c_generic.ko.xz",
                "kernel/fs/jbd2/jbd2.ko.xz",
                "kernel/fs/mbcache.ko.xz",
                "kernel/lib/crc16.ko.xz",
                "kernel/fs/ext4/ext4.ko.xz",
                "kernel/net/core/failover.ko.xz",
                "kernel/drivers/net/net_failover.ko.xz",
                "kernel/drivers/net/virtio_net.ko.xz",
            ]
        );
    }

    #[test]
    fn loaded_builtin_and_unknown_are_skipped() {
        let loaded: HashSet<String> = ["failover".to_owned()].into();
        let order = index().load_order(
            &["virtio_net".into(), "virtio".into(), "nonexistent".into()],
            &loaded,
        );
        assert_eq!(
            order,
            [
                "kernel/drivers/net/net_failover.ko.xz",
                "kernel/drivers/net/virtio_net.ko.xz"
            ]
        );
    }

    #[test]
    fn aliases_match_device_modaliases() {
        let mods = index().modules_for(&[
            "virtio:d00000001v00001AF4".into(),
            "acpi:LNXPWRBN:".into(),
            "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00".into(),
            "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00".into(),
        ]);
        assert_eq!(mods, ["button", "virtio_net"]);
    }

    #[test]
    fn globbing() {
        assert!(glob(b"a*b?c", b"aXXbYc"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"a*b", b"aXc"));
        assert!(glob(b"x[0-9]y", b"x5y"));
        assert!(!glob(b"x[!0-9]y", b"x5y"));
        assert!(glob(b"x[!0-9]y", b"xay"));
        assert!(glob(
            b"dmi*:svnQEMU:*",
            b"dmi:bvnSeaBIOS:svnQEMU:pnStandard"
        ));
    }

    #[test]
    fn loads_through_the_syscall_with_flags() {
        let sys = FakeSys::new();
        let dir = "/lib/modules/6.12.0";
        sys.add_file(&format!("{dir}/modules.dep"), DEP);
        sys.add_file(&format!("{dir}/modules.alias"), ALIAS);
        sys.add_file(&format!("{dir}/modules.softdep"), SOFTDEP);
        sys.add_file(
            &format!("{dir}/modules.load"),
            "kernel/fs/overlayfs/overlay.ko\n# c\n",
        );
        sys.add_file(
            "/sys/bus/acpi/devices/LNXPWRBN:00/modalias",
            "acpi:LNXPWRBN:\n",
        );
        sys.add_dir("/sys/module/evdev");
        sys.fail_module("button.ko.xz");
        let result = load_all(&sys, "6.12.0");
        assert_eq!(
            sys.calls_starting("finit_module"),
            [
                "finit_module /lib/modules/6.12.0/kernel/fs/overlayfs/overlay.ko flags 0",
                "finit_module /lib/modules/6.12.0/kernel/drivers/acpi/button.ko.xz flags 4",
            ]
        );
        assert_eq!(result.loaded, 1);
        assert_eq!(result.failed.len(), 1);
    }
}
