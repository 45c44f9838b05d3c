//! The runtime-spec types LinuxKit embeds (mounts, resources, devices,
//! network): their JSON tags in JSON, their lower-cased Go names in YAML.

use super::*;

/// A runtime-spec field: under its JSON tag in JSON, its lower-cased Go
/// name in YAML (yaml.v2 ignores JSON tags).
pub(super) fn spec_key(m: Marshal, json: &str) -> String {
    match m {
        Marshal::Json => json.to_string(),
        Marshal::Yaml => json.to_ascii_lowercase(),
    }
}

/// A runtime-spec field: JSON leaves it out when `omit` (its `omitempty`
/// and a zero value); yaml.v2 always writes it, `zero` when not set.
pub(super) fn spec_field(
    m: Marshal,
    out: &mut Vec<(String, Json)>,
    json: &str,
    value: Option<Json>,
    zero: Json,
) {
    match value {
        Some(v) => out.push((spec_key(m, json), v)),
        None if m == Marshal::Yaml => out.push((spec_key(m, json), zero)),
        None => {}
    }
}

pub(super) fn mounts(v: &[Mount], m: Marshal) -> Json {
    Json::Arr(v.iter().map(|x| mount(x, m)).collect())
}

pub(super) fn mount(x: &Mount, m: Marshal) -> Json {
    let mut out = vec![("destination".to_string(), str_or_empty(&x.destination))];
    let text = |v: &Option<Sp<String>>| {
        v.as_ref()
            .filter(|v| !v.value.is_empty())
            .map(|v| Json::Str(v.value.clone()))
    };
    let empty = || Json::Str(String::new());
    spec_field(m, &mut out, "type", text(&x.kind), empty());
    spec_field(m, &mut out, "source", text(&x.source), empty());
    let seq = |v: Option<Json>| v.filter(|v| !matches!(v, Json::Arr(s) if s.is_empty()));
    spec_field(
        m,
        &mut out,
        "options",
        seq(x.options.as_ref().map(|o| strings(&o.value))),
        Json::Arr(Vec::new()),
    );
    spec_field(
        m,
        &mut out,
        "uidMappings",
        seq(x.uid_mappings.as_ref().map(|v| id_mappings(&v.value, m))),
        Json::Arr(Vec::new()),
    );
    spec_field(
        m,
        &mut out,
        "gidMappings",
        seq(x.gid_mappings.as_ref().map(|v| id_mappings(&v.value, m))),
        Json::Arr(Vec::new()),
    );
    Json::Obj(out)
}

pub(super) fn id_mappings(v: &[IdMapping], m: Marshal) -> Json {
    Json::Arr(
        v.iter()
            .map(|x| {
                Json::Obj(vec![
                    (spec_key(m, "containerID"), int_or_zero(&x.container_id)),
                    (spec_key(m, "hostID"), int_or_zero(&x.host_id)),
                    (spec_key(m, "size"), int_or_zero(&x.size)),
                ])
            })
            .collect(),
    )
}

/// An optional number of a runtime-spec struct (a Go pointer).
pub(super) fn num<T: Copy + Into<i128>>(v: &Option<Sp<T>>) -> Option<Json> {
    v.as_ref().map(|v| Json::int(v.value.into()))
}

pub(super) fn resources(r: &Resources, m: Marshal) -> Json {
    let mut out = Vec::new();
    let nil_seq = || Json::Arr(Vec::new());
    spec_field(
        m,
        &mut out,
        "devices",
        r.devices
            .as_ref()
            .filter(|d| !d.value.is_empty())
            .map(|d| Json::Arr(d.value.iter().map(|x| device_cgroup(x, m)).collect())),
        nil_seq(),
    );
    spec_field(
        m,
        &mut out,
        "memory",
        r.memory.as_ref().map(|x| memory(&x.value, m)),
        Json::Null,
    );
    spec_field(
        m,
        &mut out,
        "cpu",
        r.cpu.as_ref().map(|x| cpu(&x.value, m)),
        Json::Null,
    );
    spec_field(
        m,
        &mut out,
        "pids",
        r.pids
            .as_ref()
            .map(|x| Json::Obj(vec![(spec_key(m, "limit"), int_or_zero(&x.value.limit))])),
        Json::Null,
    );
    spec_field(
        m,
        &mut out,
        "blockIO",
        r.blockio.as_ref().map(|x| blockio(&x.value, m)),
        Json::Null,
    );
    spec_field(
        m,
        &mut out,
        "hugepageLimits",
        r.hugepage_limits
            .as_ref()
            .filter(|d| !d.value.is_empty())
            .map(|d| Json::Arr(d.value.iter().map(|x| hugepage(x, m)).collect())),
        nil_seq(),
    );
    spec_field(
        m,
        &mut out,
        "network",
        r.network.as_ref().map(|x| network(&x.value, m)),
        Json::Null,
    );
    spec_field(m, &mut out, "rdma", None, Json::Obj(Vec::new()));
    spec_field(m, &mut out, "unified", None, Json::Obj(Vec::new()));
    Json::Obj(out)
}

pub(super) fn device_cgroup(d: &DeviceCgroup, m: Marshal) -> Json {
    let mut out = vec![(
        spec_key(m, "allow"),
        Json::Bool(d.allow.as_ref().is_some_and(|a| a.value)),
    )];
    let text = |v: &Option<Sp<String>>| {
        v.as_ref()
            .filter(|v| !v.value.is_empty())
            .map(|v| Json::Str(v.value.clone()))
    };
    spec_field(m, &mut out, "type", text(&d.kind), Json::Str(String::new()));
    spec_field(m, &mut out, "major", num(&d.major), Json::Null);
    spec_field(m, &mut out, "minor", num(&d.minor), Json::Null);
    spec_field(
        m,
        &mut out,
        "access",
        text(&d.access),
        Json::Str(String::new()),
    );
    Json::Obj(out)
}

pub(super) fn memory(x: &Memory, m: Marshal) -> Json {
    let mut out = Vec::new();
    spec_field(m, &mut out, "limit", num(&x.limit), Json::Null);
    spec_field(m, &mut out, "reservation", num(&x.reservation), Json::Null);
    spec_field(m, &mut out, "swap", num(&x.swap), Json::Null);
    spec_field(m, &mut out, "kernel", num(&x.kernel), Json::Null);
    spec_field(m, &mut out, "kernelTCP", num(&x.kernel_tcp), Json::Null);
    spec_field(m, &mut out, "swappiness", num(&x.swappiness), Json::Null);
    spec_field(
        m,
        &mut out,
        "disableOOMKiller",
        x.disable_oom_killer.as_ref().map(|b| Json::Bool(b.value)),
        Json::Null,
    );
    spec_field(m, &mut out, "useHierarchy", None, Json::Null);
    spec_field(m, &mut out, "checkBeforeUpdate", None, Json::Null);
    Json::Obj(out)
}

pub(super) fn cpu(x: &Cpu, m: Marshal) -> Json {
    let mut out = Vec::new();
    let text = |v: &Option<Sp<String>>| {
        v.as_ref()
            .filter(|v| !v.value.is_empty())
            .map(|v| Json::Str(v.value.clone()))
    };
    spec_field(m, &mut out, "shares", num(&x.shares), Json::Null);
    spec_field(m, &mut out, "quota", num(&x.quota), Json::Null);
    spec_field(m, &mut out, "burst", None, Json::Null);
    spec_field(m, &mut out, "period", num(&x.period), Json::Null);
    spec_field(
        m,
        &mut out,
        "realtimeRuntime",
        num(&x.realtime_runtime),
        Json::Null,
    );
    spec_field(
        m,
        &mut out,
        "realtimePeriod",
        num(&x.realtime_period),
        Json::Null,
    );
    spec_field(m, &mut out, "cpus", text(&x.cpus), Json::Str(String::new()));
    spec_field(m, &mut out, "mems", text(&x.mems), Json::Str(String::new()));
    spec_field(m, &mut out, "idle", None, Json::Null);
    Json::Obj(out)
}

/// `linuxBlockIODevice` is embedded: encoding/json lifts its fields, yaml.v2
/// (no `inline` tag) nests them under the lower-cased type name.
pub(super) fn block_device(
    m: Marshal,
    major: &Option<Sp<i64>>,
    minor: &Option<Sp<i64>>,
    out: &mut Vec<(String, Json)>,
) {
    let fields = vec![
        ("major".to_string(), int_or_zero(major)),
        ("minor".to_string(), int_or_zero(minor)),
    ];
    match m {
        Marshal::Json => out.extend(fields),
        Marshal::Yaml => out.push(("linuxblockiodevice".into(), Json::Obj(fields))),
    }
}

pub(super) fn blockio(x: &BlockIo, m: Marshal) -> Json {
    let mut out = Vec::new();
    spec_field(m, &mut out, "weight", num(&x.weight), Json::Null);
    spec_field(m, &mut out, "leafWeight", num(&x.leaf_weight), Json::Null);
    let weights = |v: &Option<Sp<Vec<WeightDevice>>>| {
        v.as_ref().filter(|d| !d.value.is_empty()).map(|d| {
            Json::Arr(
                d.value
                    .iter()
                    .map(|w| {
                        let mut o = Vec::new();
                        block_device(m, &w.major, &w.minor, &mut o);
                        spec_field(m, &mut o, "weight", num(&w.weight), Json::Null);
                        spec_field(m, &mut o, "leafWeight", num(&w.leaf_weight), Json::Null);
                        Json::Obj(o)
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
        Json::Arr(Vec::new()),
    );
    let throttle = |v: &Option<Sp<Vec<ThrottleDevice>>>| {
        v.as_ref().filter(|d| !d.value.is_empty()).map(|d| {
            Json::Arr(
                d.value
                    .iter()
                    .map(|t| {
                        let mut o = Vec::new();
                        block_device(m, &t.major, &t.minor, &mut o);
                        o.push((spec_key(m, "rate"), int_or_zero(&t.rate)));
                        Json::Obj(o)
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
        spec_field(m, &mut out, key, throttle(v), Json::Arr(Vec::new()));
    }
    Json::Obj(out)
}

pub(super) fn hugepage(x: &HugepageLimit, m: Marshal) -> Json {
    Json::Obj(vec![
        (spec_key(m, "pageSize"), str_or_empty(&x.page_size)),
        (spec_key(m, "limit"), int_or_zero(&x.limit)),
    ])
}

pub(super) fn network(x: &Network, m: Marshal) -> Json {
    let mut out = Vec::new();
    spec_field(m, &mut out, "classID", num(&x.class_id), Json::Null);
    spec_field(
        m,
        &mut out,
        "priorities",
        x.priorities
            .as_ref()
            .filter(|p| !p.value.is_empty())
            .map(|p| Json::Arr(p.value.iter().map(|x| priority(x, m)).collect())),
        Json::Arr(Vec::new()),
    );
    Json::Obj(out)
}

pub(super) fn priority(x: &InterfacePriority, m: Marshal) -> Json {
    Json::Obj(vec![
        (spec_key(m, "name"), str_or_empty(&x.name)),
        (spec_key(m, "priority"), int_or_zero(&x.priority)),
    ])
}
