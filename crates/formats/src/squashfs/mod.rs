//! A squashfs (version 4.0) writer fed by the entry stream.
//!
//! Hand-written rather than backhand's `FilesystemWriter`: that one keeps
//! every file's reader (`push_file(reader: impl Read + 'c)`) until `write`
//! reads them all, while an [`EntrySink`] gets each file's content only for
//! the duration of one call; holding it would mean the whole image in memory
//! or in temporary files. It also has no hard links.
//!
//! Layout, in the order written: the 96-byte superblock (rewritten last),
//! file data blocks and fragment blocks as entries arrive, then the inode
//! table, directory table, fragment table, export table, id table and
//! xattr table, then zeros to a multiple of 4 KiB. Only metadata waits for
//! the end: per inode its attributes and, for a file, its block sizes.
//!
//! Deterministic: blocks are compressed in parallel but written in order;
//! inode numbers follow a post-order walk of the sorted tree (children
//! before their directory, the root last, as mksquashfs numbers them);
//! every time comes from the entries, the superblock's from the options.

mod compress;
mod metadata;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek, SeekFrom, Write};

use slipway_assemble::{EntrySink, Header, Kind};

pub use compress::Compressor;
use compress::{Block, Codec, Pool, write_block};
use metadata::MetaWriter;

use crate::fstree::{NodeId, NodeKind, Plan, ROOT, Summary, Tree, Xattr, encode_dev};

/// mksquashfs's default block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 128 * 1024;
const MAGIC: u32 = 0x7371_7368;
const SUPERBLOCK_SIZE: u64 = 96;
const NO_FRAGMENT: u32 = 0xffff_ffff;
const NO_XATTR: u32 = 0xffff_ffff;
const INVALID_TABLE: u64 = 0xffff_ffff_ffff_ffff;
/// The image is padded to a multiple of this (mksquashfs's default), so
/// block devices see whole sectors.
const PAD: u64 = 4096;

const FLAG_NO_FRAGMENTS: u16 = 0x10;
const FLAG_EXPORTABLE: u16 = 0x80;
const FLAG_NO_XATTRS: u16 = 0x200;

/// How to write the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquashfsOptions {
    pub compressor: Compressor,
    /// Compression level; `None` is mksquashfs's default for the compressor.
    pub level: Option<u32>,
    /// A power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
    /// Pack the tails of files (and files smaller than a block) into shared
    /// fragment blocks, as mksquashfs does; otherwise each tail is a short
    /// block of its own.
    pub fragments: bool,
    /// Compression threads; 0 or 1 compresses on the caller's thread. The
    /// bytes are the same for every count.
    pub threads: usize,
    /// The superblock's creation time (the build's time).
    pub mkfs_time: u64,
    /// Leave out everything under `boot/` (the kernel, its command line and
    /// microcode are written beside a root filesystem image).
    pub skip_boot: bool,
    /// Write the export table (inode number to inode), which NFS exports of
    /// the mounted image need; mksquashfs writes it by default.
    pub exports: bool,
}

impl SquashfsOptions {
    /// mksquashfs's defaults for `compressor`, on the machine's cores.
    pub fn new(compressor: Compressor, mkfs_time: u64) -> SquashfsOptions {
        SquashfsOptions {
            compressor,
            level: None,
            block_size: DEFAULT_BLOCK_SIZE,
            fragments: true,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            mkfs_time,
            skip_boot: false,
            exports: true,
        }
    }
}

/// Which extended attributes squashfs stores: the `user.`, `trusted.` and
/// `security.` namespaces.
fn xattr_prefix(name: &[u8]) -> Option<(u16, &[u8])> {
    [(0u16, &b"user."[..]), (1, b"trusted."), (2, b"security.")]
        .into_iter()
        .find_map(|(t, p)| name.strip_prefix(p).map(|rest| (t, rest)))
        .filter(|(_, rest)| !rest.is_empty() && rest.len() <= usize::from(u16::MAX))
}

fn xattr_ok(name: &[u8], value: &[u8]) -> bool {
    xattr_prefix(name).is_some() && u32::try_from(value.len()).is_ok()
}

/// Where a file's content went.
#[derive(Debug, Default)]
struct FileData {
    start: Option<u64>,
    /// Size words of its blocks, in order.
    sizes: Vec<u32>,
    /// Fragment index and offset of its tail.
    fragment: Option<(u32, u32)>,
    /// Bytes of holes (zero blocks not stored).
    sparse: u64,
}

/// What a compressed block is for.
#[derive(Debug)]
enum Tag {
    File { id: u32, len: u32 },
    Fragment,
}

/// The output and what has been placed in it.
#[derive(Debug)]
struct Out<W> {
    w: W,
    pos: u64,
    files: Vec<FileData>,
    /// Start and size word of each fragment block.
    fragments: Vec<(u64, u32)>,
}

impl<W: Write> Out<W> {
    fn place(&mut self, tag: Tag, block: Block) -> io::Result<()> {
        let (bytes, word) = write_block(&mut self.w, &block)?;
        match tag {
            Tag::File { id, len } => {
                let f = &mut self.files[id as usize];
                f.start.get_or_insert(self.pos);
                f.sizes.push(word);
                if matches!(block, Block::Sparse) {
                    f.sparse += u64::from(len);
                }
            }
            Tag::Fragment => self.fragments.push((self.pos, word)),
        }
        self.pos += bytes;
        Ok(())
    }
}

/// Writes a squashfs image of the entries it is given; [`finish`] writes the
/// tables and the superblock.
///
/// [`finish`]: SquashfsWriter::finish
#[derive(Debug)]
pub struct SquashfsWriter<W: Write + Seek> {
    out: Out<W>,
    opts: SquashfsOptions,
    tree: Tree,
    pool: Pool<Tag>,
    /// The fragment block being filled.
    fragment: Vec<u8>,
    /// Fragment blocks handed to the pool so far: the index of the one
    /// being filled.
    fragments: u32,
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

impl<W: Write + Seek> SquashfsWriter<W> {
    /// Starts an image at the current position of `out` (normally an empty
    /// file: positions in the image are offsets from where it starts).
    pub fn new(mut out: W, opts: SquashfsOptions) -> io::Result<SquashfsWriter<W>> {
        let bs = opts.block_size;
        if !bs.is_power_of_two() || !(4096..=1 << 20).contains(&bs) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("squashfs block size {bs} is not a power of two from 4 KiB to 1 MiB"),
            ));
        }
        let codec = Codec {
            kind: opts.compressor,
            level: opts.level.unwrap_or(opts.compressor.default_level()),
            dict: bs,
        };
        let start = out.stream_position()?;
        if start != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a squashfs image starts at the beginning of its file",
            ));
        }
        out.write_all(&[0u8; SUPERBLOCK_SIZE as usize])?;
        Ok(SquashfsWriter {
            out: Out {
                w: out,
                pos: SUPERBLOCK_SIZE,
                files: Vec::new(),
                fragments: Vec::new(),
            },
            pool: Pool::new(codec, opts.threads)?,
            tree: Tree::new(opts.mkfs_time, opts.skip_boot, xattr_ok),
            fragment: Vec::new(),
            fragments: 0,
            opts,
        })
    }

    fn write_file(&mut self, size: u64, content: &mut dyn Read, path: &str) -> io::Result<u32> {
        let id = self.out.files.len() as u32;
        self.out.files.push(FileData::default());
        let bs = u64::from(self.opts.block_size);
        let tail = size % bs;
        let mut left = size;
        let out = &mut self.out;
        let mut done = |tag, block| out.place(tag, block);
        while left >= bs || (left > 0 && !self.opts.fragments) {
            let len = left.min(bs);
            let mut buf = vec![0u8; len as usize];
            read_exact(content, &mut buf, path)?;
            self.pool.submit(
                Tag::File {
                    id,
                    len: len as u32,
                },
                buf,
                true,
                &mut done,
            )?;
            left -= len;
        }
        if left > 0 {
            debug_assert_eq!(left, tail);
            let mut buf = vec![0u8; tail as usize];
            read_exact(content, &mut buf, path)?;
            if self.fragment.len() + buf.len() > bs as usize {
                let block = std::mem::take(&mut self.fragment);
                self.pool.submit(Tag::Fragment, block, false, &mut done)?;
                self.fragments += 1;
            }
            let index = self.fragments;
            let offset = self.fragment.len() as u32;
            self.fragment.extend_from_slice(&buf);
            self.out.files[id as usize].fragment = Some((index, offset));
        }
        Ok(id)
    }

    /// Writes the tables and the superblock; returns the output and what
    /// the image holds. After an error the output is not an image.
    pub fn finish(mut self) -> io::Result<(W, Summary)> {
        let out = &mut self.out;
        let mut done = |tag, block| out.place(tag, block);
        if !self.fragment.is_empty() {
            let block = std::mem::take(&mut self.fragment);
            self.pool.submit(Tag::Fragment, block, false, &mut done)?;
        }
        self.pool.flush(&mut done)?;
        let tables = Tables::build(&self.tree, &self.out.files, &self.opts, &mut self.pool)?;
        let out = &mut self.out;
        let inode_table = out.pos;
        out.w.write_all(&tables.inodes)?;
        out.pos += tables.inodes.len() as u64;
        let directory_table = out.pos;
        out.w.write_all(&tables.dirs)?;
        out.pos += tables.dirs.len() as u64;

        let engine = self.pool.engine();
        let mut entries = Vec::with_capacity(out.fragments.len() * 16);
        for &(start, size) in &out.fragments {
            entries.extend_from_slice(&start.to_le_bytes());
            entries.extend_from_slice(&size.to_le_bytes());
            entries.extend_from_slice(&0u32.to_le_bytes());
        }
        let fragment_table = write_indexed(out, engine, &entries)?;
        let lookup_table = if self.opts.exports {
            let mut refs = Vec::with_capacity(tables.refs.len() * 8);
            for r in &tables.refs {
                refs.extend_from_slice(&r.to_le_bytes());
            }
            write_indexed(out, engine, &refs)?
        } else {
            INVALID_TABLE
        };
        let mut ids = Vec::with_capacity(tables.ids.len() * 4);
        for id in &tables.ids {
            ids.extend_from_slice(&id.to_le_bytes());
        }
        let id_table = write_indexed(out, engine, &ids)?;
        let xattr_table = if tables.xattr_ids.is_empty() {
            INVALID_TABLE
        } else {
            let kv_start = out.pos;
            out.w.write_all(&tables.xattr_kv)?;
            out.pos += tables.xattr_kv.len() as u64;
            let mut w = MetaWriter::default();
            w.write(engine, &tables.xattr_ids)?;
            let (bytes, starts) = w.finish(engine)?;
            let ids_start = out.pos;
            out.w.write_all(&bytes)?;
            out.pos += bytes.len() as u64;
            let header = out.pos;
            let mut head = Vec::with_capacity(16 + starts.len() * 8);
            head.extend_from_slice(&kv_start.to_le_bytes());
            head.extend_from_slice(&((tables.xattr_ids.len() / 16) as u32).to_le_bytes());
            head.extend_from_slice(&0u32.to_le_bytes());
            for s in starts {
                head.extend_from_slice(&(ids_start + s).to_le_bytes());
            }
            out.w.write_all(&head)?;
            out.pos += head.len() as u64;
            header
        };
        let bytes_used = out.pos;
        let padded = bytes_used.div_ceil(PAD) * PAD;
        out.w
            .write_all(&vec![0u8; (padded - bytes_used) as usize])?;

        let mut flags = 0;
        if !self.opts.fragments {
            flags |= FLAG_NO_FRAGMENTS;
        }
        if self.opts.exports {
            flags |= FLAG_EXPORTABLE;
        }
        if tables.xattr_ids.is_empty() {
            flags |= FLAG_NO_XATTRS;
        }
        let mut sb = Vec::with_capacity(SUPERBLOCK_SIZE as usize);
        sb.extend_from_slice(&MAGIC.to_le_bytes());
        sb.extend_from_slice(&(tables.refs.len() as u32).to_le_bytes());
        sb.extend_from_slice(&clamp32(self.opts.mkfs_time).to_le_bytes());
        sb.extend_from_slice(&self.opts.block_size.to_le_bytes());
        sb.extend_from_slice(&(out.fragments.len() as u32).to_le_bytes());
        sb.extend_from_slice(&self.opts.compressor.id().to_le_bytes());
        sb.extend_from_slice(&(self.opts.block_size.trailing_zeros() as u16).to_le_bytes());
        sb.extend_from_slice(&flags.to_le_bytes());
        sb.extend_from_slice(&(tables.ids.len() as u16).to_le_bytes());
        sb.extend_from_slice(&4u16.to_le_bytes());
        sb.extend_from_slice(&0u16.to_le_bytes());
        sb.extend_from_slice(&tables.root.to_le_bytes());
        sb.extend_from_slice(&bytes_used.to_le_bytes());
        sb.extend_from_slice(&id_table.to_le_bytes());
        sb.extend_from_slice(&xattr_table.to_le_bytes());
        sb.extend_from_slice(&inode_table.to_le_bytes());
        sb.extend_from_slice(&directory_table.to_le_bytes());
        sb.extend_from_slice(&fragment_table.to_le_bytes());
        sb.extend_from_slice(&lookup_table.to_le_bytes());
        debug_assert_eq!(sb.len() as u64, SUPERBLOCK_SIZE);
        out.w.seek(SeekFrom::Start(0))?;
        out.w.write_all(&sb)?;
        out.w.seek(SeekFrom::Start(padded))?;
        out.w.flush()?;
        let summary = Summary {
            inodes: tables.refs.len() as u64,
            bytes: padded,
            replaced_bytes: self.tree.replaced_bytes,
            skipped: std::mem::take(&mut self.tree.skipped),
        };
        let SquashfsWriter { out, .. } = self;
        Ok((out.w, summary))
    }
}

fn clamp32(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

/// Writes `entries` as metadata blocks followed by their index (one
/// absolute `u64` per block); returns where the index starts.
fn write_indexed<W: Write>(
    out: &mut Out<W>,
    engine: &mut compress::Engine,
    entries: &[u8],
) -> io::Result<u64> {
    let mut w = MetaWriter::default();
    w.write(engine, entries)?;
    let (bytes, starts) = w.finish(engine)?;
    let base = out.pos;
    out.w.write_all(&bytes)?;
    out.pos += bytes.len() as u64;
    let index = out.pos;
    for s in starts {
        out.w.write_all(&(base + s).to_le_bytes())?;
        out.pos += 8;
    }
    Ok(index)
}

impl<W: Write + Seek> EntrySink for SquashfsWriter<W> {
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
                    Kind::File { size } => self.write_file(size, content, &header.path)?,
                    _ => 0,
                };
                self.tree.bind(header, slots, data);
            }
        }
        Ok(())
    }
}

/// Inode types.
mod ty {
    pub const DIR: u16 = 1;
    pub const REG: u16 = 2;
    pub const SYMLINK: u16 = 3;
    pub const BLKDEV: u16 = 4;
    pub const CHRDEV: u16 = 5;
    pub const FIFO: u16 = 6;
    /// The extended forms are the basic ones plus this.
    pub const EXTENDED: u16 = 7;
}

/// The metadata tables, built once all data is written.
struct Tables {
    inodes: Vec<u8>,
    dirs: Vec<u8>,
    /// Inode reference by inode number - 1 (the export table).
    refs: Vec<u64>,
    root: u64,
    ids: Vec<u32>,
    /// The xattr key/value table, and its id table's 16-byte entries.
    xattr_kv: Vec<u8>,
    xattr_ids: Vec<u8>,
}

struct Listing<'a> {
    name: &'a [u8],
    reference: u64,
    number: u32,
    ty: u16,
}

impl Tables {
    fn build(
        tree: &Tree,
        files: &[FileData],
        opts: &SquashfsOptions,
        pool: &mut Pool<Tag>,
    ) -> io::Result<Tables> {
        let (order, parent) = post_order(tree);
        let count = order.len();
        let mut number = vec![0u32; tree.nodes.len()];
        for (i, &n) in order.iter().enumerate() {
            number[n as usize] = i as u32 + 1;
        }
        let mut ids = std::collections::BTreeSet::new();
        for &n in &order {
            let node = &tree.nodes[n as usize];
            ids.insert(node.uid);
            ids.insert(node.gid);
        }
        // The superblock counts them in 16 bits.
        if ids.len() > usize::from(u16::MAX) {
            return Err(io::Error::other(format!(
                "the image has {} distinct uids and gids; squashfs holds at most 65535",
                ids.len()
            )));
        }
        let ids: Vec<u32> = ids.into_iter().collect();
        let id_index: HashMap<u32, u16> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u16))
            .collect();

        let engine = pool.engine();
        // Extended attribute sets, each stored once.
        let mut kv = MetaWriter::default();
        let mut xattr_ids = Vec::new();
        let mut sets: BTreeMap<&[Xattr], u32> = BTreeMap::new();
        let mut xattr_of = vec![NO_XATTR; tree.nodes.len()];
        for &n in &order {
            let x = &tree.nodes[n as usize].xattrs;
            if x.is_empty() {
                continue;
            }
            if let Some(&i) = sets.get(x.as_slice()) {
                xattr_of[n as usize] = i;
                continue;
            }
            let reference = kv.reference();
            let mut bytes = Vec::new();
            for (name, value) in x {
                let Some((t, rest)) = xattr_prefix(name) else {
                    continue;
                };
                bytes.extend_from_slice(&t.to_le_bytes());
                bytes.extend_from_slice(&(rest.len() as u16).to_le_bytes());
                bytes.extend_from_slice(rest);
                bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
                bytes.extend_from_slice(value);
            }
            kv.write(engine, &bytes)?;
            let i = (xattr_ids.len() / 16) as u32;
            xattr_ids.extend_from_slice(&reference.to_le_bytes());
            xattr_ids.extend_from_slice(&(x.len() as u32).to_le_bytes());
            xattr_ids.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            sets.insert(x.as_slice(), i);
            xattr_of[n as usize] = i;
        }
        let (xattr_kv, _) = kv.finish(engine)?;

        let mut inodes = MetaWriter::default();
        let mut dirs = MetaWriter::default();
        let mut refs = vec![0u64; count];
        let mut reference = vec![0u64; tree.nodes.len()];
        let bs = u64::from(opts.block_size);
        for &n in &order {
            let node = &tree.nodes[n as usize];
            let xattr = xattr_of[n as usize];
            let extended_for_xattr = xattr != NO_XATTR;
            let mut b = Vec::with_capacity(64);
            let base = |b: &mut Vec<u8>, t: u16| {
                b.extend_from_slice(&t.to_le_bytes());
                b.extend_from_slice(&node.mode.to_le_bytes());
                b.extend_from_slice(&id_index[&node.uid].to_le_bytes());
                b.extend_from_slice(&id_index[&node.gid].to_le_bytes());
                b.extend_from_slice(&clamp32(node.mtime).to_le_bytes());
                b.extend_from_slice(&number[n as usize].to_le_bytes());
            };
            let nlink = tree.nlink(n);
            match &node.kind {
                NodeKind::Dir(children) => {
                    let entries: Vec<Listing<'_>> = children
                        .iter()
                        .map(|(name, &c)| Listing {
                            name,
                            reference: reference[c as usize],
                            number: number[c as usize],
                            ty: basic_type(&tree.nodes[c as usize].kind),
                        })
                        .collect();
                    let (block, offset) = dirs.pos();
                    let size = write_listing(&mut dirs, engine, &entries)? + 3;
                    let parent_number = if n == ROOT {
                        count as u32 + 1
                    } else {
                        number[parent[n as usize] as usize]
                    };
                    let block = u32::try_from(block)
                        .map_err(|_| io::Error::other("the directory table exceeds 4 GiB"))?;
                    if size <= u64::from(u16::MAX) && !extended_for_xattr {
                        base(&mut b, ty::DIR);
                        b.extend_from_slice(&block.to_le_bytes());
                        b.extend_from_slice(&nlink.to_le_bytes());
                        b.extend_from_slice(&(size as u16).to_le_bytes());
                        b.extend_from_slice(&offset.to_le_bytes());
                        b.extend_from_slice(&parent_number.to_le_bytes());
                    } else {
                        let size = u32::try_from(size)
                            .map_err(|_| io::Error::other("a directory listing exceeds 4 GiB"))?;
                        base(&mut b, ty::DIR + ty::EXTENDED);
                        b.extend_from_slice(&nlink.to_le_bytes());
                        b.extend_from_slice(&size.to_le_bytes());
                        b.extend_from_slice(&block.to_le_bytes());
                        b.extend_from_slice(&parent_number.to_le_bytes());
                        b.extend_from_slice(&0u16.to_le_bytes());
                        b.extend_from_slice(&offset.to_le_bytes());
                        b.extend_from_slice(&xattr.to_le_bytes());
                    }
                }
                NodeKind::File { data, size } => {
                    let f = &files[*data as usize];
                    let (frag, frag_off) = f.fragment.unwrap_or((NO_FRAGMENT, 0));
                    // A tail in a fragment is not a block of its own.
                    let blocks = if f.fragment.is_some() {
                        size / bs
                    } else {
                        size.div_ceil(bs)
                    };
                    if blocks != f.sizes.len() as u64 {
                        return Err(io::Error::other(
                            "a file's blocks were not all written (an earlier error)",
                        ));
                    }
                    let start = f.start.unwrap_or(0);
                    let basic = nlink == 1
                        && !extended_for_xattr
                        && f.sparse == 0
                        && start <= u64::from(u32::MAX)
                        && *size <= u64::from(u32::MAX);
                    if basic {
                        base(&mut b, ty::REG);
                        b.extend_from_slice(&(start as u32).to_le_bytes());
                        b.extend_from_slice(&frag.to_le_bytes());
                        b.extend_from_slice(&frag_off.to_le_bytes());
                        b.extend_from_slice(&(*size as u32).to_le_bytes());
                    } else {
                        base(&mut b, ty::REG + ty::EXTENDED);
                        b.extend_from_slice(&start.to_le_bytes());
                        b.extend_from_slice(&size.to_le_bytes());
                        b.extend_from_slice(&f.sparse.to_le_bytes());
                        b.extend_from_slice(&nlink.to_le_bytes());
                        b.extend_from_slice(&frag.to_le_bytes());
                        b.extend_from_slice(&frag_off.to_le_bytes());
                        b.extend_from_slice(&xattr.to_le_bytes());
                    }
                    for s in &f.sizes {
                        b.extend_from_slice(&s.to_le_bytes());
                    }
                }
                NodeKind::Symlink(target) => {
                    let t = if extended_for_xattr {
                        ty::SYMLINK + ty::EXTENDED
                    } else {
                        ty::SYMLINK
                    };
                    base(&mut b, t);
                    b.extend_from_slice(&nlink.to_le_bytes());
                    b.extend_from_slice(&(target.len() as u32).to_le_bytes());
                    b.extend_from_slice(target);
                    if extended_for_xattr {
                        b.extend_from_slice(&xattr.to_le_bytes());
                    }
                }
                NodeKind::Char { major, minor } | NodeKind::Block { major, minor } => {
                    let t = if matches!(node.kind, NodeKind::Char { .. }) {
                        ty::CHRDEV
                    } else {
                        ty::BLKDEV
                    };
                    base(
                        &mut b,
                        if extended_for_xattr {
                            t + ty::EXTENDED
                        } else {
                            t
                        },
                    );
                    b.extend_from_slice(&nlink.to_le_bytes());
                    b.extend_from_slice(&encode_dev(*major, *minor).to_le_bytes());
                    if extended_for_xattr {
                        b.extend_from_slice(&xattr.to_le_bytes());
                    }
                }
                NodeKind::Fifo => {
                    let t = if extended_for_xattr {
                        ty::FIFO + ty::EXTENDED
                    } else {
                        ty::FIFO
                    };
                    base(&mut b, t);
                    b.extend_from_slice(&nlink.to_le_bytes());
                    if extended_for_xattr {
                        b.extend_from_slice(&xattr.to_le_bytes());
                    }
                }
            }
            let r = inodes.reference();
            reference[n as usize] = r;
            refs[number[n as usize] as usize - 1] = r;
            inodes.write(engine, &b)?;
        }
        let root = reference[ROOT as usize];
        let (inodes, _) = inodes.finish(engine)?;
        let (dirs, _) = dirs.finish(engine)?;
        Ok(Tables {
            inodes,
            dirs,
            refs,
            root,
            ids,
            xattr_kv,
            xattr_ids,
        })
    }
}

/// The type a directory entry records: always the basic one.
fn basic_type(kind: &NodeKind) -> u16 {
    match kind {
        NodeKind::Dir(_) => ty::DIR,
        NodeKind::File { .. } => ty::REG,
        NodeKind::Symlink(_) => ty::SYMLINK,
        NodeKind::Block { .. } => ty::BLKDEV,
        NodeKind::Char { .. } => ty::CHRDEV,
        NodeKind::Fifo => ty::FIFO,
    }
}

/// Writes a directory's entries (sorted by name): runs of at most 256
/// entries whose inodes share a metadata block and whose numbers are within
/// a signed 16-bit step of the run's first, each run behind a header.
/// Returns the bytes written.
fn write_listing(
    dirs: &mut MetaWriter,
    engine: &mut compress::Engine,
    entries: &[Listing<'_>],
) -> io::Result<u64> {
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let block = entries[i].reference >> 16;
        let base = entries[i].number;
        let mut j = i;
        while j < entries.len()
            && j - i < 256
            && entries[j].reference >> 16 == block
            && i16::try_from(i64::from(entries[j].number) - i64::from(base)).is_ok()
        {
            j += 1;
        }
        bytes.extend_from_slice(&((j - i - 1) as u32).to_le_bytes());
        bytes.extend_from_slice(&(block as u32).to_le_bytes());
        bytes.extend_from_slice(&base.to_le_bytes());
        for e in &entries[i..j] {
            let diff = (i64::from(e.number) - i64::from(base)) as i16;
            bytes.extend_from_slice(&((e.reference & 0xffff) as u16).to_le_bytes());
            bytes.extend_from_slice(&diff.to_le_bytes());
            bytes.extend_from_slice(&e.ty.to_le_bytes());
            bytes.extend_from_slice(&((e.name.len() - 1) as u16).to_le_bytes());
            bytes.extend_from_slice(e.name);
        }
        i = j;
    }
    dirs.write(engine, &bytes)?;
    Ok(bytes.len() as u64)
}

/// The reachable nodes, each once, children before their directory (the
/// root last), and each directory's parent.
fn post_order(tree: &Tree) -> (Vec<NodeId>, Vec<NodeId>) {
    let mut seen = vec![false; tree.nodes.len()];
    let mut parent = vec![ROOT; tree.nodes.len()];
    let mut order = Vec::with_capacity(tree.nodes.len());
    let children = |n: NodeId| -> Vec<NodeId> {
        tree.nodes[n as usize]
            .children()
            .map(|c| c.values().copied().collect())
            .unwrap_or_default()
    };
    seen[ROOT as usize] = true;
    let mut stack = vec![(ROOT, children(ROOT), 0usize)];
    while let Some((dir, kids, next)) = stack.last_mut() {
        if let Some(&c) = kids.get(*next) {
            *next += 1;
            if seen[c as usize] {
                continue;
            }
            seen[c as usize] = true;
            if tree.nodes[c as usize].is_dir() {
                parent[c as usize] = *dir;
                let k = children(c);
                stack.push((c, k, 0));
            } else {
                order.push(c);
            }
        } else {
            order.push(*dir);
            stack.pop();
        }
    }
    (order, parent)
}
