//! `build.yml`: LinuxKit's package fields plus slipway's build steps.
//!
//! Read with slipway-config's YAML front end, so every problem is reported
//! at `file:line:column`, unknown keys included, all at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use slipway_config::decode::{Ctx, Fields, FromNode};
use slipway_config::yaml::{self, Node, Value};
use slipway_config::{Diagnostic, Diagnostics, ImageSpec, SourceMap, Sp, Span};
use slipway_reference::Arch;

use crate::error::PkgError;

/// The file a package directory is defined by.
pub const BUILD_YML: &str = "build.yml";

/// A package directory's `build.yml`, checked.
#[derive(Clone, Debug)]
pub struct PackageDef {
    /// The package directory.
    pub dir: PathBuf,
    /// How messages name `build.yml` (its path as reached).
    pub file: String,
    pub image: String,
    /// Default `linuxkit`, as in LinuxKit.
    pub org: String,
    /// A template; only `{{.Hash}}` is expanded. Default `{{.Hash}}`.
    pub tag: String,
    pub dockerfile: String,
    /// Default: the host's architecture (LinuxKit defaults to amd64, arm64, riscv64).
    pub arches: Vec<Arch>,
    /// `src:dst`: `src` relative to the package directory, visible to steps as `dst`.
    pub extra_sources: Vec<(PathBuf, String)>,
    pub network: bool,
    pub disable_cache: bool,
    pub build_args: Vec<String>,
    pub gitrepo: Option<String>,
    /// The `config:` section as JSON: the `org.mobyproject.config` label.
    pub label: Option<String>,
    pub debian: Option<DebianSource>,
    pub steps: Vec<Step>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Check that every ELF binary's DT_NEEDED libraries are in the image.
    pub check_libraries: bool,
}

/// Where `debs:` steps fetch from. Unset fields come from the host's apt sources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebianSource {
    pub mirror: Option<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub keyring: Option<PathBuf>,
}

/// One step of a build, applied in order into one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Copy a directory (relative to the package) onto the image's root.
    Root(PathBuf),
    Debs(DebsStep),
    Files(Vec<FileEntry>),
    Symlinks(Vec<Symlink>),
    Users(Vec<User>),
    Groups(Vec<Group>),
    /// Concatenate the certificates under `/usr/share/ca-certificates` into the bundle.
    CaCertificates {
        dest: String,
    },
    Kernel(KernelStep),
    Cargo(CargoStep),
    /// Delete paths (and everything below them).
    Remove(Vec<String>),
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::Root(_) => "root",
            Step::Debs(_) => "debs",
            Step::Files(_) => "files",
            Step::Symlinks(_) => "symlinks",
            Step::Users(_) => "users",
            Step::Groups(_) => "groups",
            Step::CaCertificates { .. } => "ca-certificates",
            Step::Kernel(_) => "kernel",
            Step::Cargo(_) => "cargo",
            Step::Remove(_) => "remove",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebsStep {
    /// `name` or `name/suite` (take it from that suite even if it is NotAutomatic).
    pub packages: Vec<String>,
    /// Packages never installed: a dependency on one counts as satisfied.
    pub exclude: Vec<String>,
    /// Where each of `packages` is written in `build.yml`.
    pub spans: Vec<Span>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub kind: FileKind,
    pub mode: Option<u32>,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    Contents(String),
    /// A file relative to the package directory (or an extra source).
    Source(String),
    Directory,
    Symlink(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symlink {
    pub path: String,
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    /// Empty: no password (passwordless login); else a crypt(3) hash. Default `*` (locked).
    pub password: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelStep {
    /// Module names to keep (with what they need); `None`: every module.
    pub modules: Option<Vec<String>>,
    /// Modules listed in `modules.load`, loaded at boot in this order.
    pub load: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CargoStep {
    pub package: String,
    pub bin: String,
    pub dest: String,
}

const STEP_KEYS: &[&str] = &[
    "root",
    "debs",
    "files",
    "symlinks",
    "users",
    "groups",
    "ca-certificates",
    "kernel",
    "cargo",
    "remove",
];

/// Reads and checks `dir/build.yml`.
pub fn load(dir: &Path) -> Result<PackageDef, PkgError> {
    let path = dir.join(BUILD_YML);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PkgError::Package {
                dir: dir.to_path_buf(),
                message: format!("not a package directory: there is no {BUILD_YML}"),
            }
        } else {
            PkgError::io("reading", &path)(e)
        }
    })?;
    parse(dir, &path.display().to_string(), &text)
}

/// Parses `text` as the `build.yml` of `dir`; `name` is how messages name the file.
pub fn parse(dir: &Path, name: &str, text: &str) -> Result<PackageDef, PkgError> {
    let mut sources = SourceMap::new();
    let id = sources.add(name, dir.to_path_buf(), text);
    let mut diags = Diagnostics::new();
    let def = match yaml::parse(id, text) {
        Err(e) => {
            let mut d = Diagnostic::error("syntax", e.span, e.message);
            if let Some(help) = e.help {
                d = d.with_help(help);
            }
            diags.push(d);
            None
        }
        Ok(root) => {
            let mut cx = Ctx {
                diags: &mut diags,
                text,
                base_dir: dir,
                packages: Vec::new(),
            };
            read_def(dir, &root, &mut cx).map(|def| PackageDef {
                file: name.to_string(),
                ..def
            })
        }
    };
    if diags.has_errors() {
        let count = diags.error_count();
        let diagnostics = diags.sorted();
        return Err(PkgError::Definition {
            rendered: diagnostics.render_plain(&sources).trim_end().to_string(),
            count,
            sources: Box::new(sources),
            diagnostics,
        });
    }
    for warning in diags.warnings() {
        tracing::warn!("{}", warning.render_plain(&sources));
    }
    def.ok_or_else(|| PkgError::Package {
        dir: dir.to_path_buf(),
        message: format!("{name} could not be read"),
    })
}

fn strings(v: Option<Sp<Vec<Sp<String>>>>) -> Option<Vec<String>> {
    v.map(|s| s.value.into_iter().map(|x| x.value).collect())
}

fn read_def(dir: &Path, root: &Node, cx: &mut Ctx<'_>) -> Option<PackageDef> {
    let mut f = Fields::open(root, "", cx)?;
    let image = f.take::<String>("image", cx);
    f.require("image", image.is_some(), cx);
    let org = f.take::<String>("org", cx);
    let tag = f.take::<String>("tag", cx);
    if let Some(t) = &tag {
        let rest = t.value.replace("{{.Hash}}", "");
        if rest.contains("{{") {
            cx.error(
                "tag",
                t.span,
                "only the {{.Hash}} template is supported in `tag`",
            );
        }
    }
    let dockerfile = f.take::<String>("dockerfile", cx);
    let arches = f.take::<Vec<Sp<String>>>("arches", cx);
    let mut arch_list = Vec::new();
    if let Some(a) = &arches {
        for s in &a.value {
            match Arch::parse(&s.value) {
                Ok(arch) if !arch_list.contains(&arch) => arch_list.push(arch),
                Ok(_) => {}
                Err(e) => cx.error("arch", s.span, e.to_string()),
            }
        }
    }
    let extra = f.take::<Vec<Sp<String>>>("extra-sources", cx);
    let mut extra_sources = Vec::new();
    for s in extra.iter().flat_map(|v| v.value.iter()) {
        match s.value.split_once(':') {
            Some((src, dst)) if !src.is_empty() && !dst.is_empty() => {
                extra_sources.push((dir.join(src), dst.trim_start_matches("./").to_string()));
            }
            _ => cx.error("extra-sources", s.span, "expected `src:dst`"),
        }
    }
    let network = f.take::<bool>("network", cx);
    let disable_cache = f.take::<bool>("disable-cache", cx);
    let build_args = f.take::<Vec<Sp<String>>>("buildArgs", cx);
    let gitrepo = f.take::<String>("gitrepo", cx);
    // `depends` is LinuxKit's (pre-pulled docker images for the build); accepted and unused.
    if let Some((k, _)) = f.node("depends") {
        cx.push(Diagnostic::warning(
            "depends",
            k.span,
            "`depends` has no effect: slipway builds without Docker",
        ));
    }
    let label = f.node("config").map(|(_, v)| v);
    if let Some(node) = label {
        // Check it as a label is checked; the label is the same text as JSON.
        let _ = ImageSpec::from_node(node, "config", cx);
    }
    let debian = f.node("debian").and_then(|(_, v)| read_debian(v, cx));
    let steps = f
        .node("steps")
        .map(|(_, v)| read_steps(v, cx))
        .unwrap_or_default();
    let entrypoint = strings(f.take::<Vec<Sp<String>>>("entrypoint", cx));
    let cmd = strings(f.take::<Vec<Sp<String>>>("cmd", cx));
    let env = strings(f.take::<Vec<Sp<String>>>("env", cx)).unwrap_or_default();
    let workdir = f.take::<String>("workdir", cx).map(|s| s.value);
    let labels = f
        .take::<slipway_config::StringMap>("labels", cx)
        .map(|m| {
            m.value
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    let check_libraries = f.take::<bool>("check-libraries", cx);
    f.finish(cx);
    let image = image?;
    if image.value.is_empty()
        || image
            .value
            .contains(|c: char| c.is_ascii_uppercase() || c == ':')
    {
        cx.error(
            "image",
            image.span,
            "`image` must be a lower-case repository name",
        );
    }
    Some(PackageDef {
        dir: dir.to_path_buf(),
        file: String::new(),
        image: image.value,
        org: org.map_or_else(|| "linuxkit".to_string(), |o| o.value),
        tag: tag.map_or_else(|| "{{.Hash}}".to_string(), |t| t.value),
        dockerfile: dockerfile.map_or_else(|| "Dockerfile".to_string(), |d| d.value),
        arches: if arch_list.is_empty() {
            Arch::host().into_iter().collect()
        } else {
            arch_list
        },
        extra_sources,
        network: network.is_some_and(|n| n.value),
        disable_cache: disable_cache.is_some_and(|n| n.value),
        build_args: strings(build_args).unwrap_or_default(),
        gitrepo: gitrepo.map(|g| g.value),
        label: label.map(|n| node_to_json(n).to_string()),
        debian,
        steps,
        entrypoint,
        cmd,
        env,
        workdir,
        labels,
        check_libraries: check_libraries.is_none_or(|c| c.value),
    })
}

/// A YAML node as JSON, keys in the order written.
pub fn node_to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => i64::try_from(*i).map_or_else(|_| J::String(i.to_string()), J::from),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) => J::String(s.clone()),
        Value::Seq(items) => J::Array(items.iter().map(node_to_json).collect()),
        Value::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (k, v) in entries {
                let key = match &k.value {
                    Value::Str(s) => s.clone(),
                    _ => node_to_json(k).to_string(),
                };
                map.insert(key, node_to_json(v));
            }
            J::Object(map)
        }
    }
}

fn read_debian(node: &Node, cx: &mut Ctx<'_>) -> Option<DebianSource> {
    let mut f = Fields::open(node, "debian", cx)?;
    let mirror = f.take::<String>("mirror", cx).map(|m| m.value);
    let suites = strings(f.take::<Vec<Sp<String>>>("suites", cx)).unwrap_or_default();
    let components = strings(f.take::<Vec<Sp<String>>>("components", cx)).unwrap_or_default();
    let keyring = f
        .take::<String>("keyring", cx)
        .map(|k| PathBuf::from(k.value));
    f.finish(cx);
    Some(DebianSource {
        mirror,
        suites,
        components,
        keyring,
    })
}

fn read_steps(node: &Node, cx: &mut Ctx<'_>) -> Vec<Step> {
    let Value::Seq(items) = &node.value else {
        cx.error(
            "wrong-type",
            node.span,
            format!("steps: expected a list, found {}", node.value.kind()),
        );
        return Vec::new();
    };
    let mut steps = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("steps[{i}]");
        let Value::Map(entries) = &item.value else {
            cx.error(
                "wrong-type",
                item.span,
                format!(
                    "{path}: expected a mapping with one of: {}",
                    STEP_KEYS.join(", ")
                ),
            );
            continue;
        };
        let known: Vec<&(Node, Node)> = entries
            .iter()
            .filter(|(k, _)| matches!(&k.value, Value::Str(s) if STEP_KEYS.contains(&s.as_str())))
            .collect();
        if known.len() != 1 {
            let message = if known.is_empty() {
                format!("{path}: a step is one of: {}", STEP_KEYS.join(", "))
            } else {
                format!(
                    "{path}: a step has exactly one of: {}",
                    STEP_KEYS.join(", ")
                )
            };
            let mut d = Diagnostic::error("step", item.span, message);
            if let Some((k, _)) = entries.first()
                && let Value::Str(s) = &k.value
                && let Some(best) = slipway_config::decode::closest(s, STEP_KEYS)
            {
                d = d.with_help(format!("did you mean `{best}`?"));
            }
            cx.push(d);
            continue;
        }
        let mut f = match Fields::open(item, &path, cx) {
            Some(f) => f,
            None => continue,
        };
        if let Some(step) = read_step(&mut f, &path, cx) {
            steps.push(step);
        }
        f.finish(cx);
    }
    steps
}

fn read_step(f: &mut Fields<'_>, path: &str, cx: &mut Ctx<'_>) -> Option<Step> {
    if let Some(dir) = f.take::<String>("root", cx) {
        return Some(Step::Root(PathBuf::from(dir.value)));
    }
    if let Some((_, v)) = f.node("debs") {
        let p = format!("{path}.debs");
        return match &v.value {
            Value::Seq(_) => Vec::<Sp<String>>::from_node(v, &p, cx).map(|packages| {
                Step::Debs(DebsStep {
                    spans: packages.iter().map(|p| p.span).collect(),
                    packages: packages.into_iter().map(|p| p.value).collect(),
                    exclude: Vec::new(),
                })
            }),
            _ => {
                let mut g = Fields::open(v, &p, cx)?;
                let packages = g.take::<Vec<Sp<String>>>("packages", cx);
                g.require("packages", packages.is_some(), cx);
                let exclude = strings(g.take::<Vec<Sp<String>>>("exclude", cx)).unwrap_or_default();
                g.finish(cx);
                let packages = packages?.value;
                Some(Step::Debs(DebsStep {
                    spans: packages.iter().map(|p| p.span).collect(),
                    packages: packages.into_iter().map(|p| p.value).collect(),
                    exclude,
                }))
            }
        };
    }
    if let Some((_, v)) = f.node("files") {
        return list(v, &format!("{path}.files"), cx, read_file).map(Step::Files);
    }
    if let Some((_, v)) = f.node("symlinks") {
        let p = format!("{path}.symlinks");
        return match &v.value {
            Value::Seq(_) => list(v, &p, cx, |n, p, cx| {
                let mut g = Fields::open(n, p, cx)?;
                let link = g.take::<String>("path", cx);
                g.require("path", link.is_some(), cx);
                let target = g.take::<String>("target", cx);
                g.require("target", target.is_some(), cx);
                g.finish(cx);
                Some(vec![Symlink {
                    path: link?.value,
                    target: target?.value,
                }])
            })
            .map(|v| Step::Symlinks(v.into_iter().flatten().collect())),
            // `{target: /bin/busybox, paths: [bin/sh, ...]}`: many links to one target.
            _ => {
                let mut g = Fields::open(v, &p, cx)?;
                let target = g.take::<String>("target", cx);
                g.require("target", target.is_some(), cx);
                let paths = strings(g.take::<Vec<Sp<String>>>("paths", cx));
                g.require("paths", paths.is_some(), cx);
                g.finish(cx);
                let target = target?.value;
                Some(Step::Symlinks(
                    paths?
                        .into_iter()
                        .map(|path| Symlink {
                            path,
                            target: target.clone(),
                        })
                        .collect(),
                ))
            }
        };
    }
    if let Some((_, v)) = f.node("users") {
        return list(v, &format!("{path}.users"), cx, |n, p, cx| {
            let mut g = Fields::open(n, p, cx)?;
            let name = g.take::<String>("name", cx);
            g.require("name", name.is_some(), cx);
            let uid = g.take::<u32>("uid", cx);
            g.require("uid", uid.is_some(), cx);
            let gid = g.take::<u32>("gid", cx);
            let home = g.take::<String>("home", cx);
            let shell = g.take::<String>("shell", cx);
            let password = g.take::<String>("password", cx);
            g.finish(cx);
            let uid = uid?.value;
            let name = name?.value;
            Some(User {
                home: home.map_or_else(
                    || {
                        if uid == 0 {
                            "/root".into()
                        } else {
                            format!("/home/{name}")
                        }
                    },
                    |h| h.value,
                ),
                name,
                uid,
                gid: gid.map_or(uid, |g| g.value),
                shell: shell.map_or_else(|| "/bin/sh".into(), |s| s.value),
                password: password.map_or_else(|| "*".into(), |p| p.value),
            })
        })
        .map(Step::Users);
    }
    if let Some((_, v)) = f.node("groups") {
        return list(v, &format!("{path}.groups"), cx, |n, p, cx| {
            let mut g = Fields::open(n, p, cx)?;
            let name = g.take::<String>("name", cx);
            g.require("name", name.is_some(), cx);
            let gid = g.take::<u32>("gid", cx);
            g.require("gid", gid.is_some(), cx);
            let members = strings(g.take::<Vec<Sp<String>>>("members", cx)).unwrap_or_default();
            g.finish(cx);
            Some(Group {
                name: name?.value,
                gid: gid?.value,
                members,
            })
        })
        .map(Step::Groups);
    }
    if let Some((_, v)) = f.node("ca-certificates") {
        let p = format!("{path}.ca-certificates");
        let dest = match &v.value {
            Value::Null => None,
            _ => {
                let mut g = Fields::open(v, &p, cx)?;
                let dest = g.take::<String>("dest", cx).map(|d| d.value);
                g.finish(cx);
                dest
            }
        };
        return Some(Step::CaCertificates {
            dest: dest.unwrap_or_else(|| "etc/ssl/certs/ca-certificates.crt".into()),
        });
    }
    if let Some((_, v)) = f.node("kernel") {
        let p = format!("{path}.kernel");
        let mut g = Fields::open(v, &p, cx)?;
        let modules = match g.node("modules") {
            None => Some(Vec::new()),
            Some((_, m)) => match &m.value {
                Value::Str(s) if s == "all" => None,
                _ => Vec::<String>::from_node(m, &format!("{p}.modules"), cx),
            },
        };
        let load = strings(g.take::<Vec<Sp<String>>>("load", cx)).unwrap_or_default();
        g.finish(cx);
        return Some(Step::Kernel(KernelStep { modules, load }));
    }
    if let Some((_, v)) = f.node("cargo") {
        let p = format!("{path}.cargo");
        let mut g = Fields::open(v, &p, cx)?;
        let package = g.take::<String>("package", cx);
        g.require("package", package.is_some(), cx);
        let bin = g.take::<String>("bin", cx);
        let dest = g.take::<String>("dest", cx);
        g.finish(cx);
        let package = package?.value;
        let bin = bin.map_or_else(|| package.clone(), |b| b.value);
        let dest = dest.map_or_else(|| format!("usr/bin/{bin}"), |d| d.value);
        return Some(Step::Cargo(CargoStep { package, bin, dest }));
    }
    if let Some(paths) = f.take::<Vec<Sp<String>>>("remove", cx) {
        return Some(Step::Remove(
            paths.value.into_iter().map(|p| p.value).collect(),
        ));
    }
    None
}

fn list<T>(
    node: &Node,
    path: &str,
    cx: &mut Ctx<'_>,
    item: impl Fn(&Node, &str, &mut Ctx<'_>) -> Option<T>,
) -> Option<Vec<T>> {
    let Value::Seq(items) = &node.value else {
        cx.error(
            "wrong-type",
            node.span,
            format!("{path}: expected a list, found {}", node.value.kind()),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, n) in items.iter().enumerate() {
        match item(n, &format!("{path}[{i}]"), cx) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn parse_mode(s: &Sp<String>, cx: &mut Ctx<'_>) -> Option<u32> {
    match u32::from_str_radix(s.value.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o7777 => Some(m),
        _ => {
            cx.error(
                "mode",
                s.span,
                format!("`{}` is not an octal mode such as 0644", s.value),
            );
            None
        }
    }
}

fn read_file(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<FileEntry> {
    let mut g = Fields::open(node, path, cx)?;
    let file = g.take::<String>("path", cx);
    g.require("path", file.is_some(), cx);
    let contents = g.take::<String>("contents", cx);
    let source = g.take::<String>("source", cx);
    let directory = g.take::<bool>("directory", cx);
    let symlink = g.take::<String>("symlink", cx);
    let mode = g.take::<String>("mode", cx);
    let uid = g.take::<u32>("uid", cx);
    let gid = g.take::<u32>("gid", cx);
    let span: Span = g.span;
    g.finish(cx);
    let mode = match &mode {
        Some(m) => Some(parse_mode(m, cx)?),
        None => None,
    };
    let kinds = [
        contents.is_some(),
        source.is_some(),
        directory.as_ref().is_some_and(|d| d.value),
        symlink.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        cx.error(
            "files",
            span,
            format!("{path}: give one of `contents`, `source`, `directory: true`, `symlink`"),
        );
        return None;
    }
    let kind = if let Some(c) = contents {
        FileKind::Contents(c.value)
    } else if let Some(s) = source {
        FileKind::Source(s.value)
    } else if let Some(t) = symlink {
        FileKind::Symlink(t.value)
    } else if directory.is_some_and(|d| d.value) {
        FileKind::Directory
    } else {
        FileKind::Contents(String::new())
    };
    Some(FileEntry {
        path: file?.value,
        kind,
        mode,
        uid: uid.map_or(0, |u| u.value),
        gid: gid.map_or(0, |g| g.value),
    })
}
