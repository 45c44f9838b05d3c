//! What a file is, from its bytes: never from its name.
//!
//! [`detect`] reads the first 64 KiB of a file, its last 512 bytes and, for
//! an ISO, its El Torito boot catalog, and names what it found: an image
//! `slipway run` boots ([`Kind::is_bootable`]), or something it recognises
//! and refuses with a reason (a kernel alone, a root filesystem image, a
//! YAML file...).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// How much of the start of a file detection reads: past the ISO 9660
/// volume descriptors (sector 16 at 32 KiB) and a GPT's partition array.
const HEAD: usize = 64 << 10;
const SECTOR: usize = 512;
const ISO_SECTOR: u64 = 2048;

/// The EFI system partition's GPT type GUID, as stored (mixed endian).
const ESP_GUID: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];

/// What a file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ISO 9660 image (`CD001` at byte 0x8001).
    Iso(IsoInfo),
    /// A qcow2 image (`QFI\xfb`).
    Qcow2,
    /// A VHD (a `conectix` footer in its last 512 bytes).
    Vhd {
        /// Dynamic (sparse, with a block allocation table) rather than fixed.
        dynamic: bool,
    },
    /// A VMDK sparse extent (`KDMV`).
    Vmdk {
        /// streamOptimized (compressed grains and markers): qemu reads it
        /// but cannot write it.
        stream_optimized: bool,
    },
    /// A VMDK text descriptor naming its extents in other files.
    VmdkDescriptor,
    /// A raw disk image with a partition table or boot sector.
    RawDisk(DiskInfo),
    /// A unified kernel image: an EFI application with a `.linux` section.
    Uki,
    /// Another EFI application (a boot loader, a shell).
    EfiApp,
    /// A Linux kernel (bzImage, `HdrS` at 0x202): it needs an initrd.
    LinuxKernel,
    /// A squashfs filesystem.
    Squashfs,
    /// An erofs filesystem.
    Erofs,
    /// An ext2/3/4 filesystem without a partition table.
    Ext,
    /// A newc cpio archive (an initramfs), maybe compressed.
    Initramfs {
        /// `gzip`, `zstd`, `xz` or `none`.
        compression: &'static str,
    },
    /// A GCP image: a gzipped tar whose first member is `disk.raw`.
    GcpTarball,
    /// Another tar archive (`slipway build -f tar`, `docker`, ...).
    Tar,
    /// Compressed data that is none of the above.
    Compressed(&'static str),
    /// An ELF file (a `vmlinux`, a program).
    Elf,
    /// Text.
    Text {
        /// It looks like a slipway/LinuxKit configuration.
        config: bool,
    },
    /// A directory.
    Directory,
    /// An empty file.
    Empty,
    /// A file whose first 64 KiB are zeros (a blank disk).
    Zeros,
    /// Something else: its first bytes.
    Unknown(Vec<u8>),
}

/// What an ISO image can boot with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IsoInfo {
    /// An El Torito entry for BIOS (platform 0, x86).
    pub bios: bool,
    /// An El Torito entry for EFI (platform 0xEF).
    pub efi: bool,
    /// An isohybrid image: it also carries an MBR and boots as a disk.
    pub hybrid: bool,
}

/// The partition table of a raw disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// An MBR (or a boot sector without partitions).
    Mbr,
    /// A GPT (`EFI PART` at LBA 1) behind a protective MBR.
    Gpt,
}

/// What a raw disk can boot with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// Its partition table.
    pub table: Table,
    /// Its first sector carries boot code a BIOS can run.
    pub bios_code: bool,
    /// It has an EFI system partition (GPT type, or MBR type 0xEF).
    pub esp: bool,
}

impl Kind {
    /// An image `slipway run` boots as it is.
    pub fn is_bootable(&self) -> bool {
        match self {
            Kind::Iso(iso) => iso.bios || iso.efi,
            Kind::Qcow2
            | Kind::Vhd { .. }
            | Kind::Vmdk { .. }
            | Kind::VmdkDescriptor
            | Kind::RawDisk(_)
            | Kind::Uki
            | Kind::EfiApp
            | Kind::GcpTarball => true,
            _ => false,
        }
    }

    /// What it is, for messages: "an ISO 9660 image (El Torito BIOS and EFI, isohybrid)".
    pub fn describe(&self) -> String {
        match self {
            Kind::Iso(iso) => {
                let mut boots = Vec::new();
                if iso.bios {
                    boots.push("BIOS");
                }
                if iso.efi {
                    boots.push("EFI");
                }
                let mut text = if boots.is_empty() {
                    "an ISO 9660 image without an El Torito boot record".to_owned()
                } else {
                    format!("an ISO 9660 image (El Torito {})", boots.join(" and "))
                };
                if iso.hybrid {
                    text.push_str(", isohybrid");
                }
                text
            }
            Kind::Qcow2 => "a qcow2 disk image".into(),
            Kind::Vhd { dynamic: false } => "a fixed VHD disk image".into(),
            Kind::Vhd { dynamic: true } => "a dynamic VHD disk image".into(),
            Kind::Vmdk {
                stream_optimized: true,
            } => "a streamOptimized VMDK disk image".into(),
            Kind::Vmdk { .. } => "a sparse VMDK disk image".into(),
            Kind::VmdkDescriptor => "a VMDK descriptor".into(),
            Kind::RawDisk(disk) => {
                let table = match disk.table {
                    Table::Mbr => "an MBR",
                    Table::Gpt => "a GPT",
                };
                let mut boots = Vec::new();
                if disk.bios_code {
                    boots.push("BIOS boot code");
                }
                if disk.esp {
                    boots.push("an EFI system partition");
                }
                if boots.is_empty() {
                    boots.push("no boot code and no EFI system partition");
                }
                format!("a raw disk image with {table} ({})", boots.join(", "))
            }
            Kind::Uki => "a unified kernel image (EFI)".into(),
            Kind::EfiApp => "an EFI application".into(),
            Kind::LinuxKernel => "a Linux kernel".into(),
            Kind::Squashfs => "a squashfs filesystem image".into(),
            Kind::Erofs => "an erofs filesystem image".into(),
            Kind::Ext => "an ext2/3/4 filesystem image without a partition table".into(),
            Kind::Initramfs {
                compression: "none",
            } => "an initramfs (cpio archive)".into(),
            Kind::Initramfs { compression } => {
                format!("an initramfs ({compression}-compressed cpio archive)")
            }
            Kind::GcpTarball => "a GCP image (disk.raw in a gzipped tar)".into(),
            Kind::Tar => "a tar archive".into(),
            Kind::Compressed(what) => format!("{what}-compressed data"),
            Kind::Elf => "an ELF file".into(),
            Kind::Text { config: true } => "a text file (a YAML configuration?)".into(),
            Kind::Text { config: false } => "a text file".into(),
            Kind::Directory => "a directory".into(),
            Kind::Empty => "an empty file".into(),
            Kind::Zeros => "a file that starts with 64 KiB of zeros (a blank disk?)".into(),
            Kind::Unknown(bytes) => {
                let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("a file of unknown kind (it starts {})", hex.join(" "))
            }
        }
    }
}

/// What `path` is. Errors are the file's own (missing, unreadable).
pub fn detect(path: &Path) -> io::Result<Kind> {
    if path.is_dir() {
        return Ok(Kind::Directory);
    }
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let head = read_up_to(&mut file, 0, HEAD)?;
    let tail = if len >= SECTOR as u64 {
        read_up_to(&mut file, len - SECTOR as u64, SECTOR)?
    } else {
        Vec::new()
    };
    let mut catalog = |lba: u32| read_up_to(&mut file, u64::from(lba) * ISO_SECTOR, 2048);
    classify(&head, &tail, len, &mut catalog)
}

fn read_up_to(file: &mut File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The partition table and boot code of the disk inside a qcow2 image or a
/// fixed VHD, from the guest's first sectors; `None` when they cannot be
/// read simply (a compressed, encrypted or unallocated first cluster, a
/// backing file, a dynamic VHD, a VMDK) or hold no MBR. A raw disk's own
/// [`Kind::RawDisk`] says the same.
pub fn inner_disk(path: &Path, kind: &Kind) -> io::Result<Option<DiskInfo>> {
    let mut file = File::open(path)?;
    let head = match kind {
        Kind::Vhd { dynamic: false } => read_up_to(&mut file, 0, HEAD)?,
        Kind::Qcow2 => match qcow2_first_cluster(&mut file)? {
            Some(head) => head,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    if head.len() < SECTOR || head[510..512] != [0x55, 0xaa] {
        return Ok(None);
    }
    Ok(Some(disk_info(&head)))
}

/// The first cluster of a qcow2 image's guest disk (at most 64 KiB of it):
/// L1 entry 0, then L2 entry 0 (qcow2's specification, "Cluster mapping").
fn qcow2_first_cluster(file: &mut File) -> io::Result<Option<Vec<u8>>> {
    const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
    const COMPRESSED: u64 = 1 << 62;
    let header = read_up_to(file, 0, 48)?;
    if header.len() < 48 {
        return Ok(None);
    }
    let be32 =
        |o: usize| u32::from_be_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
    let be64 = |b: &[u8], o: usize| {
        b.get(o..o + 8)
            .and_then(|x| x.try_into().ok())
            .map(u64::from_be_bytes)
    };
    let backing = be64(&header, 8).unwrap_or(0);
    let cluster_bits = be32(20);
    let encrypted = be32(32) != 0;
    if backing != 0 || encrypted || !(9..=21).contains(&cluster_bits) || be32(36) == 0 {
        return Ok(None);
    }
    let Some(l1) = be64(&header, 40) else {
        return Ok(None);
    };
    let entry = |file: &mut File, at: u64| -> io::Result<u64> {
        let bytes = read_up_to(file, at, 8)?;
        Ok(be64(&bytes, 0).unwrap_or(0))
    };
    let l2 = entry(file, l1)? & OFFSET_MASK;
    if l2 == 0 {
        return Ok(None);
    }
    let cluster = entry(file, l2)?;
    let offset = cluster & OFFSET_MASK;
    if cluster & COMPRESSED != 0 || offset == 0 {
        return Ok(None);
    }
    let len = (1usize << cluster_bits).min(HEAD);
    read_up_to(file, offset, len).map(Some)
}

/// Classify from the first bytes (`head`), the last 512 (`tail`), the
/// length, and a reader of ISO sectors (for the El Torito catalog).
fn classify(
    head: &[u8],
    tail: &[u8],
    len: u64,
    read_sector: &mut dyn FnMut(u32) -> io::Result<Vec<u8>>,
) -> io::Result<Kind> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if len == 0 {
        return Ok(Kind::Empty);
    }
    // An isohybrid ISO is also an MBR disk: the ISO wins (CD boot).
    if at(0x8001, b"CD001") {
        return Ok(Kind::Iso(iso_info(head, read_sector)?));
    }
    if at(0, b"QFI\xfb") {
        return Ok(Kind::Qcow2);
    }
    if at(0, b"KDMV") {
        return Ok(Kind::Vmdk {
            stream_optimized: vmdk_stream_optimized(head),
        });
    }
    if tail.starts_with(b"conectix") || at(0, b"conectix") {
        let footer = if tail.starts_with(b"conectix") {
            tail
        } else {
            head
        };
        // Disk type at byte 60 of the footer: 2 fixed, 3 dynamic, 4 differencing.
        let dynamic = footer.get(60..64).is_some_and(|t| t != [0, 0, 0, 2]);
        return Ok(Kind::Vhd { dynamic });
    }
    // A bzImage: also a PE file when built with the EFI stub, so before PE.
    if at(0x202, b"HdrS") {
        return Ok(Kind::LinuxKernel);
    }
    if at(0, b"MZ")
        && let Some(kind) = efi_kind(head)
    {
        return Ok(kind);
    }
    if at(0, b"hsqs") {
        return Ok(Kind::Squashfs);
    }
    if at(1024, &[0xe2, 0xe1, 0xf5, 0xe0]) {
        return Ok(Kind::Erofs);
    }
    if at(510, &[0x55, 0xaa]) {
        return Ok(Kind::RawDisk(disk_info(head)));
    }
    if at(1080, &[0x53, 0xef]) {
        return Ok(Kind::Ext);
    }
    if at(0, b"070701") || at(0, b"070702") {
        return Ok(Kind::Initramfs {
            compression: "none",
        });
    }
    if at(257, b"ustar") {
        return Ok(Kind::Tar);
    }
    if at(0, &[0x1f, 0x8b]) {
        return Ok(gzip_kind(head));
    }
    if at(0, &[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(compressed_kind(head, "zstd"));
    }
    if at(0, &[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Ok(compressed_kind(head, "xz"));
    }
    if at(0, b"\x7fELF") {
        return Ok(Kind::Elf);
    }
    if at(0, b"# Disk DescriptorFile") {
        return Ok(Kind::VmdkDescriptor);
    }
    if let Some(config) = text(head) {
        return Ok(Kind::Text { config });
    }
    if head.iter().all(|b| *b == 0) {
        return Ok(Kind::Zeros);
    }
    Ok(Kind::Unknown(head.iter().take(16).copied().collect()))
}

/// The El Torito boot catalog's platforms, and whether an MBR is there too.
fn iso_info(
    head: &[u8],
    read_sector: &mut dyn FnMut(u32) -> io::Result<Vec<u8>>,
) -> io::Result<IsoInfo> {
    let mut info = IsoInfo {
        hybrid: head.get(510..512) == Some(&[0x55, 0xaa]),
        ..IsoInfo::default()
    };
    // Volume descriptors from sector 16 up to the terminator (type 255);
    // the boot record is type 0 with El Torito's system identifier.
    let mut catalog_lba = None;
    for sector in 16..32usize {
        let Some(vd) = head.get(sector * 2048..sector * 2048 + 2048) else {
            break;
        };
        if &vd[1..6] != b"CD001" || vd[0] == 255 {
            break;
        }
        if vd[0] == 0 && vd[7..].starts_with(b"EL TORITO SPECIFICATION") {
            catalog_lba = Some(u32::from_le_bytes([vd[0x47], vd[0x48], vd[0x49], vd[0x4a]]));
        }
    }
    let Some(lba) = catalog_lba else {
        return Ok(info);
    };
    let catalog = read_sector(lba)?;
    // The validation entry: header 1, key 55 AA at bytes 30-31.
    if catalog.len() < 64 || catalog[0] != 1 || catalog[30..32] != [0x55, 0xaa] {
        return Ok(info);
    }
    let mut mark = |platform: u8| match platform {
        0 => info.bios = true,
        0xef => info.efi = true,
        _ => {}
    };
    // The initial entry belongs to the validation entry's platform.
    if catalog[32] == 0x88 {
        mark(catalog[1]);
    }
    // Section headers (0x90, the last 0x91), each followed by its entries.
    let mut at = 64;
    while let Some(header) = catalog.get(at..at + 32) {
        if header[0] != 0x90 && header[0] != 0x91 {
            break;
        }
        let platform = header[1];
        let count = usize::from(u16::from_le_bytes([header[2], header[3]]));
        for i in 0..count {
            if catalog.get(at + 32 * (i + 1)) == Some(&0x88) {
                mark(platform);
            }
        }
        if header[0] == 0x91 {
            break;
        }
        at += 32 * (count + 1);
    }
    Ok(info)
}

/// Boot code in the first 440 bytes, and an EFI system partition.
fn disk_info(head: &[u8]) -> DiskInfo {
    let bios_code = head[..440].iter().any(|b| *b != 0);
    if head.get(512..520) == Some(b"EFI PART") {
        // The partition array: start LBA at 72, count at 80, entry size at 84.
        let u32_at =
            |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
        let start = u64::from_le_bytes(head[512 + 72..512 + 80].try_into().unwrap_or([0; 8]));
        let count = u32_at(512 + 80) as usize;
        let size = u32_at(512 + 84) as usize;
        let esp = size >= 16
            && (0..count.min(256)).any(|i| {
                let offset = (start as usize).saturating_mul(SECTOR) + i * size;
                head.get(offset..offset + 16) == Some(&ESP_GUID)
            });
        return DiskInfo {
            table: Table::Gpt,
            bios_code,
            esp,
        };
    }
    // MBR partition entries at 446, 16 bytes each; the type at byte 4.
    let esp = (0..4).any(|i| head[446 + 16 * i + 4] == 0xef);
    DiskInfo {
        table: Table::Mbr,
        bios_code,
        esp,
    }
}

/// A sparse VMDK header: flags at byte 8 (bit 16: compressed grains, bit
/// 17: markers) and the compression algorithm at byte 77 (1: deflate).
fn vmdk_stream_optimized(head: &[u8]) -> bool {
    let flags = head
        .get(8..12)
        .map_or(0, |f| u32::from_le_bytes([f[0], f[1], f[2], f[3]]));
    let algorithm = head
        .get(77..79)
        .map_or(0, |a| u16::from_le_bytes([a[0], a[1]]));
    flags & (1 << 16) != 0 && algorithm == 1
}

/// A PE file: an EFI application (subsystem 10), with `.linux` a UKI.
fn efi_kind(head: &[u8]) -> Option<Kind> {
    use object::pe::{IMAGE_SUBSYSTEM_EFI_APPLICATION, ImageDosHeader, ImageNtHeaders64};
    use object::read::coff::SectionTable;
    use object::read::pe::{ImageNtHeaders as _, ImageOptionalHeader as _};
    let dos = ImageDosHeader::parse(head).ok()?;
    let mut offset = u64::from(dos.nt_headers_offset());
    let (nt, _) = ImageNtHeaders64::parse(head, &mut offset).ok()?;
    if nt.optional_header().subsystem() != IMAGE_SUBSYSTEM_EFI_APPLICATION {
        return None;
    }
    let sections = SectionTable::parse(nt.file_header(), head, offset).ok()?;
    let uki = sections.iter().any(|s| s.raw_name() == b".linux");
    Some(if uki { Kind::Uki } else { Kind::EfiApp })
}

/// A gzip stream: a GCP tarball, another tar, an initramfs, or data.
fn gzip_kind(head: &[u8]) -> Kind {
    let mut inner = Vec::new();
    // The head is a prefix of the stream: read what it yields.
    let _ = flate2::read::GzDecoder::new(head)
        .take(1024)
        .read_to_end(&mut inner);
    if inner.get(257..262) == Some(b"ustar") || (inner.len() >= 512 && tar_checksum_ok(&inner)) {
        let name_end = inner[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = &inner[..name_end];
        if name == b"disk.raw" || name == b"./disk.raw" {
            return Kind::GcpTarball;
        }
        return Kind::Tar;
    }
    compressed_kind_of(&inner, "gzip")
}

fn compressed_kind(head: &[u8], what: &'static str) -> Kind {
    let mut inner = Vec::new();
    match what {
        "zstd" => {
            if let Ok(decoder) = zstd::stream::read::Decoder::new(head) {
                let _ = decoder.take(16).read_to_end(&mut inner);
            }
        }
        _ => {
            let _ = liblzma::read::XzDecoder::new(head)
                .take(16)
                .read_to_end(&mut inner);
        }
    }
    compressed_kind_of(&inner, what)
}

fn compressed_kind_of(inner: &[u8], what: &'static str) -> Kind {
    if inner.starts_with(b"070701") || inner.starts_with(b"070702") {
        Kind::Initramfs { compression: what }
    } else {
        Kind::Compressed(what)
    }
}

/// A tar header whose checksum (bytes 148-155, octal) matches its bytes:
/// old (v7/oldgnu) archives have no `ustar` magic.
fn tar_checksum_ok(header: &[u8]) -> bool {
    let field = String::from_utf8_lossy(&header[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = header[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == stored && header[0] != 0
}

/// Text (UTF-8 without control characters other than whitespace); `Some(true)`
/// when it looks like a configuration (top-level `kernel:`, `init:`,
/// `onboot:`, `services:` or `files:` keys).
fn text(head: &[u8]) -> Option<bool> {
    let sample = &head[..head.len().min(4096)];
    let text = match std::str::from_utf8(sample) {
        Ok(t) => t,
        // A character cut at the end of the sample.
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => {
            std::str::from_utf8(&sample[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c'))
    {
        return None;
    }
    let config = text.lines().any(|line| {
        [
            "kernel:",
            "init:",
            "onboot:",
            "services:",
            "files:",
            "onshutdown:",
        ]
        .iter()
        .any(|key| line.starts_with(key))
    });
    Some(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(head: &[u8]) -> Kind {
        classify(head, &[], head.len() as u64, &mut |_| Ok(Vec::new())).unwrap()
    }

    #[test]
    fn text_and_config() {
        assert_eq!(kind(b"kernel:\n  image: x\n"), Kind::Text { config: true });
        assert_eq!(kind(b"hello\n"), Kind::Text { config: false });
        assert_eq!(kind(b""), Kind::Empty);
        assert_eq!(kind(&[0u8; 4096]), Kind::Zeros);
        assert!(matches!(kind(&[1, 2, 3, 0, 0xff]), Kind::Unknown(b) if b == [1, 2, 3, 0, 0xff]));
    }

    #[test]
    fn magic_numbers() {
        assert_eq!(kind(b"QFI\xfb\0\0\0\x03"), Kind::Qcow2);
        assert_eq!(kind(b"hsqs\0\0\0\0"), Kind::Squashfs);
        assert_eq!(
            kind(b"070701000000"),
            Kind::Initramfs {
                compression: "none"
            }
        );
        let mut mbr = vec![0u8; 1024];
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        assert_eq!(
            kind(&mbr),
            Kind::RawDisk(DiskInfo {
                table: Table::Mbr,
                bios_code: false,
                esp: false
            })
        );
        mbr[0] = 0xeb;
        mbr[446 + 4] = 0xef;
        assert_eq!(
            kind(&mbr),
            Kind::RawDisk(DiskInfo {
                table: Table::Mbr,
                bios_code: true,
                esp: true
            })
        );
    }

    #[test]
    fn vhd_footer_type() {
        let mut footer = vec![0u8; 512];
        footer[..8].copy_from_slice(b"conectix");
        footer[63] = 2;
        let fixed = classify(&[1; 16], &footer, 1 << 20, &mut |_| Ok(Vec::new())).unwrap();
        assert_eq!(fixed, Kind::Vhd { dynamic: false });
        footer[63] = 3;
        let dynamic = classify(&footer, &footer, 1 << 20, &mut |_| Ok(Vec::new())).unwrap();
        assert_eq!(dynamic, Kind::Vhd { dynamic: true });
    }
}
