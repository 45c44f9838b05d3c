//! One parse test per field of the model: the field is read when present,
//! absent when not written, and printed back as written. A table per mapping
//! type, checked against the type's own key list, so a new field without a
//! test fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use slipway_config::print::{Out, ToOut};
use slipway_config::{
    BindNs, BlockIo, Config, Cpu, Device, DeviceCgroup, File, HugepageLimit, IdMapping, ImageSpec,
    Interface, InterfacePriority, Kernel, Memory, Mount, Network, Pids, Resources, Runtime,
    ThrottleDevice, Trust, Volume, WeightDevice, parse_unchecked,
};

/// How a mapping type is reached from the top of a file, and how to read it back.
struct Host {
    /// YAML around the field; `{FIELD}` is replaced by `key: value`, indented to fit.
    template: &'static str,
    indent: usize,
    get: fn(&Config) -> Option<Out>,
}

fn first<T: Clone>(list: &Option<slipway_config::Sp<Vec<T>>>) -> Option<T> {
    list.as_ref()?.value.first().cloned()
}

fn check(host: &Host, keys: &[&str], table: &[(&str, &str)]) {
    // Every key of the type has a row, and every row names a key of the type.
    let mut covered: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
    covered.sort_unstable();
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_unstable();
    assert_eq!(covered, expected, "the table must have one row per key");

    for (key, value) in table {
        let pad = " ".repeat(host.indent);
        let field = format!("{key}: {}", value.replace('\n', &format!("\n{pad}")));
        let text = host.template.replace("{FIELD}", &field);
        let config = match parse_unchecked("field.yml", &text) {
            Ok(c) => c,
            Err(e) => panic!(
                "`{key}` did not parse:\n{text}\n{}",
                e.diagnostics.render_plain(&e.sources)
            ),
        };
        let Some(Out::Map(entries)) = (host.get)(&config) else {
            panic!("`{key}`: the mapping holding it was not read:\n{text}");
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            keys.contains(key),
            "`{key}` not read from:\n{text}\nread: {keys:?}"
        );

        // Printed back, the value parses to the same thing.
        let printed = slipway_config::print::to_yaml(&config.to_out());
        let again = parse_unchecked("printed.yml", &printed).expect("printed config parses");
        assert_eq!(again, config, "`{key}` changed when printed:\n{printed}");

        // Absent: the same text without the field leaves it unset.
        let without = host.template.replace("{FIELD}", "");
        if let Ok(config) = parse_unchecked("without.yml", &without)
            && let Some(Out::Map(entries)) = (host.get)(&config)
        {
            assert!(
                entries.iter().all(|(k, _)| k != key),
                "`{key}` present when not written"
            );
        }
    }
}

const SERVICE: &str = "services:\n  - name: s\n    image: alpine\n    {FIELD}\n";

fn service_spec(c: &Config) -> Option<Out> {
    let s = first(&c.services)?;
    let mut out = vec![];
    // ImageSpec fields only: drop name and image.
    if let Out::Map(m) = s.to_out() {
        out = m
            .into_iter()
            .filter(|(k, _)| k != "name" && k != "image")
            .collect();
    }
    Some(Out::Map(out))
}

#[test]
fn top_level_keys() {
    let host = Host {
        template: "{FIELD}\n",
        indent: 0,
        get: |c| Some(c.to_out()),
    };
    check(
        &host,
        Config::KEYS,
        &[
            ("kernel", "\n  image: linuxkit/kernel:6.12.59"),
            ("init", "[linuxkit/init:v1]"),
            ("onboot", "\n- name: a\n  image: alpine"),
            ("onshutdown", "\n- name: a\n  image: alpine"),
            ("services", "\n- name: a\n  image: alpine"),
            ("files", "\n- path: etc/x\n  contents: x"),
            ("volumes", "\n- name: v"),
            ("trust", "\n  org: [linuxkit]"),
        ],
    );
}

#[test]
fn kernel_fields() {
    let host = Host {
        template: "kernel:\n  {FIELD}\n",
        indent: 2,
        get: |c| c.kernel.as_ref().map(|k| k.to_out()),
    };
    check(
        &host,
        Kernel::KEYS,
        &[
            ("image", "linuxkit/kernel:6.12.59"),
            ("cmdline", "console=ttyS0 quiet"),
            ("binary", "bzImage"),
            ("tar", "none"),
            ("ucode", "intel-ucode.cpio"),
        ],
    );
}

#[test]
fn trust_fields() {
    let host = Host {
        template: "trust:\n  {FIELD}\n",
        indent: 2,
        get: |c| c.trust.as_ref().map(|t| t.to_out()),
    };
    check(
        &host,
        Trust::KEYS,
        &[("image", "[nginx]"), ("org", "[linuxkit]")],
    );
}

#[test]
fn file_fields() {
    let host = Host {
        template: "files:\n  - path: etc/a\n    {FIELD}\n",
        indent: 4,
        get: |c| first(&c.files).map(|f| f.to_out()),
    };
    let mut table = vec![
        ("directory", "true"),
        ("symlink", "/etc/b"),
        ("contents", "|\n  hello\n  world"),
        ("source", "~/.ssh/id.pub"),
        ("metadata", "yaml"),
        ("optional", "true"),
        ("mode", "\"0644\""),
        ("uid", "100"),
        ("gid", "root"),
    ];
    table.push(("path", "etc/b"));
    // `path` is in the template too: a second `path` would be a duplicate key.
    let host_path = Host {
        template: "files:\n  - {FIELD}\n    contents: x\n",
        indent: 4,
        get: host.get,
    };
    check(&host, &File::KEYS[1..], &table[..table.len() - 1]);
    check(&host_path, &["path"], &[("path", "etc/b")]);
}

#[test]
fn volume_fields() {
    let host = Host {
        template: "volumes:\n  - format: oci\n    {FIELD}\n",
        indent: 4,
        get: |c| first(&c.volumes).map(|v| v.to_out()),
    };
    let keys: Vec<&str> = Volume::KEYS
        .iter()
        .copied()
        .filter(|k| *k != "format")
        .collect();
    check(
        &host,
        &keys,
        &[
            ("name", "data"),
            ("image", "alpine:3.20"),
            ("readonly", "true"),
            ("platforms", "[linux/amd64, linux/arm64]"),
        ],
    );
    let host = Host {
        template: "volumes:\n  - name: v\n    {FIELD}\n",
        indent: 4,
        get: |c| first(&c.volumes).map(|v| v.to_out()),
    };
    check(&host, &["format"], &[("format", "filesystem")]);
}

#[test]
fn image_spec_fields() {
    let host = Host {
        template: SERVICE,
        indent: 4,
        get: service_spec,
    };
    check(
        &host,
        ImageSpec::KEYS,
        &[
            ("capabilities", "[CAP_NET_ADMIN, CAP_SYS_ADMIN]"),
            ("capabilities.add", "[CAP_SYS_TIME]"),
            ("ambient", "[CAP_NET_BIND_SERVICE]"),
            ("mounts", "\n- destination: /dev/mqueue\n  type: mqueue"),
            ("binds", "[/etc:/hostetc:ro]"),
            ("binds.add", "[/var:/var]"),
            (
                "devices",
                "\n- path: /dev/fuse\n  type: c\n  major: 10\n  minor: 229\n  mode: \"0666\"",
            ),
            ("tmpfs", "[/tmp:size=64m]"),
            ("command", "[/bin/sh, -c, \"echo hi\"]"),
            ("env", "[A=1, B=two words]"),
            ("cwd", "/srv"),
            ("net", "new"),
            ("pid", "host"),
            ("ipc", "new"),
            ("uts", "new"),
            ("userns", "new"),
            ("readonly", "true"),
            ("maskedPaths", "[/proc/kcore]"),
            ("readonlyPaths", "[/proc/sys]"),
            ("uid", "1000"),
            ("gid", "s"),
            ("additionalGids", "[10, s]"),
            ("noNewPrivileges", "true"),
            ("hostname", "web"),
            ("oomScoreAdj", "-800"),
            ("rootfsPropagation", "rshared"),
            ("cgroupsPath", "/slipway/s"),
            ("resources", "\n  memory:\n    limit: 1048576"),
            ("sysctl", "\n  net.ipv4.ip_forward: \"1\""),
            ("rlimits", "[\"nofile,1024,4096\"]"),
            (
                "uidMappings",
                "\n- hostID: 100000\n  containerID: 0\n  size: 65536",
            ),
            (
                "gidMappings",
                "\n- hostID: 100000\n  containerID: 0\n  size: 65536",
            ),
            ("annotations", "\n  org.slipway.restart: always"),
            ("runtime", "\n  mkdir: [/var/lib/s]"),
        ],
    );
}

/// A mapping nested in a service, reached through `path` from the spec.
fn nested(
    template: &'static str,
    indent: usize,
    get: fn(&Config) -> Option<Out>,
    keys: &[&str],
    table: &[(&str, &str)],
) {
    check(
        &Host {
            template,
            indent,
            get,
        },
        keys,
        table,
    );
}

fn spec(c: &Config) -> Option<ImageSpec> {
    first(&c.services).map(|s| s.spec)
}

#[test]
fn mount_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    mounts:\n      - {FIELD}\n",
        8,
        |c| first(&spec(c)?.mounts).map(|m| m.to_out()),
        Mount::KEYS,
        &[
            ("destination", "/data"),
            ("type", "bind"),
            ("source", "/var/data"),
            ("options", "[rbind, ro]"),
            ("uidmappings", "\n- hostID: 1\n  containerID: 0\n  size: 1"),
            ("gidmappings", "\n- hostID: 1\n  containerID: 0\n  size: 1"),
        ],
    );
}

#[test]
fn id_mapping_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    uidMappings:\n      - {FIELD}\n",
        8,
        |c| first(&spec(c)?.uid_mappings).map(|m| m.to_out()),
        IdMapping::KEYS,
        &[
            ("hostID", "100000"),
            ("containerID", "0"),
            ("size", "65536"),
        ],
    );
}

#[test]
fn device_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    devices:\n      - {FIELD}\n",
        8,
        |c| first(&spec(c)?.devices).map(|d| d.to_out()),
        Device::KEYS,
        &[
            ("path", "/dev/sda"),
            ("type", "b"),
            ("major", "8"),
            ("minor", "0"),
            ("mode", "\"0660\""),
        ],
    );
}

fn resources(c: &Config) -> Option<Resources> {
    spec(c)?.resources.map(|r| r.value)
}

#[test]
fn resources_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      {FIELD}\n",
        6,
        |c| resources(c).map(|r| r.to_out()),
        Resources::KEYS,
        &[
            ("devices", "\n- allow: false\n  access: rwm"),
            ("memory", "\n  limit: 1"),
            ("cpu", "\n  shares: 512"),
            ("pids", "\n  limit: 100"),
            ("blockio", "\n  weight: 500"),
            ("hugepageLimits", "\n- pageSize: 2MB\n  limit: 0"),
            ("network", "\n  classID: 7"),
        ],
    );
}

#[test]
fn device_cgroup_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      devices:\n        - {FIELD}\n",
        10,
        |c| first(&resources(c)?.devices).map(|d| d.to_out()),
        DeviceCgroup::KEYS,
        &[
            ("allow", "true"),
            ("type", "c"),
            ("major", "1"),
            ("minor", "3"),
            ("access", "rw"),
        ],
    );
}

#[test]
fn memory_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      memory:\n        {FIELD}\n",
        8,
        |c| resources(c)?.memory.map(|m| m.to_out()),
        Memory::KEYS,
        &[
            ("limit", "536870912"),
            ("reservation", "268435456"),
            ("swap", "-1"),
            ("kernel", "0"),
            ("kernelTCP", "0"),
            ("swappiness", "60"),
            ("disableOOMKiller", "true"),
        ],
    );
}

#[test]
fn cpu_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      cpu:\n        {FIELD}\n",
        8,
        |c| resources(c)?.cpu.map(|m| m.to_out()),
        Cpu::KEYS,
        &[
            ("shares", "1024"),
            ("quota", "50000"),
            ("period", "100000"),
            ("realtimeRuntime", "950000"),
            ("realtimePeriod", "1000000"),
            ("cpus", "\"0-1\""),
            ("mems", "\"0\""),
        ],
    );
}

#[test]
fn pids_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      pids:\n        {FIELD}\n",
        8,
        |c| resources(c)?.pids.map(|m| m.to_out()),
        Pids::KEYS,
        &[("limit", "64")],
    );
}

#[test]
fn blockio_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      blockio:\n        {FIELD}\n",
        8,
        |c| resources(c)?.blockio.map(|m| m.to_out()),
        BlockIo::KEYS,
        &[
            ("weight", "500"),
            ("leafWeight", "300"),
            ("weightDevice", "\n- major: 8\n  minor: 0\n  weight: 600"),
            (
                "throttleReadBpsDevice",
                "\n- major: 8\n  minor: 0\n  rate: 1048576",
            ),
            (
                "throttleWriteBpsDevice",
                "\n- major: 8\n  minor: 0\n  rate: 1048576",
            ),
            (
                "throttleReadIOPSDevice",
                "\n- major: 8\n  minor: 0\n  rate: 100",
            ),
            (
                "throttleWriteIOPSDevice",
                "\n- major: 8\n  minor: 0\n  rate: 100",
            ),
        ],
    );
}

#[test]
fn weight_and_throttle_device_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      blockio:\n        weightDevice:\n          - {FIELD}\n",
        12,
        |c| first(&resources(c)?.blockio?.value.weight_device).map(|d| d.to_out()),
        WeightDevice::KEYS,
        &[
            ("major", "8"),
            ("minor", "16"),
            ("weight", "100"),
            ("leafWeight", "50"),
        ],
    );
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      blockio:\n        throttleReadBpsDevice:\n          - {FIELD}\n",
        12,
        |c| first(&resources(c)?.blockio?.value.throttle_read_bps_device).map(|d| d.to_out()),
        ThrottleDevice::KEYS,
        &[("major", "8"), ("minor", "16"), ("rate", "4096")],
    );
}

#[test]
fn hugepage_and_network_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      hugepageLimits:\n        - {FIELD}\n",
        10,
        |c| first(&resources(c)?.hugepage_limits).map(|d| d.to_out()),
        HugepageLimit::KEYS,
        &[("pageSize", "2MB"), ("limit", "209715200")],
    );
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      network:\n        {FIELD}\n",
        8,
        |c| resources(c)?.network.map(|d| d.to_out()),
        Network::KEYS,
        &[
            ("classID", "1048577"),
            ("priorities", "\n- name: eth0\n  priority: 500"),
        ],
    );
    nested(
        "services:\n  - name: s\n    image: alpine\n    resources:\n      network:\n        priorities:\n          - {FIELD}\n",
        12,
        |c| first(&resources(c)?.network?.value.priorities).map(|d| d.to_out()),
        InterfacePriority::KEYS,
        &[("name", "eth0"), ("priority", "100")],
    );
}

fn runtime(c: &Config) -> Option<Runtime> {
    spec(c)?.runtime.map(|r| r.value)
}

#[test]
fn runtime_fields() {
    nested(
        "services:\n  - name: s\n    image: alpine\n    runtime:\n      {FIELD}\n",
        6,
        |c| runtime(c).map(|r| r.to_out()),
        Runtime::KEYS,
        &[
            ("cgroups", "[slipway/s]"),
            ("mounts", "\n- destination: /run/s\n  type: tmpfs"),
            ("mkdir", "[/var/lib/s]"),
            ("interfaces", "\n- name: wg0\n  add: wireguard"),
            ("bindNS", "\n  net: /run/netns/s"),
            ("namespace", "services.slipway"),
        ],
    );
    nested(
        "services:\n  - name: s\n    image: alpine\n    runtime:\n      interfaces:\n        - {FIELD}\n",
        10,
        |c| first(&runtime(c)?.interfaces).map(|d| d.to_out()),
        Interface::KEYS,
        &[
            ("name", "eth1"),
            ("add", "veth"),
            ("peer", "eth1-peer"),
            ("createInRoot", "true"),
        ],
    );
    nested(
        "services:\n  - name: s\n    image: alpine\n    runtime:\n      bindNS:\n        {FIELD}\n",
        8,
        |c| runtime(c)?.bind_ns.map(|d| d.to_out()),
        BindNs::KEYS,
        &[
            ("cgroup", "/run/ns/cgroup"),
            ("ipc", "/run/ns/ipc"),
            ("mnt", "/run/ns/mnt"),
            ("net", "/run/netns/s"),
            ("pid", "/run/ns/pid"),
            ("user", "/run/ns/user"),
            ("uts", "/run/ns/uts"),
        ],
    );
}

#[test]
fn presence_of_empty_values_is_kept() {
    let c = parse_unchecked(
        "p.yml",
        "services:\n  - name: s\n    image: alpine\n    binds: []\n    sysctl: {}\n    cwd: \"\"\n",
    )
    .unwrap();
    let s = &c.services.unwrap().value[0].spec;
    assert_eq!(s.binds.as_ref().map(|b| b.value.len()), Some(0));
    assert_eq!(s.sysctl.as_ref().map(|m| m.value.0.len()), Some(0));
    assert_eq!(s.cwd.as_ref().map(|c| c.value.as_str()), Some(""));
    assert!(s.binds_add.is_none());
    assert!(s.capabilities.is_none());
}

#[test]
fn ids_are_numbers_or_names() {
    let c = parse_unchecked(
        "p.yml",
        "services:\n  - name: s\n    image: alpine\n    uid: 0\n    gid: root\n    additionalGids: [1, s]\n",
    )
    .unwrap();
    let s = &c.services.unwrap().value[0].spec;
    assert_eq!(s.uid.as_ref().unwrap().value, slipway_config::Id::Number(0));
    assert_eq!(
        s.gid.as_ref().unwrap().value,
        slipway_config::Id::Name("root".into())
    );
}

#[test]
fn references_are_normalised_like_linuxkit() {
    let c = parse_unchecked(
        "p.yml",
        "init: [redis, foo/bar:1, localhost:5000/x, ghcr.io/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000]\n",
    )
    .unwrap();
    let got: Vec<String> = c.init().iter().map(|i| i.to_string()).collect();
    assert_eq!(
        got,
        [
            "docker.io/library/redis",
            "docker.io/foo/bar:1",
            "localhost:5000/x",
            "ghcr.io/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ]
    );
}

#[test]
fn package_references_are_relative_to_the_file() {
    let loaded = slipway_config::load(vec![slipway_config::Input {
        name: "examples/x.yml".into(),
        base_dir: "/repo/examples".into(),
        bytes: b"init:\n  - \"@pkg:../pkg/init\"\nservices:\n  - name: a\n    image: \"@pkg:./web\"\n    env: [\"X=@pkg:not-an-image\"]\n".to_vec(),
    }])
    .unwrap();
    let dirs: Vec<String> = loaded
        .packages
        .iter()
        .map(|p| p.dir.display().to_string())
        .collect();
    assert_eq!(dirs, ["/repo/pkg/init", "/repo/examples/web"]);
    assert_eq!(loaded.packages[0].span.line, 2);
    assert_eq!(loaded.config.init()[0].to_string(), "@pkg:/repo/pkg/init");
}
