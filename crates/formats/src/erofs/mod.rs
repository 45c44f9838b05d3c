//! An erofs writer fed by the entry stream: uncompressed, 4 KiB blocks,
//! no feature the kernel has to opt into (`feature_incompat` is 0), so
//! every kernel with erofs (5.4 on) mounts it; mkfs.erofs writes the same
//! kind of image by default.
//!
//! Layout: block 0 holds the superblock at byte 1024 (rewritten last).
//! File data follows from block 1 as entries arrive: each file's whole
//! blocks, contiguous; the tail (its last partial block) is kept aside in
//! an anonymous temporary file, to be packed after the file's inode
//! (`FLAT_INLINE`), unless the inode, its xattrs and the tail do not fit
//! one block: then the tail is written padded right after the whole blocks
//! (`FLAT_PLAIN`). After the data comes the metadata area
//! (`meta_blkaddr`): every inode (the 64-byte extended form, which carries
//! its own mtime), its inline xattrs and inline tail, breadth first from
//! the root, 32-byte aligned and never crossing a block when it fits in
//! one. Then the blocks of directories and symbolic links too large to be
//! inlined. Directory blocks hold `.` and `..` and the entries sorted by
//! name, as the kernel's binary search needs.
//!
//! Hand-written: no Rust crate writes erofs.

mod crc32c;

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};
use slipway_assemble::{EntrySink, Header, Kind};

use crate::fstree::{NodeId, NodeKind, Plan, ROOT, Summary, Tree, encode_dev};

const BLOCK: u64 = 4096;
const SUPER_OFFSET: u64 = 1024;
const MAGIC: u32 = 0xE0F5_E1E2;
const INODE_SIZE: u64 = 64;
const FEATURE_COMPAT_SB_CHKSUM: u32 = 1;
const LAYOUT_FLAT_PLAIN: u16 = 0;
const LAYOUT_FLAT_INLINE: u16 = 2;
const DIRENT_SIZE: usize = 12;

/// How to write the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErofsOptions {
    /// The superblock's build time (the build's time).
    pub build_time: u64,
    /// Leave out everything under `boot/` (the kernel, its command line and
    /// microcode are written beside a root filesystem image).
    pub skip_boot: bool,
    /// The volume UUID; `None` derives one from the image's metadata.
    pub uuid: Option<[u8; 16]>,
    /// The volume label (`LABEL=`), at most 16 bytes.
    pub label: Option<String>,
}

impl ErofsOptions {
    pub fn new(build_time: u64) -> ErofsOptions {
        ErofsOptions {
            build_time,
            skip_boot: false,
            uuid: None,
            label: None,
        }
    }
}

/// An extended attribute name as erofs stores it: a namespace index and the
/// rest of the name.
fn xattr_index(name: &[u8]) -> Option<(u8, &[u8])> {
    match name {
        b"system.posix_acl_access" => return Some((2, b"")),
        b"system.posix_acl_default" => return Some((3, b"")),
        _ => {}
    }
    [(1u8, &b"user."[..]), (4, b"trusted."), (6, b"security.")]
        .into_iter()
        .find_map(|(i, p)| name.strip_prefix(p).map(|rest| (i, rest)))
        .filter(|(_, rest)| !rest.is_empty() && rest.len() <= 255)
}

fn xattr_ok(name: &[u8], value: &[u8]) -> bool {
    xattr_index(name).is_some() && value.len() <= usize::from(u16::MAX)
}

fn entry_size(name: &[u8], value: &[u8]) -> u64 {
    let rest = xattr_index(name).map_or(0, |(_, r)| r.len());
    (4 + rest + value.len()).next_multiple_of(4) as u64
}

/// Bytes of the inline xattr area after an inode.
fn xattr_area<'a>(xattrs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> u64 {
    let body: u64 = xattrs.map(|(n, v)| entry_size(n, v)).sum();
    if body == 0 { 0 } else { 12 + body }
}

/// Where a file's content went.
#[derive(Debug)]
struct FileData {
    /// First whole block (0 when there is none).
    blkaddr: u32,
    /// The tail packed after the inode: offset in the tails file, length.
    inline: Option<(u64, u16)>,
}

/// Writes an erofs image of the entries it is given; [`finish`] writes the
/// metadata and the superblock.
///
/// [`finish`]: ErofsWriter::finish
#[derive(Debug)]
pub struct ErofsWriter<W: Write + Seek> {
    out: W,
    /// Bytes written: always a whole number of blocks between entries.
    pos: u64,
    opts: ErofsOptions,
    tree: Tree,
    files: Vec<FileData>,
    tails: File,
    tails_len: u64,
    buf: Vec<u8>,
}

fn read_exact(content: &mut dyn Read, buf: &mut [u8], path: &str) -> io::Result<()> {
    content.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("`{path}`: its content is shorter than its size"),
            )
        } else {
            e
        }
    })
}

fn blkaddr(pos: u64) -> io::Result<u32> {
    u32::try_from(pos / BLOCK)
        .map_err(|_| io::Error::other("the erofs image exceeds 16 TiB (32-bit block addresses)"))
}

impl<W: Write + Seek> ErofsWriter<W> {
    /// Starts an image at the start of `out`, which must be positioned at 0.
    pub fn new(mut out: W, opts: ErofsOptions) -> io::Result<ErofsWriter<W>> {
        if out.stream_position()? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an erofs image starts at the beginning of its file",
            ));
        }
        if opts.label.as_ref().is_some_and(|l| l.len() > 16) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an erofs label holds at most 16 bytes",
            ));
        }
        out.write_all(&[0u8; BLOCK as usize])?;
        Ok(ErofsWriter {
            out,
            pos: BLOCK,
            tree: Tree::new(opts.build_time, opts.skip_boot, xattr_ok),
            opts,
            files: Vec::new(),
            tails: tempfile::tempfile()?,
            tails_len: 0,
            buf: Vec::new(),
        })
    }

    fn write_file(&mut self, h: &Header, size: u64, content: &mut dyn Read) -> io::Result<u32> {
        let xattrs = xattr_area(h.pax.iter().filter_map(|(k, v)| {
            k.strip_prefix("SCHILY.xattr.")
                .filter(|n| xattr_ok(n.as_bytes(), v))
                .map(|n| (n.as_bytes(), v.as_slice()))
        }));
        let tail = size % BLOCK;
        let inline = tail > 0 && INODE_SIZE + xattrs + tail <= BLOCK;
        let whole = if inline { size - tail } else { size };
        let first = if whole > 0 { blkaddr(self.pos)? } else { 0 };
        let mut left = whole;
        self.buf.resize(128 * 1024, 0);
        while left > 0 {
            let n = left.min(self.buf.len() as u64) as usize;
            read_exact(content, &mut self.buf[..n], &h.path)?;
            self.out.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        let padding = whole.next_multiple_of(BLOCK) - whole;
        self.out.write_all(&vec![0u8; padding as usize])?;
        self.pos += whole + padding;
        blkaddr(self.pos)?;
        let inline = if inline {
            let mut t = vec![0u8; tail as usize];
            read_exact(content, &mut t, &h.path)?;
            self.tails.write_all_at(&t, self.tails_len)?;
            let at = self.tails_len;
            self.tails_len += tail;
            Some((at, tail as u16))
        } else {
            None
        };
        self.files.push(FileData {
            blkaddr: first,
            inline,
        });
        Ok(self.files.len() as u32 - 1)
    }

    /// Writes the metadata and the superblock; returns the output and what
    /// the image holds. After an error the output is not an image.
    pub fn finish(mut self) -> io::Result<(W, Summary)> {
        let layout = Layout::build(&self.tree, &self.files, self.pos)?;
        let mut hash = Sha256::new();
        {
            let mut w = Hashing {
                inner: BufWriter::new(&mut self.out),
                hash: &mut hash,
            };
            layout.write(&self.tree, &self.files, &self.tails, &mut w)?;
            w.flush()?;
        }
        let end = layout.end;
        let uuid = self.opts.uuid.unwrap_or_else(|| {
            hash.update(self.opts.build_time.to_le_bytes());
            let d = hash.finalize();
            let mut u = [0u8; 16];
            u.copy_from_slice(&d[..16]);
            // A name-based (version 5 style) UUID of the RFC 4122 variant.
            u[6] = (u[6] & 0x0f) | 0x50;
            u[8] = (u[8] & 0x3f) | 0x80;
            u
        });
        let mut sb = [0u8; (BLOCK - SUPER_OFFSET) as usize];
        let put = |sb: &mut [u8], at: usize, b: &[u8]| sb[at..at + b.len()].copy_from_slice(b);
        put(&mut sb, 0, &MAGIC.to_le_bytes());
        put(&mut sb, 8, &FEATURE_COMPAT_SB_CHKSUM.to_le_bytes());
        sb[12] = 12; // blkszbits
        put(&mut sb, 14, &(layout.root_nid as u16).to_le_bytes());
        put(&mut sb, 16, &(layout.order.len() as u64).to_le_bytes());
        put(&mut sb, 24, &self.opts.build_time.to_le_bytes());
        put(&mut sb, 36, &blkaddr(end)?.to_le_bytes());
        put(&mut sb, 40, &layout.meta_blkaddr.to_le_bytes());
        put(&mut sb, 48, &uuid);
        if let Some(label) = &self.opts.label {
            put(&mut sb, 64, label.as_bytes());
        }
        let crc = crc32c::raw(!0, &sb);
        put(&mut sb, 4, &crc.to_le_bytes());
        self.out.seek(SeekFrom::Start(SUPER_OFFSET))?;
        self.out.write_all(&sb)?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        let summary = Summary {
            inodes: layout.order.len() as u64,
            bytes: end,
            replaced_bytes: self.tree.replaced_bytes,
            skipped: std::mem::take(&mut self.tree.skipped),
        };
        Ok((self.out, summary))
    }
}

impl<W: Write + Seek> EntrySink for ErofsWriter<W> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        match self.tree.plan(header, links) {
            Plan::Skip | Plan::Done => {
                io::copy(content, &mut io::sink())?;
            }
            Plan::Bind(slots) => {
                let data = match header.kind {
                    Kind::File { size } => self.write_file(header, size, content)?,
                    _ => 0,
                };
                self.tree.bind(header, slots, data);
            }
        }
        Ok(())
    }
}

/// A writer that also hashes what goes through it (the derived UUID).
struct Hashing<'a, W: Write> {
    inner: W,
    hash: &'a mut Sha256,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// File types of directory entries.
fn file_type(kind: &NodeKind) -> u8 {
    match kind {
        NodeKind::File { .. } => 1,
        NodeKind::Dir(_) => 2,
        NodeKind::Char { .. } => 3,
        NodeKind::Block { .. } => 4,
        NodeKind::Fifo => 5,
        NodeKind::Symlink(_) => 7,
    }
}

fn type_bits(kind: &NodeKind) -> u16 {
    match kind {
        NodeKind::File { .. } => 0o100000,
        NodeKind::Dir(_) => 0o040000,
        NodeKind::Char { .. } => 0o020000,
        NodeKind::Block { .. } => 0o060000,
        NodeKind::Fifo => 0o010000,
        NodeKind::Symlink(_) => 0o120000,
    }
}

/// Splits sorted directory entries into blocks; returns each block's
/// bytes (the last one unpadded).
fn dir_blocks(entries: &[(&[u8], u64, u8)]) -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let mut used = 0;
        let mut end = start;
        while end < entries.len() && used + DIRENT_SIZE + entries[end].0.len() <= BLOCK as usize {
            used += DIRENT_SIZE + entries[end].0.len();
            end += 1;
        }
        let group = &entries[start..end];
        let mut b = Vec::with_capacity(used);
        let mut nameoff = DIRENT_SIZE * group.len();
        for (name, nid, ft) in group {
            b.extend_from_slice(&nid.to_le_bytes());
            b.extend_from_slice(&(nameoff as u16).to_le_bytes());
            b.push(*ft);
            b.push(0);
            nameoff += name.len();
        }
        for (name, _, _) in group {
            b.extend_from_slice(name);
        }
        blocks.push(b);
        start = end;
    }
    blocks
}

/// Where every inode and block of the metadata goes.
struct Layout {
    /// Reachable nodes breadth first, with their parent directory.
    order: Vec<(NodeId, NodeId)>,
    /// Per node: nid, inline tail length, first block of its non-inline
    /// blocks (directories and symbolic links).
    nid: Vec<u64>,
    inline: Vec<u64>,
    blocks: Vec<u32>,
    /// Per node: the inode's number for 32-bit `stat` (1-based, in order).
    ino: Vec<u32>,
    meta_blkaddr: u32,
    root_nid: u64,
    /// Bytes of the metadata area (from `meta_blkaddr`).
    meta_len: u64,
    end: u64,
}

impl Layout {
    fn build(tree: &Tree, files: &[FileData], data_end: u64) -> io::Result<Layout> {
        let order = tree.reachable();
        let n = tree.nodes.len();
        let mut l = Layout {
            nid: vec![0; n],
            inline: vec![0; n],
            blocks: vec![0; n],
            ino: vec![0; n],
            meta_blkaddr: blkaddr(data_end)?,
            root_nid: 0,
            meta_len: 0,
            end: 0,
            order: Vec::new(),
        };
        // Inline tails, and the blocks of what cannot be inlined.
        let mut plain: Vec<(NodeId, u64)> = Vec::new();
        for &(id, _) in &order {
            let node = &tree.nodes[id as usize];
            let xattrs = xattr_area(node.xattrs.iter().map(|(n, v)| (&n[..], &v[..])));
            let (size, inline_ok) = match &node.kind {
                NodeKind::File { data, .. } => {
                    let f = &files[*data as usize];
                    l.inline[id as usize] = f.inline.map_or(0, |(_, len)| u64::from(len));
                    continue;
                }
                NodeKind::Dir(children) => {
                    let size = dir_size(tree, children);
                    (size, true)
                }
                NodeKind::Symlink(t) => (t.len() as u64, true),
                _ => continue,
            };
            let tail = size % BLOCK;
            if inline_ok && tail > 0 && INODE_SIZE + xattrs + tail <= BLOCK {
                l.inline[id as usize] = tail;
                if size > tail {
                    plain.push((id, (size - tail) / BLOCK));
                }
            } else if size > 0 {
                plain.push((id, size.div_ceil(BLOCK)));
            }
        }
        // Inodes from 32 bytes in: nid 0 would be inode number 0, which
        // readdir callers take for a deleted entry.
        let mut cursor = 32u64;
        for (i, &(id, _)) in order.iter().enumerate() {
            let node = &tree.nodes[id as usize];
            let xattrs = xattr_area(node.xattrs.iter().map(|(n, v)| (&n[..], &v[..])));
            let size = INODE_SIZE + xattrs + l.inline[id as usize];
            cursor = cursor.next_multiple_of(32);
            if size <= BLOCK && cursor % BLOCK + size > BLOCK {
                cursor = cursor.next_multiple_of(BLOCK);
            }
            l.nid[id as usize] = cursor / 32;
            l.ino[id as usize] = i as u32 + 1;
            cursor += size;
        }
        l.meta_len = cursor.next_multiple_of(BLOCK);
        l.root_nid = l.nid[ROOT as usize];
        if l.root_nid > u64::from(u16::MAX) {
            return Err(io::Error::other("the erofs root inode is out of reach"));
        }
        let mut next = data_end + l.meta_len;
        for (id, count) in plain {
            l.blocks[id as usize] = blkaddr(next)?;
            next += count * BLOCK;
        }
        blkaddr(next)?;
        l.end = next;
        l.order = order;
        Ok(l)
    }

    /// A directory's entries with their nids, sorted, `.` and `..` included.
    fn entries<'t>(&self, tree: &'t Tree, id: NodeId, parent: NodeId) -> Vec<(&'t [u8], u64, u8)> {
        let mut v: Vec<(&[u8], u64, u8)> = vec![
            (b".", self.nid[id as usize], 2),
            (b"..", self.nid[parent as usize], 2),
        ];
        if let Some(children) = tree.nodes[id as usize].children() {
            for (name, &c) in children {
                v.push((
                    name,
                    self.nid[c as usize],
                    file_type(&tree.nodes[c as usize].kind),
                ));
            }
        }
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    fn write(
        &self,
        tree: &Tree,
        files: &[FileData],
        tails: &File,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let mut at = 0u64;
        let mut plain_blocks: Vec<Vec<u8>> = Vec::new();
        for &(id, parent) in &self.order {
            let node = &tree.nodes[id as usize];
            let nid = self.nid[id as usize];
            let (size, tail, i_u): (u64, Vec<u8>, u32) = match &node.kind {
                NodeKind::File { data, size } => {
                    let f = &files[*data as usize];
                    let mut tail = Vec::new();
                    if let Some((off, len)) = f.inline {
                        tail.resize(usize::from(len), 0);
                        tails.read_exact_at(&mut tail, off)?;
                    }
                    (*size, tail, f.blkaddr)
                }
                NodeKind::Dir(_) => {
                    let mut blocks = dir_blocks(&self.entries(tree, id, parent));
                    let size = dir_bytes(&blocks);
                    let tail = if self.inline[id as usize] > 0 {
                        blocks.pop().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    let n = blocks.len();
                    for (i, mut b) in blocks.into_iter().enumerate() {
                        if i + 1 < n || tail.is_empty() {
                            b.resize(BLOCK as usize, 0);
                        }
                        plain_blocks.push(b);
                    }
                    (size, tail, self.blocks[id as usize])
                }
                NodeKind::Symlink(t) => {
                    if self.inline[id as usize] > 0 {
                        (t.len() as u64, t.to_vec(), 0)
                    } else {
                        plain_blocks.push(t.to_vec());
                        (t.len() as u64, Vec::new(), self.blocks[id as usize])
                    }
                }
                NodeKind::Char { major, minor } | NodeKind::Block { major, minor } => {
                    (0, Vec::new(), encode_dev(*major, *minor))
                }
                NodeKind::Fifo => (0, Vec::new(), 0),
            };
            let layout = if tail.is_empty() {
                LAYOUT_FLAT_PLAIN
            } else {
                LAYOUT_FLAT_INLINE
            };
            let mut xattr_body = Vec::new();
            for (name, value) in &node.xattrs {
                let Some((index, rest)) = xattr_index(name) else {
                    continue;
                };
                let start = xattr_body.len();
                xattr_body.push(rest.len() as u8);
                xattr_body.push(index);
                xattr_body.extend_from_slice(&(value.len() as u16).to_le_bytes());
                xattr_body.extend_from_slice(rest);
                xattr_body.extend_from_slice(value);
                xattr_body.resize(start + entry_size(name, value) as usize, 0);
            }
            let icount: u16 = if xattr_body.is_empty() {
                0
            } else {
                (xattr_body.len() / 4 + 1) as u16
            };
            let mut b = Vec::with_capacity(INODE_SIZE as usize + xattr_body.len() + tail.len());
            b.extend_from_slice(&(1 | (layout << 1)).to_le_bytes());
            b.extend_from_slice(&icount.to_le_bytes());
            b.extend_from_slice(&(type_bits(&node.kind) | node.mode).to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&i_u.to_le_bytes());
            b.extend_from_slice(&self.ino[id as usize].to_le_bytes());
            b.extend_from_slice(&node.uid.to_le_bytes());
            b.extend_from_slice(&node.gid.to_le_bytes());
            b.extend_from_slice(&node.mtime.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&tree.nlink(id).to_le_bytes());
            b.extend_from_slice(&[0u8; 16]);
            if !xattr_body.is_empty() {
                b.extend_from_slice(&[0u8; 12]);
                b.extend_from_slice(&xattr_body);
            }
            b.extend_from_slice(&tail);
            let pos = nid * 32;
            out.write_all(&vec![0u8; (pos - at) as usize])?;
            out.write_all(&b)?;
            at = pos + b.len() as u64;
        }
        out.write_all(&vec![0u8; (self.meta_len - at) as usize])?;
        for mut b in plain_blocks {
            b.resize(b.len().next_multiple_of(BLOCK as usize), 0);
            out.write_all(&b)?;
        }
        Ok(())
    }
}

fn dir_bytes(blocks: &[Vec<u8>]) -> u64 {
    match blocks.split_last() {
        Some((last, full)) => full.len() as u64 * BLOCK + last.len() as u64,
        None => 0,
    }
}

/// A directory's size: its blocks of entries, the last one as used.
fn dir_size(tree: &Tree, children: &std::collections::BTreeMap<Box<[u8]>, NodeId>) -> u64 {
    let mut v: Vec<(&[u8], u64, u8)> = vec![(b".", 0, 2), (b"..", 0, 2)];
    for (name, &c) in children {
        v.push((name, 0, file_type(&tree.nodes[c as usize].kind)));
    }
    v.sort_by(|a, b| a.0.cmp(b.0));
    dir_bytes(&dir_blocks(&v))
}
