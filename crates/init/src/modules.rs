//! Kernel modules, loaded in-process: the kernel package's `modules.load`
//! list and the modules the present devices ask for through their
//! `modalias` and `modules.alias`, each after its dependencies
//! (`modules.dep`, `modules.softdep` `pre:`), with `finit_module` (flag 4
//! for compressed modules, which the 6.12 kernel decompresses itself).
//!
//! Only what the first container may need is loaded before it ([`plan`]):
//! the present devices' drivers. Filesystems, protocol families, link
//! types and algorithms the kernel asks for by name when something needs
//! them, and the init answers those requests as the kernel's modprobe
//! ([`modprobe`]); the rest of the list is loaded off the containers'
//! path.
//!
//! Independent modules load in parallel, one thread per CPU: a module
//! starts once everything it depends on has been tried ([`load_parallel`]).

use slipway_contract::errors::chain;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use slipway_contract::root_device::{BLOCK_DRIVERS, SCSI_DRIVERS};

use crate::sys::Sys;

/// Modules the init itself wants when present: the ACPI power button and
/// the event interface it reads it through. No container needs them, so
/// they are loaded off the containers' path ([`Plan::later`]), listed in
/// `modules.load` or not.
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

    /// Whether a device could ask for a module beyond `covered` (names):
    /// some module with an alias is loadable (in `modules.dep`, not built
    /// in) and not covered. When none is, scanning the devices cannot add
    /// anything.
    pub fn devices_can_add(&self, covered: &HashSet<String>) -> bool {
        self.aliases.iter().any(|(_, module)| {
            !covered.contains(module)
                && !self.builtin.contains(module)
                && self.deps.contains_key(module)
        })
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

    /// The module an exact alias names (`crc32c` is `crc32c_generic`,
    /// `fs-iso9660` is `isofs`), `-` and `_` alike: soft dependencies name
    /// algorithms so, and a filesystem's module is found so. A module in
    /// `modules.dep` first, then a built-in one.
    pub fn alias_target(&self, name: &str) -> Option<String> {
        let name = name.replace('-', "_");
        let all: Vec<&String> = self
            .aliases
            .iter()
            .filter(|(pattern, _)| pattern.replace('-', "_") == name)
            .map(|(_, module)| module)
            .collect();
        all.iter()
            .find(|m| self.deps.contains_key(m.as_str()))
            .or_else(|| all.iter().find(|m| self.builtin.contains(m.as_str())))
            .map(|m| (*m).clone())
    }

    /// Whether a module is built into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(name)
    }

    /// Whether the kernel asks for `module` by one of its aliases when
    /// something needs it: an alias that is a name, not a device pattern
    /// (`fs-ext4` at mount, `net-pf-40` for a socket, `rtnl-link-veth` for
    /// a link, `crypto-crc32c` for an algorithm). Not `char-major-*` and
    /// `block-major-*`: without the module there is no device node to open.
    pub fn on_demand(&self, module: &str) -> bool {
        self.aliases.iter().any(|(pattern, m)| {
            m == module
                && !pattern.contains(':')
                && !pattern.starts_with("char-major-")
                && !pattern.starts_with("block-major-")
        })
    }

    /// Whether `module` is a filesystem (an `fs-*` alias, as the kernel
    /// asks for one at mount).
    pub fn is_filesystem(&self, module: &str) -> bool {
        self.aliases
            .iter()
            .any(|(pattern, m)| m == module && pattern.starts_with("fs-"))
    }

    /// The device alias patterns of `module` (`virtio:d00000001v*`), not
    /// `devname:` ones (a node name, not a device).
    pub fn device_patterns<'a>(&'a self, module: &'a str) -> impl Iterator<Item = &'a str> {
        self.aliases
            .iter()
            .filter(move |(pattern, m)| {
                m == module && pattern.contains(':') && !pattern.starts_with("devname:")
            })
            .map(|(pattern, _)| pattern.as_str())
    }

    /// A module name for `name`: itself when `modules.dep` or
    /// `modules.builtin` knows it, else what an exact alias names.
    fn resolve(&self, name: &str) -> Option<String> {
        if self.deps.contains_key(name) || self.builtin.contains(name) {
            Some(name.to_owned())
        } else {
            self.alias_target(name)
        }
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
            if let Some(module) = self.resolve(pre) {
                self.visit(&module, loaded, seen, order, depth + 1);
            }
        }
        let Some((path, deps)) = self.deps.get(name) else {
            // An alias: what it names.
            if let Some(module) = self.alias_target(name).filter(|m| m != name) {
                self.visit(&module, loaded, seen, order, depth + 1);
            }
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

impl Index {
    /// The dependencies of each module of `order` (a [`Index::load_order`]
    /// result) among the modules of `order`, as indexes into it: its
    /// `modules.dep` entries and `softdep` `pre:` modules. Only earlier
    /// modules count, so the graph has no cycle whatever the index says.
    pub fn load_graph(&self, order: &[String]) -> Vec<Vec<usize>> {
        let position: HashMap<String, usize> = order
            .iter()
            .enumerate()
            .filter_map(|(i, p)| module_name(p).map(|n| (n, i)))
            .collect();
        order
            .iter()
            .enumerate()
            .map(|(i, path)| {
                let Some(name) = module_name(path) else {
                    return Vec::new();
                };
                let hard = self
                    .deps
                    .get(&name)
                    .into_iter()
                    .flat_map(|(_, deps)| deps.iter().filter_map(|d| module_name(d)));
                let soft = self
                    .softdeps
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .filter_map(|n| self.resolve(n));
                let mut before: Vec<usize> = hard
                    .chain(soft)
                    .filter_map(|n| position.get(&n).copied())
                    .filter(|j| *j < i)
                    .collect();
                before.sort_unstable();
                before.dedup();
                before
            })
            .collect()
    }
}

/// Run `load` for each of `graph.len()` items on up to `workers` threads,
/// an item only after all its dependencies (`graph[i]`, earlier indexes)
/// have finished, whether they succeeded or not (the kernel then reports
/// what is missing). Items become ready in index order, so one worker
/// loads them exactly in order. Returns each item's result, by index.
pub fn load_parallel<F>(graph: &[Vec<usize>], workers: usize, load: F) -> Vec<io::Result<()>>
where
    F: Fn(usize) -> io::Result<()> + Sync,
{
    let n = graph.len();
    let mut waiting: Vec<usize> = graph.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deps) in graph.iter().enumerate() {
        for &d in deps {
            if let Some(list) = dependents.get_mut(d) {
                list.push(i);
            }
        }
    }
    struct State {
        ready: VecDeque<usize>,
        waiting: Vec<usize>,
        results: Vec<Option<io::Result<()>>>,
        finished: usize,
    }
    let state = Mutex::new(State {
        ready: (0..n).filter(|i| waiting[*i] == 0).collect(),
        waiting: std::mem::take(&mut waiting),
        results: (0..n).map(|_| None).collect(),
        finished: 0,
    });
    let wake = Condvar::new();
    let worker = || {
        let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(i) = guard.ready.pop_front() {
                drop(guard);
                let result = load(i);
                guard = state.lock().unwrap_or_else(PoisonError::into_inner);
                guard.results[i] = Some(result);
                guard.finished += 1;
                let mut newly: Vec<usize> = Vec::new();
                for &j in &dependents[i] {
                    guard.waiting[j] -= 1;
                    if guard.waiting[j] == 0 {
                        newly.push(j);
                    }
                }
                newly.sort_unstable();
                // Ready items stay in index order.
                let mut all: Vec<usize> = guard.ready.drain(..).chain(newly).collect();
                all.sort_unstable();
                guard.ready = all.into();
                wake.notify_all();
            } else if guard.finished == n {
                return;
            } else {
                guard = wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
        }
    };
    let workers = workers.clamp(1, n.max(1));
    if workers == 1 {
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(worker);
            }
        });
    }
    let results = state
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .results;
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(io::Error::other("not loaded"))))
        .collect()
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

/// The `modalias` of every device on the buses in `/sys/bus` (only those
/// named in `buses`, when given).
pub fn device_modaliases(sys: &dyn Sys, buses: Option<&BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(all) = sys.read_dir(Path::new("/sys/bus")) else {
        return out;
    };
    for bus in all
        .into_iter()
        .filter(|b| buses.is_none_or(|only| only.contains(&b.name)))
    {
        let devices = PathBuf::from("/sys/bus").join(&bus.name).join("devices");
        for device in sys.names(&devices).unwrap_or_default() {
            if let Ok(alias) = sys.read(&devices.join(&device).join("modalias")) {
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
    /// Threads that loaded them.
    pub workers: usize,
    /// Milliseconds reading the index and the devices' modaliases.
    pub prepare_ms: u64,
    /// Milliseconds in `finit_module` calls, wall clock.
    pub load_ms: u64,
}

/// The boot's modules (`modules.load`, the present devices' drivers and
/// [`INIT_MODULES`]) in two parts: what the first container may need,
/// loaded before it, and the rest, loaded off its path ([`Plan::later`]).
#[derive(Debug)]
pub struct Plan {
    dir: PathBuf,
    index: Index,
    /// Paths to load before the onboot bundles, dependencies first.
    pub now: Vec<String>,
    /// Paths to load once the first container is on its way: listed
    /// modules the kernel asks for by name when something needs them (a
    /// filesystem at mount, a protocol family, a link type, a crypto
    /// algorithm: see [`Index::on_demand`] and [`modprobe`]), drivers of
    /// devices the machine does not have, and [`INIT_MODULES`].
    pub later: Vec<String>,
    prepare_ms: u64,
}

/// Read the index of `/lib/modules/<release>` and the devices, and split
/// the boot's modules into [`Plan::now`] and [`Plan::later`].
///
/// A listed module is needed now when a present device matches one of its
/// device aliases, or when nothing could ask for it later (no alias the
/// kernel requests and no device alias: only the list says to load it).
/// A listed module that another listed module depends on goes with the
/// modules that need it. Drivers of present devices beyond the list are
/// needed now; a root device's storage drivers are left to `root=` (q35's
/// AHCI controller would otherwise cost every boot ahci, libahci and
/// libata).
///
/// `early`: every listed module is needed now, as when nothing asks for
/// modules on demand.
pub fn plan(sys: &dyn Sys, release: &str, early: bool) -> Plan {
    let start = sys.now_ms();
    let dir = modules_dir(release);
    let index = read_index(sys, &dir);
    let listed: Vec<String> = read_text(sys, &dir, "modules.load")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| module_name(l).unwrap_or_else(|| l.replace('-', "_")))
        .collect();
    let loaded_now = loaded(sys);
    let none = HashSet::new();
    // Listed modules another listed module needs (hard or soft).
    let needed_by_others: HashSet<String> = listed
        .iter()
        .flat_map(|m| {
            index
                .load_order(std::slice::from_ref(m), &none)
                .into_iter()
                .filter_map(|p| module_name(&p))
                .filter(move |n| n != m)
        })
        .collect();
    let roots: Vec<&String> = listed
        .iter()
        .filter(|m| !needed_by_others.contains(*m))
        .collect();
    let is_init = |m: &str| INIT_MODULES.contains(&m);
    let is_root_driver = |m: &str| root_drivers().any(|d| d == m);
    // What the list brings with its dependencies, the init's own, a root
    // device's drivers and the loaded: when they cover every module with
    // an alias (the usual kernel package), only the buses the listed
    // modules' device aliases name are read.
    let mut covered: HashSet<String> = index
        .load_order(&listed, &none)
        .iter()
        .filter_map(|p| module_name(p))
        .chain(INIT_MODULES.iter().map(|m| (*m).to_owned()))
        .chain(root_drivers().map(str::to_owned))
        .collect();
    covered.extend(loaded_now.iter().cloned());
    let buses: Option<BTreeSet<String>> = if index.devices_can_add(&covered) {
        None
    } else {
        Some(
            roots
                .iter()
                .flat_map(|m| index.device_patterns(m))
                .map(bus_of)
                .collect(),
        )
    };
    let modaliases = match &buses {
        Some(buses) if buses.is_empty() => Vec::new(),
        _ => device_modaliases(sys, buses.as_ref()),
    };
    let devices = index.modules_for(&modaliases);
    // A container may mount a disk without naming its filesystem (`mount
    // DEV DIR` tries each one in /proc/filesystems), and then the kernel
    // asks for no module: with a disk, the filesystems come now.
    let disk = has_disk(sys, &devices);
    let (mut now, mut later): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for m in roots {
        if is_init(m) {
            continue;
        }
        let has_device = devices.contains(m) || (disk && index.is_filesystem(m));
        let could_come_later = index.on_demand(m) || index.device_patterns(m).next().is_some();
        if early || has_device || !could_come_later {
            now.push(m.clone());
        } else {
            later.push(m.clone());
        }
    }
    let extra: Vec<String> = devices
        .iter()
        .filter(|m| !is_root_driver(m) && !is_init(m) && !now.contains(m))
        .cloned()
        .collect();
    now.extend(extra);
    let now = index.load_order(&now, &loaded_now);
    let mut before_later = loaded_now;
    before_later.extend(now.iter().filter_map(|p| module_name(p)));
    let init = INIT_MODULES.iter().map(|m| (*m).to_owned());
    let later = index.load_order(&init.chain(later).collect::<Vec<_>>(), &before_later);
    Plan {
        dir,
        index,
        now,
        later,
        prepare_ms: sys.now_ms().saturating_sub(start),
    }
}

impl Plan {
    /// Load [`Plan::now`] on up to `workers` threads.
    pub fn load_now(&self, sys: &dyn Sys, workers: usize) -> Loaded {
        Loaded {
            prepare_ms: self.prepare_ms,
            ..load_order(sys, &self.dir, &self.index, &self.now, workers)
        }
    }

    /// Load [`Plan::later`] on up to `workers` threads. Modules loaded in
    /// the meantime (asked for by the kernel) count as loaded.
    pub fn load_later(&self, sys: &dyn Sys, workers: usize) -> Loaded {
        load_order(sys, &self.dir, &self.index, &self.later, workers)
    }
}

/// Whether the machine has a disk: a virtio or NVMe one (whose driver
/// `devices` holds), or one a built-in driver already shows in
/// `/sys/block` (not loop, RAM or network block devices).
fn has_disk(sys: &dyn Sys, devices: &[String]) -> bool {
    devices.iter().any(|m| m == "virtio_blk" || m == "nvme")
        || sys
            .names(Path::new("/sys/block"))
            .unwrap_or_default()
            .iter()
            .any(|d| {
                !["loop", "ram", "zram", "nbd"]
                    .iter()
                    .any(|p| d.starts_with(p))
            })
}

/// The bus a device alias pattern is for: `virtio` for `virtio:d00000001v*`,
/// `acpi` for `acpi*:LNXPWRBN:*`.
fn bus_of(pattern: &str) -> String {
    let prefix = pattern.split(':').next().unwrap_or_default();
    prefix.trim_end_matches(['*', '?']).to_owned()
}

/// What [`modprobe`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Requested {
    /// The modules loaded (possibly none: already there or built in).
    Loaded(Loaded),
    /// No module of this kernel has that name or alias.
    Unknown,
}

/// The kernel's request for a module by name or alias (`fs-ext4`,
/// `net-pf-40`, `rtnl-link-veth`, `crypto-crc32c`): the init is the
/// kernel's modprobe (`/proc/sys/kernel/modprobe`, see
/// [`MODPROBE_PATH`]), so what [`Plan::later`] has not loaded yet comes
/// when a container needs it. Loads it with its dependencies, in order.
pub fn modprobe(sys: &dyn Sys, release: &str, name: &str) -> Requested {
    let start = sys.now_ms();
    let dir = modules_dir(release);
    let index = read_index(sys, &dir);
    let name = name.replace('-', "_");
    if index.resolve(&name).is_none() {
        return Requested::Unknown;
    }
    let order = index.load_order(&[name], &loaded(sys));
    let prepare_ms = sys.now_ms().saturating_sub(start);
    Requested::Loaded(Loaded {
        prepare_ms,
        ..load_order(sys, &dir, &index, &order, 1)
    })
}

/// Where the kernel finds its modprobe: the init itself, which answers
/// `-q -- NAME` with [`modprobe`].
pub const MODPROBE_PATH: &str = "/init";

/// Make the init the kernel's modprobe, when it is at [`MODPROBE_PATH`]
/// (an image that boots the init from elsewhere keeps the kernel's).
pub fn serve_requests(sys: &dyn Sys) -> bool {
    sys.exists(Path::new(MODPROBE_PATH))
        && sys
            .write(
                Path::new("/proc/sys/kernel/modprobe"),
                MODPROBE_PATH.as_bytes(),
                false,
            )
            .is_ok()
}

/// The storage drivers of a root device (see `slipway_contract::root_device`).
fn root_drivers() -> impl Iterator<Item = &'static str> {
    BLOCK_DRIVERS.iter().chain(SCSI_DRIVERS).copied()
}

/// `/lib/modules/<release>`.
pub fn modules_dir(release: &str) -> PathBuf {
    PathBuf::from("/lib/modules").join(release)
}

fn read_text(sys: &dyn Sys, dir: &Path, name: &str) -> String {
    sys.read(&dir.join(name))
        .map(|d| String::from_utf8_lossy(&d).into_owned())
        .unwrap_or_default()
}

/// The index files of the modules in `dir` (missing ones read as empty).
pub fn read_index(sys: &dyn Sys, dir: &Path) -> Index {
    Index::parse(
        &read_text(sys, dir, "modules.dep"),
        &read_text(sys, dir, "modules.alias"),
        &read_text(sys, dir, "modules.softdep"),
        &read_text(sys, dir, "modules.builtin"),
    )
}

/// The modules loaded now (`/sys/module`, which also lists built-in ones
/// with parameters).
pub fn loaded(sys: &dyn Sys) -> HashSet<String> {
    sys.names(Path::new("/sys/module"))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Load `wanted` (module names, paths or aliases) from `dir` with their
/// dependencies, skipping the `loaded`, on up to `workers` threads.
/// `start` is when the caller began reading the index, for
/// [`Loaded::prepare_ms`].
pub fn load_wanted(
    sys: &dyn Sys,
    dir: &Path,
    index: &Index,
    wanted: &[String],
    loaded: &HashSet<String>,
    workers: usize,
    start: u64,
) -> Loaded {
    let order = index.load_order(wanted, loaded);
    let prepared = sys.now_ms();
    Loaded {
        prepare_ms: prepared.saturating_sub(start),
        ..load_order(sys, dir, index, &order, workers)
    }
}

/// Load `order` (an [`Index::load_order`] result) from `dir` on up to
/// `workers` threads, a module once what it depends on has been tried.
fn load_order(
    sys: &dyn Sys,
    dir: &Path,
    index: &Index,
    order: &[String],
    workers: usize,
) -> Loaded {
    let graph = index.load_graph(order);
    let loading = sys.now_ms();
    let results = load_parallel(&graph, workers, |i| {
        let path = &order[i];
        let compressed = !path.ends_with(".ko");
        sys.load_module(&dir.join(path), compressed)
    });
    let mut result = Loaded {
        workers: workers.clamp(1, order.len().max(1)),
        load_ms: sys.now_ms().saturating_sub(loading),
        ..Loaded::default()
    };
    for (path, outcome) in order.iter().zip(results) {
        match outcome {
            Ok(()) => result.loaded += 1,
            Err(e) => result.failed.push((path.clone(), chain(&e))),
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
    fn devices_are_read_only_when_they_could_add_a_module() {
        let index = index();
        // Modules with an alias: virtio_net, button, overlay.
        let covered = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        assert!(index.devices_can_add(&covered(&["button", "overlay"])));
        assert!(!index.devices_can_add(&covered(&["virtio_net", "button", "overlay"])));
        // An alias of a module the index cannot load adds nothing.
        let unloadable = Index::parse(DEP, "alias pci:v* absent\n", "", "");
        assert!(!unloadable.devices_can_add(&HashSet::new()));
        let builtin = Index::parse(
            DEP,
            "alias fs-overlay overlay\n",
            "",
            "kernel/fs/overlayfs/overlay.ko\n",
        );
        assert!(!builtin.devices_can_add(&HashSet::new()));
    }

    fn machine(load: &str, devices: &[(&str, &str)]) -> FakeSys {
        let sys = FakeSys::new();
        let dir = "/lib/modules/6.12.0";
        sys.add_file(&format!("{dir}/modules.dep"), DEP);
        let alias = format!("{ALIAS}alias fs-ext4 ext4\nalias crypto-crc32c crc32c_generic\n");
        sys.add_file(&format!("{dir}/modules.alias"), &alias);
        sys.add_file(&format!("{dir}/modules.softdep"), SOFTDEP);
        sys.add_file(&format!("{dir}/modules.load"), load);
        for (path, alias) in devices {
            sys.add_file(path, &format!("{alias}\n"));
        }
        sys
    }

    const VIRTIO_NET: (&str, &str) = (
        "/sys/bus/virtio/devices/virtio0/modalias",
        "virtio:d00000001v00001AF4",
    );

    fn names(paths: &[String]) -> Vec<String> {
        paths.iter().filter_map(|p| module_name(p)).collect()
    }

    #[test]
    fn a_device_module_beyond_the_list_is_still_found() {
        let sys = machine("overlay\n", &[VIRTIO_NET]);
        let plan = plan(&sys, "6.12.0", false);
        assert_eq!(
            names(&plan.now),
            ["failover", "net_failover", "virtio_net"],
            "the present device's driver, after what it needs"
        );
        assert_eq!(names(&plan.later), ["button", "evdev", "overlay"]);
        assert_eq!(plan.load_now(&sys, 1).loaded, 3);
        assert_eq!(sys.calls_starting("finit_module").len(), 3);
    }

    #[test]
    fn what_the_kernel_can_ask_for_or_no_device_needs_comes_later() {
        // The list with its dependencies, as the kernel package writes it.
        let load = "kernel/lib/crc16.ko.xz\nkernel/fs/jbd2/jbd2.ko.xz\nkernel/fs/mbcache.ko.xz\n\
                    kernel/crypto/crc32c_generic.ko.xz\nkernel/fs/ext4/ext4.ko.xz\n\
                    kernel/net/core/failover.ko.xz\nkernel/drivers/net/net_failover.ko.xz\n\
                    kernel/drivers/net/virtio_net.ko.xz\nkernel/fs/overlayfs/overlay.ko\n";
        let sys = machine(load, &[VIRTIO_NET]);
        let plan = plan(&sys, "6.12.0", false);
        // crc16, jbd2 and mbcache have no alias, but ext4 needs them: they
        // go with it.
        assert_eq!(names(&plan.now), ["failover", "net_failover", "virtio_net"]);
        assert_eq!(
            names(&plan.later),
            [
                "button",
                "evdev",
                "crc32c_generic",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4",
                "overlay"
            ]
        );
        // No virtio network device: its driver comes later too.
        let ahci = (
            "/sys/bus/pci/devices/0000:00:1f.2/modalias",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
        );
        let sys = machine(load, &[ahci]);
        let plan = super::plan(&sys, "6.12.0", false);
        assert!(plan.now.is_empty(), "{:?}", plan.now);
        assert!(names(&plan.later).contains(&"virtio_net".to_owned()));
        // With a disk, the filesystems come now: a container may mount it
        // without naming its type, and then the kernel asks for nothing.
        let disk = (
            "/sys/bus/virtio/devices/virtio1/modalias",
            "virtio:d00000002v00001AF4",
        );
        let sys = machine(
            &format!("{load}kernel/drivers/block/virtio_blk.ko.xz\n"),
            &[VIRTIO_NET, disk],
        );
        sys.add_file(
            "/lib/modules/6.12.0/modules.dep",
            &format!("{DEP}kernel/drivers/block/virtio_blk.ko.xz:\n"),
        );
        sys.add_file(
            "/lib/modules/6.12.0/modules.alias",
            &format!(
                "{ALIAS}alias fs-ext4 ext4\nalias crypto-crc32c crc32c_generic\nalias virtio:d00000002v* virtio_blk\n"
            ),
        );
        let with_disk = super::plan(&sys, "6.12.0", false);
        assert_eq!(
            names(&with_disk.now),
            [
                "crc32c_generic",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4",
                "failover",
                "net_failover",
                "virtio_net",
                "overlay",
                "virtio_blk"
            ]
        );
        assert_eq!(names(&with_disk.later), ["button", "evdev"]);
        // Early: the whole list now.
        let early = super::plan(&sys, "6.12.0", true);
        assert_eq!(early.now.len(), 10, "{:?}", early.now);
        assert_eq!(names(&early.later), ["button", "evdev"]);
        // A listed module nothing could ask for (no alias) is loaded now.
        let sys = machine("crc16\n", &[]);
        assert_eq!(names(&super::plan(&sys, "6.12.0", false).now), ["crc16"]);
    }

    #[test]
    fn the_kernel_s_requests_load_by_alias_with_dependencies() {
        let sys = machine("", &[]);
        sys.add_dir("/sys/module/jbd2");
        let Requested::Loaded(loaded) = modprobe(&sys, "6.12.0", "fs-overlay") else {
            panic!("fs-overlay is overlay's alias");
        };
        assert_eq!(loaded.loaded, 1);
        assert!(matches!(
            modprobe(&sys, "6.12.0", "fs-ext4"),
            Requested::Loaded(_)
        ));
        assert_eq!(
            sys.calls_starting("finit_module"),
            [
                "finit_module /lib/modules/6.12.0/kernel/fs/overlayfs/overlay.ko flags 0",
                "finit_module /lib/modules/6.12.0/kernel/crypto/crc32c_generic.ko.xz flags 4",
                "finit_module /lib/modules/6.12.0/kernel/fs/mbcache.ko.xz flags 4",
                "finit_module /lib/modules/6.12.0/kernel/lib/crc16.ko.xz flags 4",
                "finit_module /lib/modules/6.12.0/kernel/fs/ext4/ext4.ko.xz flags 4",
            ],
            "jbd2 is loaded already"
        );
        assert_eq!(modprobe(&sys, "6.12.0", "net-pf-40"), Requested::Unknown);
    }

    #[test]
    fn device_patterns_name_their_bus() {
        assert_eq!(bus_of("virtio:d00000001v*"), "virtio");
        assert_eq!(bus_of("acpi*:LNXPWRBN:*"), "acpi");
        assert_eq!(bus_of("pci:v00001AF4d00001041sv*sd*bc*sc*i*"), "pci");
        let index = Index::parse(
            DEP,
            "alias devname:net/tun tun\nalias char-major-10-200 tun\nalias fs-overlay overlay\n",
            "",
            "",
        );
        assert!(!index.on_demand("tun"), "no node to open without it");
        assert_eq!(index.device_patterns("tun").count(), 0);
        assert!(index.on_demand("overlay"));
    }

    #[test]
    fn the_init_is_the_kernel_s_modprobe_when_it_is_there() {
        let sys = FakeSys::new();
        assert!(!serve_requests(&sys));
        sys.add_file(MODPROBE_PATH, "");
        assert!(serve_requests(&sys));
        assert_eq!(
            sys.read(Path::new("/proc/sys/kernel/modprobe")).unwrap(),
            b"/init"
        );
    }

    /// The kernel package's index: a soft dependency and a filesystem
    /// named by alias, and the storage drivers of a root device.
    const ROOT_DEP: &str = "\
kernel/crypto/crc32c_generic.ko.xz:
kernel/lib/libcrc32c.ko.xz:
kernel/fs/erofs/erofs.ko.xz: kernel/lib/libcrc32c.ko.xz
kernel/drivers/cdrom/cdrom.ko.xz:
kernel/fs/isofs/isofs.ko.xz: kernel/drivers/cdrom/cdrom.ko.xz
kernel/drivers/ata/libata.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz
kernel/drivers/ata/libahci.ko.xz: kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz
kernel/drivers/ata/ahci.ko.xz: kernel/drivers/ata/libahci.ko.xz kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz
kernel/drivers/scsi/scsi_mod.ko.xz:
kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz
kernel/drivers/block/virtio_blk.ko.xz:
";
    const ROOT_ALIAS: &str = "\
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias fs-erofs erofs
alias iso9660 isofs
alias fs-iso9660 isofs
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias scsi:t-0x00* sd_mod
alias virtio:d00000002v* virtio_blk
";
    const ROOT_SOFTDEP: &str = "softdep libcrc32c pre: crc32c\nsoftdep ext4 pre: crypto_crc32c\n";

    #[test]
    fn soft_dependencies_and_filesystems_by_alias() {
        let index = Index::parse(ROOT_DEP, ROOT_ALIAS, ROOT_SOFTDEP, "");
        assert_eq!(index.alias_target("fs-iso9660").as_deref(), Some("isofs"));
        assert_eq!(
            index.alias_target("crypto_crc32c").as_deref(),
            Some("crc32c_generic")
        );
        assert_eq!(index.alias_target("fs-ext4"), None);
        let order = index.load_order(&["fs-erofs".into()], &HashSet::new());
        assert_eq!(
            order,
            [
                "kernel/crypto/crc32c_generic.ko.xz",
                "kernel/lib/libcrc32c.ko.xz",
                "kernel/fs/erofs/erofs.ko.xz"
            ]
        );
        // libcrc32c waits for the algorithm it asks for by alias.
        assert_eq!(index.load_graph(&order), [vec![], vec![0], vec![1]]);
    }

    #[test]
    fn the_boot_stage_leaves_a_root_device_s_drivers_alone() {
        let sys = FakeSys::new();
        let dir = "/lib/modules/6.12.0";
        sys.add_file(&format!("{dir}/modules.dep"), ROOT_DEP);
        sys.add_file(&format!("{dir}/modules.alias"), ROOT_ALIAS);
        sys.add_file(&format!("{dir}/modules.load"), "virtio_blk\nisofs\n");
        // q35's AHCI controller and a SCSI disk: neither is read nor loaded.
        sys.add_file(
            "/sys/bus/pci/devices/0000:00:1f.2/modalias",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01\n",
        );
        let plan = plan(&sys, "6.12.0", false);
        assert!(plan.now.is_empty(), "{:?}", plan.now);
        assert!(
            plan.later.iter().all(|c| !c.contains("ata")),
            "{:?}",
            plan.later
        );
        // Listed, a root device's driver loads like any other.
        sys.add_file(&format!("{dir}/modules.load"), "ahci\n");
        let result = super::plan(&sys, "6.12.0", false).load_now(&sys, 1);
        assert_eq!(result.loaded, 4, "scsi_mod, libata, libahci, ahci");
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
            "kernel/fs/overlayfs/overlay.ko\nkernel/drivers/acpi/button.ko.xz\n# c\n",
        );
        sys.add_file(
            "/sys/bus/acpi/devices/LNXPWRBN:00/modalias",
            "acpi:LNXPWRBN:\n",
        );
        sys.add_dir("/sys/module/evdev");
        sys.fail_module("button.ko.xz");
        let plan = plan(&sys, "6.12.0", false);
        // The power button's module comes later, listed or not; so does
        // overlay, which the kernel asks for at mount.
        assert_eq!(
            plan.load_now(&sys, 1),
            Loaded {
                workers: 1,
                ..Loaded::default()
            }
        );
        let result = plan.load_later(&sys, 1);
        // One thread: exactly the order; evdev is loaded already.
        assert_eq!(
            sys.calls_starting("finit_module"),
            [
                "finit_module /lib/modules/6.12.0/kernel/drivers/acpi/button.ko.xz flags 4",
                "finit_module /lib/modules/6.12.0/kernel/fs/overlayfs/overlay.ko flags 0",
            ]
        );
        assert_eq!((result.loaded, result.workers), (1, 1));
        assert_eq!(result.failed.len(), 1);
    }

    fn ext4_and_virtio_net() -> (Vec<String>, Vec<Vec<usize>>) {
        let index = index();
        let order = index.load_order(
            &["ext4".into(), "virtio_net".into(), "crc16".into()],
            &HashSet::new(),
        );
        let graph = index.load_graph(&order);
        (order, graph)
    }

    #[test]
    fn graph_has_hard_and_soft_dependencies_among_the_loaded() {
        let (order, graph) = ext4_and_virtio_net();
        let names: Vec<String> = order.iter().filter_map(|p| module_name(p)).collect();
        let deps_of = |name: &str| -> Vec<String> {
            let i = names.iter().position(|n| n == name).unwrap();
            graph[i].iter().map(|j| names[*j].clone()).collect()
        };
        // ext4: crc16, mbcache, jbd2 (modules.dep) and crc32c_generic (softdep).
        assert_eq!(
            deps_of("ext4"),
            ["crc32c_generic", "jbd2", "mbcache", "crc16"]
        );
        assert_eq!(deps_of("virtio_net"), ["failover", "net_failover"]);
        assert_eq!(deps_of("net_failover"), ["failover"]);
        assert!(deps_of("crc16").is_empty());
        // Already loaded dependencies are not in the graph.
        let index = index();
        let loaded: HashSet<String> = ["failover".to_owned()].into();
        let order = index.load_order(&["virtio_net".into()], &loaded);
        assert_eq!(index.load_graph(&order), [vec![], vec![0]]);
    }

    /// Every item starts after its dependencies finished, each runs once.
    fn check_schedule(graph: &[Vec<usize>], workers: usize) -> Vec<usize> {
        let log = Mutex::new(Vec::new());
        let results = load_parallel(graph, workers, |i| {
            let mut entries = log.lock().unwrap();
            for d in &graph[i] {
                assert!(
                    entries.contains(&(d + 1000)),
                    "{i} started before {d} finished"
                );
            }
            entries.push(i);
            drop(entries);
            std::thread::yield_now();
            log_done(&log, i);
            if i == 2 {
                Err(io::Error::other("bad"))
            } else {
                Ok(())
            }
        });
        assert_eq!(results.len(), graph.len());
        assert_eq!(
            results[2].as_ref().map_err(ToString::to_string),
            Err("bad".to_owned())
        );
        assert!(results.iter().enumerate().all(|(i, r)| i == 2 || r.is_ok()));
        let log = log.into_inner().unwrap();
        let started: Vec<usize> = log.into_iter().filter(|i| *i < 1000).collect();
        let mut sorted = started.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..graph.len()).collect::<Vec<_>>());
        started
    }

    fn log_done(log: &Mutex<Vec<usize>>, i: usize) {
        log.lock().unwrap().push(i + 1000);
    }

    #[test]
    fn parallel_schedule_keeps_dependencies() {
        let (_, graph) = ext4_and_virtio_net();
        for workers in [1, 2, 3, 8] {
            let started = check_schedule(&graph, workers);
            if workers == 1 {
                // One worker loads exactly in the sequential order.
                assert_eq!(started, (0..graph.len()).collect::<Vec<_>>());
            }
        }
        // A dependency that failed still lets its dependents be tried.
        let started = check_schedule(&[vec![], vec![], vec![], vec![2], vec![3, 0]], 2);
        assert_eq!(started.len(), 5);
        assert!(load_parallel(&[], 4, |_| Ok(())).is_empty());
    }

    /// Independent modules really overlap: two loads that each wait (with a
    /// bound) for the other to have started both see it with two workers.
    #[test]
    fn independent_modules_load_at_the_same_time() {
        let started = Mutex::new(0usize);
        let both = Condvar::new();
        let results = load_parallel(&[vec![], vec![], vec![0, 1]], 2, |i| {
            if i == 2 {
                return Ok(());
            }
            let mut count = started.lock().unwrap();
            *count += 1;
            both.notify_all();
            let (count, timeout) = both
                .wait_timeout_while(count, std::time::Duration::from_secs(30), |c| *c < 2)
                .unwrap();
            if timeout.timed_out() && *count < 2 {
                Err(io::Error::other("ran alone"))
            } else {
                Ok(())
            }
        });
        let results: Vec<Result<(), String>> = results
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        assert_eq!(results, [Ok(()), Ok(()), Ok(())]);
    }
}
