//! `config.json` and `runtime.json` of a bundle, as LinuxKit's
//! `ConfigToOCI` and `ImageBundle` write them.
//!
//! Serialised through [`Json`] rather than `oci-spec`'s types: those keep
//! capability sets in hash sets and maps unordered, so their output is
//! neither LinuxKit's nor deterministic. The field order here is the Go
//! runtime-spec structs' declaration order; the tests check the result
//! parses as `oci-spec`'s `Spec`.

use std::collections::{BTreeMap, BTreeSet};

use slipway_config::Id;
use slipway_config::label::{Resolved, ResolvedRuntime};
use slipway_config::model::{Device, IdMapping, Mount, Resources};
use slipway_config::mounts::{parse_bind, parse_tmpfs};
use slipway_config::source::Sp;
use slipway_config::validate::parse_mode;

use slipway_config::gojson::Json;

/// The runtime-spec version written into `config.json`. LinuxKit writes
/// 1.2.1, but older crun releases (Debian 12's 1.8.1, which `pkg/crun` ships)
/// refuse any version other than 1.0.x and 1.1.x ("unknown version
/// specified"); nothing slipway writes is newer than 1.1.0.
pub const OCI_VERSION: &str = "1.1.0";

/// Container names to the uids/gids allocated to them (from 100, onboot,
/// onshutdown, services order).
pub type IdMap = BTreeMap<String, u32>;

/// Volume name to whether it is read-only.
pub type Volumes = BTreeMap<String, bool>;

/// What goes wrong turning a resolved entry into `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BundleJsonError(pub String);

fn err(message: impl Into<String>) -> BundleJsonError {
    BundleJsonError(message.into())
}

fn s(v: &Option<Sp<String>>) -> &str {
    v.as_ref().map_or("", |v| v.value.as_str())
}

fn strings_of(v: &Option<Sp<Vec<Sp<String>>>>) -> Vec<String> {
    v.as_ref()
        .map(|l| l.value.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default()
}

fn list<T>(v: &Option<Sp<Vec<T>>>) -> &[T] {
    v.as_ref().map_or(&[], |l| l.value.as_slice())
}

fn push_some(obj: &mut Vec<(String, Json)>, key: &str, value: Option<Json>) {
    if let Some(v) = value {
        obj.push((key.to_string(), v));
    }
}

fn opt_i64(v: &Option<Sp<i64>>) -> Option<Json> {
    v.as_ref().map(|v| Json::Int(v.value))
}

fn opt_u64(v: &Option<Sp<u64>>) -> Option<Json> {
    v.as_ref().map(|v| Json::UInt(v.value))
}

fn opt_u32(v: &Option<Sp<u32>>) -> Option<Json> {
    v.as_ref().map(|v| Json::UInt(u64::from(v.value)))
}

fn opt_u16(v: &Option<Sp<u16>>) -> Option<Json> {
    v.as_ref().map(|v| Json::UInt(u64::from(v.value)))
}

/// A uid or gid: a number, `root`/empty (0), or a container's name.
pub fn numeric_id(id: &Id, ids: &IdMap) -> Result<u32, BundleJsonError> {
    match id {
        Id::Number(n) => Ok(*n),
        Id::Name(name) if name.is_empty() || name == "root" => Ok(0),
        Id::Name(name) => ids
            .get(name)
            .copied()
            .ok_or_else(|| err(format!("cannot find id: {name}"))),
    }
}

fn id_mappings(maps: &[IdMapping]) -> Json {
    Json::Arr(
        maps.iter()
            .map(|m| {
                let n =
                    |v: &Option<Sp<u32>>| Json::UInt(u64::from(v.as_ref().map_or(0, |v| v.value)));
                Json::Obj(vec![
                    ("containerID".into(), n(&m.container_id)),
                    ("hostID".into(), n(&m.host_id)),
                    ("size".into(), n(&m.size)),
                ])
            })
            .collect(),
    )
}

/// A mount as runtime-spec's `Mount` (empty fields left out).
#[derive(Clone, Debug, PartialEq)]
pub struct OciMount {
    pub destination: String,
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
    pub uid_mappings: Json,
    pub gid_mappings: Json,
}

impl OciMount {
    fn new(destination: &str, kind: &str, source: &str, options: &[&str]) -> OciMount {
        OciMount {
            destination: destination.into(),
            kind: kind.into(),
            source: source.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            uid_mappings: Json::Arr(Vec::new()),
            gid_mappings: Json::Arr(Vec::new()),
        }
    }

    pub fn json(&self) -> Json {
        let mut o = vec![("destination".to_string(), Json::str(&self.destination))];
        if !self.kind.is_empty() {
            o.push(("type".into(), Json::str(&self.kind)));
        }
        if !self.source.is_empty() {
            o.push(("source".into(), Json::str(&self.source)));
        }
        if !self.options.is_empty() {
            o.push(("options".into(), Json::strings(&self.options)));
        }
        for (key, m) in [
            ("uidMappings", &self.uid_mappings),
            ("gidMappings", &self.gid_mappings),
        ] {
            if !matches!(m, Json::Arr(a) if a.is_empty()) {
                o.push((key.into(), m.clone()));
            }
        }
        Json::Obj(o)
    }

    fn from_model(m: &Mount) -> OciMount {
        OciMount {
            destination: s(&m.destination).into(),
            kind: s(&m.kind).into(),
            source: s(&m.source).into(),
            options: strings_of(&m.options),
            uid_mappings: id_mappings(list(&m.uid_mappings)),
            gid_mappings: id_mappings(list(&m.gid_mappings)),
        }
    }
}

fn default_mountpoint(kind: &str) -> &'static str {
    match kind {
        "proc" => "/proc",
        "devpts" => "/dev/pts",
        "sysfs" => "/sys",
        "cgroup" => "/sys/fs/cgroup",
        "mqueue" => "/dev/mqueue",
        _ => "",
    }
}

/// Rewrites a volume name used as a bind source to the volume's merged
/// directory, checking read-only volumes are bound read-only.
fn volume_source(
    source: &str,
    read_only_opt: bool,
    volumes: &Volumes,
) -> Result<String, BundleJsonError> {
    if source.starts_with('/') {
        return Ok(source.to_string());
    }
    match volumes.get(source) {
        None => Err(err(format!("volume {source} not found"))),
        Some(true) if !read_only_opt => Err(err(format!(
            "volume {source} is read-only, but attempting to write into container read-write"
        ))),
        Some(_) => Ok(format!(
            "/{}",
            slipway_contract::bundle::volume_merged_dir(source)
        )),
    }
}

/// The mounts of `config.json`: defaults, then tmpfs, binds and mounts
/// overriding by destination, sorted by destination.
fn mounts(r: &Resolved, volumes: &Volumes) -> Result<Vec<OciMount>, BundleJsonError> {
    let ro = |mut v: Vec<&'static str>| {
        if r.readonly {
            v.push("ro");
        }
        v
    };
    let mut by_dest: BTreeMap<String, OciMount> = BTreeMap::new();
    for m in [
        OciMount::new(
            "/proc",
            "proc",
            "proc",
            &["nosuid", "nodev", "noexec", "relatime"],
        ),
        OciMount::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &ro(vec!["nosuid", "strictatime", "mode=755", "size=65536k"]),
        ),
        OciMount::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        OciMount::new(
            "/sys",
            "sysfs",
            "sysfs",
            &ro(vec!["nosuid", "noexec", "nodev"]),
        ),
        OciMount::new(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ] {
        by_dest.insert(m.destination.clone(), m);
    }
    for t in &r.tmpfs {
        let (dest, opts) = parse_tmpfs(t).map_err(|e| err(e.to_string()))?;
        let opts: Vec<&str> = opts.map(|o| o.split(',').collect()).unwrap_or_default();
        by_dest.insert(dest.into(), OciMount::new(dest, "tmpfs", "tmpfs", &opts));
    }
    for b in &r.binds {
        let bind = parse_bind(b).map_err(|e| err(e.to_string()))?;
        let opts: Vec<&str> = match bind.options {
            None => vec!["rw", "rbind", "rshared"],
            Some(o) => o.split(',').chain(["rbind"]).collect(),
        };
        let read_only = bind
            .options
            .is_some_and(|o| o.split(',').next() == Some("ro"));
        let source = volume_source(
            bind.source,
            read_only || bind.options == Some("ro"),
            volumes,
        )?;
        by_dest.insert(
            bind.destination.into(),
            OciMount::new(bind.destination, "bind", &source, &opts),
        );
    }
    for m in &r.mounts {
        let mut m = OciMount::from_model(m);
        if m.kind.is_empty()
            && matches!(
                m.source.as_str(),
                "mqueue" | "devpts" | "proc" | "sysfs" | "cgroup"
            )
        {
            m.kind = m.source.clone();
        }
        if m.kind.is_empty() && m.destination == "/dev" {
            m.kind = "tmpfs".into();
        }
        if m.kind.is_empty() {
            return Err(err(format!(
                "mount for destination {} is missing type",
                m.destination
            )));
        }
        if m.kind == "bind" {
            // LinuxKit means to rewrite volume names here too, and loses it.
            let read_only = m
                .options
                .iter()
                .find(|o| *o == "ro" || *o == "rw")
                .is_some_and(|o| o == "ro");
            m.source = volume_source(&m.source, read_only, volumes)?;
        }
        if m.source.is_empty() {
            m.source = m.kind.clone();
        }
        if m.destination.is_empty() {
            m.destination = default_mountpoint(&m.kind).into();
        }
        if m.destination.is_empty() {
            return Err(err(format!("mount type {} is missing destination", m.kind)));
        }
        if !m.destination.starts_with('/') {
            // runc takes a relative destination from the container's root;
            // the runtime spec wants it absolute, and crun does too.
            m.destination.insert(0, '/');
        }
        by_dest.insert(m.destination.clone(), m);
    }
    // BTreeMap order is Go's sort.Slice by destination string.
    Ok(by_dest.into_values().collect())
}

fn namespaces(r: &Resolved) -> Json {
    let mut out = Vec::new();
    let mut ns = |kind: &str, value: &str, new_words: &[&str], host_default: bool| {
        let value = if value.is_empty() && host_default {
            "root"
        } else {
            value
        };
        if value == "host" || value == "root" {
            return;
        }
        let path = if new_words.contains(&value) || value.is_empty() {
            ""
        } else {
            value
        };
        let mut o = vec![("type".to_string(), Json::str(kind))];
        if !path.is_empty() {
            o.push(("path".into(), Json::str(path)));
        }
        out.push(Json::Obj(o));
    };
    ns("network", &r.net, &["none", "new"], true);
    ns("ipc", &r.ipc, &["new"], true);
    ns("uts", &r.uts, &["new"], true);
    ns("pid", &r.pid, &["new"], false);
    ns("user", &r.userns, &["new"], true);
    out.push(Json::Obj(vec![("type".into(), Json::str("mount"))]));
    Json::Arr(out)
}

fn device_rule(
    kind: &str,
    major: Option<i64>,
    minor: Option<i64>,
    allow: bool,
    access: &str,
) -> Json {
    let mut o = vec![("allow".to_string(), Json::Bool(allow))];
    if !kind.is_empty() {
        o.push(("type".into(), Json::str(kind)));
    }
    push_some(&mut o, "major", major.map(Json::Int));
    push_some(&mut o, "minor", minor.map(Json::Int));
    if !access.is_empty() {
        o.push(("access".into(), Json::str(access)));
    }
    Json::Obj(o)
}

/// `linux.devices` and the device cgroup rules they add.
fn devices(devices: &[Device], rules: &mut Vec<Json>) -> Result<Vec<Json>, BundleJsonError> {
    let mut out = Vec::new();
    for d in devices {
        let kind = s(&d.kind);
        if s(&d.path) == "all" {
            rules.push(device_rule(kind, None, None, true, "rwm"));
            continue;
        }
        let mode = parse_mode(s(&d.mode))
            .map_err(|e| err(format!("cannot parse device mode as octal value: {e}")))?;
        let major = d.major.as_ref().map_or(0, |v| v.value);
        let minor = d.minor.as_ref().map_or(0, |v| v.value);
        out.push(Json::Obj(vec![
            ("path".into(), Json::str(s(&d.path))),
            ("type".into(), Json::str(kind)),
            ("major".into(), Json::Int(major)),
            ("minor".into(), Json::Int(minor)),
            ("fileMode".into(), Json::UInt(u64::from(mode))),
        ]));
        rules.push(device_rule(kind, Some(major), Some(minor), true, "rwm"));
    }
    Ok(out)
}

fn resources(res: &Resources, extra_rules: Vec<Json>) -> Json {
    let mut o = Vec::new();
    let mut rules: Vec<Json> = list(&res.devices)
        .iter()
        .map(|d| {
            device_rule(
                s(&d.kind),
                d.major.as_ref().map(|v| v.value),
                d.minor.as_ref().map(|v| v.value),
                d.allow.as_ref().is_some_and(|v| v.value),
                s(&d.access),
            )
        })
        .collect();
    rules.extend(extra_rules);
    if !rules.is_empty() {
        o.push(("devices".into(), Json::Arr(rules)));
    }
    if let Some(m) = &res.memory {
        let m = &m.value;
        let mut j = Vec::new();
        push_some(&mut j, "limit", opt_i64(&m.limit));
        push_some(&mut j, "reservation", opt_i64(&m.reservation));
        push_some(&mut j, "swap", opt_i64(&m.swap));
        push_some(&mut j, "kernel", opt_i64(&m.kernel));
        push_some(&mut j, "kernelTCP", opt_i64(&m.kernel_tcp));
        push_some(&mut j, "swappiness", opt_u64(&m.swappiness));
        push_some(
            &mut j,
            "disableOOMKiller",
            m.disable_oom_killer.as_ref().map(|v| Json::Bool(v.value)),
        );
        o.push(("memory".into(), Json::Obj(j)));
    }
    if let Some(c) = &res.cpu {
        let c = &c.value;
        let mut j = Vec::new();
        push_some(&mut j, "shares", opt_u64(&c.shares));
        push_some(&mut j, "quota", opt_i64(&c.quota));
        push_some(&mut j, "period", opt_u64(&c.period));
        push_some(&mut j, "realtimeRuntime", opt_i64(&c.realtime_runtime));
        push_some(&mut j, "realtimePeriod", opt_u64(&c.realtime_period));
        if !s(&c.cpus).is_empty() {
            j.push(("cpus".into(), Json::str(s(&c.cpus))));
        }
        if !s(&c.mems).is_empty() {
            j.push(("mems".into(), Json::str(s(&c.mems))));
        }
        o.push(("cpu".into(), Json::Obj(j)));
    }
    if let Some(p) = &res.pids {
        let limit = p.value.limit.as_ref().map_or(0, |v| v.value);
        o.push((
            "pids".into(),
            Json::Obj(vec![("limit".into(), Json::Int(limit))]),
        ));
    }
    if let Some(b) = &res.blockio {
        let b = &b.value;
        let mut j = Vec::new();
        push_some(&mut j, "weight", opt_u16(&b.weight));
        push_some(&mut j, "leafWeight", opt_u16(&b.leaf_weight));
        let weight: Vec<Json> = list(&b.weight_device)
            .iter()
            .map(|d| {
                let mut o = vec![
                    (
                        "major".to_string(),
                        Json::Int(d.major.as_ref().map_or(0, |v| v.value)),
                    ),
                    (
                        "minor".to_string(),
                        Json::Int(d.minor.as_ref().map_or(0, |v| v.value)),
                    ),
                ];
                push_some(&mut o, "weight", opt_u16(&d.weight));
                push_some(&mut o, "leafWeight", opt_u16(&d.leaf_weight));
                Json::Obj(o)
            })
            .collect();
        if !weight.is_empty() {
            j.push(("weightDevice".into(), Json::Arr(weight)));
        }
        for (key, devs) in [
            ("throttleReadBpsDevice", &b.throttle_read_bps_device),
            ("throttleWriteBpsDevice", &b.throttle_write_bps_device),
            ("throttleReadIOPSDevice", &b.throttle_read_iops_device),
            ("throttleWriteIOPSDevice", &b.throttle_write_iops_device),
        ] {
            let arr: Vec<Json> = list(devs)
                .iter()
                .map(|d| {
                    Json::Obj(vec![
                        (
                            "major".into(),
                            Json::Int(d.major.as_ref().map_or(0, |v| v.value)),
                        ),
                        (
                            "minor".into(),
                            Json::Int(d.minor.as_ref().map_or(0, |v| v.value)),
                        ),
                        (
                            "rate".into(),
                            Json::UInt(d.rate.as_ref().map_or(0, |v| v.value)),
                        ),
                    ])
                })
                .collect();
            if !arr.is_empty() {
                j.push((key.into(), Json::Arr(arr)));
            }
        }
        o.push(("blockIO".into(), Json::Obj(j)));
    }
    let huge: Vec<Json> = list(&res.hugepage_limits)
        .iter()
        .map(|h| {
            Json::Obj(vec![
                ("pageSize".into(), Json::str(s(&h.page_size))),
                (
                    "limit".into(),
                    Json::UInt(h.limit.as_ref().map_or(0, |v| v.value)),
                ),
            ])
        })
        .collect();
    if !huge.is_empty() {
        o.push(("hugepageLimits".into(), Json::Arr(huge)));
    }
    if let Some(n) = &res.network {
        let n = &n.value;
        let mut j = Vec::new();
        push_some(&mut j, "classID", opt_u32(&n.class_id));
        let prios: Vec<Json> = list(&n.priorities)
            .iter()
            .map(|p| {
                Json::Obj(vec![
                    ("name".into(), Json::str(s(&p.name))),
                    (
                        "priority".into(),
                        Json::UInt(u64::from(p.priority.as_ref().map_or(0, |v| v.value))),
                    ),
                ])
            })
            .collect();
        if !prios.is_empty() {
            j.push(("priorities".into(), Json::Arr(prios)));
        }
        o.push(("network".into(), Json::Obj(j)));
    }
    Json::Obj(o)
}

/// `config.json` for one container, as LinuxKit's `ConfigToOCI` makes it.
pub fn config_json(
    r: &Resolved,
    ids: &IdMap,
    volumes: &Volumes,
) -> Result<String, BundleJsonError> {
    let uid = numeric_id(&r.uid, ids)?;
    let gid = numeric_id(&r.gid, ids)?;
    let additional: Vec<Json> = r
        .additional_gids
        .iter()
        .map(|g| numeric_id(g, ids).map(|n| Json::UInt(u64::from(n))))
        .collect::<Result<_, _>>()?;

    let mut bounding: BTreeSet<&str> = BTreeSet::new();
    bounding.extend(r.capabilities.iter().map(String::as_str));
    bounding.extend(r.ambient.iter().map(String::as_str));
    let bounding: Vec<&str> = bounding.into_iter().collect();

    let mut user = vec![
        ("uid".to_string(), Json::UInt(u64::from(uid))),
        ("gid".to_string(), Json::UInt(u64::from(gid))),
    ];
    if !additional.is_empty() {
        user.push(("additionalGids".into(), Json::Arr(additional)));
    }
    let mut process = vec![("user".to_string(), Json::Obj(user))];
    if !r.args.is_empty() {
        process.push(("args".into(), Json::strings(&r.args)));
    }
    if !r.env.is_empty() {
        process.push(("env".into(), Json::strings(&r.env)));
    }
    process.push(("cwd".into(), Json::str(&r.cwd)));
    let mut caps = Vec::new();
    for (key, set) in [
        ("bounding", bounding.clone()),
        (
            "effective",
            r.capabilities.iter().map(String::as_str).collect(),
        ),
        ("inheritable", bounding.clone()),
        ("permitted", bounding.clone()),
        ("ambient", r.ambient.iter().map(String::as_str).collect()),
    ] {
        if !set.is_empty() {
            caps.push((key.to_string(), Json::strings(set)));
        }
    }
    process.push(("capabilities".into(), Json::Obj(caps)));
    if !r.rlimits.is_empty() {
        process.push((
            "rlimits".into(),
            Json::Arr(
                r.rlimits
                    .iter()
                    .map(|l| {
                        Json::Obj(vec![
                            ("type".into(), Json::str(l.kind)),
                            ("hard".into(), Json::UInt(l.hard)),
                            ("soft".into(), Json::UInt(l.soft)),
                        ])
                    })
                    .collect(),
            ),
        ));
    }
    if r.no_new_privileges {
        process.push(("noNewPrivileges".into(), Json::Bool(true)));
    }
    if let Some(adj) = r.oom_score_adj {
        process.push(("oomScoreAdj".into(), Json::Int(adj)));
    }

    let mut root = vec![("path".to_string(), Json::str("rootfs"))];
    if r.readonly {
        root.push(("readonly".into(), Json::Bool(true)));
    }

    let mut spec = vec![
        ("ociVersion".to_string(), Json::str(OCI_VERSION)),
        ("process".to_string(), Json::Obj(process)),
        ("root".to_string(), Json::Obj(root)),
    ];
    if !r.hostname.is_empty() {
        spec.push(("hostname".into(), Json::str(&r.hostname)));
    }
    spec.push((
        "mounts".into(),
        Json::Arr(mounts(r, volumes)?.iter().map(OciMount::json).collect()),
    ));
    if !r.annotations.is_empty() {
        spec.push(("annotations".into(), Json::string_map(&r.annotations)));
    }

    let mut rules = Vec::new();
    let devices = devices(&r.devices, &mut rules)?;
    let mut linux = Vec::new();
    if !r.uid_mappings.is_empty() {
        linux.push(("uidMappings".into(), id_mappings(&r.uid_mappings)));
    }
    if !r.gid_mappings.is_empty() {
        linux.push(("gidMappings".into(), id_mappings(&r.gid_mappings)));
    }
    if !r.sysctl.is_empty() {
        linux.push(("sysctl".into(), Json::string_map(&r.sysctl)));
    }
    linux.push(("resources".into(), resources(&r.resources, rules)));
    if !r.cgroups_path.is_empty() {
        linux.push(("cgroupsPath".into(), Json::str(&r.cgroups_path)));
    }
    linux.push(("namespaces".into(), namespaces(r)));
    if !devices.is_empty() {
        linux.push(("devices".into(), Json::Arr(devices)));
    }
    if !r.rootfs_propagation.is_empty() {
        linux.push(("rootfsPropagation".into(), Json::str(&r.rootfs_propagation)));
    }
    if !r.masked_paths.is_empty() {
        linux.push(("maskedPaths".into(), Json::strings(&r.masked_paths)));
    }
    if !r.readonly_paths.is_empty() {
        linux.push(("readonlyPaths".into(), Json::strings(&r.readonly_paths)));
    }
    spec.push(("linux".into(), Json::Obj(linux)));
    Ok(Json::Obj(spec).to_go_indent())
}

/// How a bundle's root is mounted at boot (prepended to `runtime.mounts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootMount {
    /// Read-write: tmpfs on `<dir>/tmp`, then an overlay of `lower` on `<dir>/rootfs`.
    Overlay { dir: String, lower: String },
    /// Read-only: a bind of `root` on `<dir>/rootfs`.
    Bind { dir: String, root: String },
}

/// `runtime.json`: the merged `runtime`, every key present, with the root
/// mounts prepended to `mounts`.
pub fn runtime_json(rt: &ResolvedRuntime, root: &RootMount) -> String {
    let mut mounts: Vec<Json> = match root {
        RootMount::Overlay { dir, lower } => vec![
            OciMount::new(&format!("/{dir}/tmp"), "tmpfs", "tmpfs", &[]).json(),
            OciMount::new(&format!("/{dir}/tmp"), "", "", &["remount", "private"]).json(),
            OciMount::new(
                &format!("/{dir}/rootfs"),
                "overlay",
                "overlay",
                &[
                    &format!("lowerdir=/{lower}"),
                    &format!("upperdir=/{dir}/tmp/upper"),
                    &format!("workdir=/{dir}/tmp/work"),
                ],
            )
            .json(),
        ],
        RootMount::Bind { dir, root } => vec![
            OciMount::new(
                &format!("/{dir}/rootfs"),
                "",
                &format!("/{root}"),
                &["bind"],
            )
            .json(),
        ],
    };
    mounts.extend(rt.mounts.iter().map(|m| OciMount::from_model(m).json()));
    let interfaces: Vec<Json> = rt
        .interfaces
        .iter()
        .map(|i| {
            let mut o = Vec::new();
            for (key, v) in [("name", &i.name), ("add", &i.add), ("peer", &i.peer)] {
                if !s(v).is_empty() {
                    o.push((key.to_string(), Json::str(s(v))));
                }
            }
            o.push((
                "createInRoot".into(),
                Json::Bool(i.create_in_root.as_ref().is_some_and(|v| v.value)),
            ));
            Json::Obj(o)
        })
        .collect();
    let b = &rt.bind_ns;
    Json::Obj(vec![
        ("cgroups".into(), Json::strings(&rt.cgroups)),
        ("mounts".into(), Json::Arr(mounts)),
        ("mkdir".into(), Json::strings(&rt.mkdir)),
        ("interfaces".into(), Json::Arr(interfaces)),
        (
            "bindNS".into(),
            Json::Obj(vec![
                ("cgroup".into(), Json::str(&b.cgroup)),
                ("ipc".into(), Json::str(&b.ipc)),
                ("mnt".into(), Json::str(&b.mnt)),
                ("net".into(), Json::str(&b.net)),
                ("pid".into(), Json::str(&b.pid)),
                ("user".into(), Json::str(&b.user)),
                ("uts".into(), Json::str(&b.uts)),
            ]),
        ),
        ("namespace".into(), Json::str(&rt.namespace)),
    ])
    .to_go_indent()
}
