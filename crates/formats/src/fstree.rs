//! The tree a root filesystem image holds, built from the entry stream the
//! way the kernel builds its root from an initrd of the same entries.
//!
//! The squashfs and erofs writers stream file data as it arrives and keep
//! only this: one node per inode (metadata, and for a regular file the
//! writer's index of where its data went), directories as sorted maps of
//! names. The rules:
//!
//! - entry names are cleaned (`./lib/x` from a kernel's `kernel.tar` is
//!   `lib/x`; `""` is the root);
//! - a later entry replaces an earlier one of the same path (last wins),
//!   except that a directory entry over a directory only changes its
//!   metadata and keeps its contents, and a non-directory never replaces a
//!   directory that has contents (the kernel's unpacker cannot remove it
//!   either);
//! - missing parents are created: mode 0755, owner root, the build's time;
//! - symbolic links met among a path's parents are followed, within the
//!   image (absolute targets start at its root, `..` stops there), as
//!   the kernel's unpacker follows them;
//! - a hard-link group (an entry and its [`Kind::Link`] names, or a later
//!   [`Kind::Link`] to an existing non-directory) shares one node, whose
//!   link count is the number of names that still point at it;
//! - with `skip_boot`, everything under `boot/` is left out (the directory
//!   itself stays), as LinuxKit's root filesystem images leave it out.
//!
//! What cannot be placed is not an error (the kernel would skip it too) but
//! is listed in [`Summary::skipped`], so the caller can say so.

use std::collections::BTreeMap;

use slipway_assemble::path::clean;
use slipway_assemble::{Header, Kind};

/// Index of a node; the root is 0.
pub(crate) type NodeId = u32;
pub(crate) const ROOT: NodeId = 0;

/// The longest file name either format holds (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// The longest symbolic link target the kernel reads back (`PATH_MAX - 1`).
pub const TARGET_MAX: usize = 4095;
/// Symbolic links followed while resolving one path (the kernel's limit).
const MAX_HOPS: u32 = 40;
/// The PAX record prefix of extended attributes.
const XATTR_PAX: &str = "SCHILY.xattr.";

/// An entry (or one name of it) that the image does not hold, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// What an image writer reports when it finishes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Inodes in the image.
    pub inodes: u64,
    /// Bytes of the image file.
    pub bytes: u64,
    /// File content written and then replaced by a later entry of the same
    /// path (uncompressed bytes): dead space in the image.
    pub replaced_bytes: u64,
    /// Entries, names and extended attributes the image does not hold.
    pub skipped: Vec<Skipped>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Dir(BTreeMap<Box<[u8]>, NodeId>),
    /// `data` indexes the writer's record of where the content went.
    File {
        data: u32,
        size: u64,
    },
    Symlink(Box<[u8]>),
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// Permission bits with set-uid, set-gid and sticky (`0o7777`).
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    /// Full names (`security.capability`) and values, sorted by name.
    pub xattrs: Vec<Xattr>,
    pub kind: NodeKind,
    /// Names pointing at a non-directory (directories count their own).
    pub names: u32,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir(_))
    }

    pub fn children(&self) -> Option<&BTreeMap<Box<[u8]>, NodeId>> {
        match &self.kind {
            NodeKind::Dir(c) => Some(c),
            _ => None,
        }
    }
}

/// Where a name goes: the directory and the name in it.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    dir: NodeId,
    name: Box<[u8]>,
}

/// What [`Tree::plan`] decided for an entry.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Nothing of it goes in the image: drain its content.
    Skip,
    /// A directory: created, or its metadata replaced (already done).
    Done,
    /// A new node bound to these names once its content is written.
    Bind(Vec<Slot>),
}

#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    pub skipped: Vec<Skipped>,
    pub replaced_bytes: u64,
    time: u64,
    skip_boot: bool,
    xattr_ok: XattrFilter,
}

fn split_name(path: &str) -> (&str, &str) {
    slipway_assemble::path::split(path)
}

/// An extended attribute: full name (`security.capability`) and value.
pub(crate) type Xattr = (Box<[u8]>, Box<[u8]>);

/// Whether a format stores an extended attribute (name, value).
pub(crate) type XattrFilter = fn(&[u8], &[u8]) -> bool;

impl Tree {
    /// An empty tree: the root is 0755, owner root, at `time`.
    pub fn new(time: u64, skip_boot: bool, xattr_ok: XattrFilter) -> Tree {
        Tree {
            nodes: vec![Node {
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: time,
                xattrs: Vec::new(),
                kind: NodeKind::Dir(BTreeMap::new()),
                names: 1,
            }],
            skipped: Vec::new(),
            replaced_bytes: 0,
            time,
            skip_boot,
            xattr_ok,
        }
    }

    /// The extended attributes of an entry's PAX records that the format
    /// stores, sorted by name; the others are listed as skipped.
    fn xattrs(&mut self, h: &Header) -> Vec<Xattr> {
        let mut out: Vec<Xattr> = Vec::new();
        for (k, v) in &h.pax {
            let Some(name) = k.strip_prefix(XATTR_PAX) else {
                continue;
            };
            if (self.xattr_ok)(name.as_bytes(), v) {
                out.push((name.as_bytes().into(), v.as_slice().into()));
            } else {
                self.skip(
                    &clean(&h.path),
                    format!("extended attribute `{name}` cannot be stored in this format"),
                );
            }
        }
        out.sort();
        out
    }

    fn skip(&mut self, path: &str, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    fn excluded(&self, path: &str) -> bool {
        self.skip_boot && path.starts_with("boot/")
    }

    fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        self.nodes[dir as usize]
            .children()
            .and_then(|c| c.get(name).copied())
    }

    fn implicit_dir(&mut self) -> NodeId {
        self.push(Node {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: self.time,
            xattrs: Vec::new(),
            kind: NodeKind::Dir(BTreeMap::new()),
            names: 1,
        })
    }

    fn push(&mut self, node: Node) -> NodeId {
        let id = self.nodes.len() as NodeId;
        self.nodes.push(node);
        id
    }

    fn insert(&mut self, dir: NodeId, name: &[u8], id: NodeId) -> Option<NodeId> {
        match &mut self.nodes[dir as usize].kind {
            NodeKind::Dir(c) => c.insert(name.into(), id),
            _ => None,
        }
    }

    /// Walks `components` from the directory at the top of `stack`,
    /// following symbolic links and (with `create`) creating missing
    /// directories; leaves the directory reached on top of `stack`.
    fn walk(
        &mut self,
        stack: &mut Vec<NodeId>,
        components: &mut dyn Iterator<Item = &[u8]>,
        create: bool,
        hops: &mut u32,
    ) -> Result<(), &'static str> {
        for comp in components {
            match comp {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let here = *stack.last().unwrap_or(&ROOT);
            let next = match self.child(here, comp) {
                Some(id) => id,
                None if create => {
                    if comp.len() > NAME_MAX {
                        return Err("a name is longer than 255 bytes");
                    }
                    let id = self.implicit_dir();
                    self.insert(here, comp, id);
                    id
                }
                None => return Err("a parent directory does not exist"),
            };
            match &self.nodes[next as usize].kind {
                NodeKind::Dir(_) => stack.push(next),
                NodeKind::Symlink(target) => {
                    *hops += 1;
                    if *hops > MAX_HOPS {
                        return Err("too many levels of symbolic links");
                    }
                    let target = target.clone();
                    if target.first() == Some(&b'/') {
                        stack.truncate(1);
                    }
                    self.walk(stack, &mut target.split(|&b| b == b'/'), create, hops)?;
                }
                _ => return Err("a parent is not a directory"),
            }
        }
        Ok(())
    }

    /// The directory `path`'s last name goes in, and that name.
    fn slot(&mut self, path: &str, create: bool) -> Result<Slot, &'static str> {
        let (parent, name) = split_name(path);
        if name.len() > NAME_MAX {
            return Err("the name is longer than 255 bytes");
        }
        let mut stack = vec![ROOT];
        let mut hops = 0;
        self.walk(
            &mut stack,
            &mut parent.split('/').map(str::as_bytes),
            create,
            &mut hops,
        )?;
        Ok(Slot {
            dir: *stack.last().unwrap_or(&ROOT),
            name: name.as_bytes().into(),
        })
    }

    /// Decides where an entry goes. Directories are applied at once;
    /// anything else is bound by [`Tree::bind`] after its content is written.
    pub fn plan(&mut self, header: &Header, links: &[Header]) -> Plan {
        let path = clean(&header.path);
        if self.excluded(&path) {
            // Its other names may still be outside boot/.
            if links.is_empty() || !matches!(header.kind, Kind::File { .. }) {
                return Plan::Skip;
            }
        }
        match &header.kind {
            Kind::Dir => {
                self.dir(&path, header);
                Plan::Done
            }
            Kind::Link { target } => self.plan_link(&path, target),
            kind => {
                if let Err(reason) = meta(header) {
                    self.skip(&path, reason);
                    return Plan::Skip;
                }
                if let Kind::Symlink { target } = kind
                    && target.len() > TARGET_MAX
                {
                    self.skip(
                        &path,
                        "the symbolic link's target is longer than 4095 bytes",
                    );
                    return Plan::Skip;
                }
                let mut slots = Vec::new();
                let names = std::iter::once(path).chain(
                    links
                        .iter()
                        .filter(|_| matches!(kind, Kind::File { .. }))
                        .map(|l| clean(&l.path)),
                );
                for name in names {
                    if self.excluded(&name) {
                        continue;
                    }
                    if name.is_empty() {
                        self.skip("/", "the root can only be a directory");
                        continue;
                    }
                    match self.slot(&name, true) {
                        Ok(slot) => {
                            if self.blocked(&slot) {
                                self.skip(&name, "a directory with contents is in the way");
                            } else {
                                slots.push(slot);
                            }
                        }
                        Err(reason) => self.skip(&name, reason),
                    }
                }
                if slots.is_empty() {
                    Plan::Skip
                } else {
                    Plan::Bind(slots)
                }
            }
        }
    }

    /// Whether a non-empty directory holds the slot's name.
    fn blocked(&self, slot: &Slot) -> bool {
        self.child(slot.dir, &slot.name)
            .and_then(|id| self.nodes[id as usize].children())
            .is_some_and(|c| !c.is_empty())
    }

    fn dir(&mut self, path: &str, h: &Header) {
        let (mode, uid, gid) = match meta(h) {
            Ok(m) => m,
            Err(reason) => return self.skip(path, reason),
        };
        let xattrs = self.xattrs(h);
        let apply = |n: &mut Node| {
            n.mode = mode;
            n.uid = uid;
            n.gid = gid;
            n.mtime = h.mtime;
            n.xattrs = xattrs.clone();
        };
        if path.is_empty() {
            apply(&mut self.nodes[ROOT as usize]);
            return;
        }
        let slot = match self.slot(path, true) {
            Ok(s) => s,
            Err(reason) => return self.skip(path, reason),
        };
        if let Some(id) = self.child(slot.dir, &slot.name)
            && self.nodes[id as usize].is_dir()
        {
            apply(&mut self.nodes[id as usize]);
            return;
        }
        let mut node = Node {
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
            kind: NodeKind::Dir(BTreeMap::new()),
            names: 1,
        };
        apply(&mut node);
        let id = self.push(node);
        self.replace(&slot, id);
    }

    fn plan_link(&mut self, path: &str, target: &str) -> Plan {
        let target = clean(target);
        let found = self
            .slot(&target, false)
            .ok()
            .and_then(|s| self.child(s.dir, &s.name));
        let Some(id) = found.filter(|&id| !self.nodes[id as usize].is_dir()) else {
            self.skip(
                path,
                format!("a hard link to `{target}`, which is not a file in the image"),
            );
            return Plan::Skip;
        };
        if path.is_empty() {
            self.skip("/", "the root can only be a directory");
            return Plan::Skip;
        }
        match self.slot(path, true) {
            Ok(slot) if self.blocked(&slot) => {
                self.skip(path, "a directory with contents is in the way");
            }
            Ok(slot) => {
                if self.child(slot.dir, &slot.name) != Some(id) {
                    self.nodes[id as usize].names += 1;
                    self.replace(&slot, id);
                }
            }
            Err(reason) => self.skip(path, reason),
        }
        Plan::Done
    }

    /// Puts `id` at `slot`, dropping a name of what was there.
    fn replace(&mut self, slot: &Slot, id: NodeId) {
        if let Some(old) = self.insert(slot.dir, &slot.name, id)
            && old != id
        {
            let n = &mut self.nodes[old as usize];
            n.names = n.names.saturating_sub(1);
            if n.names == 0
                && let NodeKind::File { size, .. } = n.kind
            {
                self.replaced_bytes += size;
            }
        }
    }

    /// Binds a planned entry's names to a new node; `data` is the writer's
    /// record of a regular file's content.
    pub fn bind(&mut self, header: &Header, slots: Vec<Slot>, data: u32) {
        let Ok((mode, uid, gid)) = meta(header) else {
            return;
        };
        let kind = match &header.kind {
            Kind::File { size } => NodeKind::File { data, size: *size },
            Kind::Symlink { target } => NodeKind::Symlink(target.as_bytes().into()),
            Kind::Char { major, minor } => NodeKind::Char {
                major: *major,
                minor: *minor,
            },
            Kind::Block { major, minor } => NodeKind::Block {
                major: *major,
                minor: *minor,
            },
            Kind::Fifo => NodeKind::Fifo,
            Kind::Dir | Kind::Link { .. } => return,
        };
        let xattrs = self.xattrs(header);
        let id = self.push(Node {
            mode,
            uid,
            gid,
            mtime: header.mtime,
            xattrs,
            kind,
            names: 0,
        });
        for slot in &slots {
            // Two names of one group may be the same path.
            if self.child(slot.dir, &slot.name) == Some(id) {
                continue;
            }
            self.nodes[id as usize].names += 1;
            self.replace(slot, id);
        }
    }

    /// Every node reachable from the root, each once, breadth first:
    /// `(node, parent directory)`.
    pub fn reachable(&self) -> Vec<(NodeId, NodeId)> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = vec![(ROOT, ROOT)];
        seen[ROOT as usize] = true;
        let mut i = 0;
        while i < order.len() {
            let (dir, _) = order[i];
            if let Some(children) = self.nodes[dir as usize].children() {
                for &c in children.values() {
                    if !seen[c as usize] {
                        seen[c as usize] = true;
                        order.push((c, dir));
                    }
                }
            }
            i += 1;
        }
        order
    }

    /// A directory's link count: itself, `.`, and each subdirectory's `..`.
    pub fn nlink(&self, id: NodeId) -> u32 {
        let n = &self.nodes[id as usize];
        match n.children() {
            Some(c) => {
                let subdirs = c
                    .values()
                    .filter(|&&c| self.nodes[c as usize].is_dir())
                    .count();
                2 + subdirs as u32
            }
            None => n.names,
        }
    }
}

/// Mode, uid and gid as the formats store them (32-bit ids).
fn meta(h: &Header) -> Result<(u16, u32, u32), &'static str> {
    let uid = u32::try_from(h.uid).map_err(|_| "its uid does not fit 32 bits")?;
    let gid = u32::try_from(h.gid).map_err(|_| "its gid does not fit 32 bits")?;
    Ok(((h.mode & 0o7777) as u16, uid, gid))
}

/// Linux's `new_encode_dev`: the 32-bit device number both formats store.
pub(crate) fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(path: &str, kind: Kind) -> Header {
        Header::new(path, kind, 0o644)
    }

    fn file(t: &mut Tree, path: &str, data: u32) {
        let header = h(path, Kind::File { size: 1 });
        if let Plan::Bind(slots) = t.plan(&header, &[]) {
            t.bind(&header, slots, data);
        }
    }

    fn lookup<'t>(t: &'t Tree, path: &str) -> Option<&'t Node> {
        let mut id = ROOT;
        for c in path.split('/') {
            id = t.child(id, c.as_bytes())?;
        }
        Some(&t.nodes[id as usize])
    }

    #[test]
    fn last_wins_parents_implicit_and_links_followed() {
        let mut t = Tree::new(7, true, |_, _| true);
        file(&mut t, "./a/b/c", 1);
        assert_eq!(lookup(&t, "a").unwrap().mode, 0o755);
        assert_eq!(lookup(&t, "a/b").unwrap().mtime, 7);
        file(&mut t, "a/b/c", 2);
        assert_eq!(
            lookup(&t, "a/b/c").unwrap().kind,
            NodeKind::File { data: 2, size: 1 }
        );
        assert_eq!(t.replaced_bytes, 1);
        let mut d = Header::new("a/b", Kind::Dir, 0o700);
        d.mtime = 99;
        t.plan(&d, &[]);
        assert_eq!(lookup(&t, "a/b").unwrap().mode, 0o700);
        assert!(lookup(&t, "a/b/c").is_some(), "contents stay");
        // A file cannot replace a directory with contents.
        file(&mut t, "a/b", 3);
        assert!(lookup(&t, "a/b").unwrap().is_dir());
        assert_eq!(t.skipped.len(), 1);
        // Parents through a symbolic link.
        let link = h(
            "lib",
            Kind::Symlink {
                target: "/usr/../usr/lib".into(),
            },
        );
        if let Plan::Bind(s) = t.plan(&link, &[]) {
            t.bind(&link, s, 0);
        }
        file(&mut t, "lib/modules/x.ko", 4);
        assert!(lookup(&t, "usr/lib/modules/x.ko").is_some());
        file(&mut t, "boot/kernel", 5);
        assert!(lookup(&t, "boot").is_none());
    }

    #[test]
    fn hard_links_count_names() {
        let mut t = Tree::new(0, false, |_, _| true);
        let f = h("bin/busybox", Kind::File { size: 3 });
        let link = |p: &str| {
            h(
                p,
                Kind::Link {
                    target: "bin/busybox".into(),
                },
            )
        };
        if let Plan::Bind(s) = t.plan(&f, &[link("bin/sh"), link("bin/ls")]) {
            t.bind(&f, s, 0);
        }
        assert_eq!(lookup(&t, "bin/sh").unwrap().names, 3);
        t.plan(&link("sbin/init"), &[]);
        assert_eq!(lookup(&t, "bin/busybox").unwrap().names, 4);
        file(&mut t, "bin/ls", 1);
        assert_eq!(lookup(&t, "bin/busybox").unwrap().names, 3);
        assert_eq!(t.replaced_bytes, 0, "other names keep the content");
        let dangling = h(
            "x",
            Kind::Link {
                target: "missing".into(),
            },
        );
        t.plan(&dangling, &[]);
        assert_eq!(t.skipped.last().unwrap().path, "x");
    }

    #[test]
    fn symlink_loops_are_skipped() {
        let mut t = Tree::new(0, false, |_, _| true);
        let l = h("a", Kind::Symlink { target: "a".into() });
        if let Plan::Bind(s) = t.plan(&l, &[]) {
            t.bind(&l, s, 0);
        }
        file(&mut t, "a/x", 0);
        assert_eq!(t.skipped[0].reason, "too many levels of symbolic links");
    }

    #[test]
    fn device_numbers() {
        assert_eq!(encode_dev(8, 1), 0x801);
        assert_eq!(encode_dev(1, 0x1234), 0x120_0134);
    }
}
