//! Disk images checked by independent readers: fsck.fat and mtools for FAT,
//! sfdisk and sgdisk for the partition tables, qemu-img for qcow2, VHD and
//! VMDK, GNU tar for the GCP tarball. Each check is also shown to fail on
//! a copy with one byte changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use slipway_formats::disk::fat::FatFile;
use slipway_formats::disk::{
    Disk, DiskError, DiskReport, FatBuilder, FatOptions, FatType, PartitionContent, PartitionSize,
    PartitionSpec, PartitionType, Placement, RawImage, ReaderContent, Region, Table, gcp, qcow2,
    vhd, vmdk,
};

const MIB: u64 = 1 << 20;

/// Runs a tool; its success and everything it printed.
fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("{program} ({e}): cargo xtask deps lists its package"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(program: &str, args: &[&str]) -> String {
    let (success, text) = run(program, args);
    assert!(success, "{program} {args:?} failed:\n{text}");
    text
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A copy of `path` with the byte at `at` changed.
fn corrupt(path: &Path, at: u64) -> PathBuf {
    let copy = path.with_extension("corrupt");
    // cp keeps the holes of the sparse images.
    ok("cp", &["--sparse=always", p(path), p(&copy)]);
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&copy)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    copy
}

/// Deterministic, incompressible-looking bytes: a 1 MiB xorshift block
/// repeated, each MiB starting with its index and a seed, so misplaced
/// blocks are noticed.
struct Pattern {
    len: u64,
    pos: u64,
    seed: u64,
    block: Vec<u8>,
}

impl Pattern {
    fn new(len: u64, seed: u64) -> Pattern {
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
        let mut block = Vec::with_capacity(MIB as usize);
        while block.len() < MIB as usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block.extend_from_slice(&x.to_le_bytes());
        }
        Pattern {
            len,
            pos: 0,
            seed,
            block,
        }
    }

    fn bytes(len: u64, seed: u64) -> Vec<u8> {
        let mut v = Vec::new();
        Pattern::new(len, seed).read_to_end(&mut v).unwrap();
        v
    }

    fn sha256(len: u64, seed: u64) -> Vec<u8> {
        sha256_of(&mut Pattern::new(len, seed))
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let off = (self.pos % MIB) as usize;
        let n = buf
            .len()
            .min(MIB as usize - off)
            .min((self.len - self.pos) as usize);
        buf[..n].copy_from_slice(&self.block[off..off + n]);
        if off < 16 {
            let mut head = [0u8; 16];
            head[..8].copy_from_slice(&(self.pos / MIB).to_le_bytes());
            head[8..].copy_from_slice(&self.seed.to_le_bytes());
            let k = (16 - off).min(n);
            buf[..k].copy_from_slice(&head[off..off + k]);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn sha256_of(r: &mut dyn Read) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            return h.finalize().to_vec();
        }
        h.update(&buf[..n]);
    }
}

fn sha256_file(path: &Path) -> Vec<u8> {
    sha256_of(&mut File::open(path).unwrap())
}

/// mcopy's copy of `path` inside the FAT image at `img` (`img@@offset` for
/// a partition).
fn mcopy(img: &str, path: &str, dir: &Path) -> Vec<u8> {
    let dest = dir.join("mcopy.out");
    let _ = fs::remove_file(&dest);
    ok("mcopy", &["-n", "-i", img, &format!("::/{path}"), p(&dest)]);
    fs::read(&dest).unwrap()
}

/// Files with long, short, upper- and lower-case and non-ASCII names, in
/// nested directories, one directory spanning several clusters.
fn sample_files() -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        (
            "EFI/BOOT/BOOTX64.EFI".to_string(),
            Pattern::bytes(300_000, 1),
        ),
        ("boot/vmlinuz".into(), Pattern::bytes(2 * MIB + 7, 2)),
        ("boot/initrd.img".into(), Pattern::bytes(4096, 3)),
        (
            "loader/entries/a long name, with spaces.conf".into(),
            b"title slipway\n".to_vec(),
        ),
        ("Déjà vu/naïve résumé.txt".into(), b"unicode\n".to_vec()),
        ("empty".into(), Vec::new()),
        ("README".into(), b"readme\n".to_vec()),
    ];
    for i in 0..150 {
        files.push((
            format!("many/entry number {i:03}.txt"),
            format!("{i}\n").into_bytes(),
        ));
    }
    files
}

fn fat_image(opts: FatOptions, files: &[(String, Vec<u8>)], dir: &Path) -> (PathBuf, Vec<FatFile>) {
    let mut b = FatBuilder::new(opts);
    for (path, data) in files {
        b.file(path, data.len() as u64, &data[..]).unwrap();
    }
    b.dir("EFI/empty directory").unwrap();
    let img = b.build().unwrap();
    let listed = img.files();
    let size = img.size();
    let path = dir.join("fat.img");
    img.write_sparse(File::create(&path).unwrap()).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    (path, listed)
}

#[test]
fn fat12_fat16_fat32_pass_fsck_and_read_back_with_mtools() {
    let files = sample_files();
    let cases = [
        (FatType::Fat12, None, 2048, "12 bit"),
        (FatType::Fat16, Some(32 * MIB + 3 * 512), 4096, "16 bit"),
        (FatType::Fat32, Some(300 * MIB), 4096, "32 bit"),
    ];
    for (ty, size, cluster, bits) in cases {
        let dir = tempfile::tempdir().unwrap();
        let opts = FatOptions {
            fat_type: Some(ty),
            size,
            cluster_size: cluster,
            label: Some("SLIPWAY".into()),
            ..FatOptions::default()
        };
        let (img, listed) = fat_image(opts, &files, dir.path());
        let text = ok("fsck.fat", &["-n", "-v", p(&img)]);
        assert!(text.contains(bits), "{ty:?}: {text}");
        let listing = ok("mdir", &["-/", "-i", p(&img), "::/"]);
        assert!(listing.contains("SLIPWAY"), "{listing}");
        for (path, data) in &files {
            assert_eq!(&mcopy(p(&img), path, dir.path()), data, "{ty:?} {path}");
        }
        // The reported offsets hold each file's bytes, aligned to the cluster.
        let raw = fs::read(&img).unwrap();
        for f in &listed {
            let data = &files.iter().find(|(p, _)| *p == f.path).unwrap().1;
            assert_eq!(f.size, data.len() as u64);
            assert_eq!(f.offset % u64::from(cluster), 0, "{}", f.path);
            if f.size > 0 {
                assert_eq!(
                    &raw[f.offset as usize..][..data.len()],
                    &data[..],
                    "{}",
                    f.path
                );
            }
        }
        // Changed bytes are noticed: in the second FAT by fsck.fat, in a
        // file's data by the comparison.
        let fat2 = {
            let res = u64::from(u16::from_le_bytes([raw[14], raw[15]]));
            let fat = match u16::from_le_bytes([raw[22], raw[23]]) {
                0 => u64::from(u32::from_le_bytes(raw[36..40].try_into().unwrap())),
                n => u64::from(n),
            };
            (res + fat) * 512
        };
        let bad = corrupt(&img, fat2 + 5);
        let (clean, text) = run("fsck.fat", &["-n", p(&bad)]);
        assert!(!clean, "{ty:?}: fsck.fat missed a changed FAT:\n{text}");
        let vmlinuz = listed.iter().find(|f| f.path == "boot/vmlinuz").unwrap();
        let bad = corrupt(&img, vmlinuz.offset + 12345);
        assert_ne!(
            mcopy(p(&bad), "boot/vmlinuz", dir.path()),
            files[1].1,
            "{ty:?}: changed data read back unchanged"
        );
    }
}

#[test]
fn a_fat32_volume_holds_a_file_of_several_hundred_megabytes() {
    let dir = tempfile::tempdir().unwrap();
    let big = 300 * MIB + 12345;
    let zeros = 100 * MIB;
    let mut b = FatBuilder::new(FatOptions {
        fat_type: Some(FatType::Fat32),
        cluster_size: 4096,
        ..FatOptions::default()
    });
    b.file("big.bin", big, Pattern::new(big, 7)).unwrap();
    b.file("zeros.bin", zeros, io::repeat(0).take(zeros))
        .unwrap();
    let img = b.build().unwrap();
    assert_eq!(img.fat_type(), FatType::Fat32);
    let path = dir.path().join("big.img");
    img.write_sparse(File::create(&path).unwrap()).unwrap();
    let meta = fs::metadata(&path).unwrap();
    // The zeros are holes: well under the 400 MiB the volume spans.
    assert!(
        meta.blocks() * 512 < big + 10 * MIB,
        "{} blocks",
        meta.blocks()
    );
    ok("fsck.fat", &["-n", p(&path)]);
    let out = dir.path().join("big.out");
    ok("mcopy", &["-n", "-i", p(&path), "::/big.bin", p(&out)]);
    assert_eq!(sha256_file(&out), Pattern::sha256(big, 7));
    fs::remove_file(&out).unwrap();
    ok("mcopy", &["-n", "-i", p(&path), "::/zeros.bin", p(&out)]);
    assert_eq!(fs::metadata(&out).unwrap().len(), zeros);
    assert!(fs::read(&out).unwrap().iter().all(|&b| b == 0));
}

fn esp() -> FatBuilder<'static> {
    let mut b = FatBuilder::new(FatOptions {
        label: Some("EFI".into()),
        ..FatOptions::default()
    });
    b.file("EFI/BOOT/BOOTX64.EFI", 3 * MIB, Pattern::new(3 * MIB, 11))
        .unwrap();
    b.file("loader/loader.conf", 8, &b"timeout\n"[..]).unwrap();
    b
}

/// Content with data, a long run of zeros, more data and an odd end.
fn root_content() -> Vec<u8> {
    let mut v = Pattern::bytes(8 * MIB, 21);
    v.resize(24 * MIB as usize, 0);
    v.extend(Pattern::bytes(5 * MIB + 123, 22));
    v
}

fn spec<'a>(
    name: &str,
    kind: PartitionType,
    size: PartitionSize,
    content: impl PartitionContent + 'a,
) -> PartitionSpec<'a> {
    PartitionSpec {
        name: name.into(),
        kind,
        size,
        bootable: false,
        guid: None,
        content: Box::new(content),
    }
}

/// A GPT disk of `size`: an ESP, a root partition and a data partition
/// filling the rest, with data at its start.
fn gpt_disk(dir: &Path, size: u64) -> (PathBuf, DiskReport) {
    let root = root_content();
    let mut disk = Disk::new(Table::Gpt {
        boot_code: [0; 440],
    });
    disk.size = Some(size);
    disk.partitions.push(spec(
        "EFI system",
        PartitionType::EFI_SYSTEM,
        PartitionSize::Bytes(32 * MIB),
        esp(),
    ));
    disk.partitions.push(spec(
        "root",
        PartitionType::LINUX,
        PartitionSize::Fit,
        ReaderContent::new("root", root.len() as u64, io::Cursor::new(root)),
    ));
    disk.partitions.push(spec(
        "data",
        PartitionType::LINUX,
        PartitionSize::Rest,
        ReaderContent::new("data", 6, &b"hello\n"[..]),
    ));
    let path = dir.join("disk.img");
    let (_, report) = disk.write(File::create(&path).unwrap()).unwrap();
    (path, report)
}

/// The bytes of one partition of `img`, as a file.
fn extract(img: &Path, offset: u64, len: u64, to: &Path) {
    let mut src = File::open(img).unwrap();
    src.seek(SeekFrom::Start(offset)).unwrap();
    let mut dst = File::create(to).unwrap();
    io::copy(&mut src.take(len), &mut dst).unwrap();
}

#[test]
fn gpt_disks_pass_sfdisk_and_sgdisk() {
    let dir = tempfile::tempdir().unwrap();
    let (img, report) = gpt_disk(dir.path(), 256 * MIB);
    assert_eq!(fs::metadata(&img).unwrap().len(), 256 * MIB);
    let verify = ok("sfdisk", &["--verify", p(&img)]);
    assert!(verify.contains("No errors detected"), "{verify}");
    let sg = ok("sgdisk", &["-v", p(&img)]);
    assert!(sg.contains("No problems found"), "{sg}");
    assert!(!sg.contains("CRC") && !sg.contains("Caution"), "{sg}");
    let dump = ok("sfdisk", &["--dump", p(&img)]);
    assert!(dump.contains("label: gpt"), "{dump}");
    let disk_guid = report.disk_guid.unwrap();
    assert!(dump.contains(&format!("label-id: {disk_guid}")), "{dump}");
    let types = [
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    ];
    for (part, ty) in report.partitions.iter().zip(types) {
        let line = format!(
            "{}{} : start={:>12}, size={:>12}, type={ty}, uuid={}, name=\"{}\"",
            p(&img),
            part.number,
            part.offset / 512,
            part.len / 512,
            part.guid.unwrap(),
            part.name
        );
        assert!(dump.contains(&line), "{line}\n{dump}");
    }
    // The ESP is a FAT volume that says where it is on the disk.
    let esp = &report.partitions[0];
    let esp_img = dir.path().join("esp.img");
    extract(&img, esp.offset, esp.len, &esp_img);
    ok("fsck.fat", &["-n", p(&esp_img)]);
    let hidden = fs::read(&esp_img).unwrap()[28..32].to_vec();
    assert_eq!(hidden, (esp.offset as u32 / 512).to_le_bytes());
    let at = format!("{}@@{}", p(&img), esp.offset);
    assert_eq!(
        mcopy(&at, "EFI/BOOT/BOOTX64.EFI", dir.path()),
        Pattern::bytes(3 * MIB, 11)
    );
    // The root partition holds its content, zeros after it.
    let root = &report.partitions[1];
    let root_img = dir.path().join("root.img");
    extract(&img, root.offset, root.len, &root_img);
    let bytes = fs::read(&root_img).unwrap();
    let want = root_content();
    assert_eq!(&bytes[..want.len()], &want[..]);
    assert!(bytes[want.len()..].iter().all(|&b| b == 0));
    // Same input, same bytes.
    let again = tempfile::tempdir().unwrap();
    let (img2, report2) = gpt_disk(again.path(), 256 * MIB);
    assert_eq!(report, report2);
    assert_eq!(sha256_file(&img), sha256_file(&img2));
    // A changed byte in the primary array, or in the backup header, fails
    // a CRC.
    for at in [2 * 512 + 40, 256 * MIB - 512 + 30] {
        let bad = corrupt(&img, at);
        let (_, text) = run("sgdisk", &["-v", p(&bad)]);
        assert!(text.contains("CRC"), "at {at}:\n{text}");
    }
}

#[test]
fn mbr_disks_carry_boot_code_signature_and_active_flag() {
    let dir = tempfile::tempdir().unwrap();
    let boot: [u8; 440] = std::array::from_fn(|i| (i * 7 % 256) as u8);
    let mut disk = Disk::new(Table::Mbr { boot_code: boot });
    let mut part = spec("boot", PartitionType::FAT, PartitionSize::Fit, esp());
    part.bootable = true;
    disk.partitions.push(part);
    disk.partitions.push(spec(
        "data",
        PartitionType::LINUX,
        PartitionSize::Bytes(3 * MIB),
        ReaderContent::new("data", 3, &b"abc"[..]),
    ));
    let img = dir.path().join("mbr.img");
    let (_, report) = disk.write(File::create(&img).unwrap()).unwrap();
    // Fit: 3 MiB of file and FAT metadata round up to 4 MiB; 1 + 4 + 3.
    assert_eq!(report.size, 8 * MIB);
    let verify = ok("sfdisk", &["--verify", p(&img)]);
    assert!(verify.contains("No errors detected"), "{verify}");
    let dump = ok("sfdisk", &["--dump", p(&img)]);
    let sig = report.mbr_signature.unwrap();
    assert!(dump.contains("label: dos"), "{dump}");
    assert!(dump.contains(&format!("label-id: 0x{sig:08x}")), "{dump}");
    let first = format!(
        "{}1 : start=        2048, size=        8192, type=c, bootable",
        p(&img)
    );
    let second = format!(
        "{}2 : start=       10240, size=        6144, type=83",
        p(&img)
    );
    assert!(dump.contains(&first) && dump.contains(&second), "{dump}");
    let bytes = fs::read(&img).unwrap();
    assert_eq!(&bytes[..440], &boot[..]);
    let at = format!("{}@@1M", p(&img));
    assert_eq!(mcopy(&at, "loader/loader.conf", dir.path()), b"timeout\n");
    // Without its signature the sector is no partition table.
    let bad = corrupt(&img, 510);
    let (found, text) = run("sfdisk", &["--dump", p(&bad)]);
    assert!(!found, "{text}");
}

/// Content that writes more than it said it would.
struct Liar;

impl PartitionContent for Liar {
    fn min_len(&self) -> Result<u64, DiskError> {
        Ok(MIB)
    }

    fn write(self: Box<Self>, out: &mut Region<'_>, _: Placement) -> Result<(), DiskError> {
        out.write_all(&vec![1u8; 2 * MIB as usize])
            .map_err(|e| DiskError::Io {
                what: "liar".into(),
                source: e,
            })
    }
}

#[test]
fn content_that_does_not_fit_is_refused_with_the_size_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = Disk::new(Table::Gpt {
        boot_code: [0; 440],
    });
    disk.size = Some(2 * MIB);
    disk.partitions.push(spec(
        "EFI",
        PartitionType::EFI_SYSTEM,
        PartitionSize::Fit,
        esp(),
    ));
    let out = dir.path().join("small.img");
    let err = disk.write(File::create(&out).unwrap()).unwrap_err();
    let DiskError::DoesNotFit { size, needed } = err else {
        panic!("{err}");
    };
    assert_eq!((size, needed), (2 * MIB, 6 * MIB));
    assert!(err_text(size, needed).contains("need at least 6 MiB"));
    // Nothing was written.
    assert_eq!(fs::metadata(&out).unwrap().len(), 0);

    let mut disk = Disk::new(Table::Mbr {
        boot_code: [0; 440],
    });
    disk.partitions
        .push(spec("x", PartitionType::LINUX, PartitionSize::Fit, Liar));
    let err = disk
        .write(File::create(dir.path().join("liar.img")).unwrap())
        .unwrap_err();
    let err = slipway_contract::errors::chain(&err);
    assert!(err.contains("past the end"), "{err}");
}

fn err_text(size: u64, needed: u64) -> String {
    DiskError::DoesNotFit { size, needed }.to_string()
}

/// A GPT disk of `size` and its scan.
fn raw_fixture(dir: &Path, size: u64) -> (PathBuf, RawImage) {
    let (img, _) = gpt_disk(dir, size);
    let raw = RawImage::open(&img).unwrap();
    (img, raw)
}

/// The virtual size `qemu-img info` reads (its first line of that name is
/// the image's, later ones its file's).
fn qemu_img_size(path: &Path, format: &str) -> u64 {
    let info = ok("qemu-img", &["info", "-f", format, p(path)]);
    let line = info
        .lines()
        .find(|l| l.starts_with("virtual size:"))
        .unwrap();
    let bytes = line.rsplit('(').next().unwrap();
    bytes.trim_end_matches(" bytes)").parse().unwrap()
}

/// `qemu-img compare` of the raw image and `out`: identical or not.
fn compare(raw: &Path, out: &Path, format: &str) -> (bool, String) {
    run(
        "qemu-img",
        &["compare", "-f", "raw", "-F", format, p(raw), p(out)],
    )
}

#[test]
fn qcow2_passes_qemu_img_check_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let (img, raw) = raw_fixture(dir.path(), 1 << 30);
    let out = dir.path().join("disk.qcow2");
    let n = qcow2::write(&raw, io::BufWriter::new(File::create(&out).unwrap())).unwrap();
    assert_eq!(fs::metadata(&out).unwrap().len(), n);
    let check = ok("qemu-img", &["check", "-f", "qcow2", p(&out)]);
    assert!(check.contains("No errors were found"), "{check}");
    let (same, text) = compare(&img, &out, "qcow2");
    assert!(same && text.contains("Images are identical"), "{text}");
    assert_eq!(qemu_img_size(&out, "qcow2"), 1 << 30);
    // Only clusters with data are stored: ~40 MiB of a 1 GiB disk.
    assert!(n < 48 * MIB, "{n}");
    let mut again = Vec::new();
    qcow2::write(&raw, &mut again).unwrap();
    assert_eq!(Sha256::digest(&again).to_vec(), sha256_file(&out));
    // A changed data byte is a different disk; a changed refcount a corrupt one.
    let bad = corrupt(&out, n - 65536 + 3);
    assert!(!compare(&img, &bad, "qcow2").0);
    let refcounts = u64::from_be_bytes(again[48..56].try_into().unwrap());
    let block = u64::from_be_bytes(again[refcounts as usize..][..8].try_into().unwrap());
    let bad = corrupt(&out, block + 1);
    let (clean, text) = run("qemu-img", &["check", "-f", "qcow2", p(&bad)]);
    assert!(!clean, "{text}");
}

#[test]
fn fixed_vhd_is_the_raw_disk_with_a_footer() {
    // 256 MiB: qemu-img compares a fixed VHD byte by byte (it has no
    // allocation map), and its CHS geometry (520/16/63) still falls short
    // of the size, so the size read back shows the footer's size is used.
    const SIZE: u64 = 256 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let (img, raw) = raw_fixture(dir.path(), SIZE);
    let out = dir.path().join("disk.vhd");
    vhd::write_fixed(&raw, File::create(&out).unwrap(), 1_492_533_000).unwrap();
    let meta = fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), SIZE + 512);
    assert!(
        meta.blocks() * 512 < 64 * MIB,
        "holes kept: {} blocks",
        meta.blocks()
    );
    let (same, text) = compare(&img, &out, "vpc");
    assert!(same && text.contains("Images are identical"), "{text}");
    assert_eq!(qemu_img_size(&out, "vpc"), SIZE);
    let mut footer = [0u8; 512];
    File::open(&out)
        .unwrap()
        .read_exact_at(&mut footer, SIZE)
        .unwrap();
    assert_eq!(&footer[..8], b"conectix");
    assert_eq!(u32::from_be_bytes(footer[60..64].try_into().unwrap()), 2);
    let again = dir.path().join("again.vhd");
    vhd::write_fixed(&raw, File::create(&again).unwrap(), 1_492_533_000).unwrap();
    assert_eq!(sha256_file(&again), sha256_file(&out));
    // A changed footer fails its checksum; changed data is a different disk.
    let bad = corrupt(&out, SIZE + 48);
    let (opened, text) = run("qemu-img", &["info", "-f", "vpc", p(&bad)]);
    assert!(!opened && text.contains("checksum"), "{text}");
    let bad = corrupt(&out, 2 * MIB);
    assert!(!compare(&img, &bad, "vpc").0);
}

#[test]
fn dynamic_vhd_passes_qemu_img_compare() {
    let dir = tempfile::tempdir().unwrap();
    let (img, raw) = raw_fixture(dir.path(), 1 << 30);
    let out = dir.path().join("dynamic.vhd");
    let n = vhd::write_dynamic(&raw, io::BufWriter::new(File::create(&out).unwrap()), 0).unwrap();
    assert_eq!(fs::metadata(&out).unwrap().len(), n);
    let (same, text) = compare(&img, &out, "vpc");
    assert!(same && text.contains("Images are identical"), "{text}");
    assert_eq!(qemu_img_size(&out, "vpc"), 1 << 30);
    let bytes = fs::read(&out).unwrap();
    assert_eq!(&bytes[..512], &bytes[bytes.len() - 512..], "footer copy");
    assert_eq!(&bytes[512..520], b"cxsparse");
    assert_eq!(u32::from_be_bytes(bytes[60..64].try_into().unwrap()), 3);
    // Blocks of 2 MiB with data only: far less than the disk.
    assert!(n < 64 * MIB, "{n}");
    let mut again = Vec::new();
    vhd::write_dynamic(&raw, &mut again, 0).unwrap();
    assert_eq!(again, bytes);
    // The dynamic header has its own checksum; data changes are seen.
    let bad = corrupt(&out, 512 + 30);
    let (opened, text) = run("qemu-img", &["info", "-f", "vpc", p(&bad)]);
    assert!(!opened, "{text}");
    let bad = corrupt(&out, n - 512 - 1000);
    assert!(!compare(&img, &bad, "vpc").0);
}

#[test]
fn stream_optimized_vmdk_passes_qemu_img_check_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let (img, raw) = raw_fixture(dir.path(), 1 << 30);
    let out = dir.path().join("disk.vmdk");
    let n = vmdk::write(
        &raw,
        io::BufWriter::new(File::create(&out).unwrap()),
        "disk.vmdk",
    )
    .unwrap();
    assert_eq!(fs::metadata(&out).unwrap().len(), n);
    let check = ok("qemu-img", &["check", "-f", "vmdk", p(&out)]);
    assert!(check.contains("No errors were found"), "{check}");
    let (same, text) = compare(&img, &out, "vmdk");
    assert!(same && text.contains("Images are identical"), "{text}");
    assert_eq!(qemu_img_size(&out, "vmdk"), 1 << 30);
    let info = ok("qemu-img", &["info", "-f", "vmdk", p(&out)]);
    assert!(info.contains("create type: streamOptimized"), "{info}");
    let mut again = Vec::new();
    vmdk::write(&raw, &mut again, "disk.vmdk").unwrap();
    assert_eq!(Sha256::digest(&again).to_vec(), sha256_file(&out));
    // A changed byte inside the first compressed grain: a read error or
    // other data.
    let first = 128 * 512;
    let len = u32::from_le_bytes(again[first + 8..first + 12].try_into().unwrap());
    let bad = corrupt(&out, (first + 12) as u64 + u64::from(len) / 2);
    let (same, text) = compare(&img, &bad, "vmdk");
    assert!(!same, "{text}");
    // A changed footer magic: not an image.
    let bad = corrupt(&out, n - 1024);
    let (opened, text) = run("qemu-img", &["info", "-f", "vmdk", p(&bad)]);
    assert!(!opened, "{text}");
}

#[test]
fn gcp_tarball_extracts_with_gnu_tar_to_the_raw_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = gpt_disk(dir.path(), 128 * MIB);
    let raw = RawImage::open(&img).unwrap();
    let out = dir.path().join("disk.img.tar.gz");
    gcp::write(
        &raw,
        io::BufWriter::new(File::create(&out).unwrap()),
        1_492_533_000,
    )
    .unwrap();
    let listing = ok("tar", &["-tvzf", p(&out)]);
    let line = listing.lines().next().unwrap();
    assert!(
        line.starts_with("-rw-r--r-- 0/0") && line.contains(" 134217728 2017-04-18 16:30 disk.raw"),
        "{listing}"
    );
    assert_eq!(listing.lines().count(), 1, "{listing}");
    let x = dir.path().join("x");
    fs::create_dir(&x).unwrap();
    ok("tar", &["-xzf", p(&out), "-C", p(&x)]);
    assert_eq!(sha256_file(&x.join("disk.raw")), sha256_file(&img));
    let mut again = Vec::new();
    gcp::write(&raw, &mut again, 1_492_533_000).unwrap();
    assert_eq!(Sha256::digest(&again).to_vec(), sha256_file(&out));
    // A changed byte in the compressed stream fails gzip's check.
    let len = fs::metadata(&out).unwrap().len();
    let bad = corrupt(&out, len / 2);
    let y = dir.path().join("y");
    fs::create_dir(&y).unwrap();
    let (extracted, text) = run("tar", &["-xzf", p(&bad), "-C", p(&y)]);
    assert!(!extracted, "{text}");
}
