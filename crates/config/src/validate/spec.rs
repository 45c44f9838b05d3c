//! Checking the fields an image entry and an image label share: the
//! container's process, namespaces, ids, limits and resources. Mounts are
//! checked in [`super::mounts`], the runtime section in [`super::runtime`].

use crate::caps;
use crate::decode::Id;
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{IdMapping, ImageSpec, Strings};
use crate::source::{Sp, Span};

use super::Context;
use super::limits::parse_rlimit;
use super::mounts::check_storage;
use super::runtime::check_runtime;

/// Checks of the fields an image entry and an image label share, in the
/// order of the fields in LinuxKit's schema.
pub fn check_spec(spec: &ImageSpec, path: &str, cx: &Context, diags: &mut Diagnostics) {
    check_capability_lists(spec, path, diags);
    check_storage(spec, path, cx, diags);
    check_process(spec, path, diags);
    check_namespaces(spec, path, diags);
    check_ids(spec, path, cx, diags);
    check_oom_score(spec, path, diags);
    check_propagation(spec, path, diags);
    check_rlimits(spec, path, diags);
    check_sysctl(spec, path, diags);
    check_id_mappings(spec, path, diags);
    check_resources(spec, path, diags);
    check_paths(spec, path, diags);
    if let Some(runtime) = &spec.runtime {
        check_runtime(&runtime.value, &format!("{path}.runtime"), cx, diags);
    }
}

/// `capabilities`, `capabilities.add` and `ambient`.
fn check_capability_lists(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    for (key, list) in [
        ("capabilities", &spec.capabilities),
        ("capabilities.add", &spec.capabilities_add),
        ("ambient", &spec.ambient),
    ] {
        if let Some(list) = list {
            check_capabilities(
                list,
                &format!("{path}.{key}"),
                key != "capabilities.add",
                diags,
            );
        }
    }
}

/// The working directory, the command and the environment.
fn check_process(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    if let Some(cwd) = &spec.cwd
        && !cwd.value.is_empty()
    {
        check_absolute(
            &cwd.value,
            cwd.span,
            &format!("{path}.cwd"),
            "working directory",
            diags,
        );
    }
    if let Some(command) = &spec.command
        && command.value.is_empty()
    {
        diags.push(Diagnostic::warning(
                "empty-command",
                command.span,
                format!("{path}.command is empty: it overrides the image's command and leaves the container nothing to run"),
            ));
    }
    for (i, e) in spec.env.iter().flat_map(|l| l.value.iter()).enumerate() {
        if !e.value.contains('=') {
            diags.push(
                Diagnostic::warning(
                    "env",
                    e.span,
                    format!("{path}.env[{i}]: `{}` has no `=`", e.value),
                )
                .with_help("environment entries are `NAME=value`"),
            );
        } else if e.value.starts_with('=') {
            diags.push(Diagnostic::error(
                "env",
                e.span,
                format!("{path}.env[{i}]: `{}` has an empty variable name", e.value),
            ));
        }
    }
}

/// `net`, `pid`, `ipc`, `uts` and `userns`.
fn check_namespaces(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    check_namespace(
        &spec.net,
        &format!("{path}.net"),
        &["host", "root", "none", "new"],
        diags,
    );
    check_namespace(
        &spec.pid,
        &format!("{path}.pid"),
        &["host", "root", "new", ""],
        diags,
    );
    check_namespace(
        &spec.ipc,
        &format!("{path}.ipc"),
        &["host", "root", "new"],
        diags,
    );
    check_namespace(
        &spec.uts,
        &format!("{path}.uts"),
        &["host", "root", "new"],
        diags,
    );
    check_namespace(
        &spec.userns,
        &format!("{path}.userns"),
        &["host", "root", "new"],
        diags,
    );
}

/// `uid`, `gid` and `additionalGids`.
fn check_ids(spec: &ImageSpec, path: &str, cx: &Context, diags: &mut Diagnostics) {
    for key in ["uid", "gid"] {
        let id = if key == "uid" { &spec.uid } else { &spec.gid };
        if let Some(id) = id {
            check_id(id, &format!("{path}.{key}"), cx, diags);
        }
    }
    for (i, g) in spec
        .additional_gids
        .iter()
        .flat_map(|l| l.value.iter())
        .enumerate()
    {
        check_id(g, &format!("{path}.additionalGids[{i}]"), cx, diags);
    }
}

/// `oomScoreAdj`.
fn check_oom_score(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    if let Some(adj) = &spec.oom_score_adj
        && !(-1000..=1000).contains(&adj.value)
    {
        diags.push(Diagnostic::error(
            "oom-score-adj",
            adj.span,
            format!(
                "{path}.oomScoreAdj: {} is out of range -1000..=1000",
                adj.value
            ),
        ));
    }
}

/// `rootfsPropagation`.
fn check_propagation(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    if let Some(p) = &spec.rootfs_propagation {
        const VALUES: &[&str] = &[
            "",
            "shared",
            "slave",
            "private",
            "rshared",
            "rslave",
            "rprivate",
            "unbindable",
            "runbindable",
        ];
        if !VALUES.contains(&p.value.as_str()) {
            diags.push(
                Diagnostic::error(
                    "rootfs-propagation",
                    p.span,
                    format!("{path}.rootfsPropagation: unknown propagation `{}`", p.value),
                )
                .with_help("expected shared, slave, private, rshared, rslave, rprivate, unbindable or runbindable"),
            );
        }
    }
}

/// `rlimits`.
fn check_rlimits(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    for (i, r) in spec.rlimits.iter().flat_map(|l| l.value.iter()).enumerate() {
        if let Err(msg) = parse_rlimit(&r.value) {
            diags.push(Diagnostic::error(
                "rlimit",
                r.span,
                format!("{path}.rlimits[{i}]: {msg}"),
            ));
        }
    }
}

/// `sysctl` names.
fn check_sysctl(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    if let Some(sysctl) = &spec.sysctl {
        for (k, _) in sysctl.value.iter() {
            if k.value.trim().is_empty()
                || k.value.contains("..")
                || k.value.starts_with(['.', '/'])
            {
                diags.push(Diagnostic::error(
                    "sysctl",
                    k.span,
                    format!("{path}.sysctl: `{}` is not a sysctl name", k.value),
                ));
            }
        }
    }
}

/// `uidMappings` and `gidMappings`.
fn check_id_mappings(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    for (key, maps) in [
        ("uidMappings", &spec.uid_mappings),
        ("gidMappings", &spec.gid_mappings),
    ] {
        for (i, m) in maps.iter().flat_map(|l| l.value.iter()).enumerate() {
            check_id_mapping(m, &format!("{path}.{key}[{i}]"), diags);
        }
    }
}

/// `resources.devices`: the device cgroup rules.
fn check_resources(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    if let Some(resources) = &spec.resources {
        for (i, d) in resources
            .devices
            .iter()
            .flat_map(|l| l.value.iter())
            .enumerate()
        {
            let p = format!("{path}.resources.devices[{i}]");
            if let Some(t) = &d.kind
                && !matches!(t.value.as_str(), "a" | "c" | "b")
            {
                diags.push(Diagnostic::error(
                    "device-type",
                    t.span,
                    format!("{p}.type: expected `a`, `c` or `b`, found `{}`", t.value),
                ));
            }
            if let Some(a) = &d.access
                && (a.value.is_empty() || !a.value.chars().all(|c| matches!(c, 'r' | 'w' | 'm')))
            {
                diags.push(Diagnostic::error(
                    "device-access",
                    a.span,
                    format!(
                        "{p}.access: expected letters from `rwm`, found `{}`",
                        a.value
                    ),
                ));
            }
        }
    }
}

/// `maskedPaths` and `readonlyPaths`.
fn check_paths(spec: &ImageSpec, path: &str, diags: &mut Diagnostics) {
    for key in ["maskedPaths", "readonlyPaths"] {
        let list = if key == "maskedPaths" {
            &spec.masked_paths
        } else {
            &spec.readonly_paths
        };
        for (i, p) in list.iter().flat_map(|l| l.value.iter()).enumerate() {
            check_absolute(
                &p.value,
                p.span,
                &format!("{path}.{key}[{i}]"),
                "path",
                diags,
            );
        }
    }
}

fn check_capabilities(
    list: &Sp<Strings>,
    path: &str,
    allow_keyword: bool,
    diags: &mut Diagnostics,
) {
    let single = list.value.len() == 1;
    for (i, cap) in list.value.iter().enumerate() {
        let name = cap.value.as_str();
        if let Some(kw) = caps::keyword(name) {
            if !allow_keyword || !single {
                diags.push(
                    Diagnostic::error(
                        "capability",
                        cap.span,
                        format!("{path}[{i}]: `{name}` must be the only entry of the list"),
                    )
                    .with_help(format!(
                        "write `[{kw}]` alone, or list capabilities by name"
                    )),
                );
            }
            continue;
        }
        if !caps::is_known(name) {
            let mut d = Diagnostic::error(
                "capability",
                cap.span,
                format!("{path}[{i}]: unknown capability `{name}`"),
            );
            if let Some(s) = caps::suggest(name) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            diags.push(d);
        }
    }
}

pub(super) fn check_absolute(p: &str, span: Span, path: &str, what: &str, diags: &mut Diagnostics) {
    if !p.starts_with('/') {
        diags.push(Diagnostic::error(
            "relative-path",
            span,
            format!("{path}: the {what} `{p}` must be an absolute path"),
        ));
    }
}

fn check_namespace(
    value: &Option<Sp<String>>,
    path: &str,
    words: &[&str],
    diags: &mut Diagnostics,
) {
    let Some(v) = value else { return };
    let s = v.value.as_str();
    if words.contains(&s) || s.is_empty() || s.starts_with('/') {
        return;
    }
    let shown: Vec<&str> = words.iter().copied().filter(|w| !w.is_empty()).collect();
    diags.push(
        Diagnostic::error(
            "namespace",
            v.span,
            format!("{path}: unknown namespace setting `{s}`"),
        )
        .with_help(format!(
            "expected {} or the absolute path of a namespace file",
            shown.join(", ")
        )),
    );
}

pub(super) fn check_id(id: &Sp<Id>, path: &str, cx: &Context, diags: &mut Diagnostics) {
    let Id::Name(name) = &id.value else { return };
    if !cx.complete || name.is_empty() || name == "root" || cx.containers.contains(name) {
        return;
    }
    let names: Vec<&str> = cx.containers.iter().map(String::as_str).collect();
    let mut d = Diagnostic::error(
        "unknown-id",
        id.span,
        format!("{path}: `{name}` is neither a number, `root`, nor the name of a container"),
    )
    .with_help("a name gives the id slipway allocates to that container (from 100, in onboot, onshutdown, services order)");
    if let Some(s) = crate::decode::closest(name, &names) {
        d = d.with_help(format!("did you mean `{s}`?"));
    }
    diags.push(d);
}

pub(super) fn check_id_mapping(m: &IdMapping, path: &str, diags: &mut Diagnostics) {
    let span = [
        m.host_id.as_ref().map(|v| v.span),
        m.container_id.as_ref().map(|v| v.span),
        m.size.as_ref().map(|v| v.span),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or_default();
    for (key, present) in [
        ("hostID", m.host_id.is_some()),
        ("containerID", m.container_id.is_some()),
        ("size", m.size.is_some()),
    ] {
        if !present {
            diags.push(Diagnostic::error(
                "id-mapping",
                span,
                format!("{path}: missing required key `{key}`"),
            ));
        }
    }
    if let Some(size) = &m.size
        && size.value == 0
    {
        diags.push(Diagnostic::error(
            "id-mapping",
            size.span,
            format!("{path}.size must be at least 1"),
        ));
    }
}
