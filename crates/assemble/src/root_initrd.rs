//! The small initrd of an image whose root filesystem is on a device (the
//! `kernel+squashfs`, `kernel+erofs` and `kernel+iso` outputs): only what
//! slipway-init needs to find and mount that root (`root=`), since the
//! rest of the image is on the device.
//!
//! It holds, in this order:
//!
//! * from the kernel unit, under each `lib/modules/<release>/`: the index
//!   files the init reads (`modules.dep`, `modules.alias`,
//!   `modules.softdep`, `modules.builtin`) and the modules of
//!   `slipway_contract::root_device` (the block, SATA/IDE, SCSI disk and CD
//!   drivers; the squashfs, erofs and ISO 9660 filesystems, found through
//!   their `fs-<type>` aliases) with everything they depend on: their
//!   `modules.dep` lines and their soft `pre:` dependencies, which name
//!   an alias (`libcrc32c` asks for `crc32c`, which `crc32c_generic`
//!   provides);
//! * from the init units, `/init` and, when it is a symbolic link, what it
//!   leads to. slipway-init is static, so nothing else is needed; the
//!   rest of the init images (a runtime, certificates) is on the root;
//! * the directories above each of those (the kernel's unpacker does not
//!   make missing parents).
//!
//! Not the kernel binary, its command line or microcode (`boot/`), which
//! are written beside the initrd, and no other unit. Entries keep their
//! headers; content is streamed through, never held. Each source stream
//! is read twice: once for the module index (or the init's links), once
//! to copy what is kept.
//!
//! # Use
//!
//! From planned units ([`crate::plan_units`]): the kernel unit
//! ([`Unit::is_kernel`]) and the init units ([`Unit::is_init`]), in the
//! config's order, into any [`EntrySink`], typically slipway-formats'
//! `CpioWriter` over a compressor, written beside the root image as
//! `<name>-initrd.img`:
//!
//! ```ignore
//! let kernel = units.iter().find(|u| u.is_kernel()).ok_or(...)?;
//! let inits: Vec<&Unit> = units.iter().filter(|u| u.is_init()).collect();
//! let mut cpio = CpioWriter::new(GzEncoder::new(file, level), false);
//! let kept = write_root_initrd(kernel, &inits, &store, &mut cpio)?;
//! cpio.finish()?.finish()?;
//! ```
//!
//! [`RootInitrd::missing`] names root-device drivers or filesystems the
//! kernel lacks: a root behind one of them cannot be mounted, so a build
//! should say so (the image may still boot from another device).
//! [`missing_root_modules`] gives that list from the kernel unit alone,
//! for a check before any output is written.
//! [`root_initrd_of`] does the same over any two replayable entry streams
//! (an image's `tar` output, say). The kernel is booted with
//! `root=/dev/vda`, `root=LABEL=…` or `root=UUID=…` (see slipway-init), the
//! root image's own label or UUID.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use slipway_contract::root_device;

use crate::blobs::BlobSource;
use crate::entry::{EntrySink, Header, Kind};
use crate::error::{AssembleError, Result};
use crate::units::Unit;

/// Largest index file read (`modules.alias` of a whole distribution
/// kernel is about 1.5 MiB).
const MAX_INDEX: u64 = 64 << 20;
/// The index files the init reads.
const INDEX_FILES: [&str; 4] = [
    "modules.dep",
    "modules.alias",
    "modules.softdep",
    "modules.builtin",
];

/// What went into a small initrd.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootInitrd {
    /// The kernel modules kept, as `lib/modules/<release>/<path>`, sorted.
    pub modules: Vec<String>,
    /// Root-device modules the kernel has neither as a module nor built in
    /// (a root behind them cannot be found).
    pub missing: Vec<String>,
}

/// A replayable entry stream: called once per pass, it pushes the same
/// entries into the sink each time.
pub type Source<'a> = dyn FnMut(&mut dyn EntrySink) -> Result<()> + 'a;

/// Write the small initrd's entries of `kernel` and `inits` (the init
/// units, in the config's order) into `sink`, which the caller turns into
/// a cpio archive. Fails when no init unit has `/init`.
pub fn write_root_initrd(
    kernel: &Unit,
    inits: &[&Unit],
    store: &dyn BlobSource,
    sink: &mut dyn EntrySink,
) -> Result<RootInitrd> {
    root_initrd_of(
        &mut |s| kernel.write(store, s),
        &mut |s| inits.iter().try_for_each(|u| u.write(store, s)),
        sink,
    )
}

/// [`write_root_initrd`] over any two entry streams: the kernel's modules
/// are taken from `kernel`, the init from `init`. Both may be a whole
/// image's entries (an image's `tar` output, say): only what the initrd
/// needs is kept from either.
pub fn root_initrd_of(
    kernel: &mut Source<'_>,
    init: &mut Source<'_>,
    sink: &mut dyn EntrySink,
) -> Result<RootInitrd> {
    let mut index = IndexScan::default();
    kernel(&mut index)?;
    let (kept_modules, missing) = index.select();
    let mut links = LinkScan::default();
    init(&mut links)?;
    let init_paths = links.init_chain()?;

    let mut keep = Keep::default();
    for (release, files) in &index.releases {
        for name in INDEX_FILES {
            if files.contains_key(name) {
                keep.add(&format!("lib/modules/{release}/{name}"));
            }
        }
    }
    for module in &kept_modules {
        keep.add(module);
    }
    let mut dirs = BTreeSet::new();
    kernel(&mut Filter {
        keep: &keep,
        dirs: &mut dirs,
        inner: sink,
    })?;
    let mut keep = Keep::default();
    for path in &init_paths {
        keep.add(path);
    }
    init(&mut Filter {
        keep: &keep,
        dirs: &mut dirs,
        inner: sink,
    })?;
    Ok(RootInitrd {
        modules: kept_modules.into_iter().collect(),
        missing,
    })
}

/// The root-device modules (of [`root_device::wanted`]: drivers by name,
/// filesystems by their `fs-<type>` alias) that `kernel` has neither as
/// a module nor built in, from one read of its unit: what
/// [`RootInitrd::missing`] will say, known before anything is written.
/// Empty for a kernel without `lib/modules/<release>/` (nothing to go by).
pub fn missing_root_modules(kernel: &Unit, store: &dyn BlobSource) -> Result<Vec<String>> {
    let mut index = IndexScan::default();
    kernel.write(store, &mut index)?;
    Ok(index.select().1)
}

/// A path as the entries' paths compare: no `./` or `/` in front, no `/`
/// behind (kernel.tar's names are kept verbatim, `./lib/modules/...`).
fn normal(path: &str) -> &str {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            break;
        }
    }
    p.trim_end_matches('/')
}

/// `lib/modules/<release>/<name>` split, for the index files.
fn index_file(path: &str) -> Option<(&str, &str)> {
    let rest = normal(path).strip_prefix("lib/modules/")?;
    let (release, name) = rest.split_once('/')?;
    (INDEX_FILES.contains(&name) && !release.is_empty()).then_some((release, name))
}

/// `ext4` for `kernel/fs/ext4/ext4.ko.xz`; `-` becomes `_`.
fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .map(|n| n.replace('-', "_"))
}

/// First pass over the kernel: its module index files, by release.
#[derive(Default)]
struct IndexScan {
    releases: BTreeMap<String, BTreeMap<&'static str, String>>,
}

impl EntrySink for IndexScan {
    fn entry(&mut self, header: &Header, _: &[Header], content: &mut dyn Read) -> io::Result<()> {
        if let (Kind::File { .. }, Some((release, name))) = (&header.kind, index_file(&header.path))
            && let Some(name) = INDEX_FILES.iter().find(|n| **n == name)
        {
            let mut text = Vec::new();
            content.take(MAX_INDEX).read_to_end(&mut text)?;
            self.releases
                .entry(release.to_owned())
                .or_default()
                .insert(name, String::from_utf8_lossy(&text).into_owned());
        }
        io::copy(content, &mut io::sink())?;
        Ok(())
    }
}

impl IndexScan {
    /// The root-device modules of every release with their dependencies,
    /// as kept paths; and the wanted names no release provides.
    fn select(&self) -> (BTreeSet<String>, Vec<String>) {
        let mut kept = BTreeSet::new();
        let mut missing = BTreeSet::new();
        for (release, files) in &self.releases {
            let text = |name: &str| files.get(name).map(String::as_str).unwrap_or_default();
            let index = ModIndex::parse(
                text("modules.dep"),
                text("modules.alias"),
                text("modules.softdep"),
                text("modules.builtin"),
            );
            for wanted in root_device::wanted() {
                match index.resolve(&wanted) {
                    Some(name) => {
                        let mut seen = BTreeSet::new();
                        index.closure(&name, &mut seen, 0);
                        for module in seen {
                            if let Some(path) = index.deps.get(&module).map(|(p, _)| p) {
                                kept.insert(format!("lib/modules/{release}/{}", normal(path)));
                            }
                        }
                    }
                    None => {
                        missing.insert(wanted);
                    }
                }
            }
        }
        (kept, missing.into_iter().collect())
    }
}

/// The parts of a module index the closure needs.
struct ModIndex {
    /// Name → (path, dependency names).
    deps: BTreeMap<String, (String, Vec<String>)>,
    /// Exact alias (`-` as `_`) → module names, in file order.
    aliases: BTreeMap<String, Vec<String>>,
    /// Name → names or aliases to load first.
    softdeps: BTreeMap<String, Vec<String>>,
    builtin: BTreeSet<String>,
}

impl ModIndex {
    fn parse(dep: &str, alias: &str, softdep: &str, builtin: &str) -> ModIndex {
        let mut deps = BTreeMap::new();
        for line in dep.lines() {
            let Some((path, rest)) = line.split_once(':') else {
                continue;
            };
            if let Some(name) = module_name(path) {
                let needs = rest.split_whitespace().filter_map(module_name).collect();
                deps.insert(name, (path.trim().to_owned(), needs));
            }
        }
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                aliases
                    .entry(pattern.replace('-', "_"))
                    .or_default()
                    .push(module.replace('-', "_"));
            }
        }
        let mut softdeps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else { continue };
            let mut pre = false;
            for word in words {
                match word {
                    "pre:" => pre = true,
                    "post:" => pre = false,
                    name if pre => softdeps
                        .entry(module.replace('-', "_"))
                        .or_default()
                        .push(name.replace('-', "_")),
                    _ => {}
                }
            }
        }
        ModIndex {
            deps,
            aliases,
            softdeps,
            builtin: builtin.lines().filter_map(module_name).collect(),
        }
    }

    /// The module a name stands for (itself, or what an exact alias
    /// names, a loadable one first); `None` when nothing provides it.
    /// A built-in one resolves to itself: nothing to keep, nothing missing.
    fn resolve(&self, name: &str) -> Option<String> {
        let name = name.replace('-', "_");
        if self.deps.contains_key(&name) || self.builtin.contains(&name) {
            return Some(name);
        }
        let targets = self.aliases.get(&name)?;
        targets
            .iter()
            .find(|m| self.deps.contains_key(*m))
            .or_else(|| targets.iter().find(|m| self.builtin.contains(*m)))
            .cloned()
    }

    /// `name` and everything it needs into `seen`.
    fn closure(&self, name: &str, seen: &mut BTreeSet<String>, depth: usize) {
        if depth > 64 || !seen.insert(name.to_owned()) {
            return;
        }
        let soft = self.softdeps.get(name).into_iter().flatten();
        let hard = self.deps.get(name).into_iter().flat_map(|(_, d)| d);
        let needs: Vec<String> = soft.chain(hard).filter_map(|n| self.resolve(n)).collect();
        for need in needs {
            self.closure(&need, seen, depth + 1);
        }
    }
}

/// First pass over the init units: which paths exist, and the links.
#[derive(Default)]
struct LinkScan {
    exists: BTreeSet<String>,
    /// Link → target, hard links' targets as `/path`.
    symlinks: BTreeMap<String, String>,
}

impl EntrySink for LinkScan {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        for h in std::iter::once(header).chain(links) {
            let path = normal(&h.path).to_owned();
            match &h.kind {
                Kind::Symlink { target } => {
                    self.symlinks.insert(path.clone(), target.clone());
                }
                // A hard link (a tar's own entry) needs its target's data:
                // followed like a symbolic link, its target an image path.
                Kind::Link { target } => {
                    self.symlinks
                        .insert(path.clone(), format!("/{}", normal(target)));
                }
                _ => {
                    // A later entry replaces an earlier one, as in the cpio.
                    self.symlinks.remove(&path);
                }
            }
            self.exists.insert(path);
        }
        io::copy(content, &mut io::sink())?;
        Ok(())
    }
}

impl LinkScan {
    /// `init` and the paths its symbolic (or hard) links lead through.
    fn init_chain(&self) -> Result<Vec<String>> {
        let missing = |message: String| AssembleError::Config {
            location: "init".to_owned(),
            message,
        };
        let mut chain = Vec::new();
        let mut path = "init".to_owned();
        for _ in 0..40 {
            if !self.exists.contains(&path) {
                return Err(missing(if chain.is_empty() {
                    "no init image has /init, which the initrd of a root device starts (slipway's init package has it)".to_owned()
                } else {
                    format!("/init leads to /{path}, which no init image has")
                }));
            }
            chain.push(path.clone());
            let Some(target) = self.symlinks.get(&path) else {
                return Ok(chain);
            };
            path = resolve_link(&path, target);
        }
        Err(missing("/init is a loop of symbolic links".to_owned()))
    }
}

/// Where a symbolic link at `link` pointing at `target` leads, as a path
/// inside the image (`..` stops at the root).
fn resolve_link(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut parent: Vec<&str> = link.split('/').collect();
        parent.pop();
        parent
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The paths kept, with every directory above them.
#[derive(Default)]
struct Keep {
    paths: BTreeSet<String>,
}

impl Keep {
    fn add(&mut self, path: &str) {
        let path = normal(path);
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.paths.insert(prefix.clone());
        }
    }

    fn has(&self, path: &str) -> bool {
        self.paths.contains(normal(path))
    }
}

/// Second pass: what [`Keep`] has goes to `inner`, the rest is skipped.
/// A directory goes once, the first time it comes: the streams may be
/// whole images, in which every image repeats `lib/` or `usr/`.
struct Filter<'a> {
    keep: &'a Keep,
    dirs: &'a mut BTreeSet<String>,
    inner: &'a mut dyn EntrySink,
}

impl EntrySink for Filter<'_> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        let kept_links: Vec<Header> = links
            .iter()
            .filter(|l| self.keep.has(&l.path))
            .cloned()
            .collect();
        let kept = self.keep.has(&header.path);
        let repeated_dir = kept
            && matches!(header.kind, Kind::Dir)
            && !self.dirs.insert(normal(&header.path).to_owned());
        if repeated_dir {
            io::copy(content, &mut io::sink()).map(|_| ())
        } else if kept || !kept_links.is_empty() {
            // The group's file carries the data the kept links name.
            self.inner.entry(header, &kept_links, content)
        } else {
            io::copy(content, &mut io::sink()).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Collect;

    const RELEASE: &str = "6.12.0";

    fn file(path: &str, data: &str) -> (Header, Vec<u8>) {
        (
            Header::new(
                path,
                Kind::File {
                    size: data.len() as u64,
                },
                0o644,
            ),
            data.as_bytes().to_vec(),
        )
    }

    fn dir(path: &str) -> (Header, Vec<u8>) {
        (Header::new(path, Kind::Dir, 0o755), Vec::new())
    }

    fn symlink(path: &str, target: &str) -> (Header, Vec<u8>) {
        (
            Header::new(
                path,
                Kind::Symlink {
                    target: target.to_owned(),
                },
                0o777,
            ),
            Vec::new(),
        )
    }

    /// A kernel unit's entries, as kernel.tar names them (`./lib/...`).
    fn kernel() -> Vec<(Header, Vec<u8>)> {
        let m = |p: &str| format!("./lib/modules/{RELEASE}/{p}");
        let mut entries = vec![
            dir("boot"),
            file("boot/kernel", "bzImage"),
            dir("./lib/"),
            dir("./lib/modules/"),
            dir(&m("")),
            dir(&m("kernel/")),
        ];
        for d in [
            "crypto",
            "drivers",
            "drivers/ata",
            "drivers/block",
            "drivers/cdrom",
            "drivers/net",
            "drivers/scsi",
            "fs",
            "fs/erofs",
            "fs/ext4",
            "fs/isofs",
            "fs/squashfs",
            "lib",
        ] {
            entries.push(dir(&m(&format!("kernel/{d}/"))));
        }
        for f in [
            "crypto/crc32c_generic",
            "drivers/ata/ahci",
            "drivers/ata/ata_piix",
            "drivers/ata/libahci",
            "drivers/ata/libata",
            "drivers/block/virtio_blk",
            "drivers/cdrom/cdrom",
            "drivers/net/virtio_net",
            "drivers/scsi/scsi_mod",
            "drivers/scsi/sd_mod",
            "fs/erofs/erofs",
            "fs/ext4/ext4",
            "fs/isofs/isofs",
            "fs/squashfs/squashfs",
            "lib/libcrc32c",
        ] {
            entries.push(file(&m(&format!("kernel/{f}.ko.xz")), f));
        }
        let dep = "\
kernel/crypto/crc32c_generic.ko.xz:
kernel/drivers/ata/ahci.ko.xz: kernel/drivers/ata/libahci.ko.xz kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz
kernel/drivers/ata/ata_piix.ko.xz: kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz
kernel/drivers/ata/libahci.ko.xz: kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz
kernel/drivers/ata/libata.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz
kernel/drivers/block/virtio_blk.ko.xz:
kernel/drivers/cdrom/cdrom.ko.xz:
kernel/drivers/net/virtio_net.ko.xz:
kernel/drivers/scsi/scsi_mod.ko.xz:
kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz
kernel/fs/erofs/erofs.ko.xz: kernel/lib/libcrc32c.ko.xz
kernel/fs/ext4/ext4.ko.xz:
kernel/fs/isofs/isofs.ko.xz: kernel/drivers/cdrom/cdrom.ko.xz
kernel/fs/squashfs/squashfs.ko.xz:
kernel/lib/libcrc32c.ko.xz:
";
        let alias = "\
alias crc32c crc32c_generic
alias fs-erofs erofs
alias fs-ext4 ext4
alias fs-iso9660 isofs
alias fs-squashfs squashfs
alias virtio:d00000001v* virtio_net
";
        entries.push(file(&m("modules.alias"), alias));
        entries.push(file(
            &m("modules.builtin"),
            "kernel/drivers/scsi/sr_mod.ko\n",
        ));
        entries.push(file(&m("modules.builtin.modinfo"), "big"));
        entries.push(file(&m("modules.dep"), dep));
        entries.push(file(&m("modules.load"), "virtio_net\n"));
        entries.push(file(&m("modules.order"), "big"));
        entries.push(file(
            &m("modules.softdep"),
            "softdep libcrc32c pre: crc32c\n",
        ));
        entries
    }

    fn init() -> Vec<(Header, Vec<u8>)> {
        vec![
            dir("etc"),
            dir("etc/init.d"),
            symlink("etc/init.d/010-onboot", "/usr/bin/service"),
            dir("sbin"),
            file("sbin/slipway-init", "ELF"),
            symlink("init", "sbin/../sbin/slipway-init"),
            dir("usr"),
            dir("usr/bin"),
            symlink("usr/bin/service", "/init"),
            file("usr/bin/crun", "ELF"),
        ]
    }

    fn replay(entries: &[(Header, Vec<u8>)], sink: &mut dyn EntrySink) -> Result<()> {
        for (h, data) in entries {
            sink.entry(h, &[], &mut &data[..])
                .map_err(AssembleError::Sink)?;
        }
        Ok(())
    }

    fn run(
        kernel: &[(Header, Vec<u8>)],
        init: &[(Header, Vec<u8>)],
    ) -> Result<(RootInitrd, Vec<String>)> {
        let mut out = Collect::keeping(16);
        let mut passes = 0;
        let result = root_initrd_of(
            &mut |s| {
                passes += 1;
                replay(kernel, s)
            },
            &mut |s| replay(init, s),
            &mut out,
        )?;
        assert_eq!(passes, 2);
        let paths = out.entries.iter().map(|(h, _)| h.path.clone()).collect();
        Ok((result, paths))
    }

    #[test]
    fn keeps_the_root_modules_their_dependencies_and_the_init() {
        let (result, paths) = run(&kernel(), &init()).unwrap();
        let m = |p: &str| format!("./lib/modules/{RELEASE}/{p}");
        let mut expected: Vec<String> = vec![
            "./lib/".into(),
            "./lib/modules/".into(),
            m(""),
            m("kernel/"),
        ];
        for d in [
            "crypto",
            "drivers",
            "drivers/ata",
            "drivers/block",
            "drivers/cdrom",
            "drivers/scsi",
            "fs",
            "fs/erofs",
            "fs/isofs",
            "fs/squashfs",
            "lib",
        ] {
            expected.push(m(&format!("kernel/{d}/")));
        }
        for f in [
            "crypto/crc32c_generic",
            "drivers/ata/ahci",
            "drivers/ata/ata_piix",
            "drivers/ata/libahci",
            "drivers/ata/libata",
            "drivers/block/virtio_blk",
            "drivers/cdrom/cdrom",
            "drivers/scsi/scsi_mod",
            "drivers/scsi/sd_mod",
            "fs/erofs/erofs",
            "fs/isofs/isofs",
            "fs/squashfs/squashfs",
            "lib/libcrc32c",
        ] {
            expected.push(m(&format!("kernel/{f}.ko.xz")));
        }
        for f in [
            "modules.alias",
            "modules.builtin",
            "modules.dep",
            "modules.softdep",
        ] {
            expected.push(m(f));
        }
        expected.extend(["sbin", "sbin/slipway-init", "init"].map(String::from));
        assert_eq!(paths, expected);
        assert_eq!(result.modules.len(), 13);
        assert!(result.modules.contains(&format!(
            "lib/modules/{RELEASE}/kernel/crypto/crc32c_generic.ko.xz"
        )));
        // sr_mod is built in: neither kept nor missing.
        assert!(result.missing.is_empty(), "{:?}", result.missing);
    }

    #[test]
    fn reports_what_the_kernel_lacks() {
        let kernel: Vec<(Header, Vec<u8>)> = kernel()
            .into_iter()
            .filter(|(h, _)| !h.path.contains("ahci") && !h.path.ends_with("modules.builtin"))
            .map(|(h, data)| {
                if h.path.ends_with("modules.dep") {
                    let dep: String = String::from_utf8(data)
                        .unwrap()
                        .lines()
                        .filter(|l| !l.contains("ahci"))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    file(&h.path, &dep)
                } else {
                    (h, data)
                }
            })
            .collect();
        let (result, paths) = run(&kernel, &init()).unwrap();
        assert_eq!(result.missing, ["ahci", "sr_mod"]);
        assert!(paths.iter().all(|p| !p.contains("ahci")));
    }

    #[test]
    fn a_kernel_without_modules_and_a_plain_init() {
        let (result, paths) = run(
            &[dir("boot"), file("boot/kernel", "bzImage")],
            &[file("init", "ELF"), file("etc/motd", "hi")],
        )
        .unwrap();
        assert_eq!(paths, ["init"]);
        assert!(result.modules.is_empty());
        assert!(
            result.missing.is_empty(),
            "no module index: nothing to miss"
        );
    }

    #[test]
    fn an_init_is_required() {
        let err = run(&kernel(), &[file("usr/bin/crun", "ELF")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("init: no init image has /init"), "{err}");
        let err = run(&kernel(), &[symlink("init", "/bin/missing")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/init leads to /bin/missing"), "{err}");
        let err = run(&kernel(), &[symlink("init", "init")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("loop"), "{err}");
    }

    #[test]
    fn hard_link_groups_keep_their_data() {
        let (h, data) = file("usr/bin/slipway-init", "ELF");
        let link = Header::new(
            "init",
            Kind::Link {
                target: "usr/bin/slipway-init".into(),
            },
            0o755,
        );
        let mut out = Collect::keeping(16);
        root_initrd_of(
            &mut |_| Ok(()),
            &mut |s| {
                s.entry(&h, std::slice::from_ref(&link), &mut &data[..])
                    .map_err(AssembleError::Sink)
            },
            &mut out,
        )
        .unwrap();
        let paths: Vec<&str> = out.entries.iter().map(|(h, _)| h.path.as_str()).collect();
        assert_eq!(paths, ["usr/bin/slipway-init", "init"]);
        assert_eq!(out.entries[0].1, b"ELF");
    }

    #[test]
    fn whole_image_streams_give_each_directory_once() {
        let mut image = kernel();
        image.extend([
            dir("lib"),
            dir("lib/x86_64-linux-gnu"),
            file("lib/x86_64-linux-gnu/libc.so.6", "ELF"),
        ]);
        image.extend(init());
        let (whole, paths) = run(&image, &image).unwrap();
        let (units, expected) = run(&kernel(), &init()).unwrap();
        assert_eq!(paths, expected);
        assert_eq!(whole, units);
    }

    #[test]
    fn a_hard_linked_init_in_a_tar_stream_keeps_its_target() {
        let image = [
            dir("sbin"),
            file("sbin/slipway-init", "ELF"),
            (
                Header::new(
                    "init",
                    Kind::Link {
                        target: "./sbin/slipway-init".into(),
                    },
                    0o755,
                ),
                Vec::new(),
            ),
        ];
        let (_, paths) = run(&kernel(), &image).unwrap();
        let init: Vec<&String> = paths.iter().filter(|p| !p.contains("lib")).collect();
        assert_eq!(init, ["sbin", "sbin/slipway-init", "init"]);
    }

    #[test]
    fn links_resolve_inside_the_image() {
        assert_eq!(resolve_link("init", "/usr/bin/x"), "usr/bin/x");
        assert_eq!(resolve_link("sbin/init", "../bin/x"), "bin/x");
        assert_eq!(resolve_link("init", "../../x"), "x");
        assert_eq!(normal("./lib/modules/"), "lib/modules");
        assert_eq!(
            index_file("./lib/modules/6.1/modules.dep"),
            Some(("6.1", "modules.dep"))
        );
        assert_eq!(index_file("lib/modules/6.1/kernel/modules.dep"), None);
    }
}
