//! FAT12/16/32 volumes (EFI system partitions, El Torito boot images, any
//! small FAT volume), written front to back in one pass.
//!
//! Hand-written rather than fatfs 0.3.6, the maintained crate. Measured on
//! a 512 MiB volume with a directory, a few files and a 300 MiB file
//! (fatfs with `FsOptions` defaults, no `chrono`): fatfs allocates clusters
//! first-free as it goes, so a directory that grows after a file was written
//! is split around the file's data (no contiguity control), and it has no
//! way to tell where a file's data lies (which an ISO needs, to point its
//! own extents into the image); on FAT32 its `..` entries point at the root
//! cluster instead of 0, which `fsck.fat -n` reports, and without `chrono`
//! its dates are 1980-00-00; it also reads and rewrites the FAT for every
//! cluster (1.8 million seeks and 1.7 s for the 300 MiB file) and needs a
//! read-write seekable device. Knowing every file and size up front, this
//! writer lays the volume out first (directories, then each file in one
//! run of clusters), then streams boot sector, FATs, directories and file
//! contents in order: only the tree is held in memory.
//!
//! Layout: reserved sectors (boot sector; on FAT32 also FSInfo at 1 and
//! their backups at 6 and 7), two identical FATs, the fixed root directory
//! (FAT12/16), then the data region, whose start is padded (with reserved
//! sectors) to a multiple of the cluster size so that every cluster, and so
//! every file's data, is aligned to the cluster size within the volume.
//! Clusters from 2 on hold the FAT32 root directory, the other directories
//! (depth first, names sorted), then the files in the same order.

mod dir;
mod geometry;
mod names;

use std::collections::HashMap;
use std::io::{Read, Seek, Write};

use super::raw::{PartitionContent, Placement};
use super::sink::{DenseWriter, Region, Sink, SparseWriter};
use super::{DiskError, SECTOR, derive};
use dir::{ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_VOLUME_ID, DosTime, ENTRY};
use geometry::Geometry;

pub use geometry::cluster_range;

/// The FAT variant; readers tell them apart by cluster count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

impl FatType {
    fn name(self) -> &'static [u8; 8] {
        match self {
            FatType::Fat12 => b"FAT12   ",
            FatType::Fat16 => b"FAT16   ",
            FatType::Fat32 => b"FAT32   ",
        }
    }
}

/// How to lay a volume out.
#[derive(Clone, Debug)]
pub struct FatOptions {
    /// `None`: the first of FAT12, FAT16, FAT32 the volume is valid as.
    pub fat_type: Option<FatType>,
    /// Bytes per cluster: a power of two from 512 to 65536. File data is
    /// aligned to it within the volume (2048 or more gives ISO-sector
    /// alignment).
    pub cluster_size: u32,
    /// Volume size in bytes (rounded down to whole sectors); `None`: as
    /// small as the content and the type allow.
    pub size: Option<u64>,
    /// Volume label, up to 11 characters a short name may hold (and spaces).
    pub label: Option<String>,
    /// `None`: derived from the label, the layout and every path and size.
    pub volume_id: Option<u32>,
    /// Time of every entry, seconds since the epoch (clamped to 1980-2107).
    pub mtime: u64,
    /// Sectors before the volume on its disk (set when placed in a partition).
    pub hidden_sectors: u32,
}

impl Default for FatOptions {
    fn default() -> FatOptions {
        FatOptions {
            fat_type: None,
            cluster_size: 4096,
            size: None,
            label: None,
            volume_id: None,
            mtime: slipway_assemble::DEFAULT_MTIME,
            hidden_sectors: 0,
        }
    }
}

/// Writes a file's bytes into the volume when its turn comes: exactly the
/// file's size, into a writer that refuses more.
pub type WriteContent<'a> = Box<dyn FnOnce(&mut dyn Write) -> Result<(), DiskError> + 'a>;

/// Where a file's bytes come from when the volume is written.
enum Content<'a> {
    /// Pulled from a reader.
    Read(Box<dyn Read + 'a>),
    /// Pushed by a writer (e.g. a UKI, which writes itself).
    Write(WriteContent<'a>),
}

enum Kind<'a> {
    Dir(Vec<usize>),
    File {
        size: u64,
        content: Option<Content<'a>>,
    },
}

struct Node<'a> {
    name: String,
    kind: Kind<'a>,
}

/// Collects directories and files, then lays them out.
pub struct FatBuilder<'a> {
    opts: FatOptions,
    nodes: Vec<Node<'a>>,
    /// (parent, folded name) -> node.
    index: HashMap<(usize, String), usize>,
}

impl std::fmt::Debug for FatBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FatBuilder")
            .field("opts", &self.opts)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

fn name_err(path: &str, reason: impl Into<String>) -> DiskError {
    DiskError::FatName {
        path: path.to_string(),
        reason: reason.into(),
    }
}

impl<'a> FatBuilder<'a> {
    pub fn new(opts: FatOptions) -> FatBuilder<'a> {
        FatBuilder {
            opts,
            nodes: vec![Node {
                name: String::new(),
                kind: Kind::Dir(Vec::new()),
            }],
            index: HashMap::new(),
        }
    }

    pub fn options(&self) -> &FatOptions {
        &self.opts
    }

    pub fn options_mut(&mut self) -> &mut FatOptions {
        &mut self.opts
    }

    /// The directory `parent/name`, made if missing.
    fn child_dir(&mut self, parent: usize, name: &str, path: &str) -> Result<usize, DiskError> {
        names::check(name).map_err(|r| name_err(path, r))?;
        match self.index.get(&(parent, names::fold(name))) {
            Some(&i) if matches!(self.nodes[i].kind, Kind::Dir(_)) => Ok(i),
            Some(_) => Err(name_err(path, "a file has this name")),
            None => Ok(self.insert(parent, name, Kind::Dir(Vec::new()))),
        }
    }

    fn insert(&mut self, parent: usize, name: &str, kind: Kind<'a>) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            name: name.to_string(),
            kind,
        });
        self.index.insert((parent, names::fold(name)), i);
        if let Kind::Dir(children) = &mut self.nodes[parent].kind {
            children.push(i);
        }
        i
    }

    /// The components of `path` (leading `/` allowed, no empty, `.` or `..`).
    fn split(path: &str) -> Result<Vec<&str>, DiskError> {
        let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(name_err(path, "empty path component"));
        }
        Ok(parts)
    }

    /// Adds the directory `path` and its parents (adding one twice is fine).
    pub fn dir(&mut self, path: &str) -> Result<(), DiskError> {
        let mut at = 0;
        for part in Self::split(path)? {
            at = self.child_dir(at, part, path)?;
        }
        Ok(())
    }

    /// Adds the file `path` of `size` bytes, read from `content` when the
    /// volume is written; missing parent directories are added.
    pub fn file(
        &mut self,
        path: &str,
        size: u64,
        content: impl Read + 'a,
    ) -> Result<(), DiskError> {
        self.add_file(path, size, Content::Read(Box::new(content)))
    }

    /// Adds the file `path` of `size` bytes, written by `write` when the
    /// volume is written: it must write exactly `size` bytes.
    pub fn file_written(
        &mut self,
        path: &str,
        size: u64,
        write: impl FnOnce(&mut dyn Write) -> Result<(), DiskError> + 'a,
    ) -> Result<(), DiskError> {
        self.add_file(path, size, Content::Write(Box::new(write)))
    }

    fn add_file(&mut self, path: &str, size: u64, content: Content<'a>) -> Result<(), DiskError> {
        let parts = Self::split(path)?;
        let (name, parents) = parts.split_last().ok_or_else(|| name_err(path, "empty"))?;
        let mut at = 0;
        for part in parents {
            at = self.child_dir(at, part, path)?;
        }
        names::check(name).map_err(|r| name_err(path, r))?;
        if self.index.contains_key(&(at, names::fold(name))) {
            return Err(name_err(path, "added twice (FAT names ignore case)"));
        }
        if size > u64::from(u32::MAX) {
            return Err(name_err(
                path,
                format!("{size} bytes: FAT holds files below 4 GiB"),
            ));
        }
        self.insert(
            at,
            name,
            Kind::File {
                size,
                content: Some(content),
            },
        );
        Ok(())
    }

    /// The size in bytes of the smallest volume holding this content with
    /// these options (ignoring `size`).
    pub fn min_size(&self) -> Result<u64, DiskError> {
        Ok(u64::from(self.layout(None)?.geo.total) * SECTOR)
    }

    /// Lays the volume out: fails if the content does not fit the options.
    pub fn build(self) -> Result<FatImage<'a>, DiskError> {
        let size = self.opts.size;
        self.build_sized(size)
    }

    fn build_sized(mut self, size: Option<u64>) -> Result<FatImage<'a>, DiskError> {
        let layout = self.layout(size)?;
        let mut contents = Vec::new();
        for &i in &layout.order {
            if let Kind::File { content, .. } = &mut self.nodes[i].kind {
                contents.push(content.take());
            }
        }
        let names = self.nodes.iter().map(|n| n.name.clone()).collect();
        let kinds = self
            .nodes
            .iter()
            .map(|n| match &n.kind {
                Kind::Dir(_) => NodeKind::Dir,
                Kind::File { size, .. } => NodeKind::File(*size),
            })
            .collect();
        Ok(FatImage {
            opts: self.opts,
            layout,
            names,
            kinds,
            contents,
        })
    }

    fn layout(&self, size: Option<u64>) -> Result<Layout, DiskError> {
        let cluster = u64::from(self.opts.cluster_size);
        if !(512..=65536).contains(&cluster) || !cluster.is_power_of_two() {
            return Err(DiskError::FatLayout(format!(
                "cluster size {cluster} is not a power of two from 512 to 65536"
            )));
        }
        let spc = (cluster / SECTOR) as u32;
        let label = label_bytes(self.opts.label.as_deref())?;

        // Short names, paths and entry counts, depth first with names sorted.
        let n = self.nodes.len();
        let mut short = vec![[b' '; 11]; n];
        let mut long = vec![false; n];
        let mut paths = vec![String::new(); n];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        let mut stack = vec![0usize];
        while let Some(d) = stack.pop() {
            dirs.push(d);
            let Kind::Dir(kids) = &self.nodes[d].kind else {
                continue;
            };
            let mut kids = kids.clone();
            kids.sort_by(|&a, &b| self.nodes[a].name.cmp(&self.nodes[b].name));
            let kid_names: Vec<&str> = kids.iter().map(|&k| self.nodes[k].name.as_str()).collect();
            let assigned = names::assign(&kid_names).ok_or_else(|| {
                DiskError::FatLayout(format!("too many similar names in `/{}`", paths[d]))
            })?;
            for (&k, (s, l)) in kids.iter().zip(assigned) {
                short[k] = s;
                long[k] = l;
                paths[k] = if d == 0 {
                    self.nodes[k].name.clone()
                } else {
                    format!("{}/{}", paths[d], self.nodes[k].name)
                };
            }
            for &k in kids.iter().rev() {
                if matches!(self.nodes[k].kind, Kind::Dir(_)) {
                    stack.push(k);
                }
            }
            for &k in &kids {
                if matches!(self.nodes[k].kind, Kind::File { .. }) {
                    files.push(k);
                }
            }
            children[d] = kids;
        }
        // `files` is in depth-first order already: each directory's files
        // were taken, in name order, when the walk reached it.
        let mut parent = vec![0usize; n];
        for (d, kids) in children.iter().enumerate() {
            for &k in kids {
                parent[k] = d;
            }
        }
        let entries_of = |d: usize| -> u64 {
            let own = if d == 0 {
                u64::from(label.is_some())
            } else {
                2
            };
            own + children[d]
                .iter()
                .map(|&k| {
                    1 + if long[k] {
                        names::long_entries(&self.nodes[k].name) as u64
                    } else {
                        0
                    }
                })
                .sum::<u64>()
        };
        for &d in &dirs {
            if entries_of(d) > 65536 {
                return Err(DiskError::FatLayout(format!(
                    "directory `/{}` has more than 65536 entries",
                    paths[d]
                )));
            }
        }
        let clusters_of = |bytes: u64| bytes.div_ceil(cluster);
        let dir_clusters = |d: usize| clusters_of(entries_of(d) * ENTRY as u64).max(1);
        let file_size = |f: usize| match &self.nodes[f].kind {
            Kind::File { size, .. } => *size,
            Kind::Dir(_) => 0,
        };
        let sub_dirs: u64 = dirs[1..].iter().map(|&d| dir_clusters(d)).sum();
        let file_clusters: u64 = files.iter().map(|&f| clusters_of(file_size(f))).sum();
        let root_entries = entries_of(0);
        // FAT12/16: a fixed root of at least 512 entries, in whole sectors.
        let root_sectors_small = root_entries.max(512).div_ceil(16);
        if root_sectors_small * 16 > 65535 {
            return Err(DiskError::FatLayout(format!(
                "the root directory has {root_entries} entries, more than FAT12/16 hold"
            )));
        }
        let needs = |ty: FatType| {
            let root_cl = if ty == FatType::Fat32 {
                dir_clusters(0)
            } else {
                0
            };
            root_cl + sub_dirs + file_clusters
        };
        let root_sectors = |ty: FatType| {
            if ty == FatType::Fat32 {
                0
            } else {
                root_sectors_small as u32
            }
        };

        let types: Vec<FatType> = match self.opts.fat_type {
            Some(t) => vec![t],
            None => vec![FatType::Fat12, FatType::Fat16, FatType::Fat32],
        };
        let smallest = |ty: FatType| geometry::smallest(ty, spc, root_sectors(ty), needs(ty));
        let geo = match size {
            None => types.iter().find_map(|&ty| smallest(ty)),
            Some(bytes) => types.iter().find_map(|&ty| {
                geometry::for_size(ty, spc, root_sectors(ty), bytes / SECTOR)
                    .filter(|g| u64::from(g.clusters) >= needs(ty))
            }),
        };
        let Some(geo) = geo else {
            let need = types
                .iter()
                .filter_map(|&ty| smallest(ty))
                .map(|g| u64::from(g.total) * SECTOR)
                .min();
            let want = match self.opts.fat_type {
                Some(t) => format!("{t:?}"),
                None => "FAT".into(),
            };
            return Err(DiskError::FatLayout(match (size, need) {
                (Some(bytes), Some(need)) if need > bytes => format!(
                    "the content needs a {want} volume of at least {need} bytes, the volume is {bytes}"
                ),
                (Some(bytes), _) => format!(
                    "a {bytes}-byte volume with {cluster}-byte clusters cannot be {want} (see its cluster count range)"
                ),
                (None, _) => {
                    format!("the content does not fit a {want} volume with {cluster}-byte clusters")
                }
            }));
        };

        // Allocate: the FAT32 root, the other directories, the files.
        let mut first = vec![0u32; n];
        let mut count = vec![0u32; n];
        let mut order = Vec::new();
        let mut next = 2u64;
        let mut alloc = |node: usize, clusters: u64, order: &mut Vec<usize>| {
            if clusters > 0 {
                first[node] = next as u32;
                count[node] = clusters as u32;
                next += clusters;
            }
            order.push(node);
        };
        if geo.ty == FatType::Fat32 {
            alloc(0, dir_clusters(0), &mut order);
        }
        for &d in &dirs[1..] {
            alloc(d, dir_clusters(d), &mut order);
        }
        for &f in &files {
            alloc(f, clusters_of(file_size(f)), &mut order);
        }
        let used = (next - 2) as u32;

        let volume_id = self.opts.volume_id.unwrap_or_else(|| {
            let mut parts: Vec<Vec<u8>> = vec![
                label.unwrap_or(*b"NO NAME    ").to_vec(),
                geo.total.to_le_bytes().to_vec(),
                geo.ty.name().to_vec(),
            ];
            for &f in &files {
                parts.push(paths[f].as_bytes().to_vec());
                parts.push(file_size(f).to_le_bytes().to_vec());
            }
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let h = derive("slipway fat volume id", &refs);
            u32::from_le_bytes([h[0], h[1], h[2], h[3]])
        });

        Ok(Layout {
            geo,
            label,
            volume_id,
            short,
            long,
            paths,
            children,
            parent,
            first,
            count,
            order,
            used,
        })
    }
}

fn label_bytes(label: Option<&str>) -> Result<Option<[u8; 11]>, DiskError> {
    let Some(label) = label else {
        return Ok(None);
    };
    let ok = !label.is_empty()
        && label.len() <= 11
        && !label.starts_with(' ')
        && label
            .bytes()
            .all(|b| b == b' ' || names::exact_short(&(b as char).to_string()).is_some());
    if !ok {
        return Err(DiskError::FatLayout(format!(
            "volume label `{label}`: up to 11 upper-case letters, digits, spaces or {}",
            "!#$%&'()-@^_`{}~"
        )));
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(Some(out))
}

struct Layout {
    geo: Geometry,
    label: Option<[u8; 11]>,
    volume_id: u32,
    short: Vec<[u8; 11]>,
    long: Vec<bool>,
    paths: Vec<String>,
    children: Vec<Vec<usize>>,
    parent: Vec<usize>,
    first: Vec<u32>,
    count: Vec<u32>,
    /// Nodes in allocation order (the FAT32 root, directories, files).
    order: Vec<usize>,
    used: u32,
}

enum NodeKind {
    Dir,
    File(u64),
}

/// Where one file's data lies in the volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FatFile {
    /// Its path, `/`-separated, no leading `/`.
    pub path: String,
    /// Byte offset of its data from the start of the volume: a multiple
    /// of the cluster size. 0 for an empty file (which has no data).
    pub offset: u64,
    pub size: u64,
}

/// A laid-out volume, ready to be written.
pub struct FatImage<'a> {
    opts: FatOptions,
    layout: Layout,
    names: Vec<String>,
    kinds: Vec<NodeKind>,
    /// File contents in allocation order.
    contents: Vec<Option<Content<'a>>>,
}

impl std::fmt::Debug for FatImage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FatImage")
            .field("fat_type", &self.layout.geo.ty)
            .field("size", &self.size())
            .finish()
    }
}

impl<'a> FatImage<'a> {
    /// The volume's size in bytes.
    pub fn size(&self) -> u64 {
        u64::from(self.layout.geo.total) * SECTOR
    }

    pub fn fat_type(&self) -> FatType {
        self.layout.geo.ty
    }

    pub fn cluster_size(&self) -> u32 {
        self.layout.geo.spc * SECTOR as u32
    }

    pub fn cluster_count(&self) -> u32 {
        self.layout.geo.clusters
    }

    pub fn volume_id(&self) -> u32 {
        self.layout.volume_id
    }

    /// Sectors before the volume on its disk, recorded in the boot sector.
    pub fn set_hidden_sectors(&mut self, sectors: u32) {
        self.opts.hidden_sectors = sectors;
    }

    fn data_offset(&self, cluster: u32) -> u64 {
        let g = &self.layout.geo;
        (u64::from(g.data_start) + u64::from(cluster - 2) * u64::from(g.spc)) * SECTOR
    }

    /// Every file with the offset of its data, in the order they are stored.
    pub fn files(&self) -> Vec<FatFile> {
        let l = &self.layout;
        l.order
            .iter()
            .filter_map(|&i| match self.kinds[i] {
                NodeKind::File(size) => Some(FatFile {
                    path: l.paths[i].clone(),
                    offset: if l.count[i] > 0 {
                        self.data_offset(l.first[i])
                    } else {
                        0
                    },
                    size,
                }),
                NodeKind::Dir => None,
            })
            .collect()
    }

    /// Writes the volume as a stream (zeros written out).
    pub fn write<W: Write>(self, out: W) -> Result<W, DiskError> {
        let mut dense = DenseWriter::new(out);
        self.write_to(&mut dense)?;
        Ok(dense.into_inner())
    }

    /// Writes the volume into an empty seekable file, leaving holes where
    /// it is zero.
    pub fn write_sparse<W: Write + Seek>(self, out: W) -> Result<W, DiskError> {
        let mut sparse = SparseWriter::new(out).map_err(DiskError::io("FAT output"))?;
        self.write_to(&mut sparse)?;
        sparse
            .finish()
            .map_err(DiskError::io("writing the FAT volume"))
    }

    /// Writes the volume to `out`, exactly [`size`](Self::size) bytes.
    pub fn write_to(mut self, out: &mut dyn Sink) -> Result<(), DiskError> {
        let io = DiskError::io("writing the FAT volume");
        let g = self.layout.geo;
        let boot = self.boot_sector();
        out.write_all(&boot).map_err(&io)?;
        let mut at = 1u64;
        if g.ty == FatType::Fat32 {
            let info = self.fs_info();
            out.write_all(&info).map_err(&io)?;
            out.zeros(4 * SECTOR).map_err(&io)?;
            out.write_all(&boot).map_err(&io)?;
            out.write_all(&info).map_err(&io)?;
            at = 8;
        }
        out.zeros((u64::from(g.reserved) - at) * SECTOR)
            .map_err(&io)?;
        for _ in 0..2 {
            self.write_fat(out).map_err(&io)?;
        }
        if g.ty != FatType::Fat32 {
            let root = self.dir_bytes(0);
            out.write_all(&root).map_err(&io)?;
            out.zeros(u64::from(g.root_sectors) * SECTOR - root.len() as u64)
                .map_err(&io)?;
        }
        let cluster = u64::from(self.cluster_size());
        let mut buf = vec![0u8; 1 << 20];
        let mut content = 0;
        for k in 0..self.layout.order.len() {
            let i = self.layout.order[k];
            let written = match &self.kinds[i] {
                NodeKind::Dir => {
                    let bytes = self.dir_bytes(i);
                    out.write_all(&bytes).map_err(&io)?;
                    bytes.len() as u64
                }
                NodeKind::File(size) => {
                    let size = *size;
                    let reader = self.contents.get_mut(content).and_then(Option::take);
                    content += 1;
                    let path = &self.layout.paths[i];
                    match reader {
                        Some(Content::Read(mut r)) => copy(&mut r, out, size, path, &mut buf)?,
                        Some(Content::Write(write)) => {
                            let mut region = Region::new(&mut *out, size);
                            write(&mut region)?;
                            if region.position() != size {
                                return Err(DiskError::ShortContent {
                                    path: path.clone(),
                                    expected: size,
                                    got: region.position(),
                                });
                            }
                        }
                        None if size == 0 => {}
                        None => {
                            return Err(DiskError::ShortContent {
                                path: path.clone(),
                                expected: size,
                                got: 0,
                            });
                        }
                    }
                    size
                }
            };
            let padded = u64::from(self.layout.count[i]) * cluster;
            out.zeros(padded - written).map_err(&io)?;
        }
        let data_end = u64::from(g.data_start) * SECTOR + u64::from(self.layout.used) * cluster;
        out.zeros(self.size() - data_end).map_err(&io)?;
        Ok(())
    }

    fn boot_sector(&self) -> [u8; 512] {
        let g = &self.layout.geo;
        let mut b = [0u8; 512];
        let fat32 = g.ty == FatType::Fat32;
        // A jump over the BPB to `int 0x18` (try the next boot device).
        let code_at = if fat32 { 0x5a } else { 0x3e };
        b[..3].copy_from_slice(&[0xeb, code_at as u8 - 2, 0x90]);
        b[code_at..code_at + 4].copy_from_slice(&[0xcd, 0x18, 0xeb, 0xfe]);
        b[3..11].copy_from_slice(b"SLIPWAY ");
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[13] = g.spc as u8;
        b[14..16].copy_from_slice(&(g.reserved as u16).to_le_bytes());
        b[16] = 2;
        b[17..19].copy_from_slice(&((g.root_sectors * 16) as u16).to_le_bytes());
        if g.total < 65536 && !fat32 {
            b[19..21].copy_from_slice(&(g.total as u16).to_le_bytes());
        } else {
            b[32..36].copy_from_slice(&g.total.to_le_bytes());
        }
        b[21] = 0xf8;
        if !fat32 {
            b[22..24].copy_from_slice(&(g.fat_sectors as u16).to_le_bytes());
        }
        b[24..26].copy_from_slice(&63u16.to_le_bytes());
        b[26..28].copy_from_slice(&255u16.to_le_bytes());
        b[28..32].copy_from_slice(&self.opts.hidden_sectors.to_le_bytes());
        let ext = if fat32 {
            b[36..40].copy_from_slice(&g.fat_sectors.to_le_bytes());
            // 40: flags (FATs mirrored), 42: version 0.0.
            b[44..48].copy_from_slice(&2u32.to_le_bytes());
            b[48..50].copy_from_slice(&1u16.to_le_bytes());
            b[50..52].copy_from_slice(&6u16.to_le_bytes());
            64
        } else {
            36
        };
        b[ext] = 0x80;
        b[ext + 2] = 0x29;
        b[ext + 3..ext + 7].copy_from_slice(&self.layout.volume_id.to_le_bytes());
        b[ext + 7..ext + 18].copy_from_slice(&self.layout.label.unwrap_or(*b"NO NAME    "));
        b[ext + 18..ext + 26].copy_from_slice(g.ty.name());
        b[510] = 0x55;
        b[511] = 0xaa;
        b
    }

    fn fs_info(&self) -> [u8; 512] {
        let g = &self.layout.geo;
        let mut b = [0u8; 512];
        b[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
        b[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
        let free = g.clusters - self.layout.used;
        b[488..492].copy_from_slice(&free.to_le_bytes());
        let next = if free > 0 {
            2 + self.layout.used
        } else {
            u32::MAX
        };
        b[492..496].copy_from_slice(&next.to_le_bytes());
        b[508..512].copy_from_slice(&0xaa55_0000u32.to_le_bytes());
        b
    }

    /// One FAT: clusters 2 to 2 + used are allocated, each object in one
    /// run, so each entry points to the next cluster but a run's last.
    fn write_fat(&self, out: &mut dyn Sink) -> std::io::Result<()> {
        let l = &self.layout;
        let ty = l.geo.ty;
        let (eoc, media) = match ty {
            FatType::Fat12 => (0xfff, 0xff8),
            FatType::Fat16 => (0xffff, 0xfff8),
            FatType::Fat32 => (0x0fff_ffff, 0x0fff_fff8),
        };
        let mut ends: Vec<u32> = l
            .order
            .iter()
            .filter(|&&i| l.count[i] > 0)
            .map(|&i| l.first[i] + l.count[i] - 1)
            .collect();
        ends.sort_unstable();
        let live = 2 + l.used;
        let mut ends = ends.into_iter().peekable();
        let mut entry = |c: u32| -> u32 {
            match c {
                0 => media,
                1 => eoc,
                c if c < live => {
                    if ends.peek() == Some(&c) {
                        ends.next();
                        eoc
                    } else {
                        c + 1
                    }
                }
                _ => 0,
            }
        };
        let fat_bytes = u64::from(l.geo.fat_sectors) * SECTOR;
        let mut buf = Vec::with_capacity(1 << 16);
        let mut written = 0u64;
        match ty {
            FatType::Fat12 => {
                // At most 4086 entries: two entries in three bytes.
                let mut c = 0;
                while c < live {
                    let (a, b) = (entry(c), if c + 1 < live { entry(c + 1) } else { 0 });
                    buf.extend_from_slice(&[a as u8, ((a >> 8) | (b << 4)) as u8, (b >> 4) as u8]);
                    c += 2;
                }
            }
            FatType::Fat16 | FatType::Fat32 => {
                for c in 0..live {
                    let v = entry(c);
                    if ty == FatType::Fat16 {
                        buf.extend_from_slice(&(v as u16).to_le_bytes());
                    } else {
                        buf.extend_from_slice(&v.to_le_bytes());
                    }
                    if buf.len() >= 1 << 16 {
                        out.write_all(&buf)?;
                        written += buf.len() as u64;
                        buf.clear();
                    }
                }
            }
        }
        out.write_all(&buf)?;
        written += buf.len() as u64;
        out.zeros(fat_bytes - written)
    }

    /// A directory's entries: `.` and `..` (or the root's volume label),
    /// then each child's long-name entries and short entry.
    fn dir_bytes(&self, d: usize) -> Vec<u8> {
        let l = &self.layout;
        let t = DosTime::from_unix(self.opts.mtime);
        let mut out = Vec::new();
        if d == 0 {
            if let Some(label) = &l.label {
                out.extend_from_slice(&dir::short(label, ATTR_VOLUME_ID, 0, 0, t));
            }
        } else {
            // `..` of a directory in the root is 0, on FAT32 too.
            let up = match l.parent[d] {
                0 => 0,
                p => l.first[p],
            };
            out.extend_from_slice(&dir::short(
                b".          ",
                ATTR_DIRECTORY,
                l.first[d],
                0,
                t,
            ));
            out.extend_from_slice(&dir::short(b"..         ", ATTR_DIRECTORY, up, 0, t));
        }
        for &k in &l.children[d] {
            if l.long[k] {
                for e in dir::long(&self.names[k], &l.short[k]) {
                    out.extend_from_slice(&e);
                }
            }
            let (attr, size) = match self.kinds[k] {
                NodeKind::Dir => (ATTR_DIRECTORY, 0),
                NodeKind::File(size) => (ATTR_ARCHIVE, size as u32),
            };
            out.extend_from_slice(&dir::short(&l.short[k], attr, l.first[k], size, t));
        }
        out
    }
}

/// Copies exactly `size` bytes of `r` to `out`.
fn copy(
    r: &mut dyn Read,
    out: &mut dyn Sink,
    size: u64,
    path: &str,
    buf: &mut [u8],
) -> Result<(), DiskError> {
    let mut left = size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(DiskError::ShortContent {
                    path: path.to_string(),
                    expected: size,
                    got: size - left,
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DiskError::io(format!("reading `{path}`"))(e)),
        };
        out.write_all(&buf[..n])
            .map_err(DiskError::io("writing the FAT volume"))?;
        left -= n as u64;
    }
    Ok(())
}

/// A FAT volume filling its partition: laid out for the partition's size.
impl PartitionContent for FatBuilder<'_> {
    fn min_len(&self) -> Result<u64, DiskError> {
        self.min_size()
    }

    fn check(&self, len: u64) -> Result<(), DiskError> {
        self.layout(Some(len)).map(|_| ())
    }

    fn write(self: Box<Self>, out: &mut Region<'_>, place: Placement) -> Result<(), DiskError> {
        let mut builder = *self;
        builder.opts.hidden_sectors = u32::try_from(place.offset / SECTOR).unwrap_or(u32::MAX);
        let image = builder.build_sized(Some(place.len))?;
        image.write_to(out)?;
        out.pad().map_err(DiskError::io("writing the FAT volume"))
    }
}

/// A volume of a fixed size, the rest of its partition left zero.
impl PartitionContent for FatImage<'_> {
    fn min_len(&self) -> Result<u64, DiskError> {
        Ok(self.size())
    }

    fn write(self: Box<Self>, out: &mut Region<'_>, place: Placement) -> Result<(), DiskError> {
        let mut image = *self;
        image.set_hidden_sectors(u32::try_from(place.offset / SECTOR).unwrap_or(u32::MAX));
        image.write_to(out)?;
        out.pad().map_err(DiskError::io("writing the FAT volume"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(opts: FatOptions, files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = FatBuilder::new(opts);
        for (p, c) in files {
            b.file(p, c.len() as u64, *c).unwrap();
        }
        let img = b.build().unwrap();
        let size = img.size();
        let out = img.write(Vec::new()).unwrap();
        assert_eq!(out.len() as u64, size);
        out
    }

    #[test]
    fn files_are_contiguous_and_aligned() {
        let mut b = FatBuilder::new(FatOptions {
            cluster_size: 2048,
            ..FatOptions::default()
        });
        b.file("EFI/BOOT/BOOTX64.EFI", 5000, &[7u8; 5000][..])
            .unwrap();
        b.file("boot/vmlinuz", 3, &b"abc"[..]).unwrap();
        b.file("empty", 0, std::io::empty()).unwrap();
        b.dir("EFI/empty-dir").unwrap();
        let img = b.build().unwrap();
        assert_eq!(img.fat_type(), FatType::Fat12);
        let files = img.files();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["empty", "EFI/BOOT/BOOTX64.EFI", "boot/vmlinuz"]);
        assert!(files.iter().all(|f| f.offset % 2048 == 0));
        let bytes = img.write(Vec::new()).unwrap();
        let efi = &files[1];
        assert_eq!(&bytes[efi.offset as usize..][..5000], &[7u8; 5000][..]);
        assert_eq!(&bytes[files[2].offset as usize..][..3], b"abc");
    }

    #[test]
    fn written_files_land_at_their_offset_and_must_be_whole() {
        let mut b = FatBuilder::new(FatOptions::default());
        b.file_written("EFI/BOOT/BOOTX64.EFI", 6000, |w| {
            w.write_all(&[9u8; 6000]).map_err(DiskError::io("test"))
        })
        .unwrap();
        let img = b.build().unwrap();
        let at = img.files()[0].offset as usize;
        let bytes = img.write(Vec::new()).unwrap();
        assert_eq!(&bytes[at..at + 6000], &[9u8; 6000][..]);

        let mut b = FatBuilder::new(FatOptions::default());
        b.file_written("short", 10, |w| {
            w.write_all(b"abc").map_err(DiskError::io("test"))
        })
        .unwrap();
        let err = b.build().unwrap().write(Vec::new()).unwrap_err();
        assert!(
            matches!(err, DiskError::ShortContent { got: 3, .. }),
            "{err}"
        );
        let mut b = FatBuilder::new(FatOptions::default());
        b.file_written("long", 2, |w| {
            w.write_all(b"abc").map_err(DiskError::io("test"))
        })
        .unwrap();
        assert!(b.build().unwrap().write(Vec::new()).is_err());
    }

    #[test]
    fn same_input_same_bytes_whatever_the_order() {
        let a = image(FatOptions::default(), &[("b", b"1"), ("a/c", b"2")]);
        let b = image(FatOptions::default(), &[("a/c", b"2"), ("b", b"1")]);
        assert_eq!(a, b);
        let c = image(FatOptions::default(), &[("a/c", b"2"), ("b", b"3")]);
        assert_eq!(a.len(), c.len());
        assert_ne!(a, c);
    }

    #[test]
    fn bad_names_and_sizes_are_refused() {
        let mut b = FatBuilder::new(FatOptions::default());
        b.file("a/B", 1, &b"x"[..]).unwrap();
        assert!(
            b.file("A/b", 1, &b"x"[..]).is_err(),
            "case-insensitive duplicate"
        );
        assert!(b.dir("a/b").is_err(), "a file has this name");
        assert!(b.file("a/b/c", 1, &b"x"[..]).is_err());
        assert!(b.file("x//y", 1, &b"x"[..]).is_err());
        assert!(b.file("x/../y", 1, &b"x"[..]).is_err());
        assert!(b.file("big", 1 << 32, std::io::empty()).is_err());
        let small = FatBuilder::new(FatOptions {
            size: Some(64 * 1024),
            fat_type: Some(FatType::Fat32),
            ..FatOptions::default()
        });
        let err = small.build().unwrap_err().to_string();
        assert!(err.contains("Fat32"), "{err}");
        let mut b = FatBuilder::new(FatOptions {
            size: Some(1 << 20),
            ..FatOptions::default()
        });
        b.file("f", 2 << 20, std::io::repeat(1)).unwrap();
        let err = b.build().unwrap_err().to_string();
        assert!(err.contains("at least"), "{err}");
        let mut b = FatBuilder::new(FatOptions::default());
        b.file("short", 10, &b"abc"[..]).unwrap();
        let err = b.build().unwrap().write(Vec::new()).unwrap_err();
        assert!(
            matches!(err, DiskError::ShortContent { got: 3, .. }),
            "{err}"
        );
        let bad_label = FatBuilder::new(FatOptions {
            label: Some("lower".into()),
            ..FatOptions::default()
        });
        assert!(bad_label.build().is_err());
    }

    #[test]
    fn types_by_size() {
        let t = |size: u64| {
            FatBuilder::new(FatOptions {
                size: Some(size),
                ..FatOptions::default()
            })
            .build()
            .unwrap()
            .fat_type()
        };
        assert_eq!(t(1 << 20), FatType::Fat12);
        assert_eq!(t(64 << 20), FatType::Fat16);
        assert_eq!(t(512 << 20), FatType::Fat32);
    }
}
