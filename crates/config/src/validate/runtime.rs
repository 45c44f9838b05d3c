//! Checking an entry's `runtime` section: mounts, mkdir, interfaces,
//! bind namespaces, cgroups.

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Interface, Runtime};

use super::Context;
use super::mounts::check_mount;
use super::spec::check_absolute;

pub(super) fn check_runtime(r: &Runtime, path: &str, cx: &Context, diags: &mut Diagnostics) {
    for (i, c) in r.cgroups.iter().flat_map(|l| l.value.iter()).enumerate() {
        if c.value.is_empty() || c.value.split('/').any(|p| p == "..") {
            diags.push(Diagnostic::error(
                "cgroup",
                c.span,
                format!("{path}.cgroups[{i}]: `{}` is not a cgroup path", c.value),
            ));
        }
    }
    for (i, m) in r.mounts.iter().flat_map(|l| l.value.iter()).enumerate() {
        check_mount(m, &format!("{path}.mounts[{i}]"), cx, true, diags);
    }
    for (i, d) in r.mkdir.iter().flat_map(|l| l.value.iter()).enumerate() {
        if d.value.is_empty() {
            diags.push(Diagnostic::error(
                "mkdir",
                d.span,
                format!("{path}.mkdir[{i}] is empty"),
            ));
        }
    }
    for (i, iface) in r.interfaces.iter().flat_map(|l| l.value.iter()).enumerate() {
        check_interface(iface, &format!("{path}.interfaces[{i}]"), diags);
    }
    if let Some(ns) = &r.bind_ns {
        let b = &ns.value;
        for (key, v) in b.namespaces() {
            if let Some(v) = v
                && !v.value.is_empty()
            {
                check_absolute(
                    &v.value,
                    v.span,
                    &format!("{path}.bindNS.{key}"),
                    "path",
                    diags,
                );
            }
        }
    }
}

fn check_interface(iface: &Interface, path: &str, diags: &mut Diagnostics) {
    let span = [&iface.name, &iface.add, &iface.peer]
        .into_iter()
        .flatten()
        .map(|s| s.span)
        .next()
        .unwrap_or_default();
    match &iface.name {
        None => diags.push(Diagnostic::error(
            "interface",
            span,
            format!("{path}: missing required key `name`"),
        )),
        Some(n) if n.value.is_empty() || n.value.len() > 15 || n.value.contains(['/', ' ']) => {
            diags.push(Diagnostic::error(
                "interface",
                n.span,
                format!("{path}.name: `{}` is not an interface name (1 to 15 characters, no `/` or spaces)", n.value),
            ));
        }
        Some(_) => {}
    }
    let add = iface.add.as_ref().map(|a| a.value.as_str());
    if add == Some("veth") && iface.peer.is_none() {
        diags.push(Diagnostic::error(
            "interface",
            span,
            format!("{path}: a veth interface needs a `peer`"),
        ));
    }
    if let (Some(a), Some(_)) = (&iface.add, &iface.peer)
        && a.value != "veth"
    {
        diags.push(Diagnostic::error(
            "interface",
            a.span,
            format!(
                "{path}: `peer` makes a veth pair, but `add` is `{}`",
                a.value
            ),
        ));
    }
}
