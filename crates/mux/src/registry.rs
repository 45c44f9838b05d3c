//! The routing table: which component serves which service, read from the
//! registration files in the components directory.
//!
//! The directory is scanned again whenever it changes (inotify, see
//! `watch`), and on a call to a service no component has, at most once per
//! `MISS_RESCAN` (a registration written an instant before its first call
//! is found without waiting for the watcher).
//!
//! A registration file written again (a new inode, size or time: writers
//! rename a new file into place) is a new generation of its component with
//! a connection of its own: new calls go to it at once, while calls in
//! flight keep the previous connection until they end. When several
//! components register the same service, the registration that appeared
//! last serves it: the one found by the later scan, or among those found
//! by one scan the one written last (ties go to the first name in byte
//! order). File times alone would not do: they tick in jiffies.

use slipway_contract::errors::chain;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, watch};

use crate::backend::Backend;
use crate::descriptors::DescriptorIndex;
use crate::registration::Registration;

/// The shortest time between two rescans caused by unknown services.
const MISS_RESCAN: Duration = Duration::from_millis(50);

/// Services the multiplexer serves itself; registrations cannot take them.
pub const OWN_SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "slipway.mux.v1.Components",
];

/// Identity of one version of a registration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }

    fn modified(&self) -> (i64, i64) {
        (self.mtime, self.mtime_nsec)
    }
}

/// One generation of a registered component.
#[derive(Debug)]
pub struct Component {
    pub registration: Registration,
    id: FileId,
    /// The number of the scan that found this generation.
    seen: u64,
    pub backend: Arc<Backend>,
    descriptors: OnceCell<Result<Arc<DescriptorIndex>, String>>,
}

impl Component {
    pub fn name(&self) -> &str {
        &self.registration.name
    }

    /// The registered descriptor set, read once per generation.
    pub async fn descriptors(&self) -> Option<Result<Arc<DescriptorIndex>, String>> {
        let path = self.registration.descriptors.clone()?;
        let index = self
            .descriptors
            .get_or_init(|| async move {
                let bytes = tokio::fs::read(&path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                DescriptorIndex::from_set(&bytes)
                    .map(Arc::new)
                    .map_err(|e| format!("{}: not a FileDescriptorSet: {e}", path.display()))
            })
            .await;
        Some(index.clone())
    }
}

/// A registration file that could not be used.
#[derive(Debug, Clone)]
pub struct Invalid {
    pub name: String,
    pub error: String,
    id: FileId,
}

/// A consistent view of all registrations.
#[derive(Debug, Default)]
pub struct Table {
    /// Components sorted by name.
    pub components: Vec<Arc<Component>>,
    /// Registration files that could not be used, sorted by name.
    pub invalid: Vec<Invalid>,
    routes: HashMap<String, Arc<Component>>,
}

impl Table {
    /// The component serving `service`.
    pub fn route(&self, service: &str) -> Option<&Arc<Component>> {
        self.routes.get(service)
    }

    /// Every routed service, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut v: Vec<String> = self.routes.keys().cloned().collect();
        v.sort();
        v
    }

    /// The component owning a fully-qualified symbol: a service, or a method
    /// or anything else nested in its name.
    pub fn owner_of_symbol(&self, symbol: &str) -> Option<&Arc<Component>> {
        let mut name = symbol;
        loop {
            if let Some(c) = self.routes.get(name) {
                return Some(c);
            }
            name = &name[..name.rfind('.')?];
        }
    }

    fn build(components: Vec<Arc<Component>>, invalid: Vec<Invalid>) -> Table {
        let mut by_age: Vec<&Arc<Component>> = components.iter().collect();
        // Most recent first; the name breaks ties.
        by_age.sort_by(|a, b| {
            (b.seen, b.id.modified())
                .cmp(&(a.seen, a.id.modified()))
                .then_with(|| a.name().cmp(b.name()))
        });
        let mut routes = HashMap::new();
        for c in by_age {
            for s in &c.registration.services {
                if !OWN_SERVICES.contains(&s.as_str()) {
                    routes.entry(s.clone()).or_insert_with(|| c.clone());
                }
            }
        }
        Table {
            components,
            invalid,
            routes,
        }
    }
}

/// The registrations in one directory, kept current.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    table: RwLock<Arc<Table>>,
    last_miss_scan: Mutex<Option<Instant>>,
    /// Serialises scans and counts them.
    scans: Mutex<u64>,
    changed: watch::Sender<u64>,
}

impl Registry {
    /// Reads the registrations in `dir`; a missing directory holds none.
    pub fn new(dir: &Path) -> Self {
        let registry = Registry {
            dir: dir.to_path_buf(),
            table: RwLock::new(Arc::new(Table::default())),
            last_miss_scan: Mutex::new(None),
            scans: Mutex::new(0),
            changed: watch::Sender::new(0),
        };
        registry.rescan();
        registry
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current table.
    pub fn table(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Notified with a new number after each rescan that changed the table.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The component serving `service`, rescanning first if none does.
    pub fn route(&self, service: &str) -> Option<Arc<Component>> {
        if let Some(c) = self.table().route(service) {
            return Some(c.clone());
        }
        let due = match self.last_miss_scan.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| t.elapsed() >= MISS_RESCAN);
                if due {
                    #[expect(
                        clippy::disallowed_methods,
                        reason = "rate-limits rescans on a routing miss; no output depends on it"
                    )]
                    let now = Instant::now();
                    *last = Some(now);
                }
                due
            }
            Err(_) => true,
        };
        if due {
            self.rescan();
        } else {
            // A rescan under way (the watcher's, or another call's) may be
            // adding it: wait for that one rather than answer from the old table.
            drop(self.scans.lock());
        }
        self.table().route(service).cloned()
    }

    /// Reads the directory again, keeping unchanged components (and their
    /// connections) as they are.
    pub fn rescan(&self) {
        let mut scans = match self.scans.lock() {
            Ok(n) => n,
            Err(poisoned) => poisoned.into_inner(),
        };
        *scans += 1;
        let seen = *scans;
        let old = self.table();
        let mut components = Vec::new();
        let mut invalid = Vec::new();
        let mut changed = false;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e.filter_map(Result::ok).collect::<Vec<_>>(),
            Err(_) => Vec::new(),
        };
        let mut names: Vec<(String, PathBuf)> = entries
            .iter()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let name = file.strip_suffix(".json")?;
                (!name.is_empty() && !file.starts_with('.')).then(|| (name.to_string(), e.path()))
            })
            .collect();
        names.sort();
        for (name, path) in names {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue; // removed since the listing
            };
            let id = FileId::of(&meta);
            if let Some(c) = old
                .components
                .iter()
                .find(|c| c.name() == name && c.id == id)
            {
                components.push(c.clone());
                continue;
            }
            if let Some(i) = old.invalid.iter().find(|i| i.name == name && i.id == id) {
                invalid.push(i.clone());
                continue;
            }
            changed = true;
            let parsed = std::fs::read(&path)
                .map_err(|source| crate::registration::RegistrationError::Read {
                    path: path.clone(),
                    source,
                })
                .and_then(|bytes| Registration::parse(&path, &bytes));
            match parsed {
                Ok(registration) => {
                    let backend = Arc::new(Backend::new(&registration.name, &registration.socket));
                    components.push(Arc::new(Component {
                        registration,
                        id,
                        seen,
                        backend,
                        descriptors: OnceCell::new(),
                    }));
                }
                Err(e) => {
                    eprintln!("slipway-mux: ignoring registration {}", chain(&e));
                    invalid.push(Invalid {
                        name,
                        error: chain(&e),
                        id,
                    });
                }
            }
        }
        changed |= components.len() != old.components.len() || invalid.len() != old.invalid.len();
        if !changed {
            return;
        }
        let table = Arc::new(Table::build(components, invalid));
        match self.table.write() {
            Ok(mut t) => *t = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
        self.changed.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(dir: &Path, name: &str, services: &[&str]) {
        Registration {
            name: name.into(),
            socket: dir.join(format!("{name}.sock")),
            services: services.iter().map(|s| s.to_string()).collect(),
            descriptors: None,
        }
        .write_to(dir)
        .unwrap();
    }

    #[test]
    fn newest_registration_wins_and_unchanged_ones_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        register(dir.path(), "a", &["x.A", "x.Shared"]);
        std::thread::sleep(Duration::from_millis(20));
        register(
            dir.path(),
            "b",
            &["x.B", "x.Shared", "grpc.health.v1.Health"],
        );
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        std::fs::write(dir.path().join(".tmp.json"), "{").unwrap();
        let reg = Registry::new(dir.path());
        let t = reg.table();
        assert_eq!(t.services(), ["x.A", "x.B", "x.Shared"]);
        assert_eq!(t.route("x.Shared").unwrap().name(), "b");
        assert_eq!(t.owner_of_symbol("x.A.Method").unwrap().name(), "a");
        assert!(t.owner_of_symbol("y.A").is_none());
        assert_eq!(t.invalid.len(), 1);
        let a = t.route("x.A").unwrap().clone();

        // Rewriting `a` makes it the newest, and a new generation.
        std::thread::sleep(Duration::from_millis(20));
        register(dir.path(), "a", &["x.A", "x.Shared"]);
        let gen_before = *reg.subscribe().borrow();
        reg.rescan();
        assert_eq!(*reg.subscribe().borrow(), gen_before + 1);
        let t2 = reg.table();
        assert_eq!(t2.route("x.Shared").unwrap().name(), "a");
        assert!(!Arc::ptr_eq(t2.route("x.A").unwrap(), &a));
        // b is unchanged: the same generation, the same connection.
        assert!(Arc::ptr_eq(
            t2.route("x.B").unwrap(),
            t.route("x.B").unwrap()
        ));

        // A rescan with nothing changed keeps the table.
        reg.rescan();
        assert!(Arc::ptr_eq(&reg.table(), &t2));

        // A registration appears and is found on a miss.
        register(dir.path(), "c", &["x.C"]);
        assert_eq!(reg.route("x.C").unwrap().name(), "c");
        // A removed one goes with the next rescan (the watcher's).
        std::fs::remove_file(dir.path().join("c.json")).unwrap();
        reg.rescan();
        assert!(reg.route("x.C").is_none());
    }
}
