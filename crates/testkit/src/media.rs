//! Boot media made with the standard tools (objcopy, xorriso, sfdisk,
//! mkfs.vfat, mtools, qemu-img), as the test environment's recipes make
//! them: independent references for what `slipway run` detects and boots.
//!
//! Needs binutils, systemd-boot-efi, xorriso, isolinux, syslinux-common,
//! fdisk, dosfstools, mtools and qemu-utils. Like the other boot helpers
//! these panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::initramfs::need;

/// systemd's EFI stub (systemd-boot-efi).
pub const EFI_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// isolinux (isolinux).
pub const ISOLINUX: &str = "/usr/lib/ISOLINUX/isolinux.bin";
/// The isohybrid MBR (isolinux).
pub const ISOHDPFX: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
/// isolinux's second stage (syslinux-common).
pub const LDLINUX: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";
/// The EFI system partition's GPT type.
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

fn file(path: &str) -> &Path {
    let p = Path::new(path);
    assert!(
        p.is_file(),
        "{path} is missing: {}",
        crate::initramfs::SETUP
    );
    p
}

/// Run a command and fail the test with its output if it fails.
pub fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A unified kernel image: systemd's stub with `.osrel`, `.cmdline`,
/// `.linux` and `.initrd` sections added by objcopy.
pub fn uki(out: &Path, kernel: &Path, initrd: &Path, cmdline: &str) {
    let dir = out.parent().unwrap();
    let osrel = dir.join("uki-os-release");
    let cmd = dir.join("uki-cmdline");
    fs::write(&osrel, "ID=slipway-test\n").unwrap();
    fs::write(&cmd, cmdline).unwrap();
    // The initrd's address must lie above the whole kernel.
    let linux = 0x200_0000u64;
    let kernel_len = fs::metadata(kernel).unwrap().len();
    let initrd_at = (linux + kernel_len + (4 << 20)).next_multiple_of(1 << 20);
    let section = |name: &str, path: &Path, vma: u64| {
        [
            "--add-section".to_owned(),
            format!("{name}={}", path.display()),
            "--change-section-vma".to_owned(),
            format!("{name}={vma:#x}"),
        ]
    };
    let mut objcopy = Command::new(need("objcopy"));
    objcopy
        .args(section(".osrel", &osrel, 0x2_0000))
        .args(section(".cmdline", &cmd, 0x3_0000))
        .args(section(".linux", kernel, linux))
        .args(section(".initrd", initrd, initrd_at))
        .arg(file(EFI_STUB))
        .arg(out);
    run(&mut objcopy);
}

/// A FAT image holding `efi_app` as `\EFI\BOOT\BOOTX64.EFI` (an El Torito
/// EFI boot image).
pub fn efi_fat(out: &Path, efi_app: &Path) {
    let kib = fs::metadata(efi_app).unwrap().len() / 1024 + 2048;
    let _ = fs::remove_file(out);
    run(Command::new(need("mkfs.vfat"))
        .arg("-C")
        .arg(out)
        .arg(kib.to_string()));
    let image = out.display().to_string();
    run(Command::new(need("mmd")).args(["-i", &image, "::/EFI", "::/EFI/BOOT"]));
    run(Command::new(need("mcopy"))
        .args(["-i", &image])
        .arg(efi_app)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
}

/// What goes on an ISO.
#[derive(Debug, Default)]
pub struct Iso<'a> {
    /// Boot with isolinux: the kernel, initrd and append line.
    pub bios: Option<(&'a Path, &'a Path, &'a str)>,
    /// An El Torito EFI FAT image (see [`efi_fat`]).
    pub efi: Option<&'a Path>,
    /// The isohybrid MBR (needs `bios`).
    pub hybrid: bool,
    /// Plain files at the root: `(name, contents)`.
    pub files: &'a [(&'a str, &'a [u8])],
}

/// An ISO 9660 image made by xorriso.
pub fn iso(out: &Path, spec: &Iso<'_>) {
    let tree = out.with_extension("tree");
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(&tree).unwrap();
    for (name, bytes) in spec.files {
        fs::write(tree.join(name), bytes).unwrap();
    }
    let mut args: Vec<String> = vec![
        "-as".into(),
        "mkisofs".into(),
        "-quiet".into(),
        "-o".into(),
        out.display().to_string(),
        "-V".into(),
        "SLIPWAYTEST".into(),
        "-J".into(),
        "-R".into(),
    ];
    if let Some((kernel, initrd, append)) = spec.bios {
        fs::create_dir_all(tree.join("isolinux")).unwrap();
        fs::create_dir_all(tree.join("boot")).unwrap();
        fs::copy(file(ISOLINUX), tree.join("isolinux/isolinux.bin")).unwrap();
        fs::copy(file(LDLINUX), tree.join("isolinux/ldlinux.c32")).unwrap();
        fs::copy(kernel, tree.join("boot/kernel")).unwrap();
        fs::copy(initrd, tree.join("boot/initrd.img")).unwrap();
        fs::write(
            tree.join("isolinux/isolinux.cfg"),
            format!(
                "DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nSERIAL 0 115200\nLABEL linux\n  KERNEL /boot/kernel\n  APPEND initrd=/boot/initrd.img {append}\n"
            ),
        )
        .unwrap();
        if spec.hybrid {
            args.extend([
                "-isohybrid-mbr".into(),
                file(ISOHDPFX).display().to_string(),
            ]);
        }
        args.extend(
            [
                "-c",
                "isolinux/boot.cat",
                "-b",
                "isolinux/isolinux.bin",
                "-no-emul-boot",
                "-boot-load-size",
                "4",
                "-boot-info-table",
            ]
            .map(String::from),
        );
    }
    if let Some(fat) = spec.efi {
        fs::create_dir_all(tree.join("EFI")).unwrap();
        fs::copy(fat, tree.join("EFI/efiboot.img")).unwrap();
        if spec.bios.is_some() {
            args.push("-eltorito-alt-boot".into());
        } else {
            args.extend(["-c".into(), "boot.cat".into()]);
        }
        args.extend(["-e", "EFI/efiboot.img", "-no-emul-boot"].map(String::from));
        if spec.hybrid {
            args.push("-isohybrid-gpt-basdat".into());
        }
    }
    args.push(tree.display().to_string());
    run(Command::new(need("xorriso")).args(&args));
}

/// Feed `script` to sfdisk for the disk image `disk`.
pub fn sfdisk(disk: &Path, script: &str) {
    let mut child = Command::new(need("sfdisk"))
        .arg("-q")
        .arg(disk)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A raw GPT disk of `mib` MiB whose one partition, from 1 MiB, is an ESP
/// (FAT32) holding `efi_app` as `\EFI\BOOT\BOOTX64.EFI`; no BIOS boot code.
pub fn gpt_esp_disk(out: &Path, efi_app: &Path, mib: u64) {
    let _ = fs::remove_file(out);
    fs::File::create(out).unwrap().set_len(mib << 20).unwrap();
    sfdisk(
        out,
        &format!("label: gpt\nstart=2048, size=, type={ESP_TYPE}, name=\"ESP\"\n"),
    );
    let blocks = ((mib << 20) / 512 - 2048 - 33) / 2;
    run(Command::new(need("mkfs.vfat"))
        .args(["-F", "32", "-n", "ESP", "--offset", "2048"])
        .arg(out)
        .arg(blocks.to_string()));
    let image = format!("{}@@1M", out.display());
    run(Command::new(need("mmd")).args(["-i", &image, "::/EFI", "::/EFI/BOOT"]));
    run(Command::new(need("mcopy"))
        .args(["-i", &image])
        .arg(efi_app)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
}

/// `qemu-img convert -O FORMAT [-o OPTIONS] raw out`; returns `out`.
pub fn convert(raw: &Path, out: &Path, format: &str, options: Option<&str>) -> PathBuf {
    let mut cmd = Command::new(need("qemu-img"));
    cmd.args(["convert", "-q", "-f", "raw", "-O", format]);
    if let Some(o) = options {
        cmd.args(["-o", o]);
    }
    run(cmd.arg(raw).arg(out));
    out.to_path_buf()
}
