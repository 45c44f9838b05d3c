//! Unified kernel images: systemd's EFI stub (`linuxx64.efi.stub`) with the
//! kernel, the initrd, the command line and os-release appended as PE
//! sections, which the stub finds by name once the firmware has loaded it.
//!
//! The stub's PE headers are read with `object`; its writer builds a PE
//! from scratch, not one stub with sections added, so the few header
//! fields that change are edited in place here. What is written:
//!
//! * the stub's headers, with one section header per added section (they
//!   fit in the room the stub leaves before its first section), its COFF
//!   symbol table (debug data the PE format deprecates in images) dropped,
//!   `SizeOfImage`, `SizeOfInitializedData` and `CheckSum` updated;
//! * the stub's section data, unchanged;
//! * `.osrel`, `.cmdline`, `.uname` (if given), `.linux`, `.initrd`, each
//!   right after the previous one with no gap (a gap would be left out of
//!   an Authenticode signature), `.linux` and `.initrd` at file offsets
//!   that are multiples of 4096 (so an ISO 9660 image can point a file at
//!   them), each section's raw size running up to the next one;
//! * virtual addresses page-aligned in the same order after the stub's
//!   image, so `.initrd` lies above the end of `.linux`, as systemd-stub
//!   252 expects.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;

use object::LittleEndian as LE;
use object::pe::{
    IMAGE_DIRECTORY_ENTRY_SECURITY, IMAGE_FILE_MACHINE_AMD64, IMAGE_SCN_CNT_INITIALIZED_DATA,
    IMAGE_SCN_MEM_READ, IMAGE_SUBSYSTEM_EFI_APPLICATION, ImageDosHeader, ImageNtHeaders64,
    ImageSectionHeader, SectionFlags,
};
use object::read::pe::{ImageNtHeaders as _, ImageOptionalHeader as _};

/// Where `.linux` and `.initrd` start in the file.
pub const SHARED_ALIGN: u64 = 4096;
const PAGE: u64 = 4096;
/// How much of the kernel is read to check its headers before writing.
const KERNEL_HEAD: usize = 64 << 10;
const COPY_BUF: usize = 1 << 20;
/// The bzImage header's `xloadflags` bit for the 64-bit EFI handover entry.
const XLF_EFI_HANDOVER_64: u16 = 1 << 3;

#[derive(Debug, thiserror::Error)]
pub enum UkiError {
    #[error("writing the UKI")]
    Io(#[from] io::Error),
    #[error(
        "the kernel cannot boot from a UKI: {0}. It must be an x86-64 kernel built with CONFIG_EFI_STUB"
    )]
    NoEfiStub(String),
    #[error(
        "the kernel is too old for systemd-stub: it supports neither the initrd media device path (PE image version 1, Linux 5.8) nor the 64-bit EFI handover protocol (boot protocol 2.11)"
    )]
    KernelTooOld,
    #[error("the EFI stub is not usable: {0}")]
    Stub(String),
    #[error("the {what} gave {got} bytes, {expected} were announced")]
    ShortContent {
        what: &'static str,
        expected: u64,
        got: u64,
    },
    #[error("the {what} gave more than the {expected} bytes announced")]
    LongContent { what: &'static str, expected: u64 },
    #[error("the UKI would be {0} bytes; a PE image holds at most 4 GiB")]
    TooLarge(u64),
}

/// What goes into a UKI besides the stub: small sections as bytes, the
/// kernel's and initrd's lengths (their bytes are streamed by
/// [`Uki::write`]).
#[derive(Clone, Debug)]
pub struct UkiParts<'a> {
    /// `/etc/os-release` of the image (`.osrel`).
    pub os_release: &'a [u8],
    /// The kernel command line (`.cmdline`); empty: no section.
    pub cmdline: &'a [u8],
    /// The kernel's release (`.uname`), if known.
    pub uname: Option<&'a [u8]>,
    pub kernel_len: u64,
    /// The initrd's length; 0: no `.initrd` section.
    pub initrd_len: u64,
}

/// Where things are in the file, for sharing extents with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UkiLayout {
    /// The whole file's size.
    pub size: u64,
    /// The kernel's bytes (`.linux` raw data), starting at a multiple of 4096.
    pub linux: Range<u64>,
    /// The initrd's bytes (`.initrd` raw data), starting at a multiple of
    /// 4096; empty when there is no initrd.
    pub initrd: Range<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Bytes(usize),
    Kernel,
    Initrd,
}

#[derive(Debug)]
struct Section {
    name: [u8; 8],
    body: Body,
    len: u64,
    offset: u64,
    raw: u64,
    address: u64,
}

/// A UKI laid out: headers ready, sections placed. [`Uki::write`] streams
/// it out.
pub struct Uki {
    /// The stub up to the end of its last section, headers edited (the
    /// checksum left 0).
    stub: Vec<u8>,
    small: Vec<Vec<u8>>,
    sections: Vec<Section>,
    checksum_at: usize,
    layout: UkiLayout,
}

impl std::fmt::Debug for Uki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uki")
            .field("sections", &self.sections)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

fn align(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

fn stub_err(what: impl Into<String>) -> UkiError {
    UkiError::Stub(what.into())
}

/// Checks that a kernel can be started by systemd-stub: an x86-64 EFI
/// application (`MZ`, a PE32+ header, EFI subsystem), new enough for the
/// stub to pass it the initrd. `head` is the kernel's first bytes (64 KiB
/// holds every header; fewer is fine for a smaller file).
pub fn check_kernel(head: &[u8]) -> Result<(), UkiError> {
    let no = |why: &str| UkiError::NoEfiStub(why.to_owned());
    if head.get(..2) != Some(b"MZ") {
        return Err(no("it does not start with an MZ (PE) header"));
    }
    let dos = ImageDosHeader::parse(head).map_err(|e| no(&format!("its MZ header: {e}")))?;
    let mut offset = u64::from(dos.nt_headers_offset());
    let (nt, _) = ImageNtHeaders64::parse(head, &mut offset)
        .map_err(|e| no(&format!("no PE32+ header ({e})")))?;
    let machine = nt.file_header().machine.get(LE);
    if machine != IMAGE_FILE_MACHINE_AMD64 {
        return Err(no(&format!("its PE machine is {machine:#x}, not x86-64")));
    }
    let opt = nt.optional_header();
    if opt.subsystem() != IMAGE_SUBSYSTEM_EFI_APPLICATION {
        return Err(no("its PE image is not an EFI application"));
    }
    // systemd-stub 252 loads kernels of PE image version 1 or later as EFI
    // images and hands them the initrd through a media device path; older
    // ones get the EFI handover protocol, which needs bzImage boot
    // protocol 2.11 and the 64-bit handover flag.
    if opt.major_image_version() >= 1 {
        return Ok(());
    }
    let u16_at = |at: usize| {
        head.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let has_setup = head.get(0x202..0x206) == Some(b"HdrS");
    let version = u16_at(0x206).unwrap_or(0);
    let xloadflags = u16_at(0x236).unwrap_or(0);
    if has_setup && version >= 0x020B && xloadflags & XLF_EFI_HANDOVER_64 != 0 {
        Ok(())
    } else {
        Err(UkiError::KernelTooOld)
    }
}

impl Uki {
    /// Lays out a UKI of `stub` (the bytes of `linuxx64.efi.stub`) and
    /// `parts`. The stub is checked here; the kernel when it is written.
    pub fn plan(stub: &[u8], parts: &UkiParts<'_>) -> Result<Uki, UkiError> {
        let dos = ImageDosHeader::parse(stub).map_err(|e| stub_err(e.to_string()))?;
        let nt_offset = u64::from(dos.nt_headers_offset());
        let mut offset = nt_offset;
        let (nt, dirs) = ImageNtHeaders64::parse(stub, &mut offset)
            .map_err(|e| stub_err(format!("not a PE32+ image: {e}")))?;
        let table = nt
            .sections(stub, offset)
            .map_err(|e| stub_err(e.to_string()))?;
        let opt = nt.optional_header();
        if nt.file_header().machine.get(LE) != IMAGE_FILE_MACHINE_AMD64
            || opt.subsystem() != IMAGE_SUBSYSTEM_EFI_APPLICATION
        {
            return Err(stub_err("not an x86-64 EFI application"));
        }
        if dirs
            .get(IMAGE_DIRECTORY_ENTRY_SECURITY)
            .is_some_and(|d| d.size.get(LE) != 0)
        {
            return Err(stub_err(
                "it is signed; use the unsigned stub (the UKI is signed as a whole)",
            ));
        }
        let file_align = u64::from(opt.file_alignment());
        let section_align = u64::from(opt.section_alignment());
        if !file_align.is_power_of_two() || !section_align.is_power_of_two() {
            return Err(stub_err("its alignments are not powers of two"));
        }
        let mut data_end = u64::from(opt.size_of_headers());
        let mut first_data = u64::MAX;
        let mut image_end = u64::from(opt.size_of_image());
        for s in table.iter() {
            let (ptr, raw) = (
                u64::from(s.pointer_to_raw_data.get(LE)),
                u64::from(s.size_of_raw_data.get(LE)),
            );
            let (va, vsize) = (
                u64::from(s.virtual_address.get(LE)),
                u64::from(s.virtual_size.get(LE)),
            );
            if raw > 0 {
                data_end = data_end.max(ptr + raw);
                first_data = first_data.min(ptr);
            }
            image_end = image_end.max(va + vsize.max(raw));
        }
        if data_end > stub.len() as u64 {
            return Err(stub_err("its sections run past the end of the file"));
        }

        // The sections, in order.
        let mut small = vec![parts.os_release.to_vec()];
        let mut wanted: Vec<([u8; 8], Body, u64)> = vec![(
            *b".osrel\0\0",
            Body::Bytes(0),
            parts.os_release.len() as u64,
        )];
        if !parts.cmdline.is_empty() {
            small.push(parts.cmdline.to_vec());
            wanted.push((
                *b".cmdline",
                Body::Bytes(small.len() - 1),
                parts.cmdline.len() as u64,
            ));
        }
        if let Some(uname) = parts.uname.filter(|u| !u.is_empty()) {
            small.push(uname.to_vec());
            wanted.push((
                *b".uname\0\0",
                Body::Bytes(small.len() - 1),
                uname.len() as u64,
            ));
        }
        wanted.push((*b".linux\0\0", Body::Kernel, parts.kernel_len));
        if parts.initrd_len > 0 {
            wanted.push((*b".initrd\0", Body::Initrd, parts.initrd_len));
        }

        // The headers must have room for the new section headers.
        let headers_end = offset + 40 * u64::from(nt.file_header().number_of_sections.get(LE));
        let room = u64::from(opt.size_of_headers()).min(first_data);
        if headers_end + 40 * wanted.len() as u64 > room {
            return Err(stub_err(format!(
                "its headers leave no room for {} more section headers",
                wanted.len()
            )));
        }

        // File offsets: one after the other, the shared ones on 4096.
        let va_align = section_align.max(PAGE);
        let mut sections: Vec<Section> = Vec::with_capacity(wanted.len());
        let mut at = align(data_end, file_align);
        let mut va = align(image_end, va_align);
        for (name, body, len) in wanted {
            let want = if matches!(body, Body::Kernel | Body::Initrd) {
                file_align.max(SHARED_ALIGN)
            } else {
                file_align
            };
            let offset = align(at, want);
            if let Some(prev) = sections.last_mut() {
                prev.raw = offset - prev.offset;
                va = align(prev.address + prev.len.max(prev.raw), va_align);
            }
            sections.push(Section {
                name,
                body,
                len,
                offset,
                raw: 0,
                address: va,
            });
            at = offset + len;
        }
        let last = sections.last_mut().expect("the kernel section at least");
        last.raw = align(last.len, file_align);
        let size = last.offset + last.raw;
        let image_size = align(last.address + last.len.max(last.raw), section_align);
        let added_raw: u64 = sections.iter().map(|s| s.raw).sum();
        let initialized = u64::from(opt.size_of_initialized_data()) + added_raw;
        for n in [size, image_size, initialized] {
            if n > u64::from(u32::MAX) {
                return Err(UkiError::TooLarge(n));
            }
        }

        // The stub with its headers edited.
        let mut head = stub[..data_end as usize].to_vec();
        let (nt, _) =
            object::pod::from_bytes_mut::<ImageNtHeaders64>(&mut head[nt_offset as usize..])
                .map_err(|()| stub_err("its PE header is cut short"))?;
        let count = nt.file_header.number_of_sections.get(LE) + sections.len() as u16;
        nt.file_header.number_of_sections.set(LE, count);
        nt.file_header.pointer_to_symbol_table.set(LE, 0);
        nt.file_header.number_of_symbols.set(LE, 0);
        nt.optional_header.size_of_image.set(LE, image_size as u32);
        nt.optional_header
            .size_of_initialized_data
            .set(LE, initialized as u32);
        nt.optional_header.check_sum.set(LE, 0);
        let flags = SectionFlags(IMAGE_SCN_CNT_INITIALIZED_DATA.0 | IMAGE_SCN_MEM_READ.0);
        for (i, s) in sections.iter().enumerate() {
            let header = ImageSectionHeader {
                name: s.name,
                virtual_size: object::U32::new(LE, s.len as u32),
                virtual_address: object::U32::new(LE, s.address as u32),
                size_of_raw_data: object::U32::new(LE, s.raw as u32),
                pointer_to_raw_data: object::U32::new(LE, s.offset as u32),
                pointer_to_relocations: object::U32::new(LE, 0),
                pointer_to_linenumbers: object::U32::new(LE, 0),
                number_of_relocations: object::U16::new(LE, 0),
                number_of_linenumbers: object::U16::new(LE, 0),
                characteristics: object::U32::new(LE, flags),
            };
            let at = (headers_end + 40 * i as u64) as usize;
            head[at..at + 40].copy_from_slice(object::pod::bytes_of(&header));
        }
        let range = |body: Body| {
            sections
                .iter()
                .find(|s| s.body == body)
                .map_or(0..0, |s| s.offset..s.offset + s.len)
        };
        let layout = UkiLayout {
            size,
            linux: range(Body::Kernel),
            initrd: range(Body::Initrd),
        };
        Ok(Uki {
            stub: head,
            small,
            sections,
            // CheckSum is at byte 64 of the optional header, after the
            // signature (4) and the file header (20).
            checksum_at: nt_offset as usize + 4 + 20 + 64,
            layout,
        })
    }

    pub fn layout(&self) -> &UkiLayout {
        &self.layout
    }

    /// Writes the UKI at `out`'s current position: the kernel from
    /// `kernel` (checked with [`check_kernel`] before anything is written),
    /// the initrd as the concatenation of `initrd` (each read to its end).
    /// The checksum is filled in last, by seeking back.
    pub fn write<W: Write + Seek>(
        &self,
        out: &mut W,
        kernel: &mut dyn Read,
        initrd: &mut [&mut dyn Read],
    ) -> Result<(), UkiError> {
        let base = out.stream_position()?;
        let checksum = self.stream(out, kernel, initrd)?;
        let end = out.stream_position()?;
        out.seek(SeekFrom::Start(base + checksum.offset))?;
        out.write_all(&checksum.bytes)?;
        out.seek(SeekFrom::Start(end))?;
        Ok(())
    }

    /// Writes the UKI to a stream, front to back, with its `CheckSum`
    /// field left zero; returns where that field is and what it must
    /// hold, for the caller to patch once the stream can seek (a UKI
    /// inside a FAT volume inside a disk image is written as the volume
    /// streams past it).
    pub fn stream(
        &self,
        out: &mut dyn Write,
        kernel: &mut dyn Read,
        initrd: &mut [&mut dyn Read],
    ) -> Result<UkiChecksum, UkiError> {
        let kernel_len = self.layout.linux.end - self.layout.linux.start;
        let mut head = vec![0; (kernel_len as usize).min(KERNEL_HEAD)];
        let got = read_full(kernel, &mut head)?;
        if got < head.len() {
            return Err(UkiError::ShortContent {
                what: "kernel",
                expected: kernel_len,
                got: got as u64,
            });
        }
        check_kernel(&head)?;

        let mut sum = PeChecksum::default();
        let mut w = Summing {
            out,
            sum: &mut sum,
            pos: 0,
        };
        let mut buf = vec![0; COPY_BUF];
        w.write_all(&self.stub)?;
        for s in &self.sections {
            w.zeros(s.offset - w.pos)?;
            match s.body {
                Body::Bytes(i) => w.write_all(&self.small[i])?,
                Body::Kernel => {
                    w.write_all(&head)?;
                    let rest = s.len - head.len() as u64;
                    let got = copy(kernel, &mut w, rest, &mut buf)?;
                    if got < rest {
                        return Err(UkiError::ShortContent {
                            what: "kernel",
                            expected: s.len,
                            got: head.len() as u64 + got,
                        });
                    }
                }
                Body::Initrd => {
                    let mut total = 0u64;
                    for piece in initrd.iter_mut() {
                        total += copy(*piece, &mut w, s.len - total, &mut buf)?;
                        if total == s.len && read_full(*piece, &mut [0u8; 1])? > 0 {
                            return Err(UkiError::LongContent {
                                what: "initrd",
                                expected: s.len,
                            });
                        }
                    }
                    if total < s.len {
                        return Err(UkiError::ShortContent {
                            what: "initrd",
                            expected: s.len,
                            got: total,
                        });
                    }
                }
            }
            w.zeros(s.offset + s.raw - w.pos)?;
        }
        let size = w.pos;
        Ok(UkiChecksum {
            offset: self.checksum_at as u64,
            bytes: sum.finish(size).to_le_bytes(),
        })
    }
}

/// The PE `CheckSum` a streamed UKI must be patched with: `bytes` at
/// `offset` from the UKI's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UkiChecksum {
    pub offset: u64,
    pub bytes: [u8; 4],
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Copies at most `limit` bytes; returns how many (fewer: the reader ended).
fn copy(r: &mut dyn Read, w: &mut dyn Write, limit: u64, buf: &mut [u8]) -> io::Result<u64> {
    let mut done = 0;
    while done < limit {
        let want = (limit - done).min(buf.len() as u64) as usize;
        let n = read_full(r, &mut buf[..want])?;
        w.write_all(&buf[..n])?;
        done += n as u64;
        if n < want {
            break;
        }
    }
    Ok(done)
}

/// The PE checksum: 16-bit little-endian words added with end-around
/// carry, then the file's length added (the checksum field itself counts
/// as zero, which it is while the file is written).
///
/// The words are added into 64 bits and the carries folded in at the end:
/// the same 16-bit result (a sum modulo 0xFFFF, zero only when every word
/// is), but without a fold after each word the compiler can add many
/// words at once; folding each word made this a third of the CPU time of
/// rewriting a hybrid ISO from cached segments.
#[derive(Debug, Default)]
struct PeChecksum {
    sum: u64,
    odd: Option<u8>,
}

impl PeChecksum {
    fn update(&mut self, mut data: &[u8]) {
        if let Some(low) = self.odd.take() {
            match data.split_first() {
                Some((&high, rest)) => {
                    self.sum += u64::from(u16::from_le_bytes([low, high]));
                    data = rest;
                }
                None => {
                    self.odd = Some(low);
                    return;
                }
            }
        }
        let mut words = data.chunks_exact(2);
        // At most 2^16 per word: 64 bits hold the sum of any file.
        self.sum += (&mut words)
            .map(|w| u64::from(u16::from_le_bytes([w[0], w[1]])))
            .sum::<u64>();
        if let [b] = words.remainder() {
            self.odd = Some(*b);
        }
    }

    fn finish(mut self, len: u64) -> u32 {
        if let Some(low) = self.odd.take() {
            self.sum += u64::from(low);
        }
        let mut s = self.sum;
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        (s as u32).wrapping_add(len as u32)
    }
}

/// Writes through, summing and counting.
struct Summing<'a, W: Write + ?Sized> {
    out: &'a mut W,
    sum: &'a mut PeChecksum,
    pos: u64,
}

impl<W: Write + ?Sized> Summing<'_, W> {
    fn zeros(&mut self, n: u64) -> io::Result<()> {
        static ZEROS: [u8; 4096] = [0; 4096];
        let mut left = n;
        while left > 0 {
            let k = left.min(ZEROS.len() as u64) as usize;
            self.write_all(&ZEROS[..k])?;
            left -= k as u64;
        }
        Ok(())
    }
}

impl<W: Write + ?Sized> Write for Summing<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.out.write(data)?;
        self.sum.update(&data[..n]);
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The checksum of a whole PE file, as its `CheckSum` field should read.
#[cfg(test)]
pub(crate) fn pe_checksum(file: &[u8], checksum_at: usize) -> u32 {
    let mut copy = file.to_vec();
    copy[checksum_at..checksum_at + 4].fill(0);
    let mut sum = PeChecksum::default();
    sum.update(&copy);
    sum.finish(copy.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ image built by hand: MZ, PE header, one section.
    fn tiny_pe(image_version: u16, subsystem: u16, machine: u16) -> Vec<u8> {
        let mut f = vec![0u8; 0x400];
        f[0..2].copy_from_slice(b"MZ");
        f[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        f[0x80..0x84].copy_from_slice(b"PE\0\0");
        let fh = 0x84;
        f[fh..fh + 2].copy_from_slice(&machine.to_le_bytes());
        f[fh + 2..fh + 4].copy_from_slice(&1u16.to_le_bytes());
        f[fh + 16..fh + 18].copy_from_slice(&240u16.to_le_bytes());
        let oh = fh + 20;
        f[oh..oh + 2].copy_from_slice(&0x20Bu16.to_le_bytes());
        f[oh + 32..oh + 36].copy_from_slice(&0x1000u32.to_le_bytes());
        f[oh + 36..oh + 40].copy_from_slice(&0x200u32.to_le_bytes());
        f[oh + 44..oh + 46].copy_from_slice(&image_version.to_le_bytes());
        f[oh + 56..oh + 60].copy_from_slice(&0x2000u32.to_le_bytes());
        f[oh + 60..oh + 64].copy_from_slice(&0x200u32.to_le_bytes());
        f[oh + 68..oh + 70].copy_from_slice(&subsystem.to_le_bytes());
        f[oh + 108..oh + 112].copy_from_slice(&16u32.to_le_bytes());
        let sh = oh + 240;
        f[sh..sh + 8].copy_from_slice(b".text\0\0\0");
        f[sh + 8..sh + 12].copy_from_slice(&0x10u32.to_le_bytes());
        f[sh + 12..sh + 16].copy_from_slice(&0x1000u32.to_le_bytes());
        f[sh + 16..sh + 20].copy_from_slice(&0x200u32.to_le_bytes());
        f[sh + 20..sh + 24].copy_from_slice(&0x200u32.to_le_bytes());
        f
    }

    #[test]
    fn kernels_without_an_efi_stub_are_refused() {
        assert!(check_kernel(&tiny_pe(3, 10, 0x8664)).is_ok());
        let e = check_kernel(&[0xEA; 0x400]).unwrap_err();
        assert!(e.to_string().contains("MZ"), "{e}");
        let e = check_kernel(&tiny_pe(3, 10, 0xAA64)).unwrap_err();
        assert!(e.to_string().contains("0xaa64"), "{e}");
        let e = check_kernel(&tiny_pe(3, 3, 0x8664)).unwrap_err();
        assert!(e.to_string().contains("not an EFI application"), "{e}");
        // Image version 0: only the handover protocol can start it.
        let mut old = tiny_pe(0, 10, 0x8664);
        assert!(matches!(check_kernel(&old), Err(UkiError::KernelTooOld)));
        old[0x202..0x206].copy_from_slice(b"HdrS");
        old[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
        old[0x236..0x238].copy_from_slice(&XLF_EFI_HANDOVER_64.to_le_bytes());
        assert!(check_kernel(&old).is_ok());
        old[0x206..0x208].copy_from_slice(&0x0206u16.to_le_bytes());
        assert!(matches!(check_kernel(&old), Err(UkiError::KernelTooOld)));
    }

    #[test]
    fn checksum_in_pieces_matches_whole() {
        let data: Vec<u8> = (0..10_001u32).map(|i| (i * 17 % 256) as u8).collect();
        let whole = pe_checksum(&data, 100);
        let mut copy = data.clone();
        copy[100..104].fill(0);
        let mut sum = PeChecksum::default();
        for piece in copy.chunks(7) {
            sum.update(piece);
        }
        assert_eq!(sum.finish(copy.len() as u64), whole);
    }

    /// The checksum word by word, folding each carry in as it comes.
    fn folded_each_word(data: &[u8]) -> u32 {
        let mut sum = 0u32;
        for w in data.chunks(2) {
            let word = u32::from(w[0]) | w.get(1).map_or(0, |h| u32::from(*h) << 8);
            let s = sum + word;
            sum = (s & 0xFFFF) + (s >> 16);
        }
        sum.wrapping_add(data.len() as u32)
    }

    /// Folding once at the end is the same as folding after each word:
    /// all zeros, all ones (a carry on every word), odd lengths, pieces.
    #[test]
    fn checksum_folded_at_the_end_is_folded_each_word() {
        let mixed: Vec<u8> = (0..70_001u32).map(|i| (i * 131 % 251) as u8).collect();
        for data in [vec![0u8; 4097], vec![0xFF; 100_000], vec![0xFF; 3], mixed] {
            let mut sum = PeChecksum::default();
            for piece in data.chunks(4095) {
                sum.update(piece);
            }
            assert_eq!(sum.finish(data.len() as u64), folded_each_word(&data));
        }
    }

    const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

    fn checksum_field(file: &[u8]) -> (u32, usize) {
        let nt = u32::from_le_bytes(file[0x3C..0x40].try_into().unwrap()) as usize;
        let at = nt + 4 + 20 + 64;
        (u32::from_le_bytes(file[at..at + 4].try_into().unwrap()), at)
    }

    /// The checksum agrees with binutils', which wrote the stub's and
    /// writes objcopy's output, and is what a written UKI carries.
    #[test]
    fn checksum_agrees_with_binutils() {
        let stub = std::fs::read(STUB).expect("systemd-boot-efi is not installed");
        let (field, at) = checksum_field(&stub);
        assert_eq!(pe_checksum(&stub, at), field);

        let dir = tempfile::tempdir().unwrap();
        let section = dir.path().join("section");
        std::fs::write(&section, b"ID=test\n").unwrap();
        let copy = dir.path().join("copy.efi");
        let status = std::process::Command::new("objcopy")
            .arg("--add-section")
            .arg(format!(".osrel={}", section.display()))
            .args(["--change-section-vma", ".osrel=0x40000", STUB])
            .arg(&copy)
            .status()
            .unwrap();
        assert!(status.success());
        let copy = std::fs::read(&copy).unwrap();
        let (field, at) = checksum_field(&copy);
        assert_ne!(field, 0);
        assert_eq!(pe_checksum(&copy, at), field);

        let kernel = tiny_pe(3, 10, 0x8664);
        let initrd = b"initrd bytes";
        let parts = UkiParts {
            os_release: b"ID=test\n",
            cmdline: b"console=ttyS0",
            uname: None,
            kernel_len: kernel.len() as u64,
            initrd_len: initrd.len() as u64,
        };
        let uki = Uki::plan(&stub, &parts).unwrap();
        let mut out = std::io::Cursor::new(Vec::new());
        uki.write(&mut out, &mut &kernel[..], &mut [&mut &initrd[..]])
            .unwrap();
        let file = out.into_inner();
        assert_eq!(file.len() as u64, uki.layout().size);
        let (field, at) = checksum_field(&file);
        assert_eq!(pe_checksum(&file, at), field);
    }
}
