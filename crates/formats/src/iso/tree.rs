//! The directory tree an image will describe: names and metadata only, the
//! file data being already in the image. Later entries replace earlier ones
//! with the same path, as when the kernel unpacks an initramfs.

use std::collections::BTreeMap;

use super::{Extent, IsoError, Meta};

pub(crate) type NodeId = usize;
pub(crate) type InodeId = usize;

/// The longest name Linux accepts (NAME_MAX).
const MAX_NAME: usize = 255;
/// How many symbolic links a path may go through (Linux's limit).
const MAX_HOPS: usize = 40;

/// A regular file's data and metadata, shared by its hard links.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub meta: Meta,
    pub extent: Extent,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Dir {
        meta: Meta,
        children: BTreeMap<String, NodeId>,
    },
    File {
        inode: InodeId,
    },
    Symlink {
        meta: Meta,
        target: String,
    },
    Device {
        meta: Meta,
        block: bool,
        major: u32,
        minor: u32,
    },
    Fifo {
        meta: Meta,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The directory holding it (the root's is the root).
    pub parent: NodeId,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    pub inodes: Vec<Inode>,
    /// Metadata of directories that only appear as parents of entries.
    implied: Meta,
}

pub(crate) const ROOT: NodeId = 0;

/// The components of a path: `./a//b/` is `a`, `b`; `..` is refused.
fn components(path: &str) -> Result<Vec<&str>, IsoError> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(IsoError::path(path, "contains `..`")),
            c if c.len() > MAX_NAME => {
                return Err(IsoError::path(path, "has a name longer than 255 bytes"));
            }
            c if c.contains('\0') => return Err(IsoError::path(path, "contains a NUL byte")),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl Tree {
    pub fn new(implied: Meta) -> Tree {
        Tree {
            nodes: vec![Node {
                parent: ROOT,
                kind: NodeKind::Dir {
                    meta: implied.clone(),
                    children: BTreeMap::new(),
                },
            }],
            inodes: Vec::new(),
            implied,
        }
    }

    pub fn children(&self, dir: NodeId) -> Option<&BTreeMap<String, NodeId>> {
        match &self.nodes[dir].kind {
            NodeKind::Dir { children, .. } => Some(children),
            _ => None,
        }
    }

    pub fn meta(&self, node: NodeId) -> &Meta {
        match &self.nodes[node].kind {
            NodeKind::Dir { meta, .. }
            | NodeKind::Symlink { meta, .. }
            | NodeKind::Device { meta, .. }
            | NodeKind::Fifo { meta } => meta,
            NodeKind::File { inode } => &self.inodes[*inode].meta,
        }
    }

    pub fn add_inode(&mut self, meta: Meta, extent: Extent) -> InodeId {
        self.inodes.push(Inode { meta, extent });
        self.inodes.len() - 1
    }

    fn child(&self, dir: NodeId, name: &str) -> Option<NodeId> {
        self.children(dir).and_then(|c| c.get(name).copied())
    }

    /// Follows a symbolic link met as a directory of a path, inside the
    /// tree (an absolute target starts at its root, `..` stops at it), as
    /// the kernel does when it unpacks an initramfs through a link.
    fn follow(&self, link: NodeId, dir: NodeId, hops: &mut usize) -> Option<NodeId> {
        let NodeKind::Symlink { target, .. } = &self.nodes[link].kind else {
            return Some(link);
        };
        *hops += 1;
        if *hops > MAX_HOPS {
            return None;
        }
        let mut at = if target.starts_with('/') { ROOT } else { dir };
        for c in target.split('/') {
            match c {
                "" | "." => {}
                ".." => at = self.nodes[at].parent,
                c => {
                    let next = self.child(at, c)?;
                    at = self.follow(next, at, hops)?;
                    self.children(at)?;
                }
            }
        }
        Some(at)
    }

    /// The directory that holds `path`'s last component (made if missing),
    /// and that component; `None` for the root itself.
    fn parent_of<'p>(&mut self, path: &'p str) -> Result<Option<(NodeId, &'p str)>, IsoError> {
        let parts = components(path)?;
        let Some((last, dirs)) = parts.split_last() else {
            return Ok(None);
        };
        let mut at = ROOT;
        for name in dirs {
            at = match self.child(at, name) {
                None => self.insert(at, name, self.implied_dir()),
                Some(id) => match &self.nodes[id].kind {
                    NodeKind::Dir { .. } => id,
                    NodeKind::Symlink { .. } => {
                        let mut hops = 0;
                        self.follow(id, at, &mut hops)
                            .filter(|&d| self.children(d).is_some())
                            .ok_or_else(|| {
                                IsoError::path(
                                    path,
                                    format!("goes through `{name}`, a link to no directory"),
                                )
                            })?
                    }
                    _ => {
                        return Err(IsoError::path(
                            path,
                            format!("goes through `{name}`, which is not a directory"),
                        ));
                    }
                },
            };
        }
        Ok(Some((at, last)))
    }

    fn implied_dir(&self) -> NodeKind {
        NodeKind::Dir {
            meta: self.implied.clone(),
            children: BTreeMap::new(),
        }
    }

    fn insert(&mut self, dir: NodeId, name: &str, kind: NodeKind) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node { parent: dir, kind });
        if let NodeKind::Dir { children, .. } = &mut self.nodes[dir].kind {
            children.insert(name.to_owned(), id);
        }
        id
    }

    /// Puts `kind` at `path`, replacing whatever was there. A directory
    /// over a directory keeps its children and takes the new metadata.
    pub fn put(&mut self, path: &str, kind: NodeKind) -> Result<(), IsoError> {
        let Some((dir, name)) = self.parent_of(path)? else {
            return match kind {
                NodeKind::Dir { meta, .. } => {
                    self.set_dir_meta(ROOT, meta);
                    Ok(())
                }
                _ => Err(IsoError::path(
                    path,
                    "names the root, which must be a directory",
                )),
            };
        };
        if let (NodeKind::Dir { meta, .. }, Some(existing)) = (&kind, self.child(dir, name))
            && self.children(existing).is_some()
        {
            self.set_dir_meta(existing, meta.clone());
            return Ok(());
        }
        self.insert(dir, name, kind);
        Ok(())
    }

    fn set_dir_meta(&mut self, dir: NodeId, new: Meta) {
        if let NodeKind::Dir { meta, .. } = &mut self.nodes[dir].kind {
            *meta = new;
        }
    }

    /// The inode of the regular file at `path`.
    pub fn file_at(&self, path: &str) -> Result<InodeId, IsoError> {
        let mut at = ROOT;
        for name in components(path)? {
            at = self
                .child(at, name)
                .ok_or_else(|| IsoError::path(path, "does not exist"))?;
        }
        match self.nodes[at].kind {
            NodeKind::File { inode } => Ok(inode),
            _ => Err(IsoError::path(path, "is not a regular file")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime: 7,
        }
    }

    fn dir(mode: u32) -> NodeKind {
        NodeKind::Dir {
            meta: meta(mode),
            children: BTreeMap::new(),
        }
    }

    fn lookup(tree: &Tree, path: &str) -> Option<NodeId> {
        let mut at = ROOT;
        for c in components(path).unwrap() {
            at = tree.child(at, c)?;
        }
        Some(at)
    }

    #[test]
    fn last_entry_wins_and_directories_keep_children() {
        let mut t = Tree::new(meta(0o755));
        let empty = Extent { start: 0, len: 0 };
        let a = t.add_inode(meta(0o644), empty.clone());
        t.put("./etc/hosts", NodeKind::File { inode: a }).unwrap();
        // The directory arrives after its child: metadata set, child kept.
        t.put("etc/", dir(0o700)).unwrap();
        let etc = lookup(&t, "etc").unwrap();
        assert_eq!(t.meta(etc).mode, 0o700);
        assert!(lookup(&t, "etc/hosts").is_some());
        // A file replaces a file, then a directory replaces the file.
        let b = t.add_inode(meta(0o600), empty);
        t.put("etc/hosts", NodeKind::File { inode: b }).unwrap();
        assert_eq!(t.file_at("etc/hosts").unwrap(), b);
        t.put("etc/hosts", dir(0o711)).unwrap();
        assert!(t.file_at("etc/hosts").is_err());
        // The root's own entry sets its metadata.
        t.put(".", dir(0o750)).unwrap();
        assert_eq!(t.meta(ROOT).mode, 0o750);
        assert!(t.put("..", dir(0o750)).is_err());
        assert!(t.put("a/../b", dir(0o750)).is_err());
    }

    #[test]
    fn paths_through_links_follow_them() {
        let mut t = Tree::new(meta(0o755));
        t.put("usr/lib", dir(0o755)).unwrap();
        let link = |target: &str| NodeKind::Symlink {
            meta: meta(0o777),
            target: target.into(),
        };
        t.put("lib", link("usr/lib")).unwrap();
        t.put("lib64", link("/lib")).unwrap();
        t.put("usr/lib/up", link("../../usr/./lib/")).unwrap();
        t.put("loop", link("loop")).unwrap();
        t.put("lib/a", dir(0o700)).unwrap();
        t.put("lib64/b", dir(0o700)).unwrap();
        t.put("usr/lib/up/c", dir(0o700)).unwrap();
        for p in ["usr/lib/a", "usr/lib/b", "usr/lib/c"] {
            assert!(lookup(&t, p).is_some(), "{p}");
        }
        assert!(t.put("loop/x", dir(0o700)).is_err());
        t.put("file", NodeKind::Fifo { meta: meta(0o600) }).unwrap();
        assert!(t.put("file/x", dir(0o700)).is_err());
    }
}
