//! Layer flattening: the root filesystem an image's layers make, streamed.
//!
//! Two passes over the layers' tar streams, never unpacking anything:
//!
//! 1. **Plan** (headers only, bottom layer first): apply each layer to a tree
//!    of paths as an overlay filesystem would: whiteouts (`.wh.NAME`) and
//!    opaque whiteouts (`.wh..wh..opq`) hide lower entries, a non-directory
//!    hides what was below it, a directory over a directory keeps the lower
//!    children. Within a layer the first entry for a path wins (as
//!    go-containerregistry, hence LinuxKit). Paths are cleaned (`..` never
//!    leaves the root) and resolved through symbolic links in the tree, so
//!    nothing is ever placed "through" a link. Hard links are tied to the
//!    file they name at the time their layer is applied; a link to nothing
//!    in the image is an error.
//! 2. **Emit** (top layer first, LinuxKit's order): each visible entry is
//!    pushed with its content streamed from the layer; a regular file and
//!    every other name it has travel together as one hard-link group, at the
//!    position of the file's content.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read};

use crate::entry::{DEFAULT_MTIME, EntrySink, Header, Kind, PAX_LOCATION, PAX_SOURCE};
use crate::error::{AssembleError, EntryProblem, Result};
use crate::layer::TarSource;
use crate::path;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const MAX_SYMLINK_HOPS: u32 = 40;

type Key = (u32, u32);

#[derive(Clone, Debug)]
enum NodeKind {
    Dir,
    File,
    Symlink(String),
    /// A hard link, tied to the entry holding the file.
    Link(Key),
    /// Devices and FIFOs.
    Other,
}

#[derive(Clone, Debug)]
struct Node {
    key: Key,
    kind: NodeKind,
}

/// What to do with one entry of one layer in the emit pass.
#[derive(Clone, Debug)]
enum Emit {
    /// Visible at `path`. For a regular file, `links` are its other names.
    Entry { path: String, links: Vec<String> },
    /// Hidden itself, but the content of a visible hard-link group.
    Group { leader: String, links: Vec<String> },
    /// A hard link to a non-regular file (a symlink, a device): a copy of it.
    Copy { path: String, of: Header },
}

/// LinuxKit's filters on image contents (`ImageTar`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filters {
    /// `Some(target)`: `etc/resolv.conf` becomes a symlink to target (init
    /// images and volumes); `None`: its content is replaced.
    pub resolv_symlink: Option<String>,
}

/// Paths dropped from every image.
pub const EXCLUDED: &[&str] = &[
    ".dockerenv",
    "Dockerfile",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "etc/hostname",
];

/// The fixed `etc/hosts`.
pub const HOSTS: &str = "127.0.0.1       localhost\n::1     localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n";
/// The fixed `etc/resolv.conf` of containers.
pub const RESOLV: &str = "\n# no resolv.conf configured\n";
/// Where init images' `etc/resolv.conf` points.
pub const RESOLV_SYMLINK: &str = "/run/resolvconf/resolv.conf";

/// The entries every filtered image must have, in LinuxKit's (sorted) order.
const TOUCHED: &[&str] = &[
    "dev",
    "dev/pts",
    "dev/shm",
    "etc",
    "etc/hosts",
    "etc/mtab",
    "etc/resolv.conf",
    "proc",
    "sys",
];

/// The flattened view of an image: what to emit from which entry.
#[derive(Debug)]
pub struct Plan {
    emit: HashMap<Key, Emit>,
    /// Visible paths (after filters) and the entries holding them.
    visible: BTreeMap<String, Key>,
    filters: Option<Filters>,
}

/// A parsed tar header, as far as the plan and the emitter need it.
struct Raw {
    name: String,
    header: Header,
}

fn entry_error(
    src: &dyn TarSource,
    layer: usize,
    path: &str,
    problem: EntryProblem,
) -> AssembleError {
    AssembleError::Entry {
        image: src.image().to_string(),
        layer: src.layer_name(layer),
        path: path.to_string(),
        problem,
    }
}

fn io_error(src: &dyn TarSource, layer: usize) -> impl Fn(io::Error) -> AssembleError + '_ {
    move |source| AssembleError::LayerIo {
        image: src.image().to_string(),
        layer: src.layer_name(layer),
        source,
    }
}

/// A name or link target: UTF-8 without NUL (a PAX record can carry one,
/// no filesystem name can; Go's archive/tar refuses it too).
fn utf8(bytes: &[u8]) -> std::result::Result<String, EntryProblem> {
    if bytes.contains(&0) {
        return Err(EntryProblem::Nul);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| EntryProblem::NotUtf8)
}

/// Reads the header of `entry`. `None` for entry types with no place in a
/// filesystem (tar's own metadata, volume labels).
fn read_raw<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> std::result::Result<Option<Raw>, EntryProblem> {
    let name = utf8(&entry.path_bytes())?;
    let h = entry.header();
    let kind_type = h.entry_type();
    let num = |r: io::Result<u64>, field: &'static str| {
        r.map_err(|source| EntryProblem::Header { field, source })
    };
    let mut uid = num(h.uid(), "uid")?;
    let mut gid = num(h.gid(), "gid")?;
    let mut mtime = num(h.mtime(), "mtime")?;
    let mode = h.mode().map_err(|source| EntryProblem::Header {
        field: "mode",
        source,
    })? & 0o7777;
    let dev = |r: io::Result<Option<u32>>| r.ok().flatten().unwrap_or(0);
    let (major, minor) = (dev(h.device_major()), dev(h.device_minor()));
    let link = entry
        .link_name_bytes()
        .map(|b| utf8(&b))
        .transpose()?
        .unwrap_or_default();
    let kind = match kind_type {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            Kind::File { size: entry.size() }
        }
        tar::EntryType::Directory => Kind::Dir,
        // No filesystem makes a symlink to nothing: containerd and GNU tar
        // fail on it, and the kernel's initramfs unpacker skips it.
        tar::EntryType::Symlink if link.is_empty() => return Err(EntryProblem::EmptySymlink),
        tar::EntryType::Symlink => Kind::Symlink { target: link },
        tar::EntryType::Link => Kind::Link { target: link },
        tar::EntryType::Char => Kind::Char { major, minor },
        tar::EntryType::Block => Kind::Block { major, minor },
        tar::EntryType::Fifo => Kind::Fifo,
        _ => return Ok(None),
    };
    let mut pax = Vec::new();
    if let Ok(Some(records)) = entry.pax_extensions() {
        for record in records {
            let Ok(record) = record else { continue };
            let Ok(key) = record.key() else { continue };
            let value = record.value_bytes();
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.split('.').next())
                    .and_then(|s| s.parse::<u64>().ok())
            };
            match key {
                "uid" => uid = number().unwrap_or(uid),
                "gid" => gid = number().unwrap_or(gid),
                "mtime" => mtime = number().unwrap_or(mtime),
                k if k.starts_with("SCHILY.xattr.") => {
                    pax.push((k.to_string(), value.to_vec()));
                }
                _ => {}
            }
        }
    }
    pax.sort();
    Ok(Some(Raw {
        name,
        header: Header {
            path: String::new(),
            kind,
            mode,
            uid,
            gid,
            mtime,
            pax,
            generated: false,
        },
    }))
}

/// The tree of visible paths while layers are applied.
#[derive(Default)]
struct Tree {
    nodes: BTreeMap<String, Node>,
    /// Entry names as written, when the output keeps them verbatim.
    raw: Option<HashMap<Key, String>>,
    /// The last root directory entry (`./`), kept only in verbatim plans:
    /// LinuxKit appends kernel.tar's root entry with the rest.
    root: Option<Key>,
    /// Headers of non-regular, non-directory entries a hard link may copy.
    others: HashMap<Key, Header>,
}

impl Tree {
    /// Removes `p`'s descendants (from layers below `below`, if given).
    fn remove_children(&mut self, p: &str, below: Option<u32>) {
        let prefix = if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, n)| below.is_none_or(|l| n.key.0 < l))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Resolves symbolic links in the parent directories of `p`, clamped at
    /// the root; any non-directory met on the way is dropped (the entry makes
    /// it a directory, as the layer intended).
    fn resolve_parent(&mut self, p: &str) -> std::result::Result<String, EntryProblem> {
        let (dir, name) = path::split(p);
        if dir.is_empty() {
            return Ok(p.to_string());
        }
        let mut pending: Vec<String> = dir.split('/').rev().map(str::to_string).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(c);
            let here = cur.join("/");
            match self.nodes.get(&here).map(|n| n.kind.clone()) {
                Some(NodeKind::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(EntryProblem::SymlinkLoop);
                    }
                    cur.pop();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    pending.extend(target.split('/').rev().map(str::to_string));
                }
                Some(NodeKind::Dir) | None => {}
                Some(_) => {
                    self.nodes.remove(&here);
                }
            }
        }
        cur.push(name.to_string());
        Ok(cur.join("/"))
    }
}

impl Plan {
    /// Reads every layer's headers and decides what the image holds.
    pub fn build(src: &dyn TarSource, filters: Option<Filters>) -> Result<Plan> {
        Plan::build_with(src, filters, false, None).map(|(plan, _)| plan)
    }

    /// As [`Plan::build`], keeping entry names as written (`./lib/...`): for
    /// the kernel's `kernel.tar`, which LinuxKit appends verbatim.
    pub fn build_verbatim(src: &dyn TarSource) -> Result<Plan> {
        Plan::build_with(src, None, true, None).map(|(plan, _)| plan)
    }

    /// As [`Plan::build`], and, in the same read of the layers, the
    /// [`Plan::build_verbatim`] of the tar file at `nested` (the kernel's
    /// `kernel.tar`): `None` when the image has no regular file there.
    /// Saves a full read (and inflate) of the layer holding it.
    pub fn build_with_nested(
        src: &dyn TarSource,
        filters: Option<Filters>,
        nested: &str,
    ) -> Result<(Plan, Option<Plan>)> {
        Plan::build_with(src, filters, false, Some(nested))
    }

    fn build_with(
        src: &dyn TarSource,
        filters: Option<Filters>,
        verbatim: bool,
        nested: Option<&str>,
    ) -> Result<(Plan, Option<Plan>)> {
        // Plans of every regular file at the nested path, by entry: which
        // one is visible is known only at the end.
        let mut nested_plans: HashMap<Key, Plan> = HashMap::new();
        let mut tree = Tree {
            raw: verbatim.then(HashMap::new),
            ..Tree::default()
        };
        for layer in 0..src.layer_count() {
            let l = layer as u32;
            let mut seen: BTreeSet<String> = BTreeSet::new();
            // Hard links whose target comes later in their own layer.
            let mut pending: Vec<(String, String, Key)> = Vec::new();
            src.with_layer(layer, &mut |reader| {
                let mut archive = tar::Archive::new(reader);
                let iter = archive.entries().map_err(io_error(src, layer))?;
                for (index, entry) in iter.enumerate() {
                    let mut entry = entry.map_err(io_error(src, layer))?;
                    let raw = read_raw(&mut entry).map_err(|m| {
                        entry_error(src, layer, &String::from_utf8_lossy(&entry.path_bytes()), m)
                    })?;
                    let Some(raw) = raw else { continue };
                    let key = (l, index as u32);
                    let cleaned = path::clean(&raw.name);
                    if cleaned.is_empty() {
                        // The root directory itself: in a verbatim plan its
                        // entry is passed on, otherwise the root exists anyway.
                        if let Some(raw_names) = &mut tree.raw
                            && matches!(raw.header.kind, Kind::Dir)
                        {
                            raw_names.insert(key, raw.name.clone());
                            tree.root = Some(key);
                        }
                        continue;
                    }
                    let resolved = tree
                        .resolve_parent(&cleaned)
                        .map_err(|m| entry_error(src, layer, &raw.name, m))?;
                    let (dir, base) = path::split(&resolved);
                    if base == OPAQUE {
                        tree.remove_children(dir, Some(l));
                        continue;
                    }
                    if let Some(hidden) = base.strip_prefix(WHITEOUT) {
                        let victim = if dir.is_empty() {
                            hidden.to_string()
                        } else {
                            format!("{dir}/{hidden}")
                        };
                        if tree.nodes.get(&victim).is_some_and(|n| n.key.0 < l) {
                            tree.nodes.remove(&victim);
                        }
                        tree.remove_children(&victim, Some(l));
                        continue;
                    }
                    if !seen.insert(resolved.clone()) {
                        continue; // first entry for a path wins within a layer
                    }
                    let kind = match &raw.header.kind {
                        Kind::Dir => NodeKind::Dir,
                        Kind::File { .. } => NodeKind::File,
                        Kind::Symlink { target } => NodeKind::Symlink(target.clone()),
                        Kind::Link { target } => {
                            let target = resolve_link_target(&mut tree, target)
                                .map_err(|m| entry_error(src, layer, &raw.name, m))?;
                            match link_object(&tree, &target) {
                                Ok(Some(object)) => NodeKind::Link(object),
                                Ok(None) => {
                                    pending.push((raw.name.clone(), target, key));
                                    // Placeholder until the end of the layer.
                                    NodeKind::Link(key)
                                }
                                Err(m) => return Err(entry_error(src, layer, &raw.name, m)),
                            }
                        }
                        Kind::Char { .. } | Kind::Block { .. } | Kind::Fifo => {
                            tree.others.insert(key, raw.header.clone());
                            NodeKind::Other
                        }
                    };
                    if matches!(kind, NodeKind::Symlink(_)) {
                        tree.others.insert(key, raw.header.clone());
                    }
                    let both_dirs = matches!(kind, NodeKind::Dir)
                        && tree
                            .nodes
                            .get(&resolved)
                            .is_some_and(|n| matches!(n.kind, NodeKind::Dir));
                    if !both_dirs {
                        tree.remove_children(&resolved, None);
                    }
                    if let Some(raw_names) = &mut tree.raw {
                        raw_names.insert(key, raw.name.clone());
                    }
                    if nested == Some(resolved.as_str()) && matches!(kind, NodeKind::File) {
                        let size = raw.header.kind.size();
                        let mut limited = (&mut entry).take(size);
                        let inner = OneShot::new(
                            src.image(),
                            format!("{} {resolved}", src.layer_name(layer)),
                            &mut limited,
                        );
                        nested_plans.insert(key, Plan::build_verbatim(&inner)?);
                    }
                    tree.nodes.insert(resolved, Node { key, kind });
                }
                Ok(())
            })?;
            for (name, target, key) in pending {
                match link_object(&tree, &target) {
                    Ok(Some(object)) if object != key => {
                        for node in tree.nodes.values_mut() {
                            if node.key == key {
                                node.kind = NodeKind::Link(object);
                            }
                        }
                    }
                    Ok(_) => {
                        return Err(entry_error(
                            src,
                            layer,
                            &name,
                            EntryProblem::LinkMissing(target),
                        ));
                    }
                    Err(m) => return Err(entry_error(src, layer, &name, m)),
                }
            }
        }
        let plan = Plan::from_tree(tree, filters);
        let inner = nested
            .and_then(|n| plan.visible.get(n))
            .and_then(|key| nested_plans.remove(key));
        Ok((plan, inner))
    }

    fn from_tree(tree: Tree, filters: Option<Filters>) -> Plan {
        let mut nodes = tree.nodes;
        if filters.is_some() {
            for p in EXCLUDED {
                nodes.remove(*p);
            }
        }
        let name = |key: Key, p: &str| -> String {
            tree.raw
                .as_ref()
                .and_then(|r| r.get(&key).cloned())
                .unwrap_or_else(|| p.to_string())
        };
        let mut emit: HashMap<Key, Emit> = HashMap::new();
        if let Some(key) = tree.root {
            emit.insert(
                key,
                Emit::Entry {
                    path: name(key, ""),
                    links: Vec::new(),
                },
            );
        }
        let mut groups: BTreeMap<Key, Vec<String>> = BTreeMap::new();
        for (p, node) in &nodes {
            match &node.kind {
                NodeKind::Link(object) => {
                    if let Some(of) = tree.others.get(object) {
                        emit.insert(
                            node.key,
                            Emit::Copy {
                                path: name(node.key, p),
                                of: of.clone(),
                            },
                        );
                    } else {
                        groups.entry(*object).or_default().push(name(node.key, p));
                    }
                }
                _ => {
                    emit.insert(
                        node.key,
                        Emit::Entry {
                            path: name(node.key, p),
                            links: Vec::new(),
                        },
                    );
                }
            }
        }
        for (object, mut links) in groups {
            match emit.get_mut(&object) {
                Some(Emit::Entry { links: l, .. }) => *l = links,
                _ if !links.is_empty() => {
                    let leader = links.remove(0);
                    emit.insert(object, Emit::Group { leader, links });
                }
                _ => {}
            }
        }
        Plan {
            emit,
            visible: nodes.into_iter().map(|(p, n)| (p, n.key)).collect(),
            filters,
        }
    }

    /// Whether the flattened image has `path` (cleaned).
    pub fn contains(&self, path: &str) -> bool {
        self.visible.contains_key(path)
    }

    /// Calls `f` with the header and content of the file at `path`, if the
    /// image has it. Reads the layer holding it, and no other.
    pub fn stream_file(
        &self,
        src: &dyn TarSource,
        path: &str,
        f: &mut dyn FnMut(&Header, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let Some(&(l, i)) = self.visible.get(path) else {
            return Ok(());
        };
        let layer = l as usize;
        src.with_layer(layer, &mut |reader| {
            let mut archive = tar::Archive::new(reader);
            let iter = archive.entries().map_err(io_error(src, layer))?;
            for (index, entry) in iter.enumerate() {
                let mut entry = entry.map_err(io_error(src, layer))?;
                if index as u32 != i {
                    continue;
                }
                let raw = read_raw(&mut entry)
                    .map_err(|m| entry_error(src, layer, path, m))?
                    .ok_or_else(|| entry_error(src, layer, path, EntryProblem::NotAFile))?;
                let size = raw.header.kind.size();
                let mut limited = (&mut entry).take(size);
                f(&raw.header, &mut limited)?;
                io::copy(&mut limited, &mut io::sink()).map_err(io_error(src, layer))?;
                break;
            }
            Ok(())
        })
    }

    /// The layer holding the visible entry at `path`.
    pub fn layer_of(&self, path: &str) -> Option<usize> {
        self.visible.get(path).map(|k| k.0 as usize)
    }

    /// Calls `f(i, header, content)` for each `paths[i]` the image has, in
    /// the order of `paths`. Consecutive paths held by one layer in that
    /// layer's order are served by a single read of it, so a large layer is
    /// inflated once for all of them.
    pub fn stream_parts(
        &self,
        src: &dyn TarSource,
        paths: &[&str],
        f: &mut dyn FnMut(usize, &Header, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let found: Vec<(usize, Key)> = paths
            .iter()
            .enumerate()
            .filter_map(|(i, p)| self.visible.get(*p).map(|k| (i, *k)))
            .collect();
        let mut start = 0;
        while start < found.len() {
            // A run: the same layer, strictly increasing entry indexes.
            let mut end = start + 1;
            while end < found.len()
                && found[end].1.0 == found[start].1.0
                && found[end].1.1 > found[end - 1].1.1
            {
                end += 1;
            }
            let run = &found[start..end];
            let layer = run[0].1.0 as usize;
            src.with_layer(layer, &mut |reader| {
                let mut archive = tar::Archive::new(reader);
                let iter = archive.entries().map_err(io_error(src, layer))?;
                let mut next = run.iter().peekable();
                for (index, entry) in iter.enumerate() {
                    let Some(&&(part, (_, wanted))) = next.peek() else {
                        break;
                    };
                    let mut entry = entry.map_err(io_error(src, layer))?;
                    if index as u32 != wanted {
                        continue;
                    }
                    next.next();
                    let path = paths.get(part).copied().unwrap_or_default();
                    let raw = read_raw(&mut entry)
                        .map_err(|m| entry_error(src, layer, path, m))?
                        .ok_or_else(|| entry_error(src, layer, path, EntryProblem::NotAFile))?;
                    let size = raw.header.kind.size();
                    let mut limited = (&mut entry).take(size);
                    f(part, &raw.header, &mut limited)?;
                    io::copy(&mut limited, &mut io::sink()).map_err(io_error(src, layer))?;
                }
                Ok(())
            })?;
            start = end;
        }
        Ok(())
    }

    /// Every visible path, sorted (after the filters' exclusions).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.visible.keys().map(String::as_str)
    }

    /// Streams the flattened image into `sink`, every path under `prefix`
    /// (`""` or ending in `/`), each entry tagged with `source`/`location`.
    pub fn emit(
        &self,
        src: &dyn TarSource,
        prefix: &str,
        source: &str,
        location: &str,
        sink: &mut dyn EntrySink,
    ) -> Result<()> {
        let tag = |mut h: Header, p: &str| {
            h.path = format!("{prefix}{p}");
            h.set_pax(PAX_SOURCE, source);
            h.set_pax(PAX_LOCATION, location);
            h
        };
        let link_headers = |leader: &str, links: &[String], like: &Header| -> Vec<Header> {
            links
                .iter()
                .map(|l| {
                    let mut h = like.clone();
                    h.kind = Kind::Link {
                        target: format!("{prefix}{leader}"),
                    };
                    tag(h, l)
                })
                .collect()
        };
        for layer in (0..src.layer_count()).rev() {
            let l = layer as u32;
            src.with_layer(layer, &mut |reader| {
                let mut archive = tar::Archive::new(reader);
                let iter = archive.entries().map_err(io_error(src, layer))?;
                for (index, entry) in iter.enumerate() {
                    let mut entry = entry.map_err(io_error(src, layer))?;
                    let Some(what) = self.emit.get(&(l, index as u32)) else {
                        continue;
                    };
                    let sink_err = AssembleError::Sink;
                    match what {
                        Emit::Copy { path, of } => {
                            sink.entry(&tag(of.clone(), path), &[], &mut io::empty())
                                .map_err(sink_err)?;
                        }
                        Emit::Entry { path, links }
                        | Emit::Group {
                            leader: path,
                            links,
                        } => {
                            let raw = read_raw(&mut entry)
                                .map_err(|m| entry_error(src, layer, path, m))?
                                .ok_or_else(|| {
                                    entry_error(src, layer, path, EntryProblem::Changed)
                                })?;
                            let mut header = raw.header;
                            if let Some(filters) = &self.filters
                                && self.replace(&mut header, path, filters)
                            {
                                let content = header_content(&header, path);
                                sink.entry(&tag(header, path), &[], &mut content.as_bytes())
                                    .map_err(sink_err)?;
                                continue;
                            }
                            if filters_touch(self, path) {
                                header.mtime = DEFAULT_MTIME;
                                header.generated = true;
                            }
                            let links = link_headers(path, links, &header);
                            let header = tag(header, path);
                            let size = header.kind.size();
                            let mut limited = (&mut entry).take(size);
                            let mut counted = Counted::new(&mut limited);
                            sink.entry(&header, &links, &mut counted)
                                .map_err(sink_err)?;
                            if counted.read < size {
                                // The sink did not read all of it: drain, so
                                // the archive stays in step.
                                io::copy(&mut limited, &mut io::sink())
                                    .map_err(io_error(src, layer))?;
                            }
                        }
                    }
                }
                Ok(())
            })?;
        }
        if let Some(filters) = &self.filters {
            for name in TOUCHED {
                if self.visible.contains_key(*name) {
                    continue;
                }
                let (header, content) = touched(name, filters);
                sink.entry(&tag(header, name), &[], &mut content.as_bytes())
                    .map_err(AssembleError::Sink)?;
            }
        }
        Ok(())
    }

    /// Applies LinuxKit's replacement of `etc/hosts` and `etc/resolv.conf`.
    fn replace(&self, header: &mut Header, path: &str, filters: &Filters) -> bool {
        match path {
            "etc/hosts" => {
                header.kind = Kind::File {
                    size: HOSTS.len() as u64,
                };
            }
            "etc/resolv.conf" => match &filters.resolv_symlink {
                Some(target) => {
                    header.kind = Kind::Symlink {
                        target: target.clone(),
                    };
                }
                None => {
                    header.kind = Kind::File {
                        size: RESOLV.len() as u64,
                    };
                }
            },
            _ => return false,
        }
        header.mtime = DEFAULT_MTIME;
        header.generated = true;
        true
    }
}

fn filters_touch(plan: &Plan, path: &str) -> bool {
    plan.filters.is_some() && TOUCHED.contains(&path)
}

fn header_content(header: &Header, path: &str) -> &'static str {
    match (&header.kind, path) {
        (Kind::File { .. }, "etc/hosts") => HOSTS,
        (Kind::File { .. }, "etc/resolv.conf") => RESOLV,
        _ => "",
    }
}

/// A touched entry the image lacked, and its content.
fn touched(name: &str, filters: &Filters) -> (Header, &'static str) {
    match name {
        "etc/mtab" => (
            Header::new(
                name,
                Kind::Symlink {
                    target: "/proc/mounts".into(),
                },
                0o755,
            ),
            "",
        ),
        "etc/hosts" => (
            Header::new(
                name,
                Kind::File {
                    size: HOSTS.len() as u64,
                },
                0o644,
            ),
            HOSTS,
        ),
        "etc/resolv.conf" => match &filters.resolv_symlink {
            Some(target) => (
                Header::new(
                    name,
                    Kind::Symlink {
                        target: target.clone(),
                    },
                    0o644,
                ),
                "",
            ),
            None => (
                Header::new(
                    name,
                    Kind::File {
                        size: RESOLV.len() as u64,
                    },
                    0o644,
                ),
                RESOLV,
            ),
        },
        _ => (Header::new(name, Kind::Dir, 0o755), ""),
    }
}

/// Cleans a hard link's target and resolves its parent directories.
fn resolve_link_target(tree: &mut Tree, target: &str) -> std::result::Result<String, EntryProblem> {
    let cleaned = path::clean(target);
    if cleaned.is_empty() {
        return Err(EntryProblem::LinkToRoot);
    }
    tree.resolve_parent(&cleaned)
}

/// The entry holding the file a hard link to `target` names.
fn link_object(tree: &Tree, target: &str) -> std::result::Result<Option<Key>, EntryProblem> {
    match tree.nodes.get(target) {
        None => Ok(None),
        Some(node) => match &node.kind {
            NodeKind::Dir => Err(EntryProblem::LinkToDir(target.to_string())),
            NodeKind::Link(object) => Ok(Some(*object)),
            _ => Ok(Some(node.key)),
        },
    }
}

/// Counts what a reader hands out.
struct Counted<'r> {
    inner: &'r mut dyn Read,
    read: u64,
}

impl<'r> Counted<'r> {
    fn new(inner: &'r mut dyn Read) -> Counted<'r> {
        Counted { inner, read: 0 }
    }
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// A single tar stream read once, as it passes: the nested tar while the
/// layer holding it is being read for something else.
pub struct OneShot<'a, 'r> {
    image: &'a str,
    name: String,
    reader: std::cell::RefCell<Option<&'r mut dyn Read>>,
}

impl std::fmt::Debug for OneShot<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneShot").field("name", &self.name).finish()
    }
}

impl<'a, 'r> OneShot<'a, 'r> {
    /// `name` names the stream in errors (the layer and the path in it).
    pub fn new(image: &'a str, name: String, reader: &'r mut dyn Read) -> OneShot<'a, 'r> {
        OneShot {
            image,
            name,
            reader: std::cell::RefCell::new(Some(reader)),
        }
    }
}

impl TarSource for OneShot<'_, '_> {
    fn image(&self) -> &str {
        self.image
    }

    fn layer_count(&self) -> usize {
        1
    }

    fn layer_name(&self, _index: usize) -> String {
        self.name.clone()
    }

    fn with_layer(
        &self,
        _index: usize,
        f: &mut dyn FnMut(&mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let Some(reader) = self.reader.borrow_mut().take() else {
            return Err(AssembleError::Image {
                image: self.image.to_string(),
                message: format!("{} was read twice", self.name),
            });
        };
        f(&mut *reader)?;
        io::copy(reader, &mut io::sink()).map_err(io_error(self, 0))?;
        Ok(())
    }
}
