//! Golden `config.json` / `runtime.json` for a service using every field,
//! and for the precedence of image config < label < YAML. Every
//! `config.json` must also read as an `oci_spec` runtime spec.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use slipway_assemble::bundle_json::{IdMap, RootMount, Volumes, config_json, runtime_json};
use slipway_config::label::{ImageDefaults, parse_label, resolve};

fn entry(yaml: &str) -> slipway_config::model::Image {
    let loaded = slipway_config::load::load_str("test.yml", yaml)
        .unwrap_or_else(|e| panic!("{}", e.diagnostics.render_plain(&e.sources)));
    loaded
        .config
        .section(slipway_config::model::Section::Services)
        .first()
        .expect("a service")
        .clone()
}

fn check_spec(json: &str) {
    let spec: oci_spec::runtime::Spec =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not an OCI spec: {e}\n{json}"));
    assert!(spec.process().is_some());
    // crun 1.8 (pkg/crun, from Debian 12) runs only these versions.
    let version = spec.version();
    assert!(
        version.starts_with("1.0.") || version.starts_with("1.1."),
        "ociVersion {version} is refused by crun 1.8"
    );
    let _: serde_json::Value = serde_json::from_str(json).unwrap();
}

fn ids() -> IdMap {
    [("svc".to_string(), 100), ("other".to_string(), 101)]
        .into_iter()
        .collect()
}

fn volumes() -> Volumes {
    [("data".to_string(), false), ("ro".to_string(), true)]
        .into_iter()
        .collect()
}

const EVERY_FIELD: &str = r#"onboot:
  - name: other
    image: example.org/other:1
volumes:
  - name: data
services:
  - name: svc
    image: example.org/svc:1
    capabilities: [CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_CHOWN]
    capabilities.add: [CAP_SYS_TIME]
    ambient: [CAP_NET_ADMIN]
    mounts:
      - type: bind
        source: /var/lib
        destination: /var/lib
        options: [rbind, rw]
    binds: ["/etc/resolv.conf:/etc/resolv.conf:ro", "data:/data"]
    binds.add: ["/run:/run"]
    devices:
      - path: /dev/console
        type: c
        major: 5
        minor: 1
        mode: "0666"
      - path: all
        type: b
    tmpfs: ["/tmp:size=10m"]
    command: ["/usr/bin/svc", "--flag"]
    env: ["A=1", "B=2"]
    cwd: /srv
    net: host
    pid: host
    ipc: host
    uts: host
    readonly: true
    maskedPaths: [/proc/kcore]
    readonlyPaths: [/proc/sys]
    uid: 1000
    gid: other
    additionalGids: [10, svc]
    noNewPrivileges: true
    hostname: box
    oomScoreAdj: -500
    rootfsPropagation: shared
    cgroupsPath: /svc
    resources:
      memory:
        limit: 1048576
      cpu:
        shares: 512
    sysctl:
      net.ipv4.ip_forward: "1"
      kernel.shmmax: "4096"
    rlimits: ["nofile,1024,4096", "nproc,100,200"]
    annotations:
      org.example.b: two
      org.example.a: one
    runtime:
      cgroups: [svc]
      mkdir: [/var/lib/svc]
      mounts:
        - type: bind
          source: /host
          destination: /guest
          options: [rbind]
      interfaces:
        - name: eth1
          add: veth
          peer: veth-host
      bindNS:
        net: /run/netns/svc
      namespace: svc
"#;

#[test]
fn a_service_using_every_field() {
    let e = entry(EVERY_FIELD);
    let r = resolve(&e, None, &ImageDefaults::default());
    let config = config_json(&r, &ids(), &volumes()).unwrap();
    check_spec(&config);
    insta::assert_snapshot!("every_field_config", config);
    let ro = runtime_json(
        &r.runtime,
        &RootMount::Bind {
            dir: "containers/services/svc".into(),
            root: "containers/services/svc/rootfs".into(),
        },
    );
    let _: serde_json::Value = serde_json::from_str(&ro).unwrap();
    insta::assert_snapshot!("every_field_runtime_ro", ro);
    let rw = runtime_json(
        &r.runtime,
        &RootMount::Overlay {
            dir: "containers/services/svc".into(),
            lower: "containers/onboot/000-first/lower".into(),
        },
    );
    let _: serde_json::Value = serde_json::from_str(&rw).unwrap();
    insta::assert_snapshot!("every_field_runtime_rw", rw);
}

#[test]
fn image_config_then_label_then_yaml() {
    let image = ImageDefaults {
        entrypoint: vec!["/entry".into()],
        cmd: vec!["from-image".into()],
        env: vec!["PATH=/image/bin".into(), "IMAGE=1".into()],
        working_dir: "/image".into(),
    };
    let (label, _) = parse_label(
        "example.org/svc:1",
        r#"{"capabilities":["CAP_NET_ADMIN"],"binds":["/label:/label"],"env":["LABEL=1"],"hostname":"label","cwd":"/label","net":"host"}"#,
    )
    .unwrap();
    // Only the image: its entrypoint + cmd, env and working directory.
    let bare = entry("services:\n  - name: svc\n    image: example.org/svc:1\n");
    let only_image = config_json(&resolve(&bare, None, &image), &ids(), &volumes()).unwrap();
    check_spec(&only_image);
    insta::assert_snapshot!("precedence_image", only_image);
    // The label over the image.
    let labelled = config_json(&resolve(&bare, Some(&label), &image), &ids(), &volumes()).unwrap();
    check_spec(&labelled);
    insta::assert_snapshot!("precedence_label", labelled);
    // The YAML over both: command, env, hostname, binds.add beside the label's binds.
    let yaml = entry(
        "services:\n  - name: svc\n    image: example.org/svc:1\n    command: [/yaml]\n    env: [YAML=1]\n    hostname: yaml\n    binds.add: [/yaml:/yaml]\n",
    );
    let overridden =
        config_json(&resolve(&yaml, Some(&label), &image), &ids(), &volumes()).unwrap();
    check_spec(&overridden);
    insta::assert_snapshot!("precedence_yaml", overridden);
}

#[test]
fn a_relative_mount_destination_is_mounted_from_the_container_root() {
    let e = entry(
        "services:\n  - name: svc\n    image: example.org/svc:1\n    mounts:\n      \
         - type: overlay\n        source: overlay\n        destination: writable-etc\n        \
         options: [rw, lowerdir=/etc, upperdir=/run/u, workdir=/run/w]\n",
    );
    let r = resolve(&e, None, &ImageDefaults::default());
    let config = config_json(&r, &ids(), &volumes()).unwrap();
    check_spec(&config);
    let spec: serde_json::Value = serde_json::from_str(&config).unwrap();
    let mounts = spec["mounts"].as_array().unwrap();
    let overlay = mounts.iter().find(|m| m["type"] == "overlay").unwrap();
    assert_eq!(overlay["destination"], "/writable-etc");
    assert!(!mounts.iter().any(|m| m["destination"] == "writable-etc"));
}
