//! The image label and the precedence rules: image config < label < YAML.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use slipway_config::label::{ImageDefaults, parse_label, resolve};
use slipway_config::{Id, Image, load_str};

fn entry(yaml: &str) -> Image {
    let text = format!("services:\n  - name: web\n    image: nginx\n{yaml}");
    let loaded = load_str("entry.yml", &text).unwrap_or_else(|e| {
        panic!("{}", e.diagnostics.render_plain(&e.sources));
    });
    loaded.config.services.unwrap().value.remove(0)
}

fn label(text: &str) -> slipway_config::ImageSpec {
    match parse_label("docker.io/library/nginx:1", text) {
        Ok((spec, _)) => spec,
        Err(e) => panic!("{}", e.diagnostics.render_plain(&e.sources)),
    }
}

fn image() -> ImageDefaults {
    ImageDefaults {
        entrypoint: vec!["/docker-entrypoint.sh".into()],
        cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        env: vec!["PATH=/usr/bin".into()],
        working_dir: "/srv".into(),
    }
}

#[test]
fn image_config_is_the_default() {
    let r = resolve(&entry(""), None, &image());
    assert_eq!(
        r.args,
        ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
    );
    assert_eq!(r.env, ["PATH=/usr/bin"]);
    assert_eq!(r.cwd, "/srv");
    assert_eq!(
        (r.net.as_str(), r.pid.as_str(), r.ipc.as_str()),
        ("root", "", "root")
    );
    assert_eq!(r.uid, Id::Number(0));
    assert!(!r.readonly);
}

#[test]
fn label_overrides_image_and_yaml_overrides_label() {
    let l = label(
        r#"{"command": ["/label"], "env": ["L=1"], "cwd": "/label", "readonly": true, "net": "new", "capabilities": ["CAP_NET_ADMIN"]}"#,
    );
    let r = resolve(&entry(""), Some(&l), &image());
    assert_eq!(r.args, ["/label"]);
    assert_eq!(r.env, ["L=1"]);
    assert_eq!(r.cwd, "/label");
    assert!(r.readonly);
    assert_eq!(r.net, "new");
    assert_eq!(r.capabilities, ["CAP_NET_ADMIN"]);

    let y = entry(
        "    command: [/yaml]\n    readonly: false\n    net: host\n    capabilities: [CAP_SYS_TIME]\n",
    );
    let r = resolve(&y, Some(&l), &image());
    assert_eq!(r.args, ["/yaml"]);
    assert!(!r.readonly);
    assert_eq!(r.net, "host");
    assert_eq!(r.capabilities, ["CAP_SYS_TIME"]);
    assert_eq!(
        r.env,
        ["L=1"],
        "an absent YAML field falls back to the label"
    );
}

#[test]
fn present_empty_list_overrides_but_empty_string_does_not() {
    let l = label("binds: [\"/a:/a\"]\nenv: [A=1]\ncwd: /label\nhostname: lab\n");
    let y = entry("    binds: []\n    env: []\n    cwd: \"\"\n    hostname: \"\"\n");
    let r = resolve(&y, Some(&l), &image());
    assert!(r.binds.is_empty());
    assert!(r.env.is_empty());
    assert_eq!(r.cwd, "/label");
    assert_eq!(r.hostname, "lab");
}

#[test]
fn add_fields_append_to_the_label_without_duplicates() {
    let l = label(
        "binds: [\"/dev:/dev\", \"/lib/modules:/lib/modules\"]\ncapabilities: [CAP_SYS_ADMIN]\n",
    );
    let y = entry(
        "    binds.add: [\"/dev:/dev\", \"/var:/var\"]\n    capabilities.add: [CAP_SYS_ADMIN, CAP_NET_ADMIN]\n",
    );
    let r = resolve(&y, Some(&l), &image());
    assert_eq!(
        r.binds,
        ["/dev:/dev", "/lib/modules:/lib/modules", "/var:/var"]
    );
    assert_eq!(r.capabilities, ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]);

    // A YAML `binds` replaces both the label's binds and `binds.add`.
    let y = entry("    binds: [\"/x:/x\"]\n    binds.add: [\"/var:/var\"]\n");
    assert_eq!(resolve(&y, Some(&l), &image()).binds, ["/x:/x"]);
}

#[test]
fn all_and_none_expand() {
    let r = resolve(&entry("    capabilities: [ALL]\n"), None, &image());
    assert_eq!(r.capabilities.len(), slipway_config::caps::ALL.len());
    let r = resolve(
        &entry("    capabilities: [none]\n    ambient: [all]\n"),
        None,
        &image(),
    );
    assert!(r.capabilities.is_empty());
    assert_eq!(r.ambient.len(), slipway_config::caps::ALL.len());
}

#[test]
fn runtime_merges_field_by_field() {
    let l = label(
        "runtime:\n  mkdir: [/var/lib/x]\n  bindNS:\n    net: /run/netns/a\n    uts: /run/uts\n  namespace: lab\n",
    );
    let y = entry("    runtime:\n      cgroups: [x]\n      bindNS:\n        net: /run/netns/b\n");
    let r = resolve(&y, Some(&l), &image()).runtime;
    assert_eq!(r.mkdir, ["/var/lib/x"]);
    assert_eq!(r.cgroups, ["x"]);
    assert_eq!(r.bind_ns.net, "/run/netns/b");
    assert_eq!(r.bind_ns.uts, "/run/uts");
    assert_eq!(r.namespace, "lab");
}

#[test]
fn rlimits_and_ids_resolve() {
    let l = label("rlimits: [\"nofile,10,20\"]\nuid: 7\n");
    let y = entry("    gid: web\n");
    let r = resolve(&y, Some(&l), &image());
    assert_eq!(r.rlimits[0].kind, "RLIMIT_NOFILE");
    assert_eq!((r.rlimits[0].soft, r.rlimits[0].hard), (10, 20));
    assert_eq!(r.uid, Id::Number(7));
    assert_eq!(r.gid, Id::Name("web".into()));
}

#[test]
fn labels_in_json_and_yaml_are_checked() {
    let err = parse_label(
        "x",
        r#"{"name": "a", "image": "b", "capabilities": ["CAP_NOPE"], "bogus": 1}"#,
    )
    .unwrap_err();
    let out = err.diagnostics.render_plain(&err.sources);
    assert!(
        out.contains("`name` cannot be set in an image label"),
        "{out}"
    );
    assert!(
        out.contains("`image` cannot be set in an image label"),
        "{out}"
    );
    assert!(out.contains("unknown capability `CAP_NOPE`"), "{out}");
    assert!(out.contains("unknown key `bogus` in label"), "{out}");
    assert!(
        out.starts_with("org.mobyproject.config label of x:1:"),
        "{out}"
    );

    let err = parse_label("x", "[1, 2]").unwrap_err();
    assert!(
        err.diagnostics
            .render_plain(&err.sources)
            .contains("expected a mapping")
    );

    let (_, warnings) = parse_label("x", "binds.add: [\"/a:/a\"]\n").unwrap();
    assert!(
        warnings
            .render_plain(&slipway_config::SourceMap::new())
            .contains("no effect in a label")
    );
}
