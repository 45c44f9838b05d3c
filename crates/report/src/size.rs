//! The size report: where an image's bytes are, per unit (kernel, modules,
//! each init image, each bundle, files), per image, per directory and per
//! file, and what compression saved. [`SizeReport`] is plain data, kept as
//! JSON inside the HTML report (see [`crate::html`]) so that
//! [`SizeReport::from_html`] reads a saved report back for [`diff`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Bumped when the JSON changes incompatibly.
pub const FORMAT: u32 = 1;
/// How many of the largest files the report keeps.
pub const TOP_FILES: usize = 40;
/// How deep the directory tree is kept; deeper directories count in their
/// ancestor at this depth.
pub const TREE_DEPTH: usize = 8;

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no slipway size report in this file (neither its JSON nor an HTML report holding it)")]
    NotAReport,
    #[error("the size report's JSON is invalid")]
    Json(#[from] serde_json::Error),
    #[error("size report format {found} is not supported (this slipway reads format {FORMAT})")]
    Format { found: u32 },
}

/// What a unit is, for grouping and colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    /// The kernel binary, written beside the initrd.
    Kernel,
    /// CPU microcode, the initrd's first archive.
    Ucode,
    /// The kernel image's modules (`kernel.tar`).
    Modules,
    Init,
    Volume,
    Onboot,
    Onshutdown,
    Service,
    Files,
    Sbom,
    Other,
}

impl UnitKind {
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Kernel => "kernel",
            UnitKind::Ucode => "ucode",
            UnitKind::Modules => "modules",
            UnitKind::Init => "init",
            UnitKind::Volume => "volume",
            UnitKind::Onboot => "onboot",
            UnitKind::Onshutdown => "onshutdown",
            UnitKind::Service => "service",
            UnitKind::Files => "files",
            UnitKind::Sbom => "sbom",
            UnitKind::Other => "other",
        }
    }

    /// From a unit's config location (`kernel`, `init[0]`, `onboot[1]`...).
    pub fn of_location(location: &str) -> UnitKind {
        let head = location.split('[').next().unwrap_or(location);
        match head {
            "kernel" => UnitKind::Modules,
            "init" => UnitKind::Init,
            "volume" => UnitKind::Volume,
            "onboot" => UnitKind::Onboot,
            "onshutdown" => UnitKind::Onshutdown,
            "services" => UnitKind::Service,
            "files" => UnitKind::Files,
            "sbom" => UnitKind::Sbom,
            _ => UnitKind::Other,
        }
    }
}

/// One part of the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSize {
    /// The config location (`kernel`, `init[0]`, `onboot[1]`, `files`...).
    pub location: String,
    pub title: String,
    pub kind: UnitKind,
    /// The image it comes from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Regular files (hard links once).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The unit as written before compression (its cpio or tar bytes).
    pub uncompressed: u64,
    /// The unit's bytes in the output (its compressed segments in an initrd).
    pub stored: u64,
    /// Whether `stored` is part of the initrd.
    pub in_initrd: bool,
}

/// The bytes of one image across the units that use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    pub image: String,
    pub units: Vec<String>,
    pub files: u64,
    pub bytes: u64,
}

/// A directory: its files' bytes, everything below it included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirNode {
    pub name: String,
    pub bytes: u64,
    pub files: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<DirNode>,
}

/// One file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSize {
    pub path: String,
    pub bytes: u64,
    pub unit: String,
}

/// An output file written by the build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSize {
    pub name: String,
    pub bytes: u64,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeReport {
    pub format: u32,
    /// The build's name (`--name`).
    pub name: String,
    /// The formats written.
    pub outputs_format: String,
    /// The initrd's compression (`gzip`, `zstd`, `none`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    pub units: Vec<UnitSize>,
    pub images: Vec<ImageSize>,
    pub tree: DirNode,
    pub top_files: Vec<FileSize>,
    pub outputs: Vec<OutputSize>,
    /// The initrd's size, when one was written: the sum of the units'
    /// `stored` bytes marked `in_initrd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd_bytes: Option<u64>,
}

impl SizeReport {
    /// Regular files' bytes over every unit.
    pub fn total_bytes(&self) -> u64 {
        self.units.iter().map(|u| u.bytes).sum()
    }

    pub fn total_files(&self) -> u64 {
        self.units.iter().map(|u| u.files).sum()
    }

    pub fn total_uncompressed(&self) -> u64 {
        self.units.iter().map(|u| u.uncompressed).sum()
    }

    pub fn total_stored(&self) -> u64 {
        self.units.iter().map(|u| u.stored).sum()
    }

    /// The units' stored bytes that make up the initrd.
    pub fn initrd_sum(&self) -> u64 {
        self.units
            .iter()
            .filter(|u| u.in_initrd)
            .map(|u| u.stored)
            .sum()
    }

    /// The report as JSON (sorted as built; the same report, the same bytes).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// A report from its JSON, or from an HTML report that embeds it.
    pub fn parse(text: &str) -> Result<SizeReport, ReportError> {
        let json = if text.trim_start().starts_with('{') {
            text.to_owned()
        } else {
            crate::html::embedded_json(text).ok_or(ReportError::NotAReport)?
        };
        let value: serde_json::Value = serde_json::from_str(&json)?;
        let found = value.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
        if found != u64::from(FORMAT) {
            return Err(ReportError::Format {
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        Ok(serde_json::from_value(value)?)
    }

    /// The directories at `depth` (1: top level), largest first.
    pub fn dirs_at(&self, depth: usize) -> Vec<(String, u64, u64)> {
        let mut out = Vec::new();
        fn walk(node: &DirNode, prefix: &str, depth: usize, out: &mut Vec<(String, u64, u64)>) {
            for c in &node.children {
                let path = if prefix.is_empty() {
                    c.name.clone()
                } else {
                    format!("{prefix}/{}", c.name)
                };
                if depth <= 1 || c.children.is_empty() {
                    out.push((path, c.bytes, c.files));
                } else {
                    walk(c, &path, depth - 1, out);
                }
            }
        }
        walk(&self.tree, "", depth, &mut out);
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// Collects files into the per-image, per-directory and top-file views.
#[derive(Debug, Default)]
pub struct Collector {
    root: DirNode,
    top: Vec<FileSize>,
    images: BTreeMap<String, ImageSize>,
}

fn insert(node: &mut DirNode, parts: &[&str], bytes: u64) {
    node.bytes += bytes;
    node.files += 1;
    // The last part is the file itself; directories stop at TREE_DEPTH.
    if parts.len() <= 1 {
        return;
    }
    let name = parts[0];
    let pos = match node
        .children
        .binary_search_by(|c| c.name.as_str().cmp(name))
    {
        Ok(i) => i,
        Err(i) => {
            node.children.insert(
                i,
                DirNode {
                    name: name.to_owned(),
                    ..DirNode::default()
                },
            );
            i
        }
    };
    insert(&mut node.children[pos], &parts[1..], bytes);
}

impl Collector {
    /// A regular file of `bytes` at `path` in `unit`, from `image`.
    pub fn file(&mut self, unit: &str, image: Option<&str>, path: &str, bytes: u64) {
        let clean = path.trim_start_matches("./").trim_start_matches('/');
        let parts: Vec<&str> = clean.split('/').filter(|p| !p.is_empty()).collect();
        let keep = parts.len().min(TREE_DEPTH + 1);
        let mut dirs: Vec<&str> = parts[..keep.saturating_sub(1)].to_vec();
        dirs.push(parts.last().copied().unwrap_or(""));
        insert(&mut self.root, &dirs, bytes);
        if let Some(image) = image {
            let entry = self
                .images
                .entry(image.to_owned())
                .or_insert_with(|| ImageSize {
                    image: image.to_owned(),
                    units: Vec::new(),
                    files: 0,
                    bytes: 0,
                });
            entry.files += 1;
            entry.bytes += bytes;
            if entry.units.last().map(String::as_str) != Some(unit) {
                entry.units.push(unit.to_owned());
            }
        }
        let file = FileSize {
            path: clean.to_owned(),
            bytes,
            unit: unit.to_owned(),
        };
        // Keep the largest few; ties by path, so the result is the same
        // whatever order units were read in.
        let pos = self
            .top
            .partition_point(|f| f.bytes > bytes || (f.bytes == bytes && f.path < file.path));
        if pos < TOP_FILES {
            self.top.insert(pos, file);
            self.top.truncate(TOP_FILES);
        }
    }

    /// Another collector's files (a unit read on another thread).
    pub fn merge(&mut self, other: Collector) {
        fn add(into: &mut DirNode, from: DirNode) {
            into.bytes += from.bytes;
            into.files += from.files;
            for c in from.children {
                match into.children.binary_search_by(|x| x.name.cmp(&c.name)) {
                    Ok(i) => add(&mut into.children[i], c),
                    Err(i) => into.children.insert(i, c),
                }
            }
        }
        add(&mut self.root, other.root);
        for (k, v) in other.images {
            let e = self.images.entry(k).or_insert_with(|| ImageSize {
                image: v.image.clone(),
                units: Vec::new(),
                files: 0,
                bytes: 0,
            });
            e.files += v.files;
            e.bytes += v.bytes;
            for u in v.units {
                if !e.units.contains(&u) {
                    e.units.push(u);
                }
            }
        }
        for f in other.top {
            let pos = self
                .top
                .partition_point(|t| t.bytes > f.bytes || (t.bytes == f.bytes && t.path < f.path));
            if pos < TOP_FILES {
                self.top.insert(pos, f);
                self.top.truncate(TOP_FILES);
            }
        }
    }

    /// The report of `units` with these files.
    pub fn finish(
        self,
        name: &str,
        outputs_format: &str,
        compression: Option<&str>,
        units: Vec<UnitSize>,
        outputs: Vec<OutputSize>,
    ) -> SizeReport {
        let mut images: Vec<ImageSize> = self.images.into_values().collect();
        images.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.image.cmp(&b.image)));
        let in_initrd = units.iter().any(|u| u.in_initrd);
        let initrd_bytes =
            in_initrd.then(|| units.iter().filter(|u| u.in_initrd).map(|u| u.stored).sum());
        SizeReport {
            format: FORMAT,
            name: name.to_owned(),
            outputs_format: outputs_format.to_owned(),
            compression: compression.map(str::to_owned),
            units,
            images,
            tree: self.root,
            top_files: self.top,
            outputs,
            initrd_bytes,
        }
    }
}

/// Bytes for people: `1.5 MiB`, `812 KiB`, `97 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What compression saved, in percent of the uncompressed bytes.
pub fn saved_percent(uncompressed: u64, stored: u64) -> String {
    if uncompressed == 0 {
        return "-".to_owned();
    }
    let saved = uncompressed.saturating_sub(stored) as f64 * 100.0 / uncompressed as f64;
    format!("{saved:.0}%")
}

/// The report as text: exact byte counts, so the columns add up.
pub fn text(report: &SizeReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "size report: {} ({}{})",
        report.name,
        report.outputs_format,
        report
            .compression
            .as_deref()
            .map(|c| format!(", initrd {c}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "\nunits{:>55} {:>12} {:>12} {:>12} {:>6}",
        "files", "bytes", "uncompressed", "stored", "saved"
    );
    for u in &report.units {
        let _ = writeln!(
            s,
            "  {:<10} {:<38.38} {:>8} {:>12} {:>12} {:>12} {:>6}{}",
            u.kind.name(),
            u.title,
            u.files,
            u.bytes,
            u.uncompressed,
            u.stored,
            saved_percent(u.uncompressed, u.stored),
            if u.in_initrd {
                ""
            } else {
                "  (beside the initrd)"
            }
        );
    }
    let _ = writeln!(
        s,
        "  {:<49} {:>8} {:>12} {:>12} {:>12} {:>6}",
        "total",
        report.total_files(),
        report.total_bytes(),
        report.total_uncompressed(),
        report.total_stored(),
        saved_percent(report.total_uncompressed(), report.total_stored())
    );
    if let Some(initrd) = report.initrd_bytes {
        let _ = writeln!(
            s,
            "  {:<49} {:>47}",
            "initrd (the units marked in it, in order)", initrd
        );
    }
    if !report.outputs.is_empty() {
        let _ = writeln!(s, "\noutputs");
        for o in &report.outputs {
            let _ = writeln!(s, "  {:<60} {:>12}  {}", o.name, o.bytes, human(o.bytes));
        }
    }
    let _ = writeln!(s, "\nimages{:>57} {:>12}", "files", "bytes");
    for i in &report.images {
        let _ = writeln!(
            s,
            "  {:<60.60} {:>8} {:>12}  {}",
            i.image,
            i.files,
            i.bytes,
            human(i.bytes)
        );
    }
    let _ = writeln!(s, "\ndirectories (largest, three levels){:>40}", "bytes");
    for (path, bytes, _) in report.dirs_at(3).into_iter().take(20) {
        let _ = writeln!(s, "  {:<60.60} {:>12}  {}", path, bytes, human(bytes));
    }
    let _ = writeln!(s, "\nlargest files{:>63}", "bytes");
    for f in report.top_files.iter().take(20) {
        let _ = writeln!(s, "  {:<60.60} {:>12}  {}", f.path, f.bytes, human(f.bytes));
    }
    s
}

fn signed(n: i128) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

fn changes<K: Ord + Clone + std::fmt::Display>(
    a: &BTreeMap<K, u64>,
    b: &BTreeMap<K, u64>,
) -> Vec<(K, u64, u64, i128)> {
    let mut keys: Vec<&K> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<(K, u64, u64, i128)> = keys
        .into_iter()
        .map(|k| {
            let x = a.get(k).copied().unwrap_or(0);
            let y = b.get(k).copied().unwrap_or(0);
            (k.clone(), x, y, i128::from(y) - i128::from(x))
        })
        .filter(|c| c.3 != 0)
        .collect();
    out.sort_by(|p, q| q.3.abs().cmp(&p.3.abs()).then_with(|| p.0.cmp(&q.0)));
    out
}

fn section<K: Ord + Clone + std::fmt::Display>(
    s: &mut String,
    title: &str,
    a: &BTreeMap<K, u64>,
    b: &BTreeMap<K, u64>,
    limit: usize,
) {
    let rows = changes(a, b);
    let _ = writeln!(s, "\n{title}");
    if rows.is_empty() {
        let _ = writeln!(s, "  (no change)");
    }
    for (k, x, y, d) in rows.into_iter().take(limit) {
        let what = match (x, y) {
            (0, _) => "  new",
            (_, 0) => "  gone",
            _ if d > 0 => "  grew",
            _ => "  shrank",
        };
        let _ = writeln!(
            s,
            "  {:<56.56} {:>12} -> {:>12} {:>13}{what}",
            k.to_string(),
            x,
            y,
            signed(d)
        );
    }
}

/// What changed from report `a` to report `b`: totals, units, images and
/// directories, largest change first, in bytes.
pub fn diff(a: &SizeReport, b: &SizeReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "size report diff: {} -> {}", a.name, b.name);
    let totals = [
        ("files", a.total_files(), b.total_files()),
        ("bytes", a.total_bytes(), b.total_bytes()),
        (
            "uncompressed",
            a.total_uncompressed(),
            b.total_uncompressed(),
        ),
        ("stored", a.total_stored(), b.total_stored()),
        (
            "initrd",
            a.initrd_bytes.unwrap_or(0),
            b.initrd_bytes.unwrap_or(0),
        ),
    ];
    let _ = writeln!(s, "\ntotals");
    for (name, x, y) in totals {
        let _ = writeln!(
            s,
            "  {:<56} {:>12} -> {:>12} {:>13}",
            name,
            x,
            y,
            signed(i128::from(y) - i128::from(x))
        );
    }
    let units = |r: &SizeReport| -> BTreeMap<String, u64> {
        r.units
            .iter()
            .map(|u| (format!("{} {}", u.location, u.title), u.stored))
            .collect()
    };
    section(&mut s, "units (stored bytes)", &units(a), &units(b), 50);
    let images = |r: &SizeReport| -> BTreeMap<String, u64> {
        r.images
            .iter()
            .map(|i| (i.image.clone(), i.bytes))
            .collect()
    };
    section(&mut s, "images (bytes)", &images(a), &images(b), 50);
    let dirs = |r: &SizeReport| -> BTreeMap<String, u64> {
        r.dirs_at(4).into_iter().map(|(p, b, _)| (p, b)).collect()
    };
    section(
        &mut s,
        "directories (bytes, four levels)",
        &dirs(a),
        &dirs(b),
        30,
    );
    s
}

/// [`diff`] as JSON: `from` and `to` (the reports' names), then `totals`,
/// `units` (stored bytes), `images` and `directories` (four levels), each a
/// list of `{name, from, to, change}`; the totals all, the other lists
/// every row that changed, largest change first.
pub fn diff_json(a: &SizeReport, b: &SizeReport) -> serde_json::Value {
    let rows = |changes: Vec<(String, u64, u64, i128)>| -> Vec<serde_json::Value> {
        changes
            .into_iter()
            .map(|(name, x, y, d)| {
                // Sizes beyond 8 EiB apart do not occur; clamped, not wrapped.
                let change = i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX });
                serde_json::json!({ "name": name, "from": x, "to": y, "change": change })
            })
            .collect()
    };
    let totals = [
        ("files", a.total_files(), b.total_files()),
        ("bytes", a.total_bytes(), b.total_bytes()),
        (
            "uncompressed",
            a.total_uncompressed(),
            b.total_uncompressed(),
        ),
        ("stored", a.total_stored(), b.total_stored()),
        (
            "initrd",
            a.initrd_bytes.unwrap_or(0),
            b.initrd_bytes.unwrap_or(0),
        ),
    ];
    let totals = rows(
        totals
            .into_iter()
            .map(|(n, x, y)| (n.to_string(), x, y, i128::from(y) - i128::from(x)))
            .collect(),
    );
    let units = |r: &SizeReport| -> BTreeMap<String, u64> {
        r.units
            .iter()
            .map(|u| (format!("{} {}", u.location, u.title), u.stored))
            .collect()
    };
    let images = |r: &SizeReport| -> BTreeMap<String, u64> {
        r.images
            .iter()
            .map(|i| (i.image.clone(), i.bytes))
            .collect()
    };
    let dirs = |r: &SizeReport| -> BTreeMap<String, u64> {
        r.dirs_at(4).into_iter().map(|(p, b, _)| (p, b)).collect()
    };
    serde_json::json!({
        "from": a.name,
        "to": b.name,
        "totals": totals,
        "units": rows(changes(&units(a), &units(b))),
        "images": rows(changes(&images(a), &images(b))),
        "directories": rows(changes(&dirs(a), &dirs(b))),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub(crate) fn sample(extra: u64) -> SizeReport {
        let mut c = Collector::default();
        c.file(
            "kernel",
            Some("k"),
            "./lib/modules/6.12/kernel/virtio.ko",
            5000,
        );
        c.file("init[0]", Some("init"), "init", 900 + extra);
        c.file(
            "onboot[0]",
            Some("busybox"),
            "containers/onboot/000-a/lower/bin/busybox",
            1000,
        );
        c.file(
            "services[0]",
            Some("busybox"),
            "containers/services/b/lower/bin/busybox",
            1000,
        );
        let units = vec![
            UnitSize {
                location: "kernel".into(),
                title: "kernel binary".into(),
                kind: UnitKind::Kernel,
                image: Some("k".into()),
                files: 1,
                bytes: 7000,
                uncompressed: 7000,
                stored: 7000,
                in_initrd: false,
            },
            UnitSize {
                location: "kernel".into(),
                title: "kernel k".into(),
                kind: UnitKind::Modules,
                image: Some("k".into()),
                files: 1,
                bytes: 5000,
                uncompressed: 5400,
                stored: 2000,
                in_initrd: true,
            },
            UnitSize {
                location: "init[0]".into(),
                title: "init init".into(),
                kind: UnitKind::Init,
                image: Some("init".into()),
                files: 1,
                bytes: 900 + extra,
                uncompressed: 1200 + extra,
                stored: 600 + extra,
                in_initrd: true,
            },
        ];
        c.finish("demo", "kernel+initrd", Some("gzip"), units, Vec::new())
    }

    #[test]
    fn totals_and_tree() {
        let r = sample(0);
        assert_eq!(r.initrd_bytes, Some(2600));
        assert_eq!(r.initrd_sum(), 2600);
        assert_eq!(r.tree.bytes, 7900);
        assert_eq!(r.images[0].image, "k");
        assert_eq!(r.images[1].image, "busybox");
        assert_eq!(r.images[1].units, ["onboot[0]", "services[0]"]);
        assert_eq!(r.top_files[0].bytes, 5000);
        let top = r.dirs_at(1);
        assert_eq!(top[0], ("lib".to_owned(), 5000, 1));
        assert_eq!(top[1], ("containers".to_owned(), 2000, 2));
        let text = text(&r);
        assert!(text.contains("(beside the initrd)"), "{text}");
        assert!(text.contains("2600"), "{text}");
    }

    #[test]
    fn json_round_trip_and_diff() {
        let a = sample(0);
        let b = sample(100);
        let back = SizeReport::parse(&a.to_json().unwrap()).unwrap();
        assert_eq!(back, a);
        let d = diff(&a, &b);
        assert!(d.contains("+100"), "{d}");
        assert!(d.contains("grew"), "{d}");
        assert!(diff(&a, &a).contains("(no change)"));
        assert!(matches!(
            SizeReport::parse("<html></html>"),
            Err(ReportError::NotAReport)
        ));
    }

    #[test]
    fn merged_collectors_equal_one() {
        let mut one = Collector::default();
        let mut a = Collector::default();
        let mut b = Collector::default();
        for (i, (p, n)) in [("x/a", 5u64), ("x/b", 7), ("y/c", 5), ("z", 1)]
            .into_iter()
            .enumerate()
        {
            one.file("u", Some("img"), p, n);
            if i % 2 == 0 {
                a.file("u", Some("img"), p, n)
            } else {
                b.file("u", Some("img"), p, n)
            }
        }
        a.merge(b);
        assert_eq!(a.root, one.root);
        assert_eq!(a.top, one.top);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(97), "97 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(300 << 20), "300 MiB");
    }
}
