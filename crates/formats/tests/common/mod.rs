//! What the ISO and UKI tests share: running the oracles, reading trees
//! back, the test kernel and a marker initramfs, qemu with a time limit.

#![allow(clippy::disallowed_methods, reason = "boot deadlines read the clock")]
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod tree;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use slipway_formats::uki::{Uki, UkiLayout, UkiParts};

#[allow(unused_imports)]
pub use slipway_testkit::initramfs::{kernel_dir, need};

/// Runs `cmd`, fails the test with its output if it fails; returns stdout
/// and stderr together.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{text}",
        out.status
    );
    text
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// What a path is, as read back from a filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Obj {
    File(String),
    Dir,
    Symlink(String),
    Char(u64),
    Block(u64),
    Fifo,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snap {
    pub obj: Obj,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
}

/// Every path under `root` (relative, without `./`), with what it is.
pub fn snapshot(root: &Path) -> BTreeMap<String, Snap> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Snap>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            let m = fs::symlink_metadata(&path).unwrap();
            let ft = m.file_type();
            let obj = if ft.is_dir() {
                Obj::Dir
            } else if ft.is_symlink() {
                Obj::Symlink(fs::read_link(&path).unwrap().to_string_lossy().into_owned())
            } else if ft.is_char_device() {
                Obj::Char(m.rdev())
            } else if ft.is_block_device() {
                Obj::Block(m.rdev())
            } else if ft.is_fifo() {
                Obj::Fifo
            } else {
                Obj::File(sha256_file(&path))
            };
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(
                rel,
                Snap {
                    obj,
                    mode: m.permissions().mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    mtime: m.mtime(),
                },
            );
            if ft.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Extracts the whole image with xorriso (Rock Ridge: names, modes,
/// owners, links, devices, hard links).
pub fn extract(iso: &Path, dir: &Path) {
    run(Command::new(need("xorriso"))
        .args(["-osirrox", "on:device_files", "-hardlinks", "on", "-indev"])
        .arg(iso)
        .args(["-extract", "/"])
        .arg(dir));
}

/// xorriso's reports on an image: El Torito entries and the system area.
pub fn xorriso_report(iso: &Path) -> String {
    run(Command::new(need("xorriso")).arg("-indev").arg(iso).args([
        "-report_el_torito",
        "plain",
        "-report_system_area",
        "plain",
    ]))
}

/// A gzip newc initramfs whose `/init` (a busybox script) prints
/// `marker-42` (computed by the shell, so those bytes are in no file) and
/// powers the machine off.
pub fn marker_initrd(work: &Path, marker: &str) -> PathBuf {
    let root = work.join("initrd-root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("dev")).unwrap();
    fs::copy(need("busybox"), root.join("bin/busybox")).unwrap();
    fs::write(
        root.join("init"),
        format!(
            "#!/bin/busybox sh\n/bin/busybox echo {marker}-$((6*7))\n/bin/busybox poweroff -f\n"
        ),
    )
    .unwrap();
    fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755)).unwrap();
    let initrd = work.join("initrd.gz");
    run(Command::new("sh").arg("-ec").arg(format!(
        "cd {} && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > {}",
        root.display(),
        initrd.display()
    )));
    initrd
}

/// Runs qemu (TCG, no display, no reboot) until it exits or `timeout`
/// passes; returns its console output. Fails the test on a timeout.
pub fn qemu(args: &[String], timeout: Duration) -> String {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(need("qemu-system-x86_64"))
        .args(["-accel", "tcg", "-m", "512", "-nographic", "-no-reboot"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let out = fs::read_to_string(log.path()).unwrap_or_default();
            panic!("qemu {args:?} did not finish in {timeout:?}; console:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    String::from_utf8_lossy(&fs::read(log.path()).unwrap()).into_owned()
}

/// OVMF's code (read-only) and a fresh copy of its variables in `work`.
pub fn ovmf(work: &Path) -> Vec<String> {
    let code = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd");
    let vars = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
    assert!(
        code.is_file() && vars.is_file(),
        "OVMF is not installed (Debian package ovmf)"
    );
    let copy = work.join("vars.fd");
    fs::copy(vars, &copy).unwrap();
    vec![
        "-machine".into(),
        "q35".into(),
        "-drive".into(),
        format!("if=pflash,format=raw,readonly=on,file={}", code.display()),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", copy.display()),
    ]
}

/// Bytes `offset..offset+len` of a file.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    let mut f = fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

pub const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

pub fn stub() -> Vec<u8> {
    fs::read(STUB).expect("linuxx64.efi.stub is missing: Debian package systemd-boot-efi")
}

/// Writes a UKI of the test kernel and `initrd` (given in two pieces).
pub fn write_uki(path: &Path, initrd: &Path, cmdline: &str) -> UkiLayout {
    let kernel = kernel_dir().join("vmlinuz");
    let version = fs::read_to_string(kernel_dir().join("version")).unwrap();
    let initrd_bytes = fs::read(initrd).unwrap();
    let parts = UkiParts {
        os_release: b"ID=slipway\nNAME=slipway\n",
        cmdline: cmdline.as_bytes(),
        uname: Some(version.trim().as_bytes()),
        kernel_len: fs::metadata(&kernel).unwrap().len(),
        initrd_len: initrd_bytes.len() as u64,
    };
    let uki = Uki::plan(&stub(), &parts).unwrap();
    let mut out = fs::File::create(path).unwrap();
    let (a, b) = initrd_bytes.split_at(initrd_bytes.len() / 3);
    uki.write(
        &mut out,
        &mut fs::File::open(&kernel).unwrap(),
        &mut [&mut &a[..], &mut &b[..]],
    )
    .unwrap();
    assert_eq!(fs::metadata(path).unwrap().len(), uki.layout().size);
    uki.layout().clone()
}

/// A FAT image of `mib` MiB (4 KiB clusters, so data is 4 KiB-aligned)
/// holding `file` as `EFI/BOOT/BOOTX64.EFI`, made with dosfstools and
/// mtools; returns where that file's bytes start in the image.
pub fn efi_fat(path: &Path, file: &Path, mib: u64) -> u64 {
    let _ = fs::remove_file(path);
    run(Command::new(need("mkfs.vfat"))
        .args(["-s", "8", "-n", "EFIBOOT", "-i", "12345678", "-C"])
        .arg(path)
        .arg((mib * 1024).to_string()));
    let image = format!("{}", path.display());
    run(Command::new(need("mmd")).args(["-i", &image, "::/EFI", "::/EFI/BOOT"]));
    run(Command::new(need("mcopy"))
        .args(["-i", &image])
        .arg(file)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
    // The file's clusters, which must be one run: "<3-3234>".
    let chain = run(Command::new(need("mshowfat")).args(["-i", &image, "::/EFI/BOOT/BOOTX64.EFI"]));
    let runs: Vec<&str> = chain
        .split('<')
        .skip(1)
        .map(|r| r.split('>').next().unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "not contiguous: {chain}");
    let first: u64 = runs[0].split('-').next().unwrap().trim().parse().unwrap();
    // The data area's start, from the boot sector.
    let bs = read_at(path, 0, 512);
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([bs[o], bs[o + 1]]));
    let u32_at = |o: usize| u64::from(u32::from_le_bytes(bs[o..o + 4].try_into().unwrap()));
    let bytes_per_sector = u16_at(11);
    let per_cluster = u64::from(bs[13]);
    let reserved = u16_at(14);
    let fats = u64::from(bs[16]);
    let root_sectors = (u16_at(17) * 32).div_ceil(bytes_per_sector);
    let fat_sectors = if u16_at(22) != 0 {
        u16_at(22)
    } else {
        u32_at(36)
    };
    let data = (reserved + fats * fat_sectors + root_sectors) * bytes_per_sector;
    data + (first - 2) * per_cluster * bytes_per_sector
}
