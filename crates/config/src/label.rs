//! The `org.mobyproject.config` image label and the precedence rules:
//! image config < label < YAML, field by field.
//!
//! A pure function of the YAML entry, the label and the image's own config,
//! which the build calls once it has fetched the image.

use std::path::PathBuf;

use crate::caps;
use crate::decode::{Ctx, Fields, Id, StringMap};
use crate::diag::{Diagnostic, Diagnostics};
use crate::load::LoadError;
use crate::model::{
    BindNs, Device, IdMapping, Image, ImageSpec, Interface, Mount, Resources, Runtime,
};
use crate::source::{SourceMap, Sp};
use crate::validate::{Context, Rlimit, check_spec, parse_rlimit};
use crate::yaml;

/// The label an image carries its default runtime configuration in.
pub const LABEL: &str = "org.mobyproject.config";

/// The label of a kernel image (`slipway pkg build`'s kernel step): the
/// compressions its kernel unpacks an initramfs in, comma-separated, from
/// the kernel's `CONFIG_RD_*` (`gzip,bzip2,lzma,xz,lzo,lz4,zstd`, those it
/// has). `slipway build` compresses the initrd with zstd when it is listed.
pub const INITRD_COMPRESSION_LABEL: &str = "org.slipway.kernel.initrd-compression";

/// Parse and check a label's text (JSON or YAML). `image` names the image in messages.
pub fn parse_label(image: &str, text: &str) -> Result<(ImageSpec, Diagnostics), LoadError> {
    let mut sources = SourceMap::new();
    let name = format!("{LABEL} label of {image}");
    let id = sources.add(name, PathBuf::from("."), text);
    let mut diags = Diagnostics::new();
    let spec = match yaml::parse(id, text) {
        Err(err) => {
            diags.push(Diagnostic::error("syntax", err.span, err.message));
            None
        }
        Ok(root) => {
            let base = PathBuf::from(".");
            let mut cx = Ctx {
                diags: &mut diags,
                text,
                base_dir: &base,
                packages: Vec::new(),
            };
            match Fields::open(&root, "label", &mut cx) {
                None => None,
                Some(mut fields) => {
                    for key in ["name", "image"] {
                        if let Some((k, _)) = fields.node(key) {
                            cx.error(
                                "label",
                                k.span,
                                format!("`{key}` cannot be set in an image label"),
                            );
                        }
                    }
                    let spec = ImageSpec::take_fields(&mut fields, &mut cx);
                    fields.finish(&mut cx);
                    Some(spec)
                }
            }
        }
    };
    if let Some(spec) = &spec {
        // Names in a label are checked against the containers at build time.
        check_spec(spec, "label", &Context::default(), &mut diags);
        for (key, v) in [
            ("binds.add", &spec.binds_add),
            ("capabilities.add", &spec.capabilities_add),
        ] {
            if let Some(v) = v {
                diags.push(Diagnostic::warning(
                    "label",
                    v.span,
                    format!(
                        "`{key}` has no effect in a label; the label's `{}` is what entries add to",
                        key.trim_end_matches(".add")
                    ),
                ));
            }
        }
    }
    match spec {
        Some(spec) if !diags.has_errors() => Ok((spec, diags)),
        _ => Err(LoadError {
            sources,
            diagnostics: diags.sorted(),
        }),
    }
}

/// What the image's own OCI config says: the lowest precedence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
}

/// Every field of a container, with image config, label and YAML applied in that order.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// Effective capabilities in the order given, `all`/`none` expanded, duplicates removed.
    pub capabilities: Vec<String>,
    pub ambient: Vec<String>,
    pub binds: Vec<String>,
    pub tmpfs: Vec<String>,
    pub mounts: Vec<Mount>,
    pub devices: Vec<Device>,
    /// Namespace settings as LinuxKit reads them: `root`/`host`, `new`/`none`, or a path.
    pub net: String,
    pub pid: String,
    pub ipc: String,
    pub uts: String,
    pub userns: String,
    pub readonly: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub uid: Id,
    pub gid: Id,
    pub additional_gids: Vec<Id>,
    pub no_new_privileges: bool,
    pub hostname: String,
    pub oom_score_adj: Option<i64>,
    pub rootfs_propagation: String,
    pub cgroups_path: String,
    pub resources: Resources,
    pub sysctl: Vec<(String, String)>,
    pub rlimits: Vec<Rlimit>,
    pub uid_mappings: Vec<IdMapping>,
    pub gid_mappings: Vec<IdMapping>,
    pub annotations: Vec<(String, String)>,
    pub runtime: ResolvedRuntime,
}

/// `runtime`, merged field by field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvedRuntime {
    pub cgroups: Vec<String>,
    pub mounts: Vec<Mount>,
    pub mkdir: Vec<String>,
    pub interfaces: Vec<Interface>,
    pub bind_ns: BindNsPaths,
    pub namespace: String,
}

/// `runtime.bindNS`; an empty string binds nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindNsPaths {
    pub cgroup: String,
    pub ipc: String,
    pub mnt: String,
    pub net: String,
    pub pid: String,
    pub user: String,
    pub uts: String,
}

fn strings(v: &Option<Sp<Vec<Sp<String>>>>) -> Option<Vec<String>> {
    v.as_ref()
        .map(|l| l.value.iter().map(|s| s.value.clone()).collect())
}

fn value<T: Clone>(v: &Option<Sp<T>>) -> Option<T> {
    v.as_ref().map(|s| s.value.clone())
}

/// The later present value wins (a present `[]` overrides).
fn present<T>(label: Option<T>, yaml: Option<T>) -> Option<T> {
    yaml.or(label)
}

/// The later non-empty string wins (an empty string does not override).
fn non_empty(values: &[Option<String>]) -> String {
    values
        .iter()
        .rev()
        .flatten()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_default()
}

/// `base ++ add`, each item once, in first-seen order (LinuxKit meant to de-duplicate).
fn merge_add(base: Option<Vec<String>>, add: Option<Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in base.into_iter().chain(add).flatten() {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn expand_caps(list: Vec<String>) -> Vec<String> {
    if let [only] = list.as_slice() {
        match caps::keyword(only) {
            Some("all") => return caps::ALL.iter().map(|c| c.to_string()).collect(),
            Some(_) => return Vec::new(),
            None => {}
        }
    }
    let mut out: Vec<String> = Vec::new();
    for c in list {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn string_map(m: Option<StringMap>) -> Vec<(String, String)> {
    m.map(|m| m.0.into_iter().map(|(k, v)| (k.value, v.value)).collect())
        .unwrap_or_default()
}

/// Apply image config < label < YAML to one container entry.
///
/// The label must have been checked with [`parse_label`]; rlimits that do not
/// parse (which validation has already reported) are left out.
pub fn resolve(entry: &Image, label: Option<&ImageSpec>, image: &ImageDefaults) -> Resolved {
    let empty = ImageSpec::default();
    let l = label.unwrap_or(&empty);
    let y = &entry.spec;

    let image_args: Vec<String> = image.entrypoint.iter().chain(&image.cmd).cloned().collect();
    let args = present(strings(&l.command), strings(&y.command)).unwrap_or(image_args);
    let env = present(strings(&l.env), strings(&y.env)).unwrap_or_else(|| image.env.clone());
    let cwd = non_empty(&[
        Some("/".to_string()),
        Some(image.working_dir.clone()),
        value(&l.cwd),
        value(&y.cwd),
    ]);

    let capabilities = match strings(&y.capabilities) {
        Some(caps) => caps,
        None => merge_add(strings(&l.capabilities), strings(&y.capabilities_add)),
    };
    let binds = match strings(&y.binds) {
        Some(binds) => binds,
        None => merge_add(strings(&l.binds), strings(&y.binds_add)),
    };
    let ambient = present(strings(&l.ambient), strings(&y.ambient)).unwrap_or_default();

    let root = || Some("root".to_string());
    let rlimits = present(strings(&l.rlimits), strings(&y.rlimits))
        .unwrap_or_default()
        .iter()
        .filter_map(|r| parse_rlimit(r).ok())
        .collect();

    Resolved {
        args,
        env,
        cwd,
        capabilities: expand_caps(capabilities),
        ambient: expand_caps(ambient),
        binds,
        tmpfs: present(strings(&l.tmpfs), strings(&y.tmpfs)).unwrap_or_default(),
        mounts: present(value(&l.mounts), value(&y.mounts)).unwrap_or_default(),
        devices: present(value(&l.devices), value(&y.devices)).unwrap_or_default(),
        net: non_empty(&[root(), value(&l.net), value(&y.net)]),
        pid: non_empty(&[value(&l.pid), value(&y.pid)]),
        ipc: non_empty(&[root(), value(&l.ipc), value(&y.ipc)]),
        uts: non_empty(&[root(), value(&l.uts), value(&y.uts)]),
        userns: non_empty(&[root(), value(&l.userns), value(&y.userns)]),
        readonly: present(value(&l.readonly), value(&y.readonly)).unwrap_or(false),
        masked_paths: present(strings(&l.masked_paths), strings(&y.masked_paths))
            .unwrap_or_default(),
        readonly_paths: present(strings(&l.readonly_paths), strings(&y.readonly_paths))
            .unwrap_or_default(),
        uid: present(value(&l.uid), value(&y.uid)).unwrap_or(Id::Number(0)),
        gid: present(value(&l.gid), value(&y.gid)).unwrap_or(Id::Number(0)),
        additional_gids: present(value(&l.additional_gids), value(&y.additional_gids))
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.value)
            .collect(),
        no_new_privileges: present(value(&l.no_new_privileges), value(&y.no_new_privileges))
            .unwrap_or(false),
        hostname: non_empty(&[value(&l.hostname), value(&y.hostname)]),
        oom_score_adj: present(value(&l.oom_score_adj), value(&y.oom_score_adj)),
        rootfs_propagation: present(value(&l.rootfs_propagation), value(&y.rootfs_propagation))
            .unwrap_or_default(),
        cgroups_path: present(value(&l.cgroups_path), value(&y.cgroups_path)).unwrap_or_default(),
        resources: present(value(&l.resources), value(&y.resources)).unwrap_or_default(),
        sysctl: string_map(present(value(&l.sysctl), value(&y.sysctl))),
        rlimits,
        uid_mappings: present(value(&l.uid_mappings), value(&y.uid_mappings)).unwrap_or_default(),
        gid_mappings: present(value(&l.gid_mappings), value(&y.gid_mappings)).unwrap_or_default(),
        annotations: string_map(present(value(&l.annotations), value(&y.annotations))),
        runtime: resolve_runtime(value(&l.runtime), value(&y.runtime)),
    }
}

fn resolve_runtime(label: Option<Runtime>, yaml: Option<Runtime>) -> ResolvedRuntime {
    let l = label.unwrap_or_default();
    let y = yaml.unwrap_or_default();
    let lb = value(&l.bind_ns).unwrap_or_default();
    let yb = value(&y.bind_ns).unwrap_or_default();
    let ns = |a: &Option<Sp<String>>, b: &Option<Sp<String>>| {
        present(value(a), value(b)).unwrap_or_default()
    };
    let BindNs {
        cgroup,
        ipc,
        mnt,
        net,
        pid,
        user,
        uts,
    } = &yb;
    ResolvedRuntime {
        cgroups: present(strings(&l.cgroups), strings(&y.cgroups)).unwrap_or_default(),
        mounts: present(value(&l.mounts), value(&y.mounts)).unwrap_or_default(),
        mkdir: present(strings(&l.mkdir), strings(&y.mkdir)).unwrap_or_default(),
        interfaces: present(value(&l.interfaces), value(&y.interfaces)).unwrap_or_default(),
        bind_ns: BindNsPaths {
            cgroup: ns(&lb.cgroup, cgroup),
            ipc: ns(&lb.ipc, ipc),
            mnt: ns(&lb.mnt, mnt),
            net: ns(&lb.net, net),
            pid: ns(&lb.pid, pid),
            user: ns(&lb.user, user),
            uts: ns(&lb.uts, uts),
        },
        namespace: present(value(&l.namespace), value(&y.namespace)).unwrap_or_default(),
    }
}
