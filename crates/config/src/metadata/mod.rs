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

use crate::decode::{Id, StringMap};
use crate::gojson::Json;
use crate::model::{
    BlockIo, Config, Cpu, Device, DeviceCgroup, File, HugepageLimit, IdMapping, Image, ImageName,
    ImageSpec, Interface, InterfacePriority, Memory, Mount, Network, Resources, Runtime,
    ThrottleDevice, Volume, WeightDevice,
};
use crate::source::Sp;

mod spec;
mod yaml;

use spec::{id_mappings, mounts, resources};
use yaml::{yaml_map, yaml_scalar_line};

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
    moby(config, names, Marshal::Json).to_go_indent()
}

/// `files[].metadata: yaml`: what LinuxKit writes, as yaml.v2 lays it out
/// for the values configurations hold.
pub fn to_yaml(config: &Config, names: &dyn ImageNames) -> String {
    let mut out = String::new();
    match moby(config, names, Marshal::Yaml) {
        Json::Obj(entries) => yaml_map(&entries, 0, &mut out),
        other => yaml_scalar_line(&other, 0, &mut out),
    }
    out
}

/// The `Moby` struct of a configuration.
pub fn moby(config: &Config, names: &dyn ImageNames, m: Marshal) -> Json {
    let mut out = Vec::new();
    let kernel = config.kernel.as_ref().map(|k| &k.value);
    let mut k = vec![(
        "image".to_string(),
        Json::Str(
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
            k.push(("tar".into(), Json::Str(t.value.clone())));
        }
        if let Some(u) = &kernel.ucode {
            k.push(("ucode".into(), Json::Str(u.value.clone())));
        }
    }
    out.push(("kernel".into(), Json::Obj(k)));
    out.push((
        "init".into(),
        list(m, config.init(), |i| Json::Str(names.resolved(i))),
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
    Json::Obj(out)
}

/// A top-level list: LinuxKit appends each file's list to an empty one, so
/// an empty list is a nil slice: `null` in JSON, `[]` in YAML.
pub(super) fn list<T>(m: Marshal, items: &[T], f: impl Fn(&T) -> Json) -> Json {
    if items.is_empty() && m == Marshal::Json {
        return Json::Null;
    }
    Json::Arr(items.iter().map(f).collect())
}

/// A Go `string` with `omitempty`.
pub(super) fn non_empty(out: &mut Vec<(String, Json)>, key: &str, v: &Option<Sp<String>>) {
    if let Some(v) = v
        && !v.value.is_empty()
    {
        out.push((key.into(), Json::Str(v.value.clone())));
    }
}

/// A Go pointer with `omitempty`: present when written.
pub(super) fn some<T>(
    out: &mut Vec<(String, Json)>,
    key: &str,
    v: &Option<Sp<T>>,
    f: impl Fn(&T) -> Json,
) {
    if let Some(v) = v {
        out.push((key.into(), f(&v.value)));
    }
}

#[allow(clippy::ptr_arg, reason = "passed to `some` for fields of this type")]
pub(super) fn s(v: &String) -> Json {
    Json::Str(v.clone())
}

#[allow(clippy::ptr_arg, reason = "passed to `some` for fields of this type")]
pub(super) fn strings(v: &Vec<Sp<String>>) -> Json {
    Json::Arr(v.iter().map(|s| Json::Str(s.value.clone())).collect())
}

pub(super) fn id(v: &Id) -> Json {
    match v {
        Id::Number(n) => Json::int(i128::from(*n)),
        Id::Name(s) => Json::Str(s.clone()),
    }
}

pub(super) fn string_map(v: &StringMap) -> Json {
    // Both marshallers sort map keys; a key written twice keeps its last value.
    let mut sorted: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for (k, v) in &v.0 {
        sorted.insert(&k.value, &v.value);
    }
    Json::Obj(
        sorted
            .into_iter()
            .map(|(k, v)| (k.to_string(), Json::Str(v.to_string())))
            .collect(),
    )
}

pub(super) fn file(f: &Sp<File>) -> Json {
    let f = &f.value;
    let mut out = vec![(
        "path".to_string(),
        Json::Str(f.path.as_ref().map(|p| p.value.clone()).unwrap_or_default()),
    )];
    out.push((
        "directory".into(),
        Json::Bool(f.directory.as_ref().is_some_and(|d| d.value)),
    ));
    non_empty(&mut out, "symlink", &f.symlink);
    some(&mut out, "contents", &f.contents, s);
    non_empty(&mut out, "source", &f.source);
    non_empty(&mut out, "metadata", &f.metadata);
    out.push((
        "optional".into(),
        Json::Bool(f.optional.as_ref().is_some_and(|o| o.value)),
    ));
    non_empty(&mut out, "mode", &f.mode);
    some(&mut out, "uid", &f.uid, id);
    some(&mut out, "gid", &f.gid, id);
    Json::Obj(out)
}

pub(super) fn volume(v: &Sp<Volume>, names: &dyn ImageNames) -> Json {
    let v = &v.value;
    let mut out = vec![(
        "name".to_string(),
        Json::Str(v.name.as_ref().map(|n| n.value.clone()).unwrap_or_default()),
    )];
    if let Some(i) = &v.image {
        let written = names.volume(i);
        if !written.is_empty() {
            out.push(("image".into(), Json::Str(written)));
        }
    }
    if v.readonly.as_ref().is_some_and(|r| r.value) {
        out.push(("readonly".into(), Json::Bool(true)));
    }
    non_empty(&mut out, "format", &v.format);
    if let Some(p) = &v.platforms
        && !p.value.is_empty()
    {
        out.push(("platforms".into(), strings(&p.value)));
    }
    Json::Obj(out)
}

pub(super) fn image(i: &Image, names: &dyn ImageNames, m: Marshal) -> Json {
    let mut out = vec![
        ("name".to_string(), Json::Str(i.name.value.clone())),
        ("image".to_string(), Json::Str(names.resolved(&i.image))),
    ];
    image_spec(&i.spec, m, &mut out);
    Json::Obj(out)
}

/// `ImageConfig`, in its field order (which is not the schema's).
pub(super) fn image_spec(c: &ImageSpec, m: Marshal, out: &mut Vec<(String, Json)>) {
    some(out, "capabilities", &c.capabilities, strings);
    some(out, "capabilities.add", &c.capabilities_add, strings);
    some(out, "ambient", &c.ambient, strings);
    some(out, "mounts", &c.mounts, |v| mounts(v, m));
    some(out, "binds", &c.binds, strings);
    some(out, "binds.add", &c.binds_add, strings);
    some(out, "devices", &c.devices, |v| {
        Json::Arr(v.iter().map(device).collect())
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
    some(out, "readonly", &c.readonly, |b| Json::Bool(*b));
    some(out, "maskedPaths", &c.masked_paths, strings);
    some(out, "readonlyPaths", &c.readonly_paths, strings);
    some(out, "uid", &c.uid, id);
    some(out, "gid", &c.gid, id);
    some(out, "additionalGids", &c.additional_gids, |v| {
        Json::Arr(v.iter().map(|i| id(&i.value)).collect())
    });
    some(out, "noNewPrivileges", &c.no_new_privileges, |b| {
        Json::Bool(*b)
    });
    some(out, "oomScoreAdj", &c.oom_score_adj, |n| {
        Json::int(i128::from(*n))
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

pub(super) fn device(d: &Device) -> Json {
    let mut out = vec![
        ("path".to_string(), str_or_empty(&d.path)),
        ("type".to_string(), str_or_empty(&d.kind)),
        ("major".to_string(), int_or_zero(&d.major)),
        ("minor".to_string(), int_or_zero(&d.minor)),
    ];
    non_empty(&mut out, "mode", &d.mode);
    Json::Obj(out)
}

pub(super) fn str_or_empty(v: &Option<Sp<String>>) -> Json {
    Json::Str(v.as_ref().map(|v| v.value.clone()).unwrap_or_default())
}

pub(super) fn int_or_zero<T: Copy + Into<i128>>(v: &Option<Sp<T>>) -> Json {
    Json::int(v.as_ref().map_or(0, |v| v.value.into()))
}

pub(super) fn runtime(r: &Runtime, m: Marshal) -> Json {
    let mut out = Vec::new();
    some(&mut out, "cgroups", &r.cgroups, strings);
    some(&mut out, "mounts", &r.mounts, |v| mounts(v, m));
    some(&mut out, "mkdir", &r.mkdir, strings);
    some(&mut out, "interfaces", &r.interfaces, |v| {
        Json::Arr(v.iter().map(interface).collect())
    });
    // A struct, not a pointer: encoding/json writes it even when empty,
    // yaml.v2 leaves it out when every field is nil.
    let mut ns = Vec::new();
    if let Some(b) = &r.bind_ns {
        let b = &b.value;
        for (key, v) in b.namespaces() {
            some(&mut ns, key, v, s);
        }
    }
    if m == Marshal::Json || !ns.is_empty() {
        out.push(("bindNS".into(), Json::Obj(ns)));
    }
    some(&mut out, "namespace", &r.namespace, s);
    Json::Obj(out)
}

pub(super) fn interface(i: &Interface) -> Json {
    let mut out = Vec::new();
    non_empty(&mut out, "name", &i.name);
    non_empty(&mut out, "add", &i.add);
    non_empty(&mut out, "peer", &i.peer);
    out.push((
        "createInRoot".into(),
        Json::Bool(i.create_in_root.as_ref().is_some_and(|c| c.value)),
    ));
    Json::Obj(out)
}

#[cfg(test)]
mod tests {
    use super::yaml::*;
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
}
