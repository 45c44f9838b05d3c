//! The configuration as `files[].metadata` writes it: LinuxKit's `Moby`
//! struct marshalled by Go, `json` with encoding/json (`MarshalIndent`, four
//! spaces) and `yaml` with yaml.v2.
//!
//! Go decides the shape, not the YAML as written: every field Go writes
//! without `omitempty` is present with its zero value (`directory: false`,
//! `kernel: {image: ""}`), absent lists are `null` in JSON and `[]` in YAML,
//! and runtime-spec types, which carry only JSON tags, appear in YAML under
//! their lower-cased Go field names (`uidmappings`, `hostid`, `blockio`),
//! each field present. `trust` is not part of the struct, so it is dropped.

use std::fmt::Write as _;

use crate::decode::{Id, StringMap};
use crate::model::{
    BlockIo, Config, Cpu, Device, DeviceCgroup, File, HugepageLimit, IdMapping, Image, ImageName,
    ImageSpec, Interface, InterfacePriority, Memory, Mount, Network, Resources, Runtime,
    ThrottleDevice, Volume, WeightDevice,
};
use crate::source::Sp;

/// A value as Go marshals it, keys in struct order.
#[derive(Clone, Debug, PartialEq)]
pub enum GoValue {
    Null,
    Bool(bool),
    Int(i128),
    Str(String),
    Seq(Vec<GoValue>),
    Map(Vec<(String, GoValue)>),
}

/// Which marshaller: the two disagree on names and on what is left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marshal {
    Json,
    Yaml,
}

/// How the images are named in the output. LinuxKit writes the kernel,
/// init and container images as the references it resolved (fully
/// expanded, `@pkg:` replaced by the package's tag), and volume images as
/// written.
pub trait ImageNames {
    fn resolved(&self, name: &Sp<ImageName>) -> String;
    fn volume(&self, name: &Sp<ImageName>) -> String;
}

/// `files[].metadata: json`: the bytes LinuxKit writes.
pub fn to_json(config: &Config, names: &dyn ImageNames) -> String {
    let mut out = String::new();
    json(&moby(config, names, Marshal::Json), 0, &mut out);
    out
}

/// `files[].metadata: yaml`: what LinuxKit writes, as yaml.v2 lays it out
/// for the values configurations hold.
pub fn to_yaml(config: &Config, names: &dyn ImageNames) -> String {
    let mut out = String::new();
    match moby(config, names, Marshal::Yaml) {
        GoValue::Map(entries) => yaml_map(&entries, 0, &mut out),
        other => yaml_scalar_line(&other, 0, &mut out),
    }
    out
}

/// The `Moby` struct of a configuration.
pub fn moby(config: &Config, names: &dyn ImageNames, m: Marshal) -> GoValue {
    let mut out = Vec::new();
    let kernel = config.kernel.as_ref().map(|k| &k.value);
    let mut k = vec![(
        "image".to_string(),
        GoValue::Str(
            kernel
                .and_then(|k| k.image.as_ref())
                .map(|i| names.resolved(i))
                .unwrap_or_default(),
        ),
    )];
    if let Some(kernel) = kernel {
        non_empty(&mut k, "cmdline", &kernel.cmdline);
        non_empty(&mut k, "binary", &kernel.binary);
        if let Some(t) = &kernel.tar {
            k.push(("tar".into(), GoValue::Str(t.value.clone())));
        }
        if let Some(u) = &kernel.ucode {
            k.push(("ucode".into(), GoValue::Str(u.value.clone())));
        }
    }
    out.push(("kernel".into(), GoValue::Map(k)));
    out.push((
        "init".into(),
        list(m, config.init(), |i| GoValue::Str(names.resolved(i))),
    ));
    for (key, section) in [
        ("onboot", &config.onboot),
        ("onshutdown", &config.onshutdown),
        ("services", &config.services),
    ] {
        let items = section.as_ref().map_or(&[][..], |l| l.value.as_slice());
        out.push((key.into(), list(m, items, |i| image(i, names, m))));
    }
    out.push(("files".into(), list(m, config.files(), file)));
    out.push((
        "volumes".into(),
        list(m, config.volumes(), |v| volume(v, names)),
    ));
    GoValue::Map(out)
}

/// A top-level list: LinuxKit appends each file's list to an empty one, so
/// an empty list is a nil slice: `null` in JSON, `[]` in YAML.
fn list<T>(m: Marshal, items: &[T], f: impl Fn(&T) -> GoValue) -> GoValue {
    if items.is_empty() && m == Marshal::Json {
        return GoValue::Null;
    }
    GoValue::Seq(items.iter().map(f).collect())
}

/// A Go `string` with `omitempty`.
fn non_empty(out: &mut Vec<(String, GoValue)>, key: &str, v: &Option<Sp<String>>) {
    if let Some(v) = v
        && !v.value.is_empty()
    {
        out.push((key.into(), GoValue::Str(v.value.clone())));
    }
}

/// A Go pointer with `omitempty`: present when written.
fn some<T>(
    out: &mut Vec<(String, GoValue)>,
    key: &str,
    v: &Option<Sp<T>>,
    f: impl Fn(&T) -> GoValue,
) {
    if let Some(v) = v {
        out.push((key.into(), f(&v.value)));
    }
}

#[allow(clippy::ptr_arg, reason = "passed to `some` for fields of this type")]
fn s(v: &String) -> GoValue {
    GoValue::Str(v.clone())
}

#[allow(clippy::ptr_arg, reason = "passed to `some` for fields of this type")]
fn strings(v: &Vec<Sp<String>>) -> GoValue {
    GoValue::Seq(v.iter().map(|s| GoValue::Str(s.value.clone())).collect())
}

fn id(v: &Id) -> GoValue {
    match v {
        Id::Number(n) => GoValue::Int(i128::from(*n)),
        Id::Name(s) => GoValue::Str(s.clone()),
    }
}

fn string_map(v: &StringMap) -> GoValue {
    // Both marshallers sort map keys; a key written twice keeps its last value.
    let mut sorted: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for (k, v) in &v.0 {
        sorted.insert(&k.value, &v.value);
    }
    GoValue::Map(
        sorted
            .into_iter()
            .map(|(k, v)| (k.to_string(), GoValue::Str(v.to_string())))
            .collect(),
    )
}

fn file(f: &Sp<File>) -> GoValue {
    let f = &f.value;
    let mut out = vec![(
        "path".to_string(),
        GoValue::Str(f.path.as_ref().map(|p| p.value.clone()).unwrap_or_default()),
    )];
    out.push((
        "directory".into(),
        GoValue::Bool(f.directory.as_ref().is_some_and(|d| d.value)),
    ));
    non_empty(&mut out, "symlink", &f.symlink);
    some(&mut out, "contents", &f.contents, s);
    non_empty(&mut out, "source", &f.source);
    non_empty(&mut out, "metadata", &f.metadata);
    out.push((
        "optional".into(),
        GoValue::Bool(f.optional.as_ref().is_some_and(|o| o.value)),
    ));
    non_empty(&mut out, "mode", &f.mode);
    some(&mut out, "uid", &f.uid, id);
    some(&mut out, "gid", &f.gid, id);
    GoValue::Map(out)
}

fn volume(v: &Sp<Volume>, names: &dyn ImageNames) -> GoValue {
    let v = &v.value;
    let mut out = vec![(
        "name".to_string(),
        GoValue::Str(v.name.as_ref().map(|n| n.value.clone()).unwrap_or_default()),
    )];
    if let Some(i) = &v.image {
        let written = names.volume(i);
        if !written.is_empty() {
            out.push(("image".into(), GoValue::Str(written)));
        }
    }
    if v.readonly.as_ref().is_some_and(|r| r.value) {
        out.push(("readonly".into(), GoValue::Bool(true)));
    }
    non_empty(&mut out, "format", &v.format);
    if let Some(p) = &v.platforms
        && !p.value.is_empty()
    {
        out.push(("platforms".into(), strings(&p.value)));
    }
    GoValue::Map(out)
}

fn image(i: &Image, names: &dyn ImageNames, m: Marshal) -> GoValue {
    let mut out = vec![
        ("name".to_string(), GoValue::Str(i.name.value.clone())),
        ("image".to_string(), GoValue::Str(names.resolved(&i.image))),
    ];
    image_spec(&i.spec, m, &mut out);
    GoValue::Map(out)
}

/// `ImageConfig`, in its field order (which is not the schema's).
fn image_spec(c: &ImageSpec, m: Marshal, out: &mut Vec<(String, GoValue)>) {
    some(out, "capabilities", &c.capabilities, strings);
    some(out, "capabilities.add", &c.capabilities_add, strings);
    some(out, "ambient", &c.ambient, strings);
    some(out, "mounts", &c.mounts, |v| mounts(v, m));
    some(out, "binds", &c.binds, strings);
    some(out, "binds.add", &c.binds_add, strings);
    some(out, "devices", &c.devices, |v| {
        GoValue::Seq(v.iter().map(device).collect())
    });
    some(out, "tmpfs", &c.tmpfs, strings);
    some(out, "command", &c.command, strings);
    some(out, "env", &c.env, strings);
    non_empty(out, "cwd", &c.cwd);
    non_empty(out, "net", &c.net);
    non_empty(out, "pid", &c.pid);
    non_empty(out, "ipc", &c.ipc);
    non_empty(out, "uts", &c.uts);
    non_empty(out, "userns", &c.userns);
    non_empty(out, "hostname", &c.hostname);
    some(out, "readonly", &c.readonly, |b| GoValue::Bool(*b));
    some(out, "maskedPaths", &c.masked_paths, strings);
    some(out, "readonlyPaths", &c.readonly_paths, strings);
    some(out, "uid", &c.uid, id);
    some(out, "gid", &c.gid, id);
    some(out, "additionalGids", &c.additional_gids, |v| {
        GoValue::Seq(v.iter().map(|i| id(&i.value)).collect())
    });
    some(out, "noNewPrivileges", &c.no_new_privileges, |b| {
        GoValue::Bool(*b)
    });
    some(out, "oomScoreAdj", &c.oom_score_adj, |n| {
        GoValue::Int(i128::from(*n))
    });
    some(out, "rootfsPropagation", &c.rootfs_propagation, s);
    some(out, "cgroupsPath", &c.cgroups_path, s);
    some(out, "resources", &c.resources, |r| resources(r, m));
    some(out, "sysctl", &c.sysctl, string_map);
    some(out, "rlimits", &c.rlimits, strings);
    some(out, "uidMappings", &c.uid_mappings, |v| id_mappings(v, m));
    some(out, "gidMappings", &c.gid_mappings, |v| id_mappings(v, m));
    some(out, "annotations", &c.annotations, string_map);
    some(out, "runtime", &c.runtime, |r| runtime(r, m));
}

fn device(d: &Device) -> GoValue {
    let mut out = vec![
        ("path".to_string(), str_or_empty(&d.path)),
        ("type".to_string(), str_or_empty(&d.kind)),
        ("major".to_string(), int_or_zero(&d.major)),
        ("minor".to_string(), int_or_zero(&d.minor)),
    ];
    non_empty(&mut out, "mode", &d.mode);
    GoValue::Map(out)
}

fn str_or_empty(v: &Option<Sp<String>>) -> GoValue {
    GoValue::Str(v.as_ref().map(|v| v.value.clone()).unwrap_or_default())
}

fn int_or_zero<T: Copy + Into<i128>>(v: &Option<Sp<T>>) -> GoValue {
    GoValue::Int(v.as_ref().map_or(0, |v| v.value.into()))
}

fn runtime(r: &Runtime, m: Marshal) -> GoValue {
    let mut out = Vec::new();
    some(&mut out, "cgroups", &r.cgroups, strings);
    some(&mut out, "mounts", &r.mounts, |v| mounts(v, m));
    some(&mut out, "mkdir", &r.mkdir, strings);
    some(&mut out, "interfaces", &r.interfaces, |v| {
        GoValue::Seq(v.iter().map(interface).collect())
    });
    // A struct, not a pointer: encoding/json writes it even when empty,
    // yaml.v2 leaves it out when every field is nil.
    let mut ns = Vec::new();
    if let Some(b) = &r.bind_ns {
        let b = &b.value;
        for (key, v) in [
            ("cgroup", &b.cgroup),
            ("ipc", &b.ipc),
            ("mnt", &b.mnt),
            ("net", &b.net),
            ("pid", &b.pid),
            ("user", &b.user),
            ("uts", &b.uts),
        ] {
            some(&mut ns, key, v, s);
        }
    }
    if m == Marshal::Json || !ns.is_empty() {
        out.push(("bindNS".into(), GoValue::Map(ns)));
    }
    some(&mut out, "namespace", &r.namespace, s);
    GoValue::Map(out)
}

fn interface(i: &Interface) -> GoValue {
    let mut out = Vec::new();
    non_empty(&mut out, "name", &i.name);
    non_empty(&mut out, "add", &i.add);
    non_empty(&mut out, "peer", &i.peer);
    out.push((
        "createInRoot".into(),
        GoValue::Bool(i.create_in_root.as_ref().is_some_and(|c| c.value)),
    ));
    GoValue::Map(out)
}

/// A runtime-spec field: under its JSON tag in JSON, its lower-cased Go
/// name in YAML (yaml.v2 ignores JSON tags).
fn spec_key(m: Marshal, json: &str) -> String {
    match m {
        Marshal::Json => json.to_string(),
        Marshal::Yaml => json.to_ascii_lowercase(),
    }
}

/// A runtime-spec field: JSON leaves it out when `omit` (its `omitempty`
/// and a zero value); yaml.v2 always writes it, `zero` when not set.
fn spec_field(
    m: Marshal,
    out: &mut Vec<(String, GoValue)>,
    json: &str,
    value: Option<GoValue>,
    zero: GoValue,
) {
    match value {
        Some(v) => out.push((spec_key(m, json), v)),
        None if m == Marshal::Yaml => out.push((spec_key(m, json), zero)),
        None => {}
    }
}

fn mounts(v: &[Mount], m: Marshal) -> GoValue {
    GoValue::Seq(v.iter().map(|x| mount(x, m)).collect())
}

fn mount(x: &Mount, m: Marshal) -> GoValue {
    let mut out = vec![("destination".to_string(), str_or_empty(&x.destination))];
    let text = |v: &Option<Sp<String>>| {
        v.as_ref()
            .filter(|v| !v.value.is_empty())
            .map(|v| GoValue::Str(v.value.clone()))
    };
    let empty = || GoValue::Str(String::new());
    spec_field(m, &mut out, "type", text(&x.kind), empty());
    spec_field(m, &mut out, "source", text(&x.source), empty());
    let seq = |v: Option<GoValue>| v.filter(|v| !matches!(v, GoValue::Seq(s) if s.is_empty()));
    spec_field(
        m,
        &mut out,
        "options",
        seq(x.options.as_ref().map(|o| strings(&o.value))),
        GoValue::Seq(Vec::new()),
    );
    spec_field(
        m,
        &mut out,
        "uidMappings",
        seq(x.uid_mappings.as_ref().map(|v| id_mappings(&v.value, m))),
        GoValue::Seq(Vec::new()),
    );
    spec_field(
        m,
        &mut out,
        "gidMappings",
        seq(x.gid_mappings.as_ref().map(|v| id_mappings(&v.value, m))),
        GoValue::Seq(Vec::new()),
    );
    GoValue::Map(out)
}

fn id_mappings(v: &[IdMapping], m: Marshal) -> GoValue {
    GoValue::Seq(
        v.iter()
            .map(|x| {
                GoValue::Map(vec![
                    (spec_key(m, "containerID"), int_or_zero(&x.container_id)),
                    (spec_key(m, "hostID"), int_or_zero(&x.host_id)),
                    (spec_key(m, "size"), int_or_zero(&x.size)),
                ])
            })
            .collect(),
    )
}

/// An optional number of a runtime-spec struct (a Go pointer).
fn num<T: Copy + Into<i128>>(v: &Option<Sp<T>>) -> Option<GoValue> {
    v.as_ref().map(|v| GoValue::Int(v.value.into()))
}

fn resources(r: &Resources, m: Marshal) -> GoValue {
    let mut out = Vec::new();
    let nil_seq = || GoValue::Seq(Vec::new());
    spec_field(
        m,
        &mut out,
        "devices",
        r.devices
            .as_ref()
            .filter(|d| !d.value.is_empty())
            .map(|d| GoValue::Seq(d.value.iter().map(|x| device_cgroup(x, m)).collect())),
        nil_seq(),
    );
    spec_field(
        m,
        &mut out,
        "memory",
        r.memory.as_ref().map(|x| memory(&x.value, m)),
        GoValue::Null,
    );
    spec_field(
        m,
        &mut out,
        "cpu",
        r.cpu.as_ref().map(|x| cpu(&x.value, m)),
        GoValue::Null,
    );
    spec_field(
        m,
        &mut out,
        "pids",
        r.pids
            .as_ref()
            .map(|x| GoValue::Map(vec![(spec_key(m, "limit"), int_or_zero(&x.value.limit))])),
        GoValue::Null,
    );
    spec_field(
        m,
        &mut out,
        "blockIO",
        r.blockio.as_ref().map(|x| blockio(&x.value, m)),
        GoValue::Null,
    );
    spec_field(
        m,
        &mut out,
        "hugepageLimits",
        r.hugepage_limits
            .as_ref()
            .filter(|d| !d.value.is_empty())
            .map(|d| GoValue::Seq(d.value.iter().map(|x| hugepage(x, m)).collect())),
        nil_seq(),
    );
    spec_field(
        m,
        &mut out,
        "network",
        r.network.as_ref().map(|x| network(&x.value, m)),
        GoValue::Null,
    );
    spec_field(m, &mut out, "rdma", None, GoValue::Map(Vec::new()));
    spec_field(m, &mut out, "unified", None, GoValue::Map(Vec::new()));
    GoValue::Map(out)
}

fn device_cgroup(d: &DeviceCgroup, m: Marshal) -> GoValue {
    let mut out = vec![(
        spec_key(m, "allow"),
        GoValue::Bool(d.allow.as_ref().is_some_and(|a| a.value)),
    )];
    let text = |v: &Option<Sp<String>>| {
        v.as_ref()
            .filter(|v| !v.value.is_empty())
            .map(|v| GoValue::Str(v.value.clone()))
    };
    spec_field(
        m,
        &mut out,
        "type",
        text(&d.kind),
        GoValue::Str(String::new()),
    );
    spec_field(m, &mut out, "major", num(&d.major), GoValue::Null);
    spec_field(m, &mut out, "minor", num(&d.minor), GoValue::Null);
    spec_field(
        m,
        &mut out,
        "access",
        text(&d.access),
        GoValue::Str(String::new()),
    );
    GoValue::Map(out)
}

fn memory(x: &Memory, m: Marshal) -> GoValue {
    let mut out = Vec::new();
    spec_field(m, &mut out, "limit", num(&x.limit), GoValue::Null);
    spec_field(
        m,
        &mut out,
        "reservation",
        num(&x.reservation),
        GoValue::Null,
    );
    spec_field(m, &mut out, "swap", num(&x.swap), GoValue::Null);
    spec_field(m, &mut out, "kernel", num(&x.kernel), GoValue::Null);
    spec_field(m, &mut out, "kernelTCP", num(&x.kernel_tcp), GoValue::Null);
    spec_field(m, &mut out, "swappiness", num(&x.swappiness), GoValue::Null);
    spec_field(
        m,
        &mut out,
        "disableOOMKiller",
        x.disable_oom_killer
            .as_ref()
            .map(|b| GoValue::Bool(b.value)),
        GoValue::Null,
    );
    spec_field(m, &mut out, "useHierarchy", None, GoValue::Null);
    spec_field(m, &mut out, "checkBeforeUpdate", None, GoValue::Null);
    GoValue::Map(out)
}

fn cpu(x: &Cpu, m: Marshal) -> GoValue {
    let mut out = Vec::new();
    let text = |v: &Option<Sp<String>>| {
        v.as_ref()
            .filter(|v| !v.value.is_empty())
            .map(|v| GoValue::Str(v.value.clone()))
    };
    spec_field(m, &mut out, "shares", num(&x.shares), GoValue::Null);
    spec_field(m, &mut out, "quota", num(&x.quota), GoValue::Null);
    spec_field(m, &mut out, "burst", None, GoValue::Null);
    spec_field(m, &mut out, "period", num(&x.period), GoValue::Null);
    spec_field(
        m,
        &mut out,
        "realtimeRuntime",
        num(&x.realtime_runtime),
        GoValue::Null,
    );
    spec_field(
        m,
        &mut out,
        "realtimePeriod",
        num(&x.realtime_period),
        GoValue::Null,
    );
    spec_field(
        m,
        &mut out,
        "cpus",
        text(&x.cpus),
        GoValue::Str(String::new()),
    );
    spec_field(
        m,
        &mut out,
        "mems",
        text(&x.mems),
        GoValue::Str(String::new()),
    );
    spec_field(m, &mut out, "idle", None, GoValue::Null);
    GoValue::Map(out)
}

/// `linuxBlockIODevice` is embedded: encoding/json lifts its fields, yaml.v2
/// (no `inline` tag) nests them under the lower-cased type name.
fn block_device(
    m: Marshal,
    major: &Option<Sp<i64>>,
    minor: &Option<Sp<i64>>,
    out: &mut Vec<(String, GoValue)>,
) {
    let fields = vec![
        ("major".to_string(), int_or_zero(major)),
        ("minor".to_string(), int_or_zero(minor)),
    ];
    match m {
        Marshal::Json => out.extend(fields),
        Marshal::Yaml => out.push(("linuxblockiodevice".into(), GoValue::Map(fields))),
    }
}

fn blockio(x: &BlockIo, m: Marshal) -> GoValue {
    let mut out = Vec::new();
    spec_field(m, &mut out, "weight", num(&x.weight), GoValue::Null);
    spec_field(
        m,
        &mut out,
        "leafWeight",
        num(&x.leaf_weight),
        GoValue::Null,
    );
    let weights = |v: &Option<Sp<Vec<WeightDevice>>>| {
        v.as_ref().filter(|d| !d.value.is_empty()).map(|d| {
            GoValue::Seq(
                d.value
                    .iter()
                    .map(|w| {
                        let mut o = Vec::new();
                        block_device(m, &w.major, &w.minor, &mut o);
                        spec_field(m, &mut o, "weight", num(&w.weight), GoValue::Null);
                        spec_field(m, &mut o, "leafWeight", num(&w.leaf_weight), GoValue::Null);
                        GoValue::Map(o)
                    })
                    .collect(),
            )
        })
    };
    spec_field(
        m,
        &mut out,
        "weightDevice",
        weights(&x.weight_device),
        GoValue::Seq(Vec::new()),
    );
    let throttle = |v: &Option<Sp<Vec<ThrottleDevice>>>| {
        v.as_ref().filter(|d| !d.value.is_empty()).map(|d| {
            GoValue::Seq(
                d.value
                    .iter()
                    .map(|t| {
                        let mut o = Vec::new();
                        block_device(m, &t.major, &t.minor, &mut o);
                        o.push((spec_key(m, "rate"), int_or_zero(&t.rate)));
                        GoValue::Map(o)
                    })
                    .collect(),
            )
        })
    };
    for (key, v) in [
        ("throttleReadBpsDevice", &x.throttle_read_bps_device),
        ("throttleWriteBpsDevice", &x.throttle_write_bps_device),
        ("throttleReadIOPSDevice", &x.throttle_read_iops_device),
        ("throttleWriteIOPSDevice", &x.throttle_write_iops_device),
    ] {
        spec_field(m, &mut out, key, throttle(v), GoValue::Seq(Vec::new()));
    }
    GoValue::Map(out)
}

fn hugepage(x: &HugepageLimit, m: Marshal) -> GoValue {
    GoValue::Map(vec![
        (spec_key(m, "pageSize"), str_or_empty(&x.page_size)),
        (spec_key(m, "limit"), int_or_zero(&x.limit)),
    ])
}

fn network(x: &Network, m: Marshal) -> GoValue {
    let mut out = Vec::new();
    spec_field(m, &mut out, "classID", num(&x.class_id), GoValue::Null);
    spec_field(
        m,
        &mut out,
        "priorities",
        x.priorities
            .as_ref()
            .filter(|p| !p.value.is_empty())
            .map(|p| GoValue::Seq(p.value.iter().map(|x| priority(x, m)).collect())),
        GoValue::Seq(Vec::new()),
    );
    GoValue::Map(out)
}

fn priority(x: &InterfacePriority, m: Marshal) -> GoValue {
    GoValue::Map(vec![
        (spec_key(m, "name"), str_or_empty(&x.name)),
        (spec_key(m, "priority"), int_or_zero(&x.priority)),
    ])
}

// ---- encoding/json's MarshalIndent(v, "", "    ") ----

fn json(v: &GoValue, depth: usize, out: &mut String) {
    let indent = |out: &mut String, d: usize| {
        out.push('\n');
        for _ in 0..d {
            out.push_str("    ");
        }
    };
    match v {
        GoValue::Null => out.push_str("null"),
        GoValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        GoValue::Int(n) => {
            let _ = write!(out, "{n}");
        }
        GoValue::Str(s) => json_string(s, out),
        GoValue::Seq(items) if items.is_empty() => out.push_str("[]"),
        GoValue::Map(entries) if entries.is_empty() => out.push_str("{}"),
        GoValue::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                json(item, depth + 1, out);
            }
            indent(out, depth);
            out.push(']');
        }
        GoValue::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                json_string(k, out);
                out.push_str(": ");
                json(v, depth + 1, out);
            }
            indent(out, depth);
            out.push('}');
        }
    }
}

/// A JSON string as encoding/json escapes it: `<`, `>`, `&`, U+2028 and
/// U+2029 too (it escapes HTML by default).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---- yaml.v2's block layout ----
//
// Hand-written: no YAML crate lays out documents as yaml.v2 does (sequences
// not indented under their key, `[]`/`{}` for empty collections, its
// choice of quoting), and the metadata file is compared byte for byte.

fn pad(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn yaml_map(entries: &[(String, GoValue)], indent: usize, out: &mut String) {
    for (i, (k, v)) in entries.iter().enumerate() {
        // The first key of a mapping inside a sequence shares the `- ` line.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&yaml_str(k));
        out.push(':');
        yaml_value_after_key(v, indent, out);
    }
}

fn yaml_value_after_key(v: &GoValue, indent: usize, out: &mut String) {
    match v {
        GoValue::Map(m) if !m.is_empty() => {
            out.push('\n');
            yaml_map(m, indent + 2, out);
        }
        GoValue::Seq(s) if !s.is_empty() => {
            out.push('\n');
            // yaml.v2 does not indent a sequence under its mapping key.
            yaml_seq(s, indent, out);
        }
        other => {
            out.push(' ');
            yaml_scalar_line(other, indent + 2, out);
        }
    }
}

fn yaml_seq(items: &[GoValue], indent: usize, out: &mut String) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            GoValue::Map(m) if !m.is_empty() => yaml_map(m, indent + 2, out),
            GoValue::Seq(s) if !s.is_empty() => {
                out.push('\n');
                yaml_seq(s, indent + 2, out);
            }
            other => yaml_scalar_line(other, indent + 2, out),
        }
    }
}

/// A scalar (or empty collection) and its line end; `indent` is where a
/// literal block's lines start.
fn yaml_scalar_line(v: &GoValue, indent: usize, out: &mut String) {
    match v {
        GoValue::Null => out.push_str("null"),
        GoValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        GoValue::Int(n) => {
            let _ = write!(out, "{n}");
        }
        GoValue::Seq(_) => out.push_str("[]"),
        GoValue::Map(_) => out.push_str("{}"),
        GoValue::Str(s) if s.contains('\n') && literal_ok(s) => {
            literal(s, indent, out);
            return;
        }
        GoValue::Str(s) => out.push_str(&yaml_str(s)),
    }
    out.push('\n');
}

/// Whether a multi-line string can be a literal block that reads back the
/// same: printable, no trailing spaces on a line, no leading space first.
fn literal_ok(s: &str) -> bool {
    !s.starts_with([' ', '\t', '\n'])
        && !s.chars().any(|c| c != '\n' && c.is_control())
        && s.split('\n').all(|l| !l.ends_with([' ', '\t']))
}

/// `|`, `|-` or `|+` by how the string ends, as libyaml chooses.
fn literal(s: &str, indent: usize, out: &mut String) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push('|');
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    out.push('\n');
    for line in s[..body.len()].split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

/// A string as yaml.v2 writes it: plain when it reads back as the same
/// string, double-quoted when it would read as another type, single-quoted
/// when only its characters forbid plain style.
fn yaml_str(s: &str) -> String {
    if resolves_to_other_type(s)
        || s.chars().any(|c| c.is_control())
        || !s.is_ascii() && has_special_unicode(s)
    {
        return double_quoted(s);
    }
    if plain_ok(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn has_special_unicode(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}'))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || has_special_unicode(&c.to_string()) => {
                let n = c as u32;
                if n <= 0xff {
                    let _ = write!(out, "\\x{n:02X}");
                } else {
                    let _ = write!(out, "\\u{n:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// yaml.v2's resolver (YAML 1.1): strings that would read back as null, a
/// boolean or a number must be quoted.
fn resolves_to_other_type(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let plain = s.replace('_', "");
    let digits = plain.strip_prefix(['+', '-']).unwrap_or(&plain);
    if digits.is_empty() {
        return false;
    }
    let all = |t: &str, f: fn(char) -> bool| !t.is_empty() && t.chars().all(f);
    if all(digits, |c| c.is_ascii_digit()) {
        return true;
    }
    if let Some(hex) = digits.strip_prefix("0x") {
        return all(hex, |c| c.is_ascii_hexdigit());
    }
    if let Some(bin) = digits.strip_prefix("0b") {
        return all(bin, |c| c == '0' || c == '1');
    }
    // Floats: digits with one dot and an optional exponent.
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let mantissa_ok = mantissa.matches('.').count() <= 1
        && mantissa.chars().any(|c| c.is_ascii_digit())
        && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.');
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        all(e, |c| c.is_ascii_digit())
    });
    if mantissa_ok && exponent_ok {
        return true;
    }
    // Sexagesimal numbers (`1:20`), which yaml.v2 quotes as well.
    let parts: Vec<&str> = digits.split(':').collect();
    parts.len() > 1
        && parts[0].chars().next().is_some_and(|c| c.is_ascii_digit())
        && parts
            .iter()
            .all(|p| all(p, |c| c.is_ascii_digit() || c == '.'))
}

/// libyaml's test for plain style in block context.
fn plain_ok(s: &str) -> bool {
    let first = match s.chars().next() {
        Some(c) => c,
        None => return false,
    };
    if s.starts_with(' ') || s.ends_with(' ') || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    let next = s.chars().nth(1);
    let indicator_start = match first {
        '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
        | '@' | '`' => true,
        '?' | ':' | '-' => next.is_none_or(|c| c == ' '),
        _ => false,
    };
    if indicator_start {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let after = chars.get(i + 1);
        match c {
            ':' if after.is_none_or(|a| *a == ' ') => return false,
            '#' if i > 0 && chars[i - 1] == ' ' => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_as_yaml_v2_quotes_them() {
        assert_eq!(yaml_str("linuxkit/init:v1"), "linuxkit/init:v1");
        assert_eq!(yaml_str("0644"), "\"0644\"");
        assert_eq!(yaml_str(""), "\"\"");
        assert_eq!(yaml_str("true"), "\"true\"");
        assert_eq!(yaml_str("1.5"), "\"1.5\"");
        assert_eq!(yaml_str("a: b"), "'a: b'");
        assert_eq!(yaml_str("-x"), "-x");
        assert_eq!(yaml_str("- x"), "'- x'");
        assert_eq!(yaml_str("/var/run:/var/run"), "/var/run:/var/run");
    }

    struct AsWritten;

    impl ImageNames for AsWritten {
        fn resolved(&self, name: &Sp<ImageName>) -> String {
            name.value.to_string()
        }
        fn volume(&self, name: &Sp<ImageName>) -> String {
            name.value.to_string()
        }
    }

    const RUNTIME_SPEC: &str = "services:
  - name: s
    image: alpine:3.20
    hostname: box
    cwd: \"\"
    resources:
      pids: {limit: 10}
      memory: {limit: 1024}
    uidMappings:
      - {hostID: 1000, containerID: 0, size: 1}
    devices:
      - {path: /dev/null, type: c, major: 1, minor: 3, mode: \"0666\"}
    runtime:
      mkdir: [/var/x]
      interfaces:
        - name: eth0
volumes:
  - name: v
    readonly: false
";

    /// Go's field order (`hostname` before `readonly`, `devices` after
    /// `binds.add`), runtime-spec JSON tags with `omitempty`, an empty
    /// `bindNS` written (a struct, not a pointer), `cwd: \"\"` and
    /// `readonly: false` of a volume left out (`omitempty` on values).
    #[test]
    fn json_has_gos_shape() {
        let loaded = crate::load_str("c.yml", RUNTIME_SPEC).unwrap();
        let expected = r#"{
    "kernel": {
        "image": ""
    },
    "init": null,
    "onboot": null,
    "onshutdown": null,
    "services": [
        {
            "name": "s",
            "image": "docker.io/library/alpine:3.20",
            "devices": [
                {
                    "path": "/dev/null",
                    "type": "c",
                    "major": 1,
                    "minor": 3,
                    "mode": "0666"
                }
            ],
            "hostname": "box",
            "resources": {
                "memory": {
                    "limit": 1024
                },
                "pids": {
                    "limit": 10
                }
            },
            "uidMappings": [
                {
                    "containerID": 0,
                    "hostID": 1000,
                    "size": 1
                }
            ],
            "runtime": {
                "mkdir": [
                    "/var/x"
                ],
                "interfaces": [
                    {
                        "name": "eth0",
                        "createInRoot": false
                    }
                ],
                "bindNS": {}
            }
        }
    ],
    "files": null,
    "volumes": [
        {
            "name": "v"
        }
    ]
}"#;
        assert_eq!(to_json(&loaded.config, &AsWritten), expected);
    }

    /// yaml.v2 ignores the runtime-spec JSON tags: lower-cased Go names,
    /// every field, nil pointers `null`, nil slices `[]`, nil maps `{}`.
    #[test]
    fn yaml_has_yaml_v2s_shape() {
        let loaded = crate::load_str("c.yml", RUNTIME_SPEC).unwrap();
        let expected = "kernel:
  image: \"\"
init: []
onboot: []
onshutdown: []
services:
- name: s
  image: docker.io/library/alpine:3.20
  devices:
  - path: /dev/null
    type: c
    major: 1
    minor: 3
    mode: \"0666\"
  hostname: box
  resources:
    devices: []
    memory:
      limit: 1024
      reservation: null
      swap: null
      kernel: null
      kerneltcp: null
      swappiness: null
      disableoomkiller: null
      usehierarchy: null
      checkbeforeupdate: null
    cpu: null
    pids:
      limit: 10
    blockio: null
    hugepagelimits: []
    network: null
    rdma: {}
    unified: {}
  uidMappings:
  - containerid: 0
    hostid: 1000
    size: 1
  runtime:
    mkdir:
    - /var/x
    interfaces:
    - name: eth0
      createInRoot: false
files: []
volumes:
- name: v
";
        assert_eq!(to_yaml(&loaded.config, &AsWritten), expected);
    }

    #[test]
    fn json_escapes_html_as_go_does() {
        let mut out = String::new();
        json_string("a<b>&\"c\"\n", &mut out);
        assert_eq!(out, "\"a\\u003cb\\u003e\\u0026\\\"c\\\"\\n\"");
    }
}
