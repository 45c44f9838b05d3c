//! Raw disk images: a partition table (MBR or GPT) and partitions whose
//! contents are written by [`PartitionContent`]s, into an empty seekable
//! file that stays sparse (zero blocks are holes, never written).
//!
//! Partitions start on 1 MiB boundaries from 1 MiB, in the order given.
//! A disk whose size is not given is as small as its partitions allow,
//! rounded up to 1 MiB. The partition table is written last, once the
//! contents are known: disk and partition GUIDs and the MBR disk signature
//! are derived from the layout, the names and a digest of each partition's
//! content (the offsets and bytes of its non-zero 4 KiB blocks).

use std::io::{Read, Seek, SeekFrom, Write};

use super::gpt::{self, GptEntry};
use super::guid::Guid;
use super::mbr::{self, MbrEntry};
use super::sink::{Region, Sink, SparseWriter};
use super::{DiskError, MIB, SECTOR, derive, round_up};

/// Where a partition lies on its disk, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub offset: u64,
    pub len: u64,
}

/// What fills a partition.
pub trait PartitionContent {
    /// The fewest bytes the content needs.
    fn min_len(&self) -> Result<u64, DiskError>;
    /// Whether the content can be written into `len` bytes (at least
    /// `min_len`), checked before anything is written.
    fn check(&self, len: u64) -> Result<(), DiskError> {
        let _ = len;
        Ok(())
    }
    /// Writes the content into `out`, a region of `place.len` bytes at
    /// `place.offset` on the disk. Whatever is not written is zero.
    fn write(self: Box<Self>, out: &mut Region<'_>, place: Placement) -> Result<(), DiskError>;
}

/// `len` bytes from a reader (a filesystem image made elsewhere); the rest
/// of the partition stays zero. Zero bytes of content read as zero.
#[derive(Debug)]
pub struct ReaderContent<R: Read> {
    what: String,
    len: u64,
    reader: R,
}

impl<R: Read> ReaderContent<R> {
    /// `what` names the content in errors.
    pub fn new(what: impl Into<String>, len: u64, reader: R) -> ReaderContent<R> {
        ReaderContent {
            what: what.into(),
            len,
            reader,
        }
    }
}

impl<R: Read> PartitionContent for ReaderContent<R> {
    fn min_len(&self) -> Result<u64, DiskError> {
        Ok(self.len)
    }

    fn write(self: Box<Self>, out: &mut Region<'_>, _: Placement) -> Result<(), DiskError> {
        let ReaderContent {
            what,
            len,
            mut reader,
        } = *self;
        let n = std::io::copy(&mut (&mut reader).take(len), out)
            .map_err(DiskError::io(format!("copying {what}")))?;
        if n != len {
            return Err(DiskError::ShortContent {
                path: what,
                expected: len,
                got: n,
            });
        }
        Ok(())
    }
}

/// Content written by a closure into the partition's region, which
/// needs at least `min_len` bytes.
pub struct FnContent<F> {
    min_len: u64,
    write: F,
}

impl<F> FnContent<F>
where
    F: FnOnce(&mut Region<'_>, Placement) -> Result<(), DiskError>,
{
    pub fn new(min_len: u64, write: F) -> FnContent<F> {
        FnContent { min_len, write }
    }
}

impl<F> std::fmt::Debug for FnContent<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnContent")
            .field("min_len", &self.min_len)
            .finish()
    }
}

impl<F> PartitionContent for FnContent<F>
where
    F: FnOnce(&mut Region<'_>, Placement) -> Result<(), DiskError>,
{
    fn min_len(&self) -> Result<u64, DiskError> {
        Ok(self.min_len)
    }

    fn write(self: Box<Self>, out: &mut Region<'_>, place: Placement) -> Result<(), DiskError> {
        (self.write)(out, place)
    }
}

/// A partition type on both tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionType {
    pub gpt: Guid,
    pub mbr: u8,
}

impl PartitionType {
    /// The EFI system partition.
    pub const EFI_SYSTEM: PartitionType = PartitionType {
        gpt: Guid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B),
        mbr: 0xef,
    };
    /// A FAT data partition (Microsoft basic data; FAT32 with LBA on MBR).
    pub const FAT: PartitionType = PartitionType {
        gpt: Guid::from_u128(0xEBD0A0A2_B9E5_4433_87C0_68B6B72699C7),
        mbr: 0x0c,
    };
    /// A Linux filesystem.
    pub const LINUX: PartitionType = PartitionType {
        gpt: Guid::from_u128(0x0FC63DAF_8483_4772_8E79_3D69D8477DE4),
        mbr: 0x83,
    };
}

/// How large a partition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionSize {
    /// Its content's size, rounded up to 1 MiB.
    Fit,
    /// This many bytes (rounded up to a sector).
    Bytes(u64),
    /// Everything up to the end of the disk (the last partition only).
    Rest,
}

/// The partition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// An MBR with up to four primary partitions, after `boot_code`.
    Mbr { boot_code: [u8; 440] },
    /// A GPT, its protective MBR carrying `boot_code` (zeros for none).
    Gpt { boot_code: [u8; 440] },
}

/// One partition to lay out.
pub struct PartitionSpec<'a> {
    /// The GPT partition name (at most 36 UTF-16 units; unused on MBR).
    pub name: String,
    pub kind: PartitionType,
    pub size: PartitionSize,
    /// MBR: the active flag; GPT: the legacy-BIOS-bootable attribute.
    pub bootable: bool,
    /// GPT: this partition's GUID; `None` derives it from the content.
    pub guid: Option<Guid>,
    pub content: Box<dyn PartitionContent + 'a>,
}

impl std::fmt::Debug for PartitionSpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("size", &self.size)
            .field("bootable", &self.bootable)
            .field("guid", &self.guid)
            .finish()
    }
}

/// A disk to write.
#[derive(Debug)]
pub struct Disk<'a> {
    /// Bytes (a multiple of 512); `None`: as small as the partitions allow.
    pub size: Option<u64>,
    pub table: Table,
    pub partitions: Vec<PartitionSpec<'a>>,
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskReport {
    pub size: u64,
    /// GPT only.
    pub disk_guid: Option<Guid>,
    /// MBR only (a protective MBR has none).
    pub mbr_signature: Option<u32>,
    pub partitions: Vec<PartitionReport>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionReport {
    /// 1-based, as the kernel numbers them (`sda1`, `vda1`...).
    pub number: u32,
    pub name: String,
    pub offset: u64,
    pub len: u64,
    /// GPT only.
    pub guid: Option<Guid>,
}

/// The layout of a disk: its size and where each partition goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskLayout {
    pub size: u64,
    pub partitions: Vec<Placement>,
}

impl<'a> Disk<'a> {
    pub fn new(table: Table) -> Disk<'a> {
        Disk {
            size: None,
            table,
            partitions: Vec::new(),
        }
    }

    /// Sectors at the end the table needs (the GPT backup).
    fn tail(&self) -> u64 {
        match self.table {
            Table::Gpt { .. } => gpt::BACKUP_SECTORS * SECTOR,
            Table::Mbr { .. } => 0,
        }
    }

    /// Where everything goes, or why it does not fit.
    pub fn layout(&self) -> Result<DiskLayout, DiskError> {
        let (limit_parts, kind) = match self.table {
            Table::Gpt { .. } => (gpt::ENTRIES, "a GPT"),
            Table::Mbr { .. } => (4, "an MBR"),
        };
        if self.partitions.len() > limit_parts {
            return Err(DiskError::Table(format!(
                "{kind} holds {limit_parts} partitions, not {}",
                self.partitions.len()
            )));
        }
        if let Some(size) = self.size
            && (size % SECTOR != 0 || size == 0)
        {
            return Err(DiskError::Table(format!(
                "a disk of {size} bytes is not a whole number of 512-byte sectors"
            )));
        }
        if let Table::Gpt { .. } = self.table
            && let Some(p) = self
                .partitions
                .iter()
                .find(|p| p.name.encode_utf16().count() > 36)
        {
            return Err(DiskError::Table(format!(
                "GPT partition name `{}` is longer than 36 UTF-16 units",
                p.name
            )));
        }
        let mut at = MIB;
        let mut placed = Vec::new();
        let mut rest = None;
        for (i, p) in self.partitions.iter().enumerate() {
            let min = round_up(p.content.min_len()?, SECTOR);
            let len = match p.size {
                PartitionSize::Fit => round_up(min.max(1), MIB),
                PartitionSize::Bytes(b) => {
                    let b = round_up(b, SECTOR);
                    if b < min || b == 0 {
                        return Err(DiskError::PartitionTooSmall {
                            name: p.name.clone(),
                            size: b,
                            needed: min,
                        });
                    }
                    b
                }
                PartitionSize::Rest if i + 1 == self.partitions.len() => {
                    rest = Some(min);
                    round_up(min.max(1), MIB)
                }
                PartitionSize::Rest => {
                    return Err(DiskError::Table(format!(
                        "partition `{}` fills the rest of the disk, so it must be the last",
                        p.name
                    )));
                }
            };
            placed.push(Placement { offset: at, len });
            at = round_up(at + len, MIB);
        }
        let end = placed.last().map_or(MIB, |p| p.offset + p.len);
        let needed = round_up(end + self.tail(), MIB);
        let size = self.size.unwrap_or(needed);
        if size < needed {
            return Err(DiskError::DoesNotFit { size, needed });
        }
        if let (Some(min), Some(last)) = (rest, placed.last_mut()) {
            // To the end of the disk, cut down to a MiB boundary as
            // partitioning tools do when that still holds the content.
            let end = size - self.tail();
            let aligned = end / MIB * MIB;
            last.len = if aligned >= last.offset + min.max(1) {
                aligned - last.offset
            } else {
                end - last.offset
            };
        }
        for (p, place) in self.partitions.iter().zip(&placed) {
            p.content.check(place.len)?;
        }
        if let Table::Mbr { .. } = self.table
            && placed
                .iter()
                .any(|p| (p.offset + p.len) / SECTOR > u64::from(u32::MAX))
        {
            return Err(DiskError::Table(
                "an MBR cannot address partitions past 2 TiB".into(),
            ));
        }
        Ok(DiskLayout {
            size,
            partitions: placed,
        })
    }

    /// Writes the disk into `out`, which must be empty, and returns it.
    pub fn write<W: Write + Seek>(self, out: W) -> Result<(W, DiskReport), DiskError> {
        let layout = self.layout()?;
        let io = |what: &str| DiskError::io(format!("writing the disk image: {what}"));
        let mut sw = SparseWriter::new(out).map_err(io("output"))?;
        let mut digests = Vec::new();
        let table = self.table;
        let mut meta = Vec::new();
        for (spec, place) in self.partitions.into_iter().zip(&layout.partitions) {
            sw.skip_to(place.offset).map_err(io("partition"))?;
            sw.start_hash();
            {
                let mut region = Region::new(&mut sw as &mut dyn Sink, place.len);
                spec.content.write(&mut region, *place)?;
                region.pad().map_err(io("partition"))?;
            }
            digests.push(sw.take_hash().map_err(io("partition"))?);
            meta.push((spec.name, spec.kind, spec.bootable, spec.guid));
        }

        // Ids from the layout, names, types and content digests.
        let mut parts: Vec<Vec<u8>> = vec![layout.size.to_le_bytes().to_vec()];
        for ((name, kind, _, _), (place, digest)) in
            meta.iter().zip(layout.partitions.iter().zip(&digests))
        {
            parts.push(name.as_bytes().to_vec());
            parts.push(kind.gpt.0.to_le_bytes().to_vec());
            parts.push(place.offset.to_le_bytes().to_vec());
            parts.push(place.len.to_le_bytes().to_vec());
            parts.push(digest.to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let disk_id = derive("slipway disk", &refs);

        let sectors = layout.size / SECTOR;
        let mut report = DiskReport {
            size: layout.size,
            disk_guid: None,
            mbr_signature: None,
            partitions: Vec::new(),
        };
        let mut head = Vec::with_capacity(34 * SECTOR as usize);
        match table {
            Table::Gpt { boot_code } => {
                let disk_guid = Guid::derived(&disk_id);
                let mut entries = Vec::new();
                for (i, ((name, kind, bootable, guid), place)) in
                    meta.into_iter().zip(&layout.partitions).enumerate()
                {
                    let number = (i + 1) as u32;
                    let guid = guid.unwrap_or_else(|| {
                        Guid::derived(&derive(
                            "slipway gpt partition",
                            &[&disk_id, &number.to_le_bytes()],
                        ))
                    });
                    entries.push(GptEntry {
                        type_guid: kind.gpt,
                        guid,
                        first_lba: place.offset / SECTOR,
                        last_lba: (place.offset + place.len) / SECTOR - 1,
                        attributes: if bootable {
                            gpt::LEGACY_BIOS_BOOTABLE
                        } else {
                            0
                        },
                        name: name.clone(),
                    });
                    report.partitions.push(PartitionReport {
                        number,
                        name,
                        offset: place.offset,
                        len: place.len,
                        guid: Some(guid),
                    });
                }
                let array = gpt::array(&entries)?;
                sw.skip_to(layout.size - gpt::BACKUP_SECTORS * SECTOR)
                    .map_err(io("GPT"))?;
                sw.write_all(&array).map_err(io("GPT"))?;
                sw.write_all(&gpt::header(disk_guid, sectors, false, &array))
                    .map_err(io("GPT"))?;
                head.extend_from_slice(&mbr::protective(&boot_code, sectors));
                head.extend_from_slice(&gpt::header(disk_guid, sectors, true, &array));
                head.extend_from_slice(&array);
                report.disk_guid = Some(disk_guid);
            }
            Table::Mbr { boot_code } => {
                let signature =
                    match u32::from_le_bytes([disk_id[0], disk_id[1], disk_id[2], disk_id[3]]) {
                        0 => 1,
                        s => s,
                    };
                let mut entries = Vec::new();
                for (i, ((name, kind, bootable, _), place)) in
                    meta.into_iter().zip(&layout.partitions).enumerate()
                {
                    entries.push(MbrEntry {
                        bootable,
                        kind: kind.mbr,
                        start_lba: place.offset / SECTOR,
                        sectors: place.len / SECTOR,
                    });
                    report.partitions.push(PartitionReport {
                        number: (i + 1) as u32,
                        name,
                        offset: place.offset,
                        len: place.len,
                        guid: None,
                    });
                }
                head.extend_from_slice(&mbr::mbr(&boot_code, signature, &entries)?);
                sw.skip_to(layout.size).map_err(io("end"))?;
                report.mbr_signature = Some(signature);
            }
        }
        let mut out = sw.finish().map_err(io("end"))?;
        // The head sectors were skipped (left as holes) on the way.
        out.seek(SeekFrom::Start(0)).map_err(io("table"))?;
        out.write_all(&head).map_err(io("table"))?;
        out.flush().map_err(io("table"))?;
        Ok((out, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn content(len: u64, byte: u8) -> Box<dyn PartitionContent> {
        Box::new(ReaderContent::new("test", len, std::io::repeat(byte)))
    }

    fn spec(size: PartitionSize, len: u64, byte: u8) -> PartitionSpec<'static> {
        PartitionSpec {
            name: format!("p{byte}"),
            kind: PartitionType::LINUX,
            size,
            bootable: false,
            guid: None,
            content: content(len, byte),
        }
    }

    #[test]
    fn layouts_and_sizes() {
        let mut d = Disk::new(Table::Gpt {
            boot_code: [0; 440],
        });
        d.partitions.push(spec(PartitionSize::Fit, 3 * MIB + 1, 1));
        d.partitions.push(spec(PartitionSize::Rest, 10, 2));
        let l = d.layout().unwrap();
        // 1 MiB, 4 MiB, 1 MiB, then the GPT backup in one more MiB.
        assert_eq!(l.size, 7 * MIB);
        assert_eq!(
            l.partitions[0],
            Placement {
                offset: MIB,
                len: 4 * MIB
            }
        );
        assert_eq!(l.partitions[1].offset, 5 * MIB);
        // Up to the last MiB boundary before the GPT backup.
        assert_eq!(l.partitions[1].len, MIB);
        d.size = Some(6 * MIB);
        let err = d.layout().unwrap_err();
        assert!(
            matches!(err, DiskError::DoesNotFit { size, needed } if size == 6 * MIB && needed == 7 * MIB),
            "{err}"
        );
        assert!(err.to_string().contains("at least 7 MiB"), "{err}");
        d.size = Some(1 << 30);
        assert_eq!(d.layout().unwrap().partitions[1].len, (1 << 30) - 6 * MIB);
    }

    #[test]
    fn bad_layouts() {
        let mut d = Disk::new(Table::Mbr {
            boot_code: [0; 440],
        });
        d.partitions.push(spec(PartitionSize::Rest, 1, 1));
        d.partitions.push(spec(PartitionSize::Fit, 1, 2));
        assert!(matches!(d.layout(), Err(DiskError::Table(_))));
        let mut d = Disk::new(Table::Mbr {
            boot_code: [0; 440],
        });
        d.partitions.push(spec(PartitionSize::Bytes(100), 1000, 1));
        assert!(matches!(
            d.layout(),
            Err(DiskError::PartitionTooSmall { .. })
        ));
        let mut d = Disk::new(Table::Mbr {
            boot_code: [0; 440],
        });
        for i in 0..5 {
            d.partitions.push(spec(PartitionSize::Fit, 1, i));
        }
        assert!(matches!(d.layout(), Err(DiskError::Table(_))));
        let mut d = Disk::new(Table::Mbr {
            boot_code: [0; 440],
        });
        d.size = Some(1000);
        assert!(matches!(d.layout(), Err(DiskError::Table(_))));
    }

    #[test]
    fn closures_write_partitions() {
        let mut d = Disk::new(Table::Mbr {
            boot_code: [0; 440],
        });
        d.partitions.push(PartitionSpec {
            name: "f".into(),
            kind: PartitionType::LINUX,
            size: PartitionSize::Fit,
            bootable: false,
            guid: None,
            content: Box::new(FnContent::new(
                10,
                |out: &mut Region<'_>, place: Placement| {
                    assert_eq!(
                        place,
                        Placement {
                            offset: MIB,
                            len: MIB
                        }
                    );
                    out.write_all(b"from a closure")
                        .map_err(DiskError::io("test"))
                },
            )),
        });
        let (out, report) = d.write(Cursor::new(Vec::new())).unwrap();
        assert_eq!(report.size, 2 * MIB);
        assert_eq!(&out.get_ref()[MIB as usize..][..14], b"from a closure");
    }

    #[test]
    fn ids_follow_content() {
        let write = |byte: u8| {
            let mut d = Disk::new(Table::Gpt {
                boot_code: [0; 440],
            });
            d.partitions.push(spec(PartitionSize::Fit, 5000, byte));
            d.write(Cursor::new(Vec::new())).unwrap()
        };
        let (a, ra) = write(1);
        let (a2, _) = write(1);
        let (_, rb) = write(2);
        assert_eq!(a.get_ref(), a2.get_ref());
        assert_eq!(a.get_ref().len() as u64, ra.size);
        assert_ne!(ra.disk_guid, rb.disk_guid);
        assert_ne!(ra.partitions[0].guid, rb.partitions[0].guid);
        assert_eq!(&a.get_ref()[512..520], b"EFI PART");
        assert_eq!(a.get_ref()[MIB as usize], 1);
    }
}
