//! The `kernel:` step: a Debian kernel package's tree becomes LinuxKit's
//! kernel image layout, `/kernel` plus `/kernel.tar` holding
//! `lib/modules/<version>/`, reduced to the listed modules and everything
//! they need, with `modules.dep`, `modules.alias`, `modules.softdep` and
//! `modules.load` generated here from each module's `.modinfo` section
//! (depmod is not needed: Debian's `.ko.xz` are decompressed in-process).
//!
//! `modules.load`: one path per line, relative to `lib/modules/<version>/`,
//! dependencies before the modules that need them, each module once: load
//! them in that order.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use crate::def::KernelStep;
use crate::error::PkgError;
use crate::tree::{Content, Entry, Kind, Tree, write_tar};

const MODULE_EXTS: [&str; 4] = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"];
/// Largest decompressed module read.
const MAX_MODULE: u64 = 256 << 20;

#[derive(Clone, Debug, Default)]
struct Module {
    /// Relative to `lib/modules/<version>/`.
    path: String,
    depends: Vec<String>,
    softdep_pre: Vec<String>,
    softdep_post: Vec<String>,
    aliases: Vec<String>,
}

/// `ext4` for `kernel/fs/ext4/ext4.ko.xz`; `-` becomes `_`.
pub fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    MODULE_EXTS
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .map(|n| n.replace('-', "_"))
}

fn decompress(path: &str, content: &Content) -> Result<Vec<u8>, PkgError> {
    let err = |source| PkgError::Read {
        step: "kernel",
        path: path.to_string(),
        source,
    };
    let reader = content.open().map_err(err)?;
    let mut out = Vec::new();
    let mut r: Box<dyn Read> = if path.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(reader))
    } else if path.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(reader).map_err(err)?)
    } else if path.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        reader
    };
    r.by_ref()
        .take(MAX_MODULE)
        .read_to_end(&mut out)
        .map_err(err)?;
    Ok(out)
}

/// The `key=value` strings of a module's `.modinfo` section.
pub fn modinfo(elf: &[u8]) -> Vec<(String, String)> {
    use object::{Object, ObjectSection};
    let Ok(file) = object::File::parse(elf) else {
        return Vec::new();
    };
    let Some(section) = file.section_by_name(".modinfo") else {
        return Vec::new();
    };
    let Ok(data) = section.data() else {
        return Vec::new();
    };
    data.split(|b| *b == 0)
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn read_module(path: &str, content: &Content) -> Result<Module, PkgError> {
    let elf = decompress(path, content)?;
    let mut m = Module {
        path: path.to_string(),
        ..Module::default()
    };
    for (k, v) in modinfo(&elf) {
        match k.as_str() {
            "depends" => m.depends.extend(
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.replace('-', "_")),
            ),
            "alias" => m.aliases.push(v),
            "softdep" => {
                let mut post = false;
                for word in v.split_whitespace() {
                    match word {
                        "pre:" => post = false,
                        "post:" => post = true,
                        w if post => m.softdep_post.push(w.replace('-', "_")),
                        w => m.softdep_pre.push(w.replace('-', "_")),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(m)
}

/// The module that declares `alias`, among those whose name starts with it:
/// soft dependencies name crypto algorithms so (`libcrc32c` has `pre:
/// crc32c`, which `crc32c_generic` and `crc32c_intel` provide). The
/// `_generic` one is preferred, since it loads on any CPU; without it the
/// module needing the algorithm fails to load (`ENOENT`).
fn alias_provider(
    alias: &str,
    files: &BTreeMap<String, (String, Content)>,
) -> Result<Option<String>, PkgError> {
    let mut candidates: Vec<&String> = files
        .keys()
        .filter(|n| n.starts_with(alias) && n.as_str() != alias)
        .collect();
    candidates.sort_by_key(|n| (!n.ends_with("_generic"), n.as_str()));
    for name in candidates {
        let (rel, content) = &files[name];
        let m = read_module(rel, content)?;
        if m.aliases.iter().any(|a| a.replace('-', "_") == alias) {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}

/// The initramfs compressions a kernel config (`boot/config-*`) enables,
/// in a fixed order, comma-separated.
pub fn initrd_compressions(config: &str) -> String {
    const OPTIONS: [(&str, &str); 7] = [
        ("CONFIG_RD_GZIP", "gzip"),
        ("CONFIG_RD_BZIP2", "bzip2"),
        ("CONFIG_RD_LZMA", "lzma"),
        ("CONFIG_RD_XZ", "xz"),
        ("CONFIG_RD_LZO", "lzo"),
        ("CONFIG_RD_LZ4", "lz4"),
        ("CONFIG_RD_ZSTD", "zstd"),
    ];
    let set: BTreeSet<&str> = config
        .lines()
        .filter_map(|l| l.trim().strip_suffix("=y"))
        .collect();
    OPTIONS
        .iter()
        .filter(|(option, _)| set.contains(option))
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

/// Applies the step: the tree afterwards holds only `kernel` and `kernel.tar`.
/// The kernel's `boot/config-<version>`, when the package has it, is
/// recorded in the [`INITRD_COMPRESSION_LABEL`] label.
///
/// [`INITRD_COMPRESSION_LABEL`]: slipway_config::label::INITRD_COMPRESSION_LABEL
pub fn apply(tree: &mut Tree, step: &KernelStep, epoch: u64) -> Result<(), PkgError> {
    let vmlinuz: Vec<(String, Content)> = tree
        .entries()
        .iter()
        .filter(|(p, _)| p.starts_with("boot/vmlinuz-"))
        .filter_map(|(p, e)| match &e.kind {
            Kind::File(c) => Some((p.clone(), c.clone())),
            _ => None,
        })
        .collect();
    let [(kpath, kernel)] = vmlinuz.as_slice() else {
        return Err(PkgError::step(
            "kernel",
            format!(
                "expected exactly one /boot/vmlinuz-* in the image (install a linux-image package first), found {}",
                vmlinuz.len()
            ),
        ));
    };
    let version = kpath.trim_start_matches("boot/vmlinuz-").to_string();
    let base = format!("lib/modules/{version}/");
    if !tree.entries().contains_key(base.trim_end_matches('/')) {
        return Err(PkgError::step(
            "kernel",
            format!("/{base} is not in the image"),
        ));
    }
    // Every module file, by name.
    let files: BTreeMap<String, (String, Content)> = tree
        .entries()
        .range(base.clone()..)
        .take_while(|(p, _)| p.starts_with(&base))
        .filter_map(|(p, e)| match &e.kind {
            Kind::File(c) => {
                let rel = p[base.len()..].to_string();
                module_name(&rel).map(|n| (n, (rel, c.clone())))
            }
            _ => None,
        })
        .collect();
    let builtin: BTreeSet<String> = match tree.get(&format!("{base}modules.builtin")) {
        Some(Entry {
            kind: Kind::File(c),
            ..
        }) => String::from_utf8_lossy(
            &c.read_all(16 << 20)
                .map_err(PkgError::read("kernel", "modules.builtin"))?,
        )
        .lines()
        .filter_map(module_name)
        .collect(),
        _ => BTreeSet::new(),
    };
    // Read .modinfo of what is needed: everything, or the closure of the list.
    let mut modules: BTreeMap<String, Module> = BTreeMap::new();
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    let wanted: Vec<String> = match &step.modules {
        None => files.keys().cloned().collect(),
        Some(list) => list.iter().map(|n| n.replace('-', "_")).collect(),
    };
    if step.modules.is_none() {
        let all: Vec<(&String, &(String, Content))> = files.iter().collect();
        let read = read_parallel(&all)?;
        for m in read {
            let name = module_name(&m.path).unwrap_or_default();
            modules.insert(name, m);
        }
    }
    let mut roots = Vec::new();
    let mut pending: Vec<String> = wanted.clone();
    for n in step.load.iter().map(|n| n.replace('-', "_")) {
        if !pending.contains(&n) {
            pending.push(n);
        }
    }
    let mut first = true;
    while !pending.is_empty() {
        let mut next = Vec::new();
        for name in std::mem::take(&mut pending) {
            if modules.contains_key(&name) {
                if first {
                    roots.push(name);
                }
                continue;
            }
            let Some((rel, content)) = files.get(&name) else {
                if builtin.contains(&name) {
                    tracing::info!("kernel: {name} is built into {version}; nothing to load");
                    continue;
                }
                if let Some(target) = aliases.get(&name) {
                    next.push(target.clone());
                    continue;
                }
                if !first && let Some(provider) = alias_provider(&name, &files)? {
                    aliases.insert(name.clone(), provider.clone());
                    next.push(provider);
                    continue;
                }
                if first {
                    return Err(PkgError::step(
                        "kernel",
                        format!("module {name} is neither a module of {version} nor built in"),
                    ));
                }
                // A soft dependency naming an alias or an absent module is optional.
                tracing::debug!("kernel: optional module {name} not found");
                continue;
            };
            let m = read_module(rel, content)?;
            for a in &m.aliases {
                aliases.entry(a.clone()).or_insert_with(|| name.clone());
            }
            next.extend(m.depends.iter().cloned());
            next.extend(m.softdep_pre.iter().cloned());
            next.extend(m.softdep_post.iter().cloned());
            if first {
                roots.push(name.clone());
            }
            modules.insert(name, m);
        }
        first = false;
        pending = next;
    }
    // Soft dependencies given by alias (crc32c -> crc32c_generic): resolve
    // through the aliases of the modules read.
    for m in modules.values() {
        for a in &m.aliases {
            aliases
                .entry(a.clone())
                .or_insert_with(|| module_name(&m.path).unwrap_or_default());
        }
    }
    let lookup = |n: &str| -> Option<String> {
        if modules.contains_key(n) {
            Some(n.to_string())
        } else {
            aliases.get(n).filter(|t| modules.contains_key(*t)).cloned()
        }
    };
    // Load order of `name` with its (hard and soft-pre) dependencies, deps first.
    fn visit(
        name: &str,
        modules: &BTreeMap<String, Module>,
        lookup: &dyn Fn(&str) -> Option<String>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
        soft: bool,
    ) {
        if !seen.insert(name.to_string()) {
            return;
        }
        if let Some(m) = modules.get(name) {
            let deps = m.depends.iter().chain(if soft {
                m.softdep_pre.iter()
            } else {
                [].iter()
            });
            for d in deps {
                if let Some(d) = lookup(d) {
                    visit(&d, modules, lookup, seen, out, soft);
                }
            }
            out.push(name.to_string());
        }
    }
    let mut dep_lines = Vec::new();
    for (name, m) in &modules {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        visit(name, &modules, &lookup, &mut seen, &mut order, false);
        order.pop();
        let deps: Vec<&str> = order
            .iter()
            .rev()
            .filter_map(|d| modules.get(d).map(|m| m.path.as_str()))
            .collect();
        dep_lines.push((m.path.clone(), deps.join(" ")));
    }
    dep_lines.sort();
    let mut dep_text = String::new();
    for (p, deps) in &dep_lines {
        dep_text.push_str(&format!(
            "{p}:{}{deps}\n",
            if deps.is_empty() { "" } else { " " }
        ));
    }
    let mut alias_text = String::from("# Aliases extracted from modules themselves.\n");
    let mut softdep_text = String::from("# Soft dependencies extracted from modules themselves.\n");
    for (name, m) in &modules {
        for a in &m.aliases {
            alias_text.push_str(&format!("alias {a} {name}\n"));
        }
        if !m.softdep_pre.is_empty() || !m.softdep_post.is_empty() {
            softdep_text.push_str(&format!("softdep {name}"));
            if !m.softdep_pre.is_empty() {
                softdep_text.push_str(&format!(" pre: {}", m.softdep_pre.join(" ")));
            }
            if !m.softdep_post.is_empty() {
                softdep_text.push_str(&format!(" post: {}", m.softdep_post.join(" ")));
            }
            softdep_text.push('\n');
        }
    }
    let load_names: Vec<String> = if step.load.is_empty() {
        Vec::new()
    } else {
        step.load.iter().map(|n| n.replace('-', "_")).collect()
    };
    let mut load_order = Vec::new();
    let mut seen = BTreeSet::new();
    for n in &load_names {
        if let Some(n) = lookup(n) {
            visit(&n, &modules, &lookup, &mut seen, &mut load_order, true);
        }
    }
    let mut load_text = String::new();
    for n in &load_order {
        if let Some(m) = modules.get(n) {
            load_text.push_str(&m.path);
            load_text.push('\n');
        }
    }

    // The new tree under lib/modules/<version>: kept modules, the metadata
    // the package shipped (modules.builtin*, modules.order), what was generated.
    let kept: BTreeSet<String> = modules
        .values()
        .map(|m| format!("{base}{}", m.path))
        .collect();
    let mut modtree = Tree::new()?;
    for (p, e) in tree
        .entries()
        .range(base.clone()..)
        .take_while(|(p, _)| p.starts_with(&base))
    {
        let rel = &p[base.len()..];
        let shipped_meta = !rel.contains('/') && rel.starts_with("modules.");
        if kept.contains(p) || shipped_meta {
            modtree.insert(
                p,
                Entry {
                    uid: 0,
                    gid: 0,
                    ..e.clone()
                },
            )?;
        }
    }
    modtree.add_bytes(&format!("{base}modules.dep"), dep_text.into_bytes(), 0o644)?;
    modtree.add_bytes(
        &format!("{base}modules.alias"),
        alias_text.into_bytes(),
        0o644,
    )?;
    modtree.add_bytes(
        &format!("{base}modules.softdep"),
        softdep_text.into_bytes(),
        0o644,
    )?;
    modtree.add_bytes(
        &format!("{base}modules.load"),
        load_text.into_bytes(),
        0o644,
    )?;
    let mut staged = tempfile::tempfile().map_err(PkgError::io(
        "creating a temporary file in",
        std::env::temp_dir(),
    ))?;
    let mut file = std::io::BufWriter::new(&mut staged);
    write_tar(
        modtree.entries().iter().map(|(k, v)| (k.as_str(), v)),
        &mut file,
        epoch,
    )?;
    drop(file);
    use std::io::Seek;
    staged
        .rewind()
        .map_err(PkgError::io("rewinding", std::env::temp_dir()))?;
    let tar = tree.stage(&mut staged)?;
    let kernel = kernel.clone();
    // The kernel has no IKCONFIG to ask later: what it unpacks is read here.
    if let Some(Entry {
        kind: Kind::File(c),
        ..
    }) = tree.get(&format!("boot/config-{version}"))
    {
        let config = c
            .read_all(16 << 20)
            .map_err(PkgError::read("kernel", "the kernel's boot/config"))?;
        tree.set_label(
            slipway_config::label::INITRD_COMPRESSION_LABEL,
            initrd_compressions(&String::from_utf8_lossy(&config)),
        );
    }
    tree.remove("");
    tree.add_file("kernel", kernel, 0o644)?;
    tree.add_file("kernel.tar", tar, 0o644)?;
    tracing::info!(
        "kernel {version}: {} modules kept, {} loaded at boot",
        modules.len(),
        load_order.len()
    );
    Ok(())
}

/// Reads `.modinfo` of many modules on every core.
fn read_parallel(all: &[(&String, &(String, Content))]) -> Result<Vec<Module>, PkgError> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let chunk = all.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = all
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(_, (rel, c))| read_module(rel, c))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| PkgError::step("kernel", "a module reader panicked"))??,
            );
        }
        Ok(out)
    })
}
