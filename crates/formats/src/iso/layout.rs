//! Writing the directory tree: directory extents with Rock Ridge entries,
//! their continuation areas, and the path tables.
//!
//! Two passes over the same deterministic record lists: the first sizes
//! every directory and continuation area, so each gets its sector; the
//! second writes them with those sectors filled in.

use std::collections::VecDeque;
use std::io::Write;

use super::encode::{SECTOR, align, both16, both32, date7};
use super::names;
use super::susp::{self, CE_LEN, Split};
use super::tree::{NodeId, NodeKind, ROOT, Tree};
use super::{Extent, IsoError, Meta};

const MAX_RECORD: usize = 254;
const FLAG_DIR: u8 = 0x02;
const FLAG_MORE: u8 = 0x80;

/// Where the tree ended up.
#[derive(Debug)]
pub(crate) struct TreeLayout {
    pub root_lba: u32,
    pub root_size: u32,
    pub path_table_size: u32,
    pub l_table: u32,
    pub m_table: u32,
    /// The byte after the last written sector.
    pub end: u64,
}

/// One directory: its node, its parent's index, its children's ISO 9660
/// identifiers in ECMA-119 order.
struct Dir<'t> {
    node: NodeId,
    parent: usize,
    ident: Vec<u8>,
    /// (ISO 9660 identifier, node, name).
    children: Vec<(Vec<u8>, NodeId, &'t str)>,
}

/// What a record points at: a directory (whose sector is known after the
/// first pass) or fixed bytes.
#[derive(Clone, Copy)]
enum Target {
    Dir(usize),
    Bytes { lba: u32, len: u32 },
}

struct Record {
    ident: Vec<u8>,
    target: Target,
    flags: u8,
    mtime: u64,
    su: Split,
}

impl Record {
    fn fixed_len(&self) -> usize {
        33 + self.ident.len() + usize::from(self.ident.len().is_multiple_of(2))
    }

    fn len(&self) -> usize {
        let ce = if self.su.areas.is_empty() { 0 } else { CE_LEN };
        let n = self.fixed_len() + self.su.inline.len() + ce;
        n + n % 2
    }
}

/// Lays out and writes the tree from byte `start` (a sector boundary).
pub(crate) fn write_tree(
    out: &mut dyn Write,
    tree: &Tree,
    start: u64,
    max_extent: u64,
) -> Result<TreeLayout, IsoError> {
    let plan = Plan::new(tree, max_extent)?;

    // Pass 1: sizes.
    let mut dir_sizes = Vec::with_capacity(plan.dirs.len());
    let mut areas = AreaCursor::default();
    for d in 0..plan.dirs.len() {
        let mut size = 0u64;
        for r in plan.records(d) {
            size = place(size, r.len() as u64);
            for a in area_lens(&r.su) {
                areas.place(a);
            }
        }
        dir_sizes.push(align(size.max(1), SECTOR));
    }
    let first = start / SECTOR;
    let mut dir_lbas = Vec::with_capacity(plan.dirs.len());
    let mut at = first;
    for size in &dir_sizes {
        dir_lbas.push(at);
        at += size / SECTOR;
    }
    let area_lba = at;
    let area_sectors = areas.sectors();
    let path_table_size = plan.path_table_size();
    let l_table = area_lba + area_sectors;
    let m_table = l_table + align(path_table_size, SECTOR) / SECTOR;
    let end_lba = m_table + align(path_table_size, SECTOR) / SECTOR;
    let lba = |n: u64| u32::try_from(n).map_err(|_| IsoError::TooLarge(n * SECTOR));
    lba(end_lba)?;

    // Pass 2: bytes.
    let dir_target = |d: usize| (dir_lbas[d] as u32, dir_sizes[d] as u32);
    let mut area_bytes: Vec<u8> = Vec::with_capacity((area_sectors * SECTOR) as usize);
    let mut cursor = AreaCursor::default();
    for (d, size) in dir_sizes.iter().enumerate() {
        let mut buf: Vec<u8> = Vec::with_capacity(*size as usize);
        for r in plan.records(d) {
            // The continuation areas of this record, placed, chained.
            let lens = area_lens(&r.su);
            let spots: Vec<(u32, u32)> = lens
                .iter()
                .map(|&n| {
                    let (sector, offset) = cursor.place(n);
                    ((area_lba + sector) as u32, offset as u32)
                })
                .collect();
            for (i, area) in r.su.areas.iter().enumerate() {
                let (sector, offset) = spots[i];
                let pos = (u64::from(sector) - area_lba) * SECTOR + u64::from(offset);
                area_bytes.resize(pos as usize, 0);
                area_bytes.extend_from_slice(area);
                if let Some(&(s, o)) = spots.get(i + 1) {
                    area_bytes.extend_from_slice(&susp::ce(s, o, lens[i + 1] as u32));
                }
            }
            let next = place(buf.len() as u64, r.len() as u64) as usize - r.len();
            buf.resize(next, 0);
            let (extent, len) = match r.target {
                Target::Dir(d) => dir_target(d),
                Target::Bytes { lba, len } => (lba, len),
            };
            let record_start = buf.len();
            buf.push(0); // length, set below
            buf.push(0);
            buf.extend_from_slice(&both32(extent));
            buf.extend_from_slice(&both32(len));
            buf.extend_from_slice(&date7(r.mtime));
            buf.push(r.flags);
            buf.extend_from_slice(&[0, 0]);
            buf.extend_from_slice(&both16(1));
            buf.push(r.ident.len() as u8);
            buf.extend_from_slice(&r.ident);
            if r.ident.len() % 2 == 0 {
                buf.push(0);
            }
            buf.extend_from_slice(&r.su.inline);
            if let Some(&(s, o)) = spots.first() {
                buf.extend_from_slice(&susp::ce(s, o, lens[0] as u32));
            }
            if (buf.len() - record_start) % 2 == 1 {
                buf.push(0);
            }
            buf[record_start] = (buf.len() - record_start) as u8;
        }
        buf.resize(*size as usize, 0);
        out.write_all(&buf)?;
    }
    area_bytes.resize((area_sectors * SECTOR) as usize, 0);
    out.write_all(&area_bytes)?;
    let (l, m) = plan.path_tables(|d| dir_lbas[d] as u32);
    for mut t in [l, m] {
        t.resize(align(path_table_size, SECTOR) as usize, 0);
        out.write_all(&t)?;
    }
    Ok(TreeLayout {
        root_lba: dir_lbas[0] as u32,
        root_size: dir_sizes[0] as u32,
        path_table_size: path_table_size as u32,
        l_table: l_table as u32,
        m_table: m_table as u32,
        end: end_lba * SECTOR,
    })
}

/// Where a record of `len` bytes starts when the directory has `used`
/// bytes: records do not cross sector boundaries. Returns the end.
fn place(used: u64, len: u64) -> u64 {
    let room = SECTOR - used % SECTOR;
    if len > room {
        used + room + len
    } else {
        used + len
    }
}

/// The length of each continuation area, with the CE entry that chains it
/// to the next.
fn area_lens(su: &Split) -> Vec<usize> {
    let n = su.areas.len();
    su.areas
        .iter()
        .enumerate()
        .map(|(i, a)| a.len() + if i + 1 < n { CE_LEN } else { 0 })
        .collect()
}

/// Packs continuation areas into sectors, none crossing a boundary.
#[derive(Default)]
struct AreaCursor {
    used: u64,
}

impl AreaCursor {
    /// (sector index, offset) of an area of `len` bytes.
    fn place(&mut self, len: usize) -> (u64, u64) {
        let len = len as u64;
        if self.used % SECTOR + len > SECTOR {
            self.used = align(self.used, SECTOR);
        }
        let spot = (self.used / SECTOR, self.used % SECTOR);
        self.used += len;
        spot
    }

    fn sectors(&self) -> u64 {
        align(self.used, SECTOR) / SECTOR
    }
}

struct Plan<'t> {
    tree: &'t Tree,
    dirs: Vec<Dir<'t>>,
    /// Rock Ridge serial numbers, by node (directories, links, devices)
    /// and by inode (regular files and their hard links).
    node_serial: Vec<u32>,
    inode_serial: Vec<u32>,
    inode_links: Vec<u32>,
    subdirs: Vec<u32>,
    /// Each directory node's index in `dirs`.
    dir_index: Vec<usize>,
    max_extent: u64,
}

impl<'t> Plan<'t> {
    fn new(tree: &'t Tree, max_extent: u64) -> Result<Plan<'t>, IsoError> {
        let mut dirs = Vec::new();
        let mut queue = VecDeque::from([(ROOT, 0usize, vec![0u8])]);
        let mut node_serial = vec![0u32; tree.nodes.len()];
        let mut inode_serial = vec![0u32; tree.inodes.len()];
        let mut inode_links = vec![0u32; tree.inodes.len()];
        let mut next_serial = 1u32;
        let mut serial = |slot: &mut u32| {
            if *slot == 0 {
                *slot = next_serial;
                next_serial += 1;
            }
        };
        serial(&mut node_serial[ROOT]);
        let mut subdirs = Vec::new();
        while let Some((node, parent, ident)) = queue.pop_front() {
            let index = dirs.len();
            let named: Vec<(&str, NodeId, bool)> = tree
                .children(node)
                .into_iter()
                .flatten()
                .map(|(name, &id)| (name.as_str(), id, tree.children(id).is_some()))
                .collect();
            let kinds: Vec<(&str, bool)> = named.iter().map(|&(n, _, d)| (n, d)).collect();
            let mut children: Vec<(Vec<u8>, NodeId, &str)> = names::assign(&kinds)
                .into_iter()
                .zip(&named)
                .map(|(ident, &(name, id, _))| (ident, id, name))
                .collect();
            children.sort_by(|a, b| names::order(&a.0, &b.0));
            let mut count = 0;
            for (ident, id, _) in &children {
                match tree.nodes[*id].kind {
                    NodeKind::File { inode } => {
                        serial(&mut inode_serial[inode]);
                        inode_links[inode] += 1;
                    }
                    NodeKind::Dir { .. } => {
                        serial(&mut node_serial[*id]);
                        count += 1;
                        queue.push_back((*id, index, ident.clone()));
                    }
                    _ => serial(&mut node_serial[*id]),
                }
            }
            subdirs.push(count);
            dirs.push(Dir {
                node,
                parent,
                ident,
                children,
            });
        }
        if dirs.len() > usize::from(u16::MAX) {
            return Err(IsoError::TooManyDirectories(dirs.len()));
        }
        let mut dir_index = vec![0; tree.nodes.len()];
        for (i, d) in dirs.iter().enumerate() {
            dir_index[d.node] = i;
        }
        Ok(Plan {
            tree,
            dirs,
            node_serial,
            inode_serial,
            inode_links,
            subdirs,
            dir_index,
            max_extent,
        })
    }

    fn dir_px(&self, d: usize) -> Vec<u8> {
        let dir = &self.dirs[d];
        let meta = self.tree.meta(dir.node);
        susp::px(
            0o040000 | (meta.mode & 0o7777),
            2 + self.subdirs[d],
            meta.uid,
            meta.gid,
            self.node_serial[dir.node],
        )
    }

    /// The records of directory `d`, in order: `.`, `..`, the children.
    fn records(&self, d: usize) -> Vec<Record> {
        let dir = &self.dirs[d];
        let mut out = Vec::with_capacity(dir.children.len() + 2);
        let dot_meta = self.tree.meta(dir.node);
        let mut dot = vec![];
        if d == 0 {
            dot.push(susp::sp());
        }
        dot.push(self.dir_px(d));
        dot.push(susp::tf(dot_meta.mtime));
        if d == 0 {
            dot.push(susp::er());
        }
        out.push(self.record(vec![0], Target::Dir(d), FLAG_DIR, dot_meta.mtime, &dot));
        let parent_meta = self.tree.meta(self.dirs[dir.parent].node);
        let dotdot = vec![self.dir_px(dir.parent), susp::tf(parent_meta.mtime)];
        out.push(self.record(
            vec![1],
            Target::Dir(dir.parent),
            FLAG_DIR,
            parent_meta.mtime,
            &dotdot,
        ));
        for (ident, id, name) in &dir.children {
            let node = &self.tree.nodes[*id];
            let meta: &Meta = self.tree.meta(*id);
            let perm = meta.mode & 0o7777;
            let (mode, nlink, serial) = match &node.kind {
                NodeKind::File { inode } => (
                    0o100000 | perm,
                    self.inode_links[*inode],
                    self.inode_serial[*inode],
                ),
                NodeKind::Dir { .. } => (0o040000 | perm, 0, self.node_serial[*id]),
                NodeKind::Symlink { .. } => (0o120000 | perm, 1, self.node_serial[*id]),
                NodeKind::Device { block, .. } => (
                    if *block { 0o060000 } else { 0o020000 } | perm,
                    1,
                    self.node_serial[*id],
                ),
                NodeKind::Fifo { .. } => (0o010000 | perm, 1, self.node_serial[*id]),
            };
            let mut su = Vec::with_capacity(4);
            match &node.kind {
                NodeKind::Dir { .. } => {
                    let index = self.dir_index[*id];
                    su.push(self.dir_px(index));
                    su.push(susp::tf(meta.mtime));
                    su.extend(susp::nm(name.as_bytes()));
                    out.push(self.record(
                        ident.clone(),
                        Target::Dir(index),
                        FLAG_DIR,
                        meta.mtime,
                        &su,
                    ));
                    continue;
                }
                _ => {
                    su.push(susp::px(mode, nlink, meta.uid, meta.gid, serial));
                    su.push(susp::tf(meta.mtime));
                    su.extend(susp::nm(name.as_bytes()));
                }
            }
            match &node.kind {
                NodeKind::Symlink { target, .. } => su.extend(susp::sl(target.as_bytes())),
                NodeKind::Device { major, minor, .. } => su.push(susp::pn(*major, *minor)),
                _ => {}
            }
            let extent = match &node.kind {
                NodeKind::File { inode } => self.tree.inodes[*inode].extent.clone(),
                _ => Extent { start: 0, len: 0 },
            };
            // A file larger than one extent is several records of the same
            // name, all but the last flagged; each carries the Rock Ridge
            // entries (Linux takes the name from the last, the rest from
            // the first).
            let mut start = extent.start;
            let mut left = extent.len;
            loop {
                let part = left.min(self.max_extent);
                left -= part;
                let target = Target::Bytes {
                    lba: if part == 0 {
                        0
                    } else {
                        (start / SECTOR) as u32
                    },
                    len: part as u32,
                };
                let flags = if left > 0 { FLAG_MORE } else { 0 };
                out.push(self.record(ident.clone(), target, flags, meta.mtime, &su));
                start += part;
                if left == 0 {
                    break;
                }
            }
        }
        out
    }

    fn record(
        &self,
        ident: Vec<u8>,
        target: Target,
        flags: u8,
        mtime: u64,
        su: &[Vec<u8>],
    ) -> Record {
        let fixed = 33 + ident.len() + usize::from(ident.len().is_multiple_of(2));
        Record {
            ident,
            target,
            flags,
            mtime,
            su: susp::split(su, MAX_RECORD - fixed, SECTOR as usize),
        }
    }

    fn path_table_size(&self) -> u64 {
        self.dirs
            .iter()
            .map(|d| 8 + d.ident.len() as u64 + d.ident.len() as u64 % 2)
            .sum()
    }

    /// The L (little-endian) and M (big-endian) path tables.
    fn path_tables(&self, lba: impl Fn(usize) -> u32) -> (Vec<u8>, Vec<u8>) {
        let mut l = Vec::new();
        let mut m = Vec::new();
        for (i, d) in self.dirs.iter().enumerate() {
            let parent = (d.parent + 1) as u16;
            for (t, big) in [(&mut l, false), (&mut m, true)] {
                t.push(d.ident.len() as u8);
                t.push(0);
                if big {
                    t.extend_from_slice(&lba(i).to_be_bytes());
                    t.extend_from_slice(&parent.to_be_bytes());
                } else {
                    t.extend_from_slice(&lba(i).to_le_bytes());
                    t.extend_from_slice(&parent.to_le_bytes());
                }
                t.extend_from_slice(&d.ident);
                if d.ident.len() % 2 == 1 {
                    t.push(0);
                }
            }
        }
        (l, m)
    }
}
