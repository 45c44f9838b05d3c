//! Detection from real bytes: every kind `slipway run` boots or refuses,
//! made by the tool that makes it (qemu-img, xorriso, sfdisk, objcopy,
//! mksquashfs, mkfs.erofs, mkfs.ext4, cpio, GNU tar), and what
//! `Boot::detect` makes of each. No file name helps: every file is called
//! `image`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use slipway_run::detect::{DiskInfo, IsoInfo, Kind, Table, detect};
use slipway_run::{Boot, Firmware, Hint};
use slipway_testkit::initramfs::need;
use slipway_testkit::media::{self, Iso, convert, efi_fat, gpt_esp_disk, run, sfdisk};

/// A fresh directory holding `image` made by `make`; returns the path.
fn image(root: &Path, name: &str, make: impl FnOnce(&Path)) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("image");
    make(&path);
    path
}

fn sh(script: &str) {
    run(Command::new("sh").args(["-ec", script]));
}

/// A 4 MiB raw disk with an MBR whose one partition is FAT, and syslinux's
/// MBR code in its first 440 bytes.
fn mbr_disk(path: &Path) {
    fs::File::create(path).unwrap().set_len(4 << 20).unwrap();
    sfdisk(path, "label: dos\nstart=2048, type=c\n");
    let code = fs::read("/usr/lib/syslinux/mbr/mbr.bin").unwrap();
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(&code[..440]).unwrap();
}

fn raw_bytes(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    for i in 0..(1u32 << 20) {
        f.write_all(&[(i % 251) as u8]).unwrap();
    }
}

#[test]
fn disk_images() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let raw = image(root, "raw", mbr_disk);
    assert_eq!(
        detect(&raw).unwrap(),
        Kind::RawDisk(DiskInfo {
            table: Table::Mbr,
            bios_code: true,
            esp: false
        })
    );
    match Boot::detect(&raw).unwrap() {
        Boot::Disk {
            format, firmware, ..
        } => assert_eq!((format, firmware), ("raw", Some(Firmware::Bios))),
        other => panic!("{other:?}"),
    }

    let qcow2 = image(root, "qcow2", |p| {
        run(Command::new(need("qemu-img"))
            .args(["create", "-q", "-f", "qcow2"])
            .arg(p)
            .arg("16M"));
    });
    assert_eq!(detect(&qcow2).unwrap(), Kind::Qcow2);
    let converted = image(root, "qcow2-converted", |p| {
        convert(&raw, p, "qcow2", None);
    });
    // The disk inside a qcow2 says which firmware it wants.
    assert!(matches!(
        Boot::detect(&converted).unwrap(),
        Boot::Disk {
            format: "qcow2",
            snapshot: false,
            firmware: Some(Firmware::Bios),
            ..
        }
    ));
    // An empty one does not.
    assert!(matches!(
        Boot::detect(&qcow2).unwrap(),
        Boot::Disk {
            format: "qcow2",
            firmware: None,
            ..
        }
    ));

    let data = image(root, "data", raw_bytes);
    let fixed = image(root, "vhd-fixed", |p| {
        convert(&data, p, "vpc", Some("subformat=fixed"));
    });
    assert_eq!(detect(&fixed).unwrap(), Kind::Vhd { dynamic: false });
    let dynamic = image(root, "vhd-dynamic", |p| {
        convert(&data, p, "vpc", Some("subformat=dynamic"));
    });
    assert_eq!(detect(&dynamic).unwrap(), Kind::Vhd { dynamic: true });
    assert!(matches!(
        Boot::detect(&dynamic).unwrap(),
        Boot::Disk { format: "vpc", .. }
    ));
    // A fixed VHD's data comes first: it is the raw disk plus a footer,
    // and the footer wins.
    let fixed_disk = image(root, "vhd-fixed-disk", |p| {
        convert(&raw, p, "vpc", Some("subformat=fixed"));
    });
    assert_eq!(detect(&fixed_disk).unwrap(), Kind::Vhd { dynamic: false });
    assert!(matches!(
        Boot::detect(&fixed_disk).unwrap(),
        Boot::Disk {
            format: "vpc",
            firmware: Some(Firmware::Bios),
            ..
        }
    ));

    let sparse = image(root, "vmdk", |p| {
        convert(&data, p, "vmdk", None);
    });
    assert_eq!(
        detect(&sparse).unwrap(),
        Kind::Vmdk {
            stream_optimized: false
        }
    );
    let stream = image(root, "vmdk-stream", |p| {
        convert(&data, p, "vmdk", Some("subformat=streamOptimized"));
    });
    assert_eq!(
        detect(&stream).unwrap(),
        Kind::Vmdk {
            stream_optimized: true
        }
    );
    // qemu cannot write a streamOptimized VMDK: writes go to a snapshot.
    assert!(matches!(
        Boot::detect(&stream).unwrap(),
        Boot::Disk {
            format: "vmdk",
            snapshot: true,
            ..
        }
    ));
    let descriptor = image(root, "vmdk-split", |p| {
        convert(&data, p, "vmdk", Some("subformat=twoGbMaxExtentSparse"));
    });
    assert_eq!(detect(&descriptor).unwrap(), Kind::VmdkDescriptor);

    // An existing --disk is attached in its own format.
    for (path, format) in [
        (&qcow2, "qcow2"),
        (&dynamic, "vpc"),
        (&stream, "vmdk"),
        (&raw, "raw"),
        (&data, "raw"),
    ] {
        assert_eq!(slipway_run::qemu::disk_format(path), format, "{path:?}");
    }
    assert_eq!(
        slipway_run::qemu::disk_format(&root.join("missing")),
        "qcow2"
    );
}

#[test]
fn gpt_disks_and_efi_applications() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let stub = Path::new(media::EFI_STUB);
    assert_eq!(detect(stub).unwrap(), Kind::EfiApp);
    let payload = root.join("payload");
    fs::write(&payload, vec![0x5a; 4096]).unwrap();
    let uki = image(root, "uki", |p| {
        media::uki(p, &payload, &payload, "console=ttyS0");
    });
    assert_eq!(detect(&uki).unwrap(), Kind::Uki);
    let boot = Boot::detect(&uki).unwrap();
    assert!(matches!(boot, Boot::Efi { .. }), "{boot:?}");
    // Nothing but UEFI starts an EFI application.
    assert_eq!(boot.default_firmware(), Firmware::Uefi);

    let gpt = image(root, "gpt", |p| gpt_esp_disk(p, &uki, 40));
    assert_eq!(
        detect(&gpt).unwrap(),
        Kind::RawDisk(DiskInfo {
            table: Table::Gpt,
            bios_code: false,
            esp: true
        })
    );
    // No BIOS boot code: UEFI without being asked, also inside a qcow2.
    assert_eq!(
        Boot::detect(&gpt).unwrap().default_firmware(),
        Firmware::Uefi
    );
    let gpt_qcow2 = image(root, "gpt-qcow2", |p| {
        convert(&gpt, p, "qcow2", None);
    });
    assert_eq!(
        Boot::detect(&gpt_qcow2).unwrap().default_firmware(),
        Firmware::Uefi
    );
    let small_clusters = image(root, "gpt-qcow2-4k", |p| {
        convert(&gpt, p, "qcow2", Some("cluster_size=4096"));
    });
    assert_eq!(
        Boot::detect(&small_clusters).unwrap().default_firmware(),
        Firmware::Uefi
    );
    let data_gpt = image(root, "gpt-data", |p| {
        fs::File::create(p).unwrap().set_len(8 << 20).unwrap();
        sfdisk(p, "label: gpt\nstart=2048, type=linux\n");
    });
    assert_eq!(
        detect(&data_gpt).unwrap(),
        Kind::RawDisk(DiskInfo {
            table: Table::Gpt,
            bios_code: false,
            esp: false
        })
    );
}

#[test]
fn isos() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let payload = root.join("payload");
    fs::write(&payload, vec![0x5a; 4096]).unwrap();
    let info = |path: &Path| match detect(path).unwrap() {
        Kind::Iso(info) => info,
        other => panic!("{other:?}"),
    };
    let plain = image(root, "plain", |p| {
        media::iso(
            p,
            &Iso {
                files: &[("config", b"hello")],
                ..Iso::default()
            },
        );
    });
    assert_eq!(info(&plain), IsoInfo::default());
    let err = Boot::detect(&plain).unwrap_err().to_string();
    assert!(err.contains("without an El Torito boot record"), "{err}");

    let bios = image(root, "bios", |p| {
        let spec = Iso {
            bios: Some((&payload, &payload, "console=ttyS0")),
            ..Iso::default()
        };
        media::iso(p, &spec);
    });
    assert_eq!(
        info(&bios),
        IsoInfo {
            bios: true,
            efi: false,
            hybrid: false
        }
    );
    let boot = Boot::detect(&bios).unwrap();
    assert_eq!(boot.default_firmware(), Firmware::Bios);
    let err = boot.firmware(true).unwrap_err().to_string();
    assert!(err.contains("no El Torito EFI boot entry"), "{err}");

    let fat = root.join("efiboot.img");
    efi_fat(&fat, Path::new(media::EFI_STUB));
    let hybrid = image(root, "hybrid", |p| {
        let spec = Iso {
            bios: Some((&payload, &payload, "console=ttyS0")),
            efi: Some(&fat),
            hybrid: true,
            ..Iso::default()
        };
        media::iso(p, &spec);
    });
    // Also an MBR disk, and detected as the ISO it is: a CD boot.
    assert_eq!(fs::read(&hybrid).unwrap()[510..512], [0x55, 0xaa]);
    assert_eq!(
        info(&hybrid),
        IsoInfo {
            bios: true,
            efi: true,
            hybrid: true
        }
    );
    assert!(matches!(Boot::detect(&hybrid).unwrap(), Boot::Iso { .. }));
    let efi_only = image(root, "efi", |p| {
        let spec = Iso {
            efi: Some(&fat),
            ..Iso::default()
        };
        media::iso(p, &spec);
    });
    assert_eq!(
        info(&efi_only),
        IsoInfo {
            bios: false,
            efi: true,
            hybrid: false
        }
    );
    assert_eq!(
        Boot::detect(&efi_only).unwrap().default_firmware(),
        Firmware::Uefi
    );
    // --iso on something else is refused with what it is.
    let err = Boot::detect_as(&payload, Hint::Iso)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--iso was given, but it is"), "{err}");
}

#[test]
fn filesystems_archives_and_kernels() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let tree = root.join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/motd"), b"hi\n").unwrap();
    let t = tree.display().to_string();
    let cases: Vec<(&str, String, Kind)> = vec![
        (
            "squashfs",
            format!("mksquashfs {t} $OUT -quiet -noappend"),
            Kind::Squashfs,
        ),
        ("erofs", format!("mkfs.erofs --quiet $OUT {t}"), Kind::Erofs),
        ("ext4", format!("mkfs.ext4 -q -F -d {t} $OUT 4M"), Kind::Ext),
        (
            "cpio",
            format!("cd {t} && find . | cpio -o -H newc --quiet > $OUT"),
            Kind::Initramfs {
                compression: "none",
            },
        ),
        (
            "cpio-gz",
            format!("cd {t} && find . | cpio -o -H newc --quiet | gzip > $OUT"),
            Kind::Initramfs {
                compression: "gzip",
            },
        ),
        (
            "cpio-zstd",
            format!("cd {t} && find . | cpio -o -H newc --quiet | zstd -q > $OUT"),
            Kind::Initramfs {
                compression: "zstd",
            },
        ),
        (
            "cpio-xz",
            format!("cd {t} && find . | cpio -o -H newc --quiet | xz --check=crc32 > $OUT"),
            Kind::Initramfs { compression: "xz" },
        ),
        ("tar", format!("tar -C {t} -cf $OUT ."), Kind::Tar),
        (
            "gcp",
            format!(
                "truncate -s 8M {t}/../disk.raw && tar -C {t}/.. --format=oldgnu -Sczf $OUT disk.raw"
            ),
            Kind::GcpTarball,
        ),
        ("targz", format!("tar -C {t} -czf $OUT ."), Kind::Tar),
        (
            "gz",
            "echo hello | gzip > $OUT".into(),
            Kind::Compressed("gzip"),
        ),
        (
            "elf",
            format!("cp {} $OUT", need("busybox").display()),
            Kind::Elf,
        ),
        ("empty", ": > $OUT".into(), Kind::Empty),
        ("zeros", "truncate -s 1M $OUT".into(), Kind::Zeros),
    ];
    for (name, script, want) in cases {
        let path = image(root, name, |p| {
            sh(&script.replace("$OUT", &p.display().to_string()));
        });
        assert_eq!(detect(&path).unwrap(), want, "{name}");
        let boot = Boot::detect(&path);
        assert_eq!(boot.is_ok(), want == Kind::GcpTarball, "{name}: {boot:?}");
    }

    // The test kernel is a bzImage and a PE file at once: a kernel.
    let kernel = slipway_testkit::initramfs::kernel_dir().join("vmlinuz");
    assert_eq!(detect(&kernel).unwrap(), Kind::LinuxKernel);
    let err = Boot::detect(&kernel).unwrap_err().to_string();
    assert!(
        err.contains("a Linux kernel, which needs an initrd"),
        "{err}"
    );
}

/// What `slipway run` says about things that are not images.
#[test]
fn refusals_name_what_they_found() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/minimal.yml");
    let err = Boot::detect(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("is a text file (a YAML configuration?), not an image: build it first with `slipway build"),
        "{err}"
    );
    let err = Boot::detect(root).unwrap_err().to_string();
    assert!(err.contains("it is a directory"), "{err}");
    fs::write(root.join("img-kernel"), b"k").unwrap();
    fs::write(root.join("img-initrd.img"), b"i").unwrap();
    let err = Boot::detect(root).unwrap_err().to_string();
    assert!(
        err.contains(&format!("the prefix {}", root.join("img").display())),
        "{err}"
    );
    let err = Boot::detect(&root.join("missing")).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    let squashfs = root.join("img-squashfs.img");
    sh(&format!(
        "mkdir -p {r}/t && mksquashfs {r}/t {s} -quiet -noappend",
        r = root.display(),
        s = squashfs.display()
    ));
    let err = Boot::detect(&squashfs).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "run its prefix with the kernel, `slipway run {}`",
            root.join("img").display()
        )),
        "{err}"
    );
}

/// A GCP image's disk.raw comes out whole and sparse.
#[test]
fn gcp_disk_is_extracted() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let raw = root.join("disk.raw");
    mbr_disk(&raw);
    {
        let mut f = fs::OpenOptions::new().write(true).open(&raw).unwrap();
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(3 << 20)).unwrap();
        f.write_all(b"late data").unwrap();
    }
    let archive = root.join("x.img.tar.gz");
    sh(&format!(
        "tar -C {} --format=oldgnu -Sczf {} disk.raw",
        root.display(),
        archive.display()
    ));
    let out = root.join("state/disk.raw");
    fs::create_dir_all(root.join("state")).unwrap();
    slipway_run::state::extract_gcp(&archive, &out).unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&raw).unwrap());
    use std::os::unix::fs::MetadataExt;
    let blocks = fs::metadata(&out).unwrap().blocks();
    assert!(blocks * 512 < 1 << 20, "not sparse: {blocks} blocks");
}

/// The `--data` ISO as xorriso reads it: one file, `config`, holding the
/// data; and `slipway run` takes it for the data CD it is.
#[test]
fn data_iso_is_read_by_xorriso() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let iso = root.join("data.iso");
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    slipway_run::data::write(&iso, &data).unwrap();
    let out = root.join("out");
    run(Command::new(need("xorriso"))
        .args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .args(["-extract", "/", &out.display().to_string()]));
    let names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // ISO 9660 names: `CONFIG.;1` shown without its version and empty extension.
    assert_eq!(names, ["CONFIG"], "{names:?}");
    assert_eq!(fs::read(out.join("CONFIG")).unwrap(), data);
    assert_eq!(detect(&iso).unwrap(), Kind::Iso(IsoInfo::default()));
    let report = Command::new(need("xorriso"))
        .arg("-indev")
        .arg(&iso)
        .args(["-pvd_info"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("Volume Id    : CONFIG"), "{text}");
}
