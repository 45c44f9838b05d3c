//! Every diagnostic the configuration front end gives, as rendered for a
//! user (`file:line:column: severity: message`, help and notes), kept as
//! snapshots so that a change in wording or position is seen in review.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use slipway_config::{Input, load};

/// Render everything `load` reports for `text`.
fn report(name: &str, text: &str) -> String {
    let input = Input {
        name: format!("{name}.yml"),
        base_dir: "/work".into(),
        bytes: text.as_bytes().to_vec(),
    };
    match load(vec![input]) {
        Ok(loaded) => format!("ok\n{}", loaded.warnings.render_plain(&loaded.sources)),
        Err(err) => err.diagnostics.render_plain(&err.sources),
    }
}

macro_rules! cases {
    ($($name:ident: $text:expr;)*) => {$(
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), report(stringify!($name), $text));
        }
    )*};
}

const SVC: &str = "services:\n  - name: s\n    image: alpine\n";

fn svc(extra: &str) -> String {
    format!("{SVC}{extra}")
}

cases! {
    syntax_error: "services:\n  - name: a\n   image: b\n  c: [\n";
    syntax_tab_in_indentation: "onboot:\n  - name: x\n\t  image: y\n";
    syntax_unclosed_double_quote: "kernel:\n  image: a/b:1\n  cmdline: \"console=tty0\ninit:\n  - x\n";
    syntax_unclosed_single_quote: "init:\n  - 'a/b:1\nonboot: []\n";
    syntax_unclosed_bracket: "kernel:\n  image: a/b:1\ninit: [a, b\nonboot:\n  - name: x\n";
    syntax_unclosed_brace: "onboot:\n  - name: x\n    image: {a: b\nservices: []\n";
    syntax_wrong_indentation: "onboot:\n  - name: x\n    image: y\n   command: [a]\n";
    syntax_hash_in_block_scalar: "files:\n  - path: etc/resolv.conf\n    contents: |\n#      domain test.local\n      nameserver 10.10.1.101\n";
    syntax_second_document: "kernel:\n  image: a/b:1\n---\ninit:\n  - x\n";
    unknown_top_level_key: "unknownField: true\nservices: []\n";
    unknown_key_with_hint: &svc("    imgae: x\n");
    unknown_key_without_hint: &svc("    zzzzzzzzz: x\n");
    wrong_type_list: &svc("    binds: /etc:/etc\n");
    wrong_type_number_for_string: &svc("    cwd: 42\n");
    wrong_type_bool: &svc("    readonly: yes\n");
    wrong_type_mapping: "kernel: [a]\n";
    out_of_range: &svc("    uid: -1\n");
    key_type: &svc("    sysctl:\n      1: x\n");
    duplicate_key: &svc("    cwd: /a\n    cwd: /b\n");
    missing_name_and_image: "services:\n  - cwd: /\n";
    image_reference: "init: [\"Nginx:latest\", \"a b\"]\n";
    package_reference_empty: "init: [\"@pkg:\"]\n";
    duplicate_service: "services:\n  - name: web\n    image: nginx\n  - name: web\n    image: nginx\n";
    duplicate_onboot_name_warns: "onboot:\n  - name: fmt\n    image: alpine\n  - name: fmt\n    image: alpine\n";
    bad_name: "onboot:\n  - name: \"a/b\"\n    image: alpine\n  - name: \"..\"\n    image: alpine\n";
    capability_unknown: &svc("    capabilities: [CAP_SYS_ADMN, net_admin]\n");
    capability_all_with_others: &svc("    capabilities: [all, CAP_NET_ADMIN]\n");
    capability_keyword_in_add: &svc("    capabilities.add: [all]\n");
    bind_syntax: &svc("    binds: [/a, \"a:/b:c:d\", \"/a:b\"]\n");
    bind_options: &svc("    binds: [\"/a:/b:rw,,rbind\", \"/a:/c:rwx\"]\n");
    unknown_volume: &svc("    binds: [\"dat:/data\"]\nvolumes:\n  - name: data\n");
    readonly_volume_bound_rw: &svc("    binds: [\"data:/data\"]\n    binds.add: [\"data:/d2:ro\"]\nvolumes:\n  - name: data\n    readonly: true\n");
    readonly_volume_in_mounts: &svc("    mounts:\n      - type: bind\n        source: data\n        destination: /data\nvolumes:\n  - name: data\n    readonly: true\n");
    tmpfs_syntax: &svc("    tmpfs: [\"/a:b:c\", \"tmp\", \"/t:size=1m, mode=1777\"]\n");
    mount_type_missing: &svc("    mounts:\n      - destination: /x\n        source: /y\n");
    mount_destination_missing: &svc("    mounts:\n      - type: tmpfs\n");
    mount_destination_relative_warns: &svc("    mounts:\n      - type: overlay\n        source: overlay\n        destination: writable-etc\n");
    device_problems: &svc("    devices:\n      - path: /dev/x\n        type: z\n        mode: \"0660\"\n      - path: /dev/y\n        type: c\n        mode: \"0999\"\n      - type: c\n      - path: dev/z\n        type: b\n        major: 1\n        minor: 1\n");
    device_access: &svc("    resources:\n      devices:\n        - type: q\n          access: rwx\n");
    cwd_relative: &svc("    cwd: srv\n");
    empty_command_warns: &svc("    command: []\n");
    env_without_equals: &svc("    env: [FOO, \"=bar\"]\n");
    namespace_value: &svc("    net: bridge\n    pid: hots\n");
    unknown_uid_name: &svc("    uid: nobody\n    additionalGids: [ss]\n");
    oom_score_adj_range: &svc("    oomScoreAdj: 2000\n");
    rootfs_propagation: &svc("    rootfsPropagation: sharing\n");
    rlimits: &svc("    rlimits: [\"nofile,1024\", \"nofiles,1,2\", \"core,10,5\", \"cpu,x,1\"]\n");
    sysctl_name: &svc("    sysctl:\n      \"\": \"1\"\n      ../x: \"1\"\n");
    id_mapping_fields: &svc("    uidMappings:\n      - hostID: 1\n        size: 0\n");
    masked_path_relative: &svc("    maskedPaths: [proc/kcore]\n");
    runtime_problems: &svc("    runtime:\n      cgroups: [\"../x\"]\n      mkdir: [\"\"]\n      interfaces:\n        - add: veth\n        - name: averyveryverylongname\n          add: bridge\n          peer: x\n      bindNS:\n        net: run/netns/x\n");
    annotations: "services:\n  - name: web\n    image: nginx\n    annotations:\n      org.slipway.restart: sometimes\n      org.slipway.ready: \"udp:53\"\n      org.slipway.after: \"db, web\"\n      org.slipway.consle: \"true\"\n      org.slipway.frobnicate: x\n      com.example.other: kept\n";
    annotation_on_onboot_warns: "onboot:\n  - name: fmt\n    image: alpine\n    annotations:\n      org.slipway.restart: always\n";
    after_cycle: "services:\n  - name: a\n    image: nginx\n    annotations:\n      org.slipway.after: b\n  - name: b\n    image: nginx\n    annotations:\n      org.slipway.after: a\n";
    volume_problems: "volumes:\n  - name: My Vol\n  - name: \"\"\n  - name: v\n    format: tarball\n  - name: v\n    platforms: [linux/amd64]\n  - name: w\n    format: oci\n  - name: x\n    format: oci\n    image: alpine\n    platforms: [\"linux/sparc\"]\n  - readonly: true\n";
    file_problems: "files:\n  - contents: x\n  - path: /\n    contents: x\n  - path: etc/a\n  - path: etc/b\n    contents: x\n    source: /y\n  - path: etc/c\n    directory: true\n    contents: x\n  - path: etc/d\n    symlink: \"\"\n  - path: ../e\n    contents: x\n  - path: etc/f\n    metadata: toml\n  - path: etc/g\n    contents: x\n    mode: rw-r--r--\n  - path: etc/h\n    contents: x\n    uid: nobody\n";
    file_warnings: "files:\n  - path: var/state\n    contents: x\n  - path: etc/x\n    contents: x\n    optional: true\n  - path: /etc/x\n    contents: y\n";
    kernel_without_image_warns: "kernel:\n  cmdline: console=ttyS0\n";
    kernel_path: "kernel:\n  image: linuxkit/kernel:6.12\n  binary: ../../bzImage\n";
    trust_warns: "trust:\n  org: [linuxkit]\n";
    empty_file_warns: "# nothing here\n";
    tabs: "services:\n\t- name: a\n";
    unquoted_package: "init:\n  - @pkg:./init\n";
}

#[test]
fn invalid_utf8() {
    let input = Input {
        name: "bytes.yml".into(),
        base_dir: "/".into(),
        bytes: b"services:\n  - name: \xff\xfe\n".to_vec(),
    };
    let err = load(vec![input]).unwrap_err();
    insta::assert_snapshot!("invalid_utf8", err.diagnostics.render_plain(&err.sources));
}

/// The LinuxKit-style invalid fixtures: each fails, at the line its header names.
#[test]
fn invalid_fixtures() {
    insta::glob!("../../../tests/compat/invalid", "*.yml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let rendered = report(&name, &text);
        assert!(
            !rendered.starts_with("ok\n"),
            "{name} should not validate:\n{rendered}"
        );
        insta::assert_snapshot!(rendered);
    });
}
