//! Checking what a container mounts: binds, tmpfs, mounts, devices, and
//! the options they carry.

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Device, ImageSpec, Mount};
use crate::mounts::{OptionProblem, check_option, parse_bind, parse_tmpfs};
use crate::source::{Sp, Span};

use super::Context;
use super::files::parse_mode;
use super::spec::{check_absolute, check_id_mapping};

/// `binds`, `binds.add`, `tmpfs`, `mounts` and `devices`.
pub(super) fn check_storage(spec: &ImageSpec, path: &str, cx: &Context, diags: &mut Diagnostics) {
    for (key, list) in [("binds", &spec.binds), ("binds.add", &spec.binds_add)] {
        for (i, b) in list.iter().flat_map(|l| l.value.iter()).enumerate() {
            check_bind(b, &format!("{path}.{key}[{i}]"), cx, diags);
        }
    }
    for (i, t) in spec.tmpfs.iter().flat_map(|l| l.value.iter()).enumerate() {
        let p = format!("{path}.tmpfs[{i}]");
        match parse_tmpfs(&t.value) {
            Ok((dest, options)) => {
                check_absolute(dest, t.span, &p, "destination", diags);
                if let Some(o) = options {
                    check_option_list(o.split(','), t.span, &p, diags);
                }
            }
            Err(msg) => diags.push(Diagnostic::error("tmpfs", t.span, format!("{p}: {msg}"))),
        }
    }
    for (i, m) in spec.mounts.iter().flat_map(|l| l.value.iter()).enumerate() {
        check_mount(m, &format!("{path}.mounts[{i}]"), cx, false, diags);
    }
    for (i, d) in spec.devices.iter().flat_map(|l| l.value.iter()).enumerate() {
        check_device(d, &format!("{path}.devices[{i}]"), diags);
    }
}

fn check_option_list<'a>(
    options: impl Iterator<Item = &'a str>,
    span: Span,
    path: &str,
    diags: &mut Diagnostics,
) {
    for o in options {
        match check_option(o) {
            None => {}
            Some(OptionProblem::Empty) => diags.push(Diagnostic::error(
                "mount-option",
                span,
                format!("{path}: empty mount option (two commas, or a trailing comma)"),
            )),
            Some(OptionProblem::Whitespace(o)) => diags.push(Diagnostic::error(
                "mount-option",
                span,
                format!("{path}: mount option `{o}` contains white space"),
            )),
            Some(OptionProblem::Unknown(o)) => diags.push(Diagnostic::warning(
                "mount-option",
                span,
                format!("{path}: `{o}` is not a known mount flag; it is passed to the filesystem as data"),
            )),
        }
    }
}

fn check_bind(b: &Sp<String>, path: &str, cx: &Context, diags: &mut Diagnostics) {
    let bind = match parse_bind(&b.value) {
        Ok(bind) => bind,
        Err(msg) => {
            diags.push(
                Diagnostic::error("bind", b.span, format!("{path}: {msg}")).with_label("here"),
            );
            return;
        }
    };
    check_absolute(bind.destination, b.span, path, "destination", diags);
    if let Some(o) = bind.options {
        check_option_list(o.split(','), b.span, path, diags);
    }
    check_volume_source(
        bind.source,
        bind.options.map(|o| o.split(',').any(|x| x == "ro")),
        b.span,
        path,
        cx,
        diags,
    );
}

/// A source not starting with `/` names a volume; a read-only volume must be bound `ro`.
fn check_volume_source(
    source: &str,
    read_only: Option<bool>,
    span: Span,
    path: &str,
    cx: &Context,
    diags: &mut Diagnostics,
) {
    if source.starts_with('/') {
        return;
    }
    if source.is_empty() {
        diags.push(Diagnostic::error(
            "bind",
            span,
            format!("{path}: the source is empty"),
        ));
        return;
    }
    match cx.volumes.get(source) {
        None if !cx.complete => {}
        None => {
            let mut d = Diagnostic::error(
                "unknown-volume",
                span,
                format!(
                    "{path}: `{source}` is not an absolute path, so it names a volume, but no volume `{source}` is declared"
                ),
            );
            let names: Vec<&str> = cx.volumes.keys().map(String::as_str).collect();
            if let Some(s) = crate::decode::closest(source, &names) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else {
                d = d.with_help("declare it under `volumes:`, or write an absolute host path");
            }
            diags.push(d);
        }
        Some(true) if read_only != Some(true) => diags.push(
            Diagnostic::error(
                "readonly-volume",
                span,
                format!("{path}: volume `{source}` is read-only, but is mounted read-write"),
            )
            .with_help("add `:ro` to the bind (or `ro` to the mount's options)"),
        ),
        Some(_) => {}
    }
}

pub(super) fn check_mount(
    m: &Mount,
    path: &str,
    cx: &Context,
    runtime: bool,
    diags: &mut Diagnostics,
) {
    let span = [&m.destination, &m.kind, &m.source]
        .into_iter()
        .flatten()
        .map(|s| s.span)
        .next()
        .unwrap_or_default();
    if let Some(d) = &m.destination {
        // runtime.mounts are relative to the bundle's rootfs by design. A
        // relative destination elsewhere is LinuxKit-valid (runc resolves it
        // against the container's root), so it builds, with a note.
        if !runtime && !d.value.is_empty() && !d.value.starts_with('/') {
            diags.push(
                Diagnostic::warning(
                    "relative-destination",
                    d.span,
                    format!(
                        "{path}.destination: `{}` is relative; it is mounted at `/{}` in the container",
                        d.value, d.value
                    ),
                )
                .with_help("write the absolute path to say so"),
            );
        }
    }
    let kind = m.kind.as_ref().map(|k| k.value.as_str()).unwrap_or("");
    let source = m.source.as_ref().map(|s| s.value.as_str()).unwrap_or("");
    let dest = m
        .destination
        .as_ref()
        .map(|s| s.value.as_str())
        .unwrap_or("");
    let inferred = if !kind.is_empty() {
        Some(kind)
    } else if matches!(source, "mqueue" | "devpts" | "proc" | "sysfs" | "cgroup") {
        Some(source)
    } else if dest == "/dev" {
        Some("tmpfs")
    } else {
        None
    };
    match inferred {
        None if !runtime => diags.push(
            Diagnostic::error(
                "mount-type",
                span,
                format!("{path}: the mount for `{dest}` has no `type`"),
            )
            .with_help("give `type:`, or a source of proc, sysfs, devpts, mqueue or cgroup"),
        ),
        Some(t)
            if dest.is_empty()
                && !runtime
                && !matches!(t, "proc" | "devpts" | "sysfs" | "cgroup" | "mqueue") =>
        {
            diags.push(Diagnostic::error(
                "mount-destination",
                span,
                format!("{path}: a `{t}` mount needs a `destination`"),
            ));
        }
        _ => {}
    }
    if let Some(options) = &m.options {
        check_option_list(
            options.value.iter().map(|o| o.value.as_str()),
            options.span,
            &format!("{path}.options"),
            diags,
        );
    }
    if !runtime && kind == "bind" && !source.is_empty() {
        let ro = m
            .options
            .as_ref()
            .map(|o| o.value.iter().any(|x| x.value == "ro"));
        let span = m.source.as_ref().map_or(span, |s| s.span);
        check_volume_source(source, ro, span, &format!("{path}.source"), cx, diags);
    }
    for (key, maps) in [
        ("uidmappings", &m.uid_mappings),
        ("gidmappings", &m.gid_mappings),
    ] {
        for (i, map) in maps.iter().flat_map(|l| l.value.iter()).enumerate() {
            check_id_mapping(map, &format!("{path}.{key}[{i}]"), diags);
        }
    }
}

fn check_device(d: &Device, path: &str, diags: &mut Diagnostics) {
    let Some(p) = &d.path else {
        diags.push(Diagnostic::error(
            "device",
            d.kind.as_ref().map_or(Span::default(), |k| k.span),
            format!("{path}: missing required key `path`"),
        ));
        return;
    };
    if p.value == "all" {
        return;
    }
    check_absolute(
        &p.value,
        p.span,
        &format!("{path}.path"),
        "device path",
        diags,
    );
    match &d.kind {
        Some(k) if matches!(k.value.as_str(), "c" | "b" | "u" | "p") => {
            if k.value != "p" && (d.major.is_none() || d.minor.is_none()) {
                diags.push(Diagnostic::error(
                    "device",
                    k.span,
                    format!("{path}: a `{}` device needs `major` and `minor`", k.value),
                ));
            }
        }
        Some(k) => diags.push(Diagnostic::error(
            "device-type",
            k.span,
            format!(
                "{path}.type: expected `c`, `b`, `u` or `p`, found `{}`",
                k.value
            ),
        )),
        None => diags.push(Diagnostic::error(
            "device",
            p.span,
            format!("{path}: missing required key `type`"),
        )),
    }
    match &d.mode {
        None => diags.push(
            Diagnostic::error(
                "device-mode",
                p.span,
                format!("{path}: missing required key `mode`"),
            )
            .with_help("give the device file's mode as an octal string, e.g. mode: \"0660\""),
        ),
        Some(m) => {
            if let Err(msg) = parse_mode(&m.value) {
                diags.push(Diagnostic::error(
                    "device-mode",
                    m.span,
                    format!("{path}.mode: {msg}"),
                ));
            }
        }
    }
}
