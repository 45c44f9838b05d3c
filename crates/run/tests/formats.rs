//! Every boot chain `slipway run` sets up, booted under qemu (TCG) with the
//! firmware it is for: a kernel with a squashfs and with an erofs root on a
//! virtio disk, a hybrid ISO as a CD (SeaBIOS, with a `--data` CD beside
//! it) and as a qcow2 disk (SeaBIOS), a UKI loaded by OVMF, a GPT disk with
//! an EFI system partition as a streamOptimized VMDK (OVMF) and an EFI-only
//! ISO (OVMF El Torito). Each boot is found by [`Boot::detect`] from the
//! file's bytes, as `slipway run FILE` finds it.
//!
//! The guest is the tiny busybox initramfs of `slipway_testkit::tiny`,
//! which powers off after its script; every boot has a timeout. The media
//! are made with the standard tools (`slipway_testkit::media`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use slipway_run::{Accel, Boot, DEFAULT_FIRMWARE, Firmware, Interrupt, Networking, Options, run};
use slipway_testkit::initramfs::{kernel_dir, need};
use slipway_testkit::media::{self, Iso, convert, efi_fat, gpt_esp_disk};
use slipway_testkit::tiny::{self, CDROM_MODULES, PRINT_DATA, UP};

/// The command line of every boot: the serial console, and no timer check
/// (a loaded host makes TCG fail it).
const CMDLINE: &str = "console=ttyS0 quiet no_timer_check panic=-1";

/// Boot `boot` with the firmware it asks for (`uefi`: as `--uefi`) and
/// return the console; fails unless the guest powered off cleanly.
fn boot_ok(boot: &Boot, state: &Path, uefi: bool, data: Option<&[u8]>) -> String {
    need("qemu-system-x86_64");
    let mut options = Options::new(state.to_path_buf());
    options.qemu = need("qemu-system-x86_64");
    options.accel = Accel::Tcg;
    options.mem_mb = 512;
    options.echo = false;
    options.networking = Networking::None;
    options.timeout = Some(Duration::from_secs(240));
    options.grace = Duration::from_secs(5);
    options.data = data.map(<[u8]>::to_vec);
    if boot.firmware(uefi).unwrap() == Firmware::Uefi {
        assert!(
            Path::new(DEFAULT_FIRMWARE).is_file(),
            "{DEFAULT_FIRMWARE} is missing: install Debian's ovmf"
        );
        options.firmware = Some(DEFAULT_FIRMWARE.into());
    }
    let outcome = run(boot, &options, &Interrupt::new()).unwrap();
    let console = outcome.console.clone();
    assert!(
        outcome.success(),
        "{boot:?} did not power off cleanly: {:?} timed out: {}\n{console}",
        outcome.status,
        outcome.timed_out
    );
    assert!(
        console.contains(UP),
        "{boot:?}: the init never ran\n{console}"
    );
    console
}

/// A script that mounts the `root=` device read-only and prints its
/// `marker` file.
const PRINT_ROOT: &str = r#"
for a in $(cat /proc/cmdline); do case "$a" in root=*) r="${a#root=}";; esac; done
i=0
while [ ! -e "$r" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /mnt
mount -o ro "$r" /mnt && echo "ROOT-MARKER $(cat /mnt/marker)"
"#;

/// `kernel+squashfs` and `kernel+erofs` prefixes: the root image is the
/// first virtio disk, `root=/dev/vda` is appended, and the initrd beside
/// them mounts it.
#[test]
fn kernel_with_a_root_image() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // erofs needs libcrc32c, and libcrc32c a crc32c (modprobe's soft
    // dependency, which busybox's insmod does not follow).
    let modules = ["virtio_blk", "squashfs", "crc32c_generic", "erofs"];
    let initrd = tiny::initramfs(dir, &modules, PRINT_ROOT);
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).unwrap();
    for (fs_name, suffix, make) in [
        (
            "squashfs",
            "-squashfs.img",
            "mksquashfs {tree} {out} -quiet -noappend",
        ),
        ("erofs", "-erofs.img", "mkfs.erofs --quiet {out} {tree}"),
    ] {
        fs::write(tree.join("marker"), format!("{fs_name}-root")).unwrap();
        let prefix = dir.join(fs_name);
        let with = |s: &str| PathBuf::from(format!("{}{s}", prefix.display()));
        fs::copy(kernel_dir().join("vmlinuz"), with("-kernel")).unwrap();
        fs::copy(&initrd, with("-initrd.img")).unwrap();
        fs::write(with("-cmdline"), CMDLINE).unwrap();
        let script = make
            .replace("{tree}", &tree.display().to_string())
            .replace("{out}", &with(suffix).display().to_string());
        media::run(Command::new("sh").args(["-ec", &script]));
        let boot = Boot::detect(&prefix).unwrap();
        assert!(
            matches!(&boot, Boot::KernelRoot { fs, cmdline, .. }
                if *fs == fs_name && cmdline.ends_with("root=/dev/vda")),
            "{boot:?}"
        );
        let console = boot_ok(&boot, &with("-state"), false, None);
        assert!(
            console.contains(&format!("ROOT-MARKER {fs_name}-root")),
            "{fs_name}: the root was not mounted\n{console}"
        );
    }
}

/// A hybrid (isolinux) ISO boots as a CD under SeaBIOS, with the `--data`
/// ISO as a second CD the guest reads `config` from; the same ISO as a
/// qcow2 disk boots from its MBR.
#[test]
fn hybrid_iso_as_a_cd_and_as_a_bios_disk() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let initrd = tiny::initramfs(dir, CDROM_MODULES, PRINT_DATA);
    let kernel = kernel_dir().join("vmlinuz");
    let iso = dir.join("hybrid.iso");
    media::iso(
        &iso,
        &Iso {
            bios: Some((&kernel, &initrd, CMDLINE)),
            hybrid: true,
            ..Iso::default()
        },
    );
    let boot = Boot::detect(&iso).unwrap();
    assert!(matches!(boot, Boot::Iso { .. }), "{boot:?}");
    let console = boot_ok(&boot, &dir.join("cd-state"), false, Some(b"hello-data"));
    assert!(
        console.contains("DATA-CONFIG /dev/sr1: hello-data"),
        "the --data CD was not read\n{console}"
    );

    let qcow2 = convert(&iso, &dir.join("hybrid.qcow2"), "qcow2", None);
    let boot = Boot::detect(&qcow2).unwrap();
    assert!(
        matches!(
            boot,
            Boot::Disk {
                format: "qcow2",
                ..
            }
        ),
        "{boot:?}"
    );
    assert_eq!(boot.firmware(false).unwrap(), Firmware::Bios);
    boot_ok(&boot, &dir.join("disk-state"), false, None);
}

/// OVMF boots a UKI through `-kernel`, the same UKI from the EFI system
/// partition of a GPT disk (as a streamOptimized VMDK, opened as a
/// snapshot) and from an EFI-only ISO's El Torito image.
#[test]
fn efi_boots() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let initrd = tiny::initramfs(dir, &[], "echo EFI-BOOTED");
    let uki = dir.join("image.efi");
    media::uki(&uki, &kernel_dir().join("vmlinuz"), &initrd, CMDLINE);
    let boot = Boot::detect(&uki).unwrap();
    assert!(matches!(boot, Boot::Efi { .. }), "{boot:?}");
    let console = boot_ok(&boot, &dir.join("uki-state"), false, None);
    assert!(console.contains("EFI-BOOTED"), "{console}");

    let raw = dir.join("esp.raw");
    gpt_esp_disk(&raw, &uki, 48);
    let vmdk = convert(
        &raw,
        &dir.join("esp.vmdk"),
        "vmdk",
        Some("subformat=streamOptimized"),
    );
    let boot = Boot::detect(&vmdk).unwrap();
    assert!(
        matches!(
            boot,
            Boot::Disk {
                format: "vmdk",
                snapshot: true,
                ..
            }
        ),
        "{boot:?}"
    );
    // A VMDK does not say which firmware its disk is for: --uefi.
    boot_ok(&boot, &dir.join("vmdk-state"), true, None);

    let fat = dir.join("efiboot.img");
    efi_fat(&fat, &uki);
    let iso = dir.join("efi.iso");
    media::iso(
        &iso,
        &Iso {
            efi: Some(&fat),
            ..Iso::default()
        },
    );
    let boot = Boot::detect(&iso).unwrap();
    assert_eq!(boot.default_firmware(), Firmware::Uefi);
    boot_ok(&boot, &dir.join("iso-state"), false, None);
}
