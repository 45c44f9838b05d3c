//! Checks on the merged configuration: what LinuxKit checks, and what it should.
//!
//! Every check reports into [`Diagnostics`] and goes on, so one run shows
//! every problem. Checks that need an image's label happen at build time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use slipway_layout::annotations::{self as ann, KeyStatus};

use crate::caps;
use crate::decode::{Id, StringMap};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{
    Config, Device, File, IdMapping, Image, ImageSpec, Interface, Mount, Runtime, Section, Strings,
    Volume,
};
use crate::mounts::{OptionProblem, check_option, parse_bind, parse_tmpfs};
use crate::source::{Sp, Span};

/// What the checks of one image entry need to know about the rest of the config.
#[derive(Debug, Default)]
pub struct Context {
    /// Volume name -> read-only?
    pub volumes: HashMap<String, bool>,
    /// Container names that uid/gid names may refer to.
    pub containers: BTreeSet<String>,
    /// Service names that `org.slipway.after` may refer to.
    pub services: BTreeSet<String>,
    /// Whether every entry could be read; names are looked up only then.
    pub complete: bool,
}

impl Context {
    pub fn of(config: &Config) -> Self {
        let mut cx = Context::default();
        for v in config.volumes() {
            if let Some(name) = &v.name {
                let ro = v.readonly.as_ref().is_some_and(|r| r.value);
                cx.volumes.insert(name.value.clone(), ro);
            }
        }
        for (section, _, image) in config.containers() {
            cx.containers.insert(image.name.value.clone());
            if section == Section::Services {
                cx.services.insert(image.name.value.clone());
            }
        }
        cx
    }
}

pub fn validate(config: &Config, complete: bool, diags: &mut Diagnostics) {
    let mut cx = Context::of(config);
    cx.complete = complete;
    check_kernel(config, diags);
    check_names(config, diags);
    check_volumes(config.volumes(), diags);
    for (section, i, image) in config.containers() {
        let path = format!("{}[{i}]", section.key());
        check_image(image, section, &path, &cx, diags);
    }
    check_after_cycles(config, diags);
    let mut seen_paths: HashMap<String, Span> = HashMap::new();
    for (i, file) in config.files().iter().enumerate() {
        check_file(file, &format!("files[{i}]"), &cx, &mut seen_paths, diags);
    }
    if let Some(trust) = &config.trust {
        diags.push(
            Diagnostic::warning(
                "trust-ignored",
                trust.span,
                "`trust` is accepted for compatibility and ignored, as LinuxKit does",
            )
            .with_help("image digests pinned in the references are always verified"),
        );
    }
}

fn check_kernel(config: &Config, diags: &mut Diagnostics) {
    let Some(kernel) = &config.kernel else { return };
    if kernel.image.is_none() {
        diags.push(
            Diagnostic::warning(
                "kernel-without-image",
                kernel.span,
                "`kernel` has no `image`: no kernel is added and its other fields are ignored",
            )
            .with_label("no `image` here"),
        );
    }
    for (key, value) in [
        ("binary", &kernel.binary),
        ("tar", &kernel.tar),
        ("ucode", &kernel.ucode),
    ] {
        if let Some(v) = value
            && (v.value.contains("..") || v.value.starts_with('/') && key == "binary")
        {
            diags.push(Diagnostic::error(
                "kernel-path",
                v.span,
                format!(
                    "kernel.{key}: `{}` must name a file inside the kernel image",
                    v.value
                ),
            ));
        }
    }
}

/// A name that becomes a directory and a container id.
fn check_name(name: &Sp<String>, path: &str, diags: &mut Diagnostics) {
    let n = name.value.as_str();
    let problem =
        if n.is_empty() {
            Some("must not be empty".to_string())
        } else if n == "." || n == ".." {
            Some(format!(
                "`{n}` cannot be used: it names a directory of the bundle tree"
            ))
        } else {
            n
        .chars()
        .find(|c| *c == '/' || c.is_whitespace() || c.is_control()).map(|c| format!(
            "`{n}` must not contain {c:?}: it becomes a directory name and a container id"
        ))
        };
    if let Some(problem) = problem {
        diags.push(Diagnostic::error(
            "name",
            name.span,
            format!("{path}.name {problem}"),
        ));
    }
}

fn check_names(config: &Config, diags: &mut Diagnostics) {
    for section in Section::ALL {
        let mut first: HashMap<&str, Span> = HashMap::new();
        for (i, image) in config.section(section).iter().enumerate() {
            check_name(&image.name, &format!("{}[{i}]", section.key()), diags);
            let name = image.name.value.as_str();
            match first.get(name) {
                None => {
                    first.insert(name, image.name.span);
                }
                Some(&at) if section == Section::Services => diags.push(
                    Diagnostic::error(
                        "duplicate-service",
                        image.name.span,
                        format!("duplicate service name `{name}`: services run side by side and need distinct names"),
                    )
                    .with_related(at, "first used here"),
                ),
                Some(&at) => diags.push(
                    Diagnostic::warning(
                        "duplicate-name",
                        image.name.span,
                        format!(
                            "`{name}` is used twice in {}: allowed (each bundle directory has its index), but logs and user ids become ambiguous",
                            section.key()
                        ),
                    )
                    .with_related(at, "first used here"),
                ),
            }
        }
    }
}

fn check_volumes(volumes: &[Sp<Volume>], diags: &mut Diagnostics) {
    let mut first: HashMap<&str, Span> = HashMap::new();
    for (i, v) in volumes.iter().enumerate() {
        let path = format!("volumes[{i}]");
        let Some(name) = &v.name else {
            diags.push(Diagnostic::error(
                "missing-key",
                v.span,
                format!("{path}: missing required key `name`"),
            ));
            continue;
        };
        let n = name.value.as_str();
        if n.is_empty() {
            diags.push(Diagnostic::error(
                "volume-name",
                name.span,
                format!("{path}.name must not be empty"),
            ));
        } else if !n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            diags.push(
                Diagnostic::error(
                    "volume-name",
                    name.span,
                    format!("invalid volume name `{n}`"),
                )
                .with_help("volume names use only a-z, 0-9, `_` and `-`"),
            );
        }
        if let Some(&at) = first.get(n) {
            diags.push(
                Diagnostic::error(
                    "duplicate-volume",
                    name.span,
                    format!("duplicate volume name `{n}`"),
                )
                .with_related(at, "first declared here"),
            );
        } else {
            first.insert(n, name.span);
        }
        let format = v.format.as_ref().map(|f| f.value.as_str());
        if let Some(f) = &v.format
            && !matches!(f.value.as_str(), "oci" | "filesystem")
        {
            diags.push(
                Diagnostic::error(
                    "volume-format",
                    f.span,
                    format!("{path}.format: unknown format `{}`", f.value),
                )
                .with_help("expected `filesystem` (the default) or `oci`"),
            );
        }
        if let Some(platforms) = &v.platforms {
            if format != Some("oci") {
                diags.push(Diagnostic::error(
                    "volume-platforms",
                    platforms.span,
                    format!("{path}.platforms applies only to `format: oci` volumes"),
                ));
            }
            for p in &platforms.value {
                if let Err(err) = slipway_reference::Platform::parse(&p.value) {
                    diags.push(Diagnostic::error(
                        "platform",
                        p.span,
                        format!("{path}.platforms: {err}"),
                    ));
                }
            }
        }
        if v.image.is_none() && format == Some("oci") {
            diags.push(Diagnostic::error(
                "volume-format",
                v.format.as_ref().map_or(name.span, |f| f.span),
                format!("{path}: `format: oci` needs an `image` to export"),
            ));
        }
    }
}

fn check_image(image: &Image, section: Section, path: &str, cx: &Context, diags: &mut Diagnostics) {
    check_spec(&image.spec, path, cx, diags);
    if let Some(annotations) = &image.spec.annotations {
        check_annotations(&annotations.value, image, section, path, cx, diags);
    }
}

/// Checks of the fields an image entry and an image label share.
pub fn check_spec(spec: &ImageSpec, path: &str, cx: &Context, diags: &mut Diagnostics) {
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
    for (i, r) in spec.rlimits.iter().flat_map(|l| l.value.iter()).enumerate() {
        if let Err(msg) = parse_rlimit(&r.value) {
            diags.push(Diagnostic::error(
                "rlimit",
                r.span,
                format!("{path}.rlimits[{i}]: {msg}"),
            ));
        }
    }
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
    for (key, maps) in [
        ("uidMappings", &spec.uid_mappings),
        ("gidMappings", &spec.gid_mappings),
    ] {
        for (i, m) in maps.iter().flat_map(|l| l.value.iter()).enumerate() {
            check_id_mapping(m, &format!("{path}.{key}[{i}]"), diags);
        }
    }
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
    if let Some(runtime) = &spec.runtime {
        check_runtime(&runtime.value, &format!("{path}.runtime"), cx, diags);
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

fn check_absolute(p: &str, span: Span, path: &str, what: &str, diags: &mut Diagnostics) {
    if !p.starts_with('/') {
        diags.push(Diagnostic::error(
            "relative-path",
            span,
            format!("{path}: the {what} `{p}` must be an absolute path"),
        ));
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

fn check_mount(m: &Mount, path: &str, cx: &Context, runtime: bool, diags: &mut Diagnostics) {
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

/// An octal file mode such as `0644`, at most `07777`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(8)) {
        return Err(format!("`{text}` is not an octal mode such as \"0644\""));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!("`{text}` is larger than the largest mode, 07777")),
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

fn check_id(id: &Sp<Id>, path: &str, cx: &Context, diags: &mut Diagnostics) {
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

fn check_id_mapping(m: &IdMapping, path: &str, diags: &mut Diagnostics) {
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

/// The resource limits LinuxKit knows, by their `RLIMIT_` names.
pub const RLIMITS: &[&str] = &[
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

/// A parsed `rlimits` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE` and so on.
    pub kind: &'static str,
    pub soft: u64,
    pub hard: u64,
}

/// `name,soft,hard`: name case-insensitive with `RLIMIT_` optional; `unlimited` is 2^64-1.
pub fn parse_rlimit(text: &str) -> Result<Rlimit, String> {
    let parts: Vec<&str> = text.splitn(3, ',').collect();
    let [name, soft, hard] = parts.as_slice() else {
        return Err(format!(
            "`{text}` is not `name,soft,hard` (e.g. `nofile,1024,4096`)"
        ));
    };
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("RLIMIT_") {
        upper
    } else {
        format!("RLIMIT_{upper}")
    };
    let Some(kind) = RLIMITS.iter().copied().find(|k| *k == full) else {
        let mut msg = format!("unknown resource limit `{}`", name.trim());
        if let Some(s) = crate::decode::closest(&full, RLIMITS) {
            msg.push_str(&format!(
                " (did you mean `{}`?)",
                s.trim_start_matches("RLIMIT_").to_ascii_lowercase()
            ));
        }
        return Err(msg);
    };
    let value = |s: &str| -> Result<u64, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("unlimited") {
            return Ok(u64::MAX);
        }
        s.parse::<u64>().map_err(|_| {
            format!("`{s}` is not a limit: expected a non-negative integer or `unlimited`")
        })
    };
    let soft = value(soft)?;
    let hard = value(hard)?;
    if soft > hard {
        return Err(format!(
            "the soft limit ({}) is above the hard limit ({}); the kernel refuses that",
            show_limit(soft),
            show_limit(hard)
        ));
    }
    Ok(Rlimit { kind, soft, hard })
}

fn show_limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

fn check_runtime(r: &Runtime, path: &str, cx: &Context, diags: &mut Diagnostics) {
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
        for (key, v) in [
            ("cgroup", &b.cgroup),
            ("ipc", &b.ipc),
            ("mnt", &b.mnt),
            ("net", &b.net),
            ("pid", &b.pid),
            ("user", &b.user),
            ("uts", &b.uts),
        ] {
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

fn check_annotations(
    annotations: &StringMap,
    image: &Image,
    section: Section,
    path: &str,
    cx: &Context,
    diags: &mut Diagnostics,
) {
    for (k, v) in annotations.iter() {
        let key = k.value.as_str();
        match ann::check_key(key) {
            KeyStatus::Foreign => continue,
            KeyStatus::Unknown { suggestion } => {
                let mut d = Diagnostic::error(
                    "annotation",
                    k.span,
                    format!("{path}.annotations: unknown slipway annotation `{key}`"),
                );
                d = match suggestion {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("known: {}", ann::known_keys().join(", "))),
                };
                diags.push(d);
                continue;
            }
            KeyStatus::Known => {}
        }
        let result = match key {
            ann::RESTART => v.value.parse::<ann::Restart>().map(|_| ()),
            ann::READY => v.value.parse::<ann::Ready>().map(|_| ()),
            ann::CONSOLE => v.value.parse::<ann::Console>().map(|_| ()),
            ann::AFTER => match v.value.parse::<ann::After>() {
                Ok(after) => {
                    for name in after.names() {
                        if name == &image.name.value {
                            diags.push(Diagnostic::error(
                                "annotation",
                                v.span,
                                format!(
                                    "{path}.annotations.{key}: `{name}` cannot wait for itself"
                                ),
                            ));
                        } else if cx.complete && !cx.services.contains(name) {
                            let names: Vec<&str> = cx.services.iter().map(String::as_str).collect();
                            let mut d = Diagnostic::error(
                                "annotation",
                                v.span,
                                format!("{path}.annotations.{key}: no service is named `{name}`"),
                            );
                            if let Some(s) = crate::decode::closest(name, &names) {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            }
                            diags.push(d);
                        }
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            _ => Ok(()),
        };
        if let Err(err) = result {
            diags.push(Diagnostic::error(
                "annotation",
                v.span,
                format!("{path}.annotations: {err}"),
            ));
            continue;
        }
        if section != Section::Services && key != ann::CONSOLE {
            diags.push(Diagnostic::warning(
                "annotation",
                k.span,
                format!("{path}.annotations: `{key}` applies to services; {} containers run once, in order, and ignore it", section.key()),
            ));
        }
    }
}

/// `org.slipway.after` must not go round in a circle.
fn check_after_cycles(config: &Config, diags: &mut Diagnostics) {
    let mut edges: BTreeMap<&str, (Vec<String>, Span)> = BTreeMap::new();
    for image in config.section(Section::Services) {
        let Some(a) = image
            .spec
            .annotations
            .as_ref()
            .and_then(|a| a.value.get(ann::AFTER))
        else {
            continue;
        };
        if let Ok(after) = a.value.parse::<ann::After>() {
            edges.insert(&image.name.value, (after.names().to_vec(), a.span));
        }
    }
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            let Some((next, _)) = edges.get(node) else {
                continue;
            };
            for n in next {
                if n == node {
                    // Waiting for itself is reported where the annotation is read.
                    continue;
                }
                if n == start {
                    let mut cycle: Vec<&str> = trail.clone();
                    cycle.push(start);
                    let mut members: Vec<&str> = cycle.clone();
                    members.sort_unstable();
                    members.dedup();
                    if reported.insert(members.join(",")) {
                        let span = edges.get(*start).map(|(_, s)| *s).unwrap_or_default();
                        diags.push(Diagnostic::error(
                            "after-cycle",
                            span,
                            format!(
                                "`org.slipway.after` goes round in a circle: {}",
                                cycle.join(" -> ")
                            ),
                        ));
                    }
                } else if seen.insert(n) {
                    let mut t = trail.clone();
                    t.push(n);
                    stack.push((n, t));
                }
            }
        }
    }
}

fn check_file(
    f: &Sp<File>,
    path: &str,
    cx: &Context,
    seen: &mut HashMap<String, Span>,
    diags: &mut Diagnostics,
) {
    let anchor = [
        &f.path,
        &f.contents,
        &f.source,
        &f.metadata,
        &f.symlink,
        &f.mode,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.span)
    .next()
    .unwrap_or_default();
    match &f.path {
        None => diags.push(Diagnostic::error(
            "file",
            anchor,
            format!("{path}: missing required key `path`"),
        )),
        Some(p) => {
            let clean = p.value.trim_start_matches('/');
            if clean.is_empty() {
                diags.push(Diagnostic::error(
                    "file",
                    p.span,
                    format!("{path}.path names no file"),
                ));
            } else if clean.split('/').any(|c| c == "..") {
                diags.push(Diagnostic::error(
                    "file",
                    p.span,
                    format!("{path}.path: `{}` must not contain `..`", p.value),
                ));
            } else if let Some(&first) = seen.get(clean) {
                diags.push(
                    Diagnostic::warning(
                        "file",
                        p.span,
                        format!("{path}.path: `{clean}` is written twice; the later entry wins"),
                    )
                    .with_related(first, "first written here"),
                );
            } else {
                seen.insert(clean.to_string(), p.span);
            }
            if ["var/", "run/", "tmp/"]
                .iter()
                .any(|d| clean.starts_with(d))
            {
                diags.push(Diagnostic::warning(
                    "file",
                    p.span,
                    format!("{path}.path: /{clean} is under a directory that is a tmpfs at boot, which hides it"),
                ));
            }
        }
    }
    let directory = f.directory.as_ref().is_some_and(|d| d.value);
    let sources: Vec<(&str, Span)> = [
        ("contents", &f.contents),
        ("source", &f.source),
        ("metadata", &f.metadata),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v.span)))
    .collect();
    if directory {
        if let Some((k, span)) = sources.first() {
            diags.push(Diagnostic::error(
                "file",
                *span,
                format!("{path}: a directory cannot have `{k}`"),
            ));
        }
        if let Some(s) = &f.symlink {
            diags.push(Diagnostic::error(
                "file",
                s.span,
                format!("{path}: an entry cannot be both a directory and a symlink"),
            ));
        }
    } else if let Some(s) = &f.symlink {
        if let Some((k, span)) = sources.first() {
            diags.push(Diagnostic::error(
                "file",
                *span,
                format!("{path}: a symlink cannot have `{k}`"),
            ));
        }
        if s.value.is_empty() {
            diags.push(Diagnostic::error(
                "file",
                s.span,
                format!("{path}.symlink: the target is empty"),
            ));
        }
    } else {
        match sources.as_slice() {
            [] => diags.push(
                Diagnostic::error("file", anchor, format!("{path}: the file has no contents"))
                    .with_help("give exactly one of `contents`, `source` or `metadata` (or `directory: true`, or `symlink`)"),
            ),
            [_] => {}
            [(a, _), (b, span), ..] => diags.push(Diagnostic::error(
                "file",
                *span,
                format!("{path}: `{a}` and `{b}` both given; a file has exactly one of contents, source and metadata"),
            )),
        }
    }
    if let Some(m) = &f.metadata
        && !matches!(m.value.as_str(), "yaml" | "json")
    {
        diags.push(Diagnostic::error(
            "file",
            m.span,
            format!(
                "{path}.metadata: expected `yaml` or `json`, found `{}`",
                m.value
            ),
        ));
    }
    if let Some(o) = &f.optional
        && o.value
        && f.source.is_none()
    {
        diags.push(Diagnostic::warning(
            "file",
            o.span,
            format!("{path}.optional applies only to files read from a `source`"),
        ));
    }
    if let Some(m) = &f.mode
        && let Err(msg) = parse_mode(&m.value)
    {
        diags.push(Diagnostic::error(
            "file-mode",
            m.span,
            format!("{path}.mode: {msg}"),
        ));
    }
    for (key, id) in [("uid", &f.uid), ("gid", &f.gid)] {
        if let Some(id) = id {
            check_id(id, &format!("{path}.{key}"), cx, diags);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimits() {
        assert_eq!(
            parse_rlimit("nofile,1024,4096").unwrap(),
            Rlimit {
                kind: "RLIMIT_NOFILE",
                soft: 1024,
                hard: 4096
            }
        );
        assert_eq!(
            parse_rlimit("RLIMIT_NPROC, unlimited ,UNLIMITED")
                .unwrap()
                .soft,
            u64::MAX
        );
        assert!(
            parse_rlimit("nofile,1024")
                .unwrap_err()
                .contains("name,soft,hard")
        );
        assert!(
            parse_rlimit("nofiles,1,2")
                .unwrap_err()
                .contains("did you mean `nofile`")
        );
        assert!(
            parse_rlimit("nofile,10,5")
                .unwrap_err()
                .contains("above the hard limit")
        );
        assert!(
            parse_rlimit("nofile,-1,5")
                .unwrap_err()
                .contains("not a limit")
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("rw-r--r--").is_err());
        assert!(parse_mode("077777").is_err());
        assert!(parse_mode("").is_err());
    }
}
