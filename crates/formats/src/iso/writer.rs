//! The image writer: regions as they come, the tree and descriptors at the end.

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

use super::eltorito::{self, BIOS_LOAD_SECTORS, InfoChecksum};
use super::encode::{NO_DATE17, SECTOR, align, both16, both32, date7, date17, padded};
use super::hybrid::{self, CYLINDER};
use super::layout::{self, TreeLayout};
use super::tree::{NodeKind, Tree};
use super::{Device, Extent, IsoError, IsoOptions, Meta};

/// Sectors before the first region: the system area (16), the primary
/// volume descriptor, the boot record or terminator, the terminator, the
/// boot catalog.
const HEAD: u64 = 20;
const PVD: u64 = 16;
const CATALOG: u64 = 19;
/// The largest extent one directory record holds: 4 GiB less a sector.
const MAX_EXTENT: u64 = 0xFFFF_F800;
/// Image sizes ISO 9660 can address: 2^32 sectors.
const MAX_IMAGE: u64 = (u32::MAX as u64) * SECTOR;
const COPY_BUF: usize = 1 << 20;
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// A finished image: the output and the image's size in bytes.
#[derive(Debug)]
pub struct Written<W> {
    pub out: W,
    pub size: u64,
}

/// Writes an ISO 9660 image to `out`, from its byte 0.
///
/// Add content with [`add_file`](IsoWriter::add_file) (or through
/// [`EntrySink`](slipway_assemble::EntrySink), for a whole root
/// filesystem), bytes without a name with
/// [`add_region`](IsoWriter::add_region) or
/// [`region_writer`](IsoWriter::region_writer), names for bytes already
/// written with [`add_extent`](IsoWriter::add_extent), then
/// [`finish`](IsoWriter::finish). A later entry replaces an earlier one of
/// the same path (its bytes stay in the image, unnamed). After an error the
/// writer is not usable: discard the output.
pub struct IsoWriter<W: Write + Seek> {
    out: BufWriter<W>,
    /// Where the next region starts (a sector boundary).
    pos: u64,
    /// The output's position is not `pos` (a region writer or a patch moved it).
    moved: bool,
    /// A region writer was not finished.
    broken: bool,
    options: IsoOptions,
    tree: Tree,
    bios: Option<Extent>,
    efi: Option<Extent>,
    max_extent: u64,
    buf: Vec<u8>,
}

impl<W: Write + Seek> std::fmt::Debug for IsoWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsoWriter")
            .field("pos", &self.pos)
            .field("options", &self.options)
            .field("nodes", &self.tree.nodes.len())
            .field("bios", &self.bios)
            .field("efi", &self.efi)
            .finish_non_exhaustive()
    }
}

fn write_zeros(out: &mut dyn Write, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

fn valid_volume_id(id: &str) -> bool {
    id.len() <= 32
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b' '))
}

impl<W: Write + Seek> IsoWriter<W> {
    pub fn new(out: W, options: IsoOptions) -> Result<IsoWriter<W>, IsoError> {
        if !valid_volume_id(&options.volume_id) {
            return Err(IsoError::VolumeId(options.volume_id));
        }
        if let Some(code) = &options.hybrid_mbr
            && !(hybrid::CODE_LEN..=512).contains(&code.len())
        {
            return Err(IsoError::HybridCode(code.len()));
        }
        let mut out = BufWriter::with_capacity(256 << 10, out);
        out.seek(SeekFrom::Start(0))?;
        write_zeros(&mut out, HEAD * SECTOR)?;
        let implied = Meta::new(0o755, options.epoch);
        Ok(IsoWriter {
            out,
            pos: HEAD * SECTOR,
            moved: false,
            broken: false,
            options,
            tree: Tree::new(implied),
            bios: None,
            efi: None,
            max_extent: MAX_EXTENT,
            buf: vec![0; COPY_BUF],
        })
    }

    /// Smaller extents, so tests can make multi-extent files without 4 GiB.
    #[cfg(test)]
    pub(crate) fn set_max_extent(&mut self, sectors: u64) {
        self.max_extent = sectors * SECTOR;
    }

    /// The output is at `pos` and usable.
    fn ready(&mut self) -> Result<(), IsoError> {
        if self.broken {
            return Err(IsoError::Unfinished);
        }
        if self.moved {
            self.out.seek(SeekFrom::Start(self.pos))?;
            self.moved = false;
        }
        Ok(())
    }

    /// Copies exactly `len` bytes of `content` into a new region, showing
    /// each piece to `tap` first.
    fn copy_region(
        &mut self,
        content: &mut dyn Read,
        len: u64,
        path: &str,
        tap: &mut dyn FnMut(&[u8]),
    ) -> Result<Extent, IsoError> {
        self.ready()?;
        let start = self.pos;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= MAX_IMAGE)
            .ok_or(IsoError::TooLarge(start.saturating_add(len)))?;
        let mut buf = std::mem::take(&mut self.buf);
        let mut left = len;
        let result = (|| {
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let got = match content.read(&mut buf[..want]) {
                    Ok(0) => {
                        return Err(IsoError::ShortContent {
                            path: path.to_owned(),
                            expected: len,
                            got: len - left,
                        });
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                tap(&buf[..got]);
                self.out.write_all(&buf[..got])?;
                left -= got as u64;
            }
            write_zeros(&mut self.out, align(end, SECTOR) - end)?;
            Ok(())
        })();
        self.buf = buf;
        if let Err(e) = result {
            // The output holds part of a region: nothing more can be added.
            self.broken = true;
            return Err(e);
        }
        self.pos = align(end, SECTOR);
        Ok(Extent {
            start: if len == 0 { 0 } else { start },
            len,
        })
    }

    /// Writes `len` bytes of `content` as a region without a name (e.g. a
    /// FAT image whose files other names point into).
    pub fn add_region(&mut self, content: &mut dyn Read, len: u64) -> Result<Extent, IsoError> {
        self.copy_region(content, len, "(region)", &mut |_| {})
    }

    /// A region written through `Write + Seek` by another writer (a FAT
    /// image, a UKI...): positions are relative to the region's start; its
    /// length is the furthest byte written. Call
    /// [`RegionWriter::finish`]; a region writer dropped without it leaves
    /// this writer unusable.
    pub fn region_writer(&mut self) -> Result<RegionWriter<'_, W>, IsoError> {
        self.ready()?;
        self.broken = true;
        let start = self.pos;
        Ok(RegionWriter {
            iso: self,
            start,
            at: 0,
            len: 0,
        })
    }

    /// Writes a regular file's content and names it `path`.
    pub fn add_file(
        &mut self,
        path: &str,
        meta: Meta,
        content: &mut dyn Read,
        len: u64,
    ) -> Result<Extent, IsoError> {
        let extent = self.copy_region(content, len, path, &mut |_| {})?;
        self.add_extent(path, meta, extent.clone())?;
        Ok(extent)
    }

    /// Names bytes already in the image as the regular file `path`: a
    /// region, or a part of one ([`Extent::slice`]).
    pub fn add_extent(&mut self, path: &str, meta: Meta, extent: Extent) -> Result<(), IsoError> {
        if extent.len > 0
            && (!extent.start.is_multiple_of(SECTOR)
                || extent.start < HEAD * SECTOR
                || extent.start + extent.len > self.pos)
        {
            return Err(IsoError::path(
                path,
                format!(
                    "points at bytes {}..{}, which this image has not written",
                    extent.start,
                    extent.start + extent.len
                ),
            ));
        }
        let inode = self.tree.add_inode(meta, extent);
        self.tree.put(path, NodeKind::File { inode })
    }

    /// Another name for the regular file at `target`.
    pub fn add_hard_link(&mut self, path: &str, target: &str) -> Result<(), IsoError> {
        let inode = self
            .tree
            .file_at(target)
            .map_err(|e| IsoError::path(path, format!("links to `{target}`: {e}")))?;
        self.tree.put(path, NodeKind::File { inode })
    }

    /// A directory, or new metadata for an existing one (its children stay).
    pub fn add_dir(&mut self, path: &str, meta: Meta) -> Result<(), IsoError> {
        self.tree.put(
            path,
            NodeKind::Dir {
                meta,
                children: Default::default(),
            },
        )
    }

    pub fn add_symlink(&mut self, path: &str, meta: Meta, target: &str) -> Result<(), IsoError> {
        self.tree.put(
            path,
            NodeKind::Symlink {
                meta,
                target: target.to_owned(),
            },
        )
    }

    pub fn add_device(
        &mut self,
        path: &str,
        meta: Meta,
        kind: Device,
        major: u32,
        minor: u32,
    ) -> Result<(), IsoError> {
        self.tree.put(
            path,
            NodeKind::Device {
                meta,
                block: kind == Device::Block,
                major,
                minor,
            },
        )
    }

    pub fn add_fifo(&mut self, path: &str, meta: Meta) -> Result<(), IsoError> {
        self.tree.put(path, NodeKind::Fifo { meta })
    }

    /// Writes the BIOS boot image (isolinux.bin) as the file `path` and
    /// makes it the El Torito default entry: no emulation, 4 sectors
    /// loaded, its boot info table (bytes 8-63) filled in.
    pub fn add_bios_boot(
        &mut self,
        path: &str,
        meta: Meta,
        content: &mut dyn Read,
        len: u64,
    ) -> Result<Extent, IsoError> {
        if self.bios.is_some() {
            return Err(IsoError::BootTwice("BIOS"));
        }
        let Some(len32) = u32::try_from(len).ok().filter(|_| len >= 64) else {
            return Err(IsoError::BootImageSize {
                path: path.to_owned(),
                len,
            });
        };
        let mut sum = InfoChecksum::default();
        let extent = self.copy_region(content, len, path, &mut |piece| sum.update(piece))?;
        let table = eltorito::info_table(PVD as u32, extent.lba(), len32, sum.finish());
        self.moved = true;
        self.out.seek(SeekFrom::Start(extent.start + 8))?;
        self.out.write_all(&table)?;
        self.add_extent(path, meta, extent.clone())?;
        self.bios = Some(extent.clone());
        Ok(extent)
    }

    /// Makes `image` (a FAT filesystem already in the image, typically
    /// holding `EFI/BOOT/BOOTX64.EFI`) the El Torito EFI entry.
    pub fn set_efi_boot(&mut self, image: Extent) -> Result<(), IsoError> {
        if self.efi.is_some() {
            return Err(IsoError::BootTwice("EFI"));
        }
        if image.is_empty() || image.start + image.len > self.pos {
            return Err(IsoError::path("(EFI boot image)", "is not in this image"));
        }
        self.efi = Some(image);
        Ok(())
    }

    /// Writes the directory tree, the path tables, the volume descriptors,
    /// the boot catalog and the MBR.
    pub fn finish(mut self) -> Result<Written<W>, IsoError> {
        self.ready()?;
        if self.options.hybrid_mbr.is_some() && self.bios.is_none() {
            return Err(IsoError::HybridWithoutBios);
        }
        let booting = self.bios.is_some() || self.efi.is_some();
        if booting && let Some(path) = self.options.catalog_path.clone() {
            let catalog = Extent {
                start: CATALOG * SECTOR,
                len: SECTOR,
            };
            let inode = self
                .tree
                .add_inode(Meta::new(0o444, self.options.epoch), catalog);
            self.tree.put(&path, NodeKind::File { inode })?;
        }
        let tree = layout::write_tree(&mut self.out, &self.tree, self.pos, self.max_extent)?;
        let mut size = tree.end;
        if self.options.hybrid_mbr.is_some() {
            let padded = align(size, CYLINDER);
            write_zeros(&mut self.out, padded - size)?;
            size = padded;
        }
        if size > MAX_IMAGE {
            return Err(IsoError::TooLarge(size));
        }
        let pvd = self.primary(&tree, (size / SECTOR) as u32);
        let catalog = eltorito::catalog(
            self.bios.as_ref().map(|e| eltorito::Entry {
                lba: e.lba(),
                sectors: BIOS_LOAD_SECTORS,
            }),
            self.efi.as_ref().map(|e| eltorito::Entry {
                lba: e.lba(),
                sectors: eltorito::efi_sectors(e.len),
            }),
        );
        let mut terminator = [0u8; SECTOR as usize];
        terminator[0] = 255;
        terminator[1..6].copy_from_slice(b"CD001");
        terminator[6] = 1;
        self.out.seek(SeekFrom::Start(PVD * SECTOR))?;
        self.out.write_all(&pvd)?;
        if booting {
            self.out.write_all(&eltorito::boot_record(CATALOG as u32))?;
            self.out.write_all(&terminator)?;
            self.out.write_all(&catalog)?;
        } else {
            self.out.write_all(&terminator)?;
        }
        if let (Some(code), Some(bios)) = (&self.options.hybrid_mbr, &self.bios) {
            // The disk signature is derived from the image's descriptors.
            let digest = Sha256::new()
                .chain_update(pvd)
                .chain_update(catalog)
                .finalize();
            let signature = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
            let efi = self.efi.as_ref().map(|e| (e.start, e.len));
            let mbr = hybrid::mbr(code, bios.lba(), size, efi, signature);
            self.out.seek(SeekFrom::Start(0))?;
            self.out.write_all(&mbr)?;
        }
        self.out.flush()?;
        let out = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(Written { out, size })
    }

    /// The primary volume descriptor (ECMA-119 8.4).
    fn primary(&self, tree: &TreeLayout, sectors: u32) -> [u8; SECTOR as usize] {
        let epoch = self.options.epoch;
        let root_mtime = self.tree.meta(super::tree::ROOT).mtime;
        let mut d = [0u8; SECTOR as usize];
        d[0] = 1;
        d[1..6].copy_from_slice(b"CD001");
        d[6] = 1;
        d[8..40].copy_from_slice(&padded("LINUX", 32));
        d[40..72].copy_from_slice(&padded(&self.options.volume_id, 32));
        d[80..88].copy_from_slice(&both32(sectors));
        d[120..124].copy_from_slice(&both16(1));
        d[124..128].copy_from_slice(&both16(1));
        d[128..132].copy_from_slice(&both16(SECTOR as u16));
        d[132..140].copy_from_slice(&both32(tree.path_table_size));
        d[140..144].copy_from_slice(&tree.l_table.to_le_bytes());
        d[148..152].copy_from_slice(&tree.m_table.to_be_bytes());
        // The root directory's record.
        let r = &mut d[156..190];
        r[0] = 34;
        r[2..10].copy_from_slice(&both32(tree.root_lba));
        r[10..18].copy_from_slice(&both32(tree.root_size));
        r[18..25].copy_from_slice(&date7(root_mtime));
        r[25] = 2;
        r[28..32].copy_from_slice(&both16(1));
        r[32] = 1;
        for (range, len) in [
            (190..318, 128),
            (318..446, 128),
            (446..574, 128),
            (574..702, 128),
        ] {
            d[range].copy_from_slice(&padded("", len));
        }
        for range in [702..739, 739..776, 776..813] {
            d[range].copy_from_slice(&padded("", 37));
        }
        d[813..830].copy_from_slice(&date17(epoch));
        d[830..847].copy_from_slice(&date17(epoch));
        d[847..864].copy_from_slice(&NO_DATE17);
        d[864..881].copy_from_slice(&date17(epoch));
        d[881] = 1;
        d
    }
}

/// A region being written by another writer; see
/// [`IsoWriter::region_writer`].
#[derive(Debug)]
pub struct RegionWriter<'a, W: Write + Seek> {
    iso: &'a mut IsoWriter<W>,
    start: u64,
    at: u64,
    len: u64,
}

impl<W: Write + Seek> RegionWriter<'_, W> {
    /// Ends the region (padded to a whole sector) and returns it.
    pub fn finish(self) -> Result<Extent, IsoError> {
        let end = self.start + self.len;
        if end > MAX_IMAGE {
            return Err(IsoError::TooLarge(end));
        }
        self.iso.out.seek(SeekFrom::Start(end))?;
        write_zeros(&mut self.iso.out, align(end, SECTOR) - end)?;
        self.iso.pos = align(end, SECTOR);
        self.iso.broken = false;
        Ok(Extent {
            start: if self.len == 0 { 0 } else { self.start },
            len: self.len,
        })
    }
}

impl<W: Write + Seek> Write for RegionWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.iso.out.write(data)?;
        self.at += n as u64;
        self.len = self.len.max(self.at);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.iso.out.flush()
    }
}

impl<W: Write + Seek> Seek for RegionWriter<'_, W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.at.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the region"))?;
        self.iso.out.seek(SeekFrom::Start(self.start + target))?;
        self.at = target;
        Ok(target)
    }
}
