//! Every bootable format of `slipway build`, made from `examples/minimal.yml`
//! with the standard packages (`slipway_testkit::packages`, the boot loader
//! package included) and read back by an independent tool that can fail:
//!
//! * the ISOs with xorriso (El Torito entries, the kernel and initrd read
//!   back byte for byte against the `kernel+initrd` files of the same build);
//! * the raw disks with sfdisk and sgdisk (tables, CRCs, backup header),
//!   the ESP with fsck.fat and mtools (its UKI byte for byte the `uki`
//!   output);
//! * qcow2, VHD, VMDK and the GCP tar with qemu-img and GNU tar, compared
//!   with the raw disk they re-encode;
//! * the UKI signed with a throwaway key (sbsign) and verified (sbverify);
//! * the root images extracted (unsquashfs, fsck.erofs, xorriso) and
//!   compared file by file with the `tar` output of the same configuration;
//! * two builds in different directories, under different umasks, with
//!   empty segment caches: the same bytes, every file.
//!
//! Boots (TCG, the plain qemu command a user would type, each with a
//! deadline): the BIOS ISO from a CD under SeaBIOS, the EFI disk under
//! OVMF and the squashfs root from a disk in the default suite; every
//! format in the ignored `boot_matrix`, and every format again through
//! `slipway run` in `boot_matrix_slipway_run` with the persistent-disk
//! example booted from a raw disk beside a blank data disk
//! (`cargo xtask test --boot-matrix` runs both). A boot passes when the
//! onboot task's line is on the console and the service powered the
//! guest off.
#![allow(clippy::disallowed_methods, reason = "boot deadlines read the clock")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use slipway_testkit::initramfs::need;
use slipway_testkit::packages::{self, Packages};

/// Generous: a TCG boot on a loaded two-core host.
const BOOT: Duration = Duration::from_secs(360);
/// The firmware `slipway run --uefi` defaults to, and users pass to qemu.
const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// The formats one build of `minimal.yml` writes (none writes another's file).
const ONE_BUILD: &[&str] = &[
    "kernel+initrd",
    "iso-bios",
    "iso-efi",
    "iso-efi-initrd",
    "raw-bios",
    "raw-efi",
    "qcow2-bios",
    "qcow2-efi",
    "vhd",
    "vmdk",
    "gcp",
    "aws",
    "uki",
];

fn slipway() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_slipway"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`; fails the test with its output unless it succeeds.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    let all = text(&out);
    assert!(out.status.success(), "{cmd:?}: {}\n{all}", out.status);
    all
}

fn sha256(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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

fn file(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `slipway build --offline -f F... --name NAME --dir DIR CONFIG` under
/// `umask`; returns `DIR/NAME`.
fn build(cache: &Path, config: &Path, dir: &Path, formats: &[&str], umask: &str) -> PathBuf {
    build_all(cache, &[config], dir, formats, umask)
}

/// [`build`] of several configuration files, merged in order.
fn build_all(
    cache: &Path,
    configs: &[&Path],
    dir: &Path,
    formats: &[&str],
    umask: &str,
) -> PathBuf {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(slipway())
        .arg("--cache")
        .arg(cache)
        .args(["build", "--offline", "--name", "img", "--dir"])
        .arg(dir);
    for f in formats {
        cmd.args(["-f", f]);
    }
    cmd.args(configs);
    run(&mut cmd);
    dir.join("img")
}

/// The files of `dir` and their hashes (not the spares, dot files).
fn hashes(dir: &Path) -> BTreeMap<String, String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                sha256(&p),
            )
        })
        .collect()
}

/// xorriso's report of the El Torito catalog and the system area.
fn el_torito(iso: &Path) -> String {
    run(Command::new(need("xorriso")).arg("-indev").arg(iso).args([
        "-report_el_torito",
        "plain",
        "-report_system_area",
        "plain",
    ]))
}

/// Extracts one file of an ISO with xorriso.
fn iso_file(iso: &Path, path: &str, to: &Path) {
    run(Command::new(need("xorriso"))
        .args(["-osirrox", "on", "-indev"])
        .arg(iso)
        .args(["-extract", path])
        .arg(to));
}

/// The El Torito platforms of the catalog, as xorriso names them.
fn platforms(report: &str) -> Vec<String> {
    report
        .lines()
        .filter(|l| l.starts_with("El Torito boot img :"))
        .filter_map(|l| l.split_whitespace().nth(6).map(str::to_owned))
        .collect()
}

/// The kernel and initrd an ISO carries at `kernel` and `initrd` are the
/// build's `kernel+initrd` files, byte for byte.
fn carries_the_build(iso: &Path, prefix: &Path, kernel: &str, initrd: &str, work: &Path) {
    let k = work.join("k");
    let i = work.join("i");
    iso_file(iso, kernel, &k);
    iso_file(iso, initrd, &i);
    assert_eq!(sha256(&k), sha256(&file(prefix, "-kernel")), "{kernel}");
    assert_eq!(sha256(&i), sha256(&file(prefix, "-initrd.img")), "{initrd}");
    fs::remove_file(k).unwrap();
    fs::remove_file(i).unwrap();
}

/// `qemu-img compare` of `image` (`format`) with the raw disk `raw`.
fn same_disk(image: &Path, format: &str, raw: &Path) {
    let out = run(Command::new(need("qemu-img"))
        .args(["compare", "-f", format, "-F", "raw"])
        .arg(image)
        .arg(raw));
    assert!(out.contains("Images are identical"), "{out}");
}

fn qemu_img_check(image: &Path, format: &str) {
    let out = run(Command::new(need("qemu-img"))
        .args(["check", "-f", format])
        .arg(image));
    assert!(out.contains("No errors were found"), "{out}");
}

fn qemu_img_format(image: &Path) -> String {
    let out = run(Command::new(need("qemu-img"))
        .args(["info", "--output=json"])
        .arg(image));
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    info["format"].as_str().unwrap().to_owned()
}

/// The partitions of `sfdisk --dump`, and its label line.
fn sfdisk(disk: &Path) -> String {
    run(Command::new(need("sfdisk")).arg("--dump").arg(disk))
}

/// Bytes `[offset, offset+len)` of `from` into a new file `to`.
fn cut(from: &Path, offset: u64, len: u64, to: &Path) {
    use std::io::{Seek, SeekFrom};
    let mut f = fs::File::open(from).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut out = fs::File::create(to).unwrap();
    std::io::copy(&mut f.take(len), &mut out).unwrap();
}

/// The standard packages, the pkg/bootloader image among them, and the
/// copy of `examples/` that names them.
fn packages() -> Packages {
    packages::standard(slipway())
}

#[test]
fn every_format_of_minimal_reads_back_and_rebuilds_identically() {
    let pkgs = packages();
    let config = pkgs.example("minimal.yml");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("a");
    fs::create_dir(&out).unwrap();
    let img = build(&pkgs.cache, &config, &out, ONE_BUILD, "022");

    // iso-bios and iso-efi: the hybrid image, isolinux for BIOS and the
    // UKI's FAT image for EFI, carrying the build's kernel and initrd.
    for suffix in [".iso", "-efi.iso"] {
        let iso = file(&img, suffix);
        let report = el_torito(&iso);
        assert_eq!(platforms(&report), ["BIOS", "UEFI"], "{suffix}:\n{report}");
        assert!(report.contains("isohybrid"), "{suffix}:\n{report}");
        carries_the_build(&iso, &img, "/boot/kernel", "/boot/initrd.img", work.path());
        let cfg = work.path().join("isolinux.cfg");
        iso_file(&iso, "/isolinux/isolinux.cfg", &cfg);
        let cfg = fs::read_to_string(&cfg).unwrap();
        assert!(cfg.contains("APPEND console=ttyS0"), "{cfg}");
    }
    // iso-efi-initrd: EFI only, LinuxKit's /kernel and /initrd.img.
    let iso = file(&img, "-efi-initrd.iso");
    let report = el_torito(&iso);
    assert_eq!(platforms(&report), ["UEFI"], "{report}");
    carries_the_build(&iso, &img, "/kernel", "/initrd.img", work.path());

    // raw-bios and aws: the hybrid ISO grown to --size (1024M by default),
    // an MBR disk whose first bytes are the ISO.
    let raw_bios = file(&img, "-bios.img");
    assert_eq!(fs::metadata(&raw_bios).unwrap().len(), 1 << 30);
    assert_eq!(sha256(&file(&img, ".raw")), sha256(&raw_bios), "aws");
    let iso_len = fs::metadata(file(&img, ".iso")).unwrap().len();
    let head = work.path().join("head");
    cut(&raw_bios, 0, iso_len, &head);
    assert_eq!(sha256(&head), sha256(&file(&img, ".iso")));
    fs::remove_file(&head).unwrap();
    let dump = sfdisk(&raw_bios);
    assert!(dump.contains("label: dos"), "{dump}");
    assert!(dump.contains("bootable"), "{dump}");
    assert_eq!(platforms(&el_torito(&raw_bios)), ["BIOS", "UEFI"]);

    // raw-efi: GPT, one EFI system partition filling the disk, FAT32 that
    // fsck.fat passes, holding the UKI.
    let raw_efi = file(&img, "-efi.img");
    assert_eq!(fs::metadata(&raw_efi).unwrap().len(), 1 << 30);
    let dump = sfdisk(&raw_efi);
    assert!(dump.contains("label: gpt"), "{dump}");
    let parts: Vec<&str> = dump.lines().filter(|l| l.contains(" : start=")).collect();
    assert_eq!(parts.len(), 1, "{dump}");
    assert!(
        parts[0].contains("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        "{dump}"
    );
    let sgdisk = run(Command::new(need("sgdisk")).arg("-v").arg(&raw_efi));
    assert!(sgdisk.contains("No problems found"), "{sgdisk}");
    let field = |name: &str| -> u64 {
        let at = parts[0].find(name).unwrap() + name.len();
        parts[0][at..]
            .trim_start_matches([' ', '='])
            .split(',')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (start, sectors) = (field("start"), field("size"));
    let esp = work.path().join("esp");
    cut(&raw_efi, start * 512, sectors * 512, &esp);
    run(Command::new(need("fsck.fat")).arg("-n").arg(&esp));
    let uki = work.path().join("BOOTX64.EFI");
    run(Command::new(need("mcopy"))
        .arg("-i")
        .arg(&esp)
        .arg("::EFI/BOOT/BOOTX64.EFI")
        .arg(&uki));
    assert_eq!(sha256(&uki), sha256(&file(&img, ".efi")), "the ESP's UKI");
    fs::remove_file(&esp).unwrap();

    // qcow2-bios, qcow2-efi, vhd, vmdk: re-encodings of the raw disks.
    for (suffix, format, raw) in [
        (".qcow2", "qcow2", &raw_bios),
        ("-efi.qcow2", "qcow2", &raw_efi),
        (".vmdk", "vmdk", &raw_bios),
    ] {
        let image = file(&img, suffix);
        assert_eq!(qemu_img_format(&image), format, "{suffix}");
        qemu_img_check(&image, format);
        same_disk(&image, format, raw);
    }
    // A fixed VHD is the raw disk and a footer, which qemu-img does not
    // probe for: it reads it as vpc when told to.
    let vhd = file(&img, ".vhd");
    let len = fs::metadata(&vhd).unwrap().len();
    assert_eq!(len, (1 << 30) + 512);
    let footer = work.path().join("footer");
    cut(&vhd, len - 512, 512, &footer);
    assert!(fs::read(&footer).unwrap().starts_with(b"conectix"));
    same_disk(&vhd, "vpc", &raw_bios);

    // gcp: a gzipped tar of disk.raw alone, the raw BIOS disk.
    let gcp = file(&img, ".img.tar.gz");
    let listing = run(Command::new("tar").arg("-tzf").arg(&gcp));
    assert_eq!(listing.trim(), "disk.raw", "{listing}");
    let x = work.path().join("gcp");
    fs::create_dir(&x).unwrap();
    run(Command::new("tar").arg("-xzf").arg(&gcp).arg("-C").arg(&x));
    assert_eq!(
        sha256(&x.join("disk.raw")),
        sha256(&raw_bios),
        "gcp disk.raw"
    );
    fs::remove_dir_all(&x).unwrap();

    // uki: the stub's sections, signed with a throwaway key and verified.
    let efi = file(&img, ".efi");
    let sections = run(Command::new(need("objdump")).arg("-h").arg(&efi));
    for s in [".osrel", ".cmdline", ".linux", ".initrd"] {
        assert!(sections.contains(s), "{s}:\n{sections}");
    }
    let (key, cert, signed) = (
        work.path().join("key.pem"),
        work.path().join("cert.pem"),
        work.path().join("signed.efi"),
    );
    run(Command::new(need("openssl"))
        .args([
            "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=slipway test/", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    run(Command::new(need("sbsign"))
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .arg("--output")
        .arg(&signed)
        .arg(&efi));
    let verified = run(Command::new(need("sbverify"))
        .arg("--cert")
        .arg(&cert)
        .arg(&signed));
    assert!(verified.contains("Signature verification OK"), "{verified}");
    for f in [&key, &cert, &signed, &uki] {
        fs::remove_file(f).unwrap();
    }

    // dynamic-vhd writes the file vhd writes: a build of its own.
    let dynamic = work.path().join("dynamic");
    fs::create_dir(&dynamic).unwrap();
    let d = build(&pkgs.cache, &config, &dynamic, &["dynamic-vhd"], "022");
    assert_eq!(qemu_img_format(&file(&d, ".vhd")), "vpc");
    same_disk(&file(&d, ".vhd"), "vpc", &raw_bios);
    fs::remove_dir_all(&dynamic).unwrap();

    // Again, in another directory, under another umask, with no segment
    // cached: the same bytes in every file.
    let fresh = work.path().join("cache");
    run(Command::new("cp").arg("-al").arg(&pkgs.cache).arg(&fresh));
    let _ = fs::remove_dir_all(fresh.join("segments"));
    let again = work.path().join("b");
    fs::create_dir(&again).unwrap();
    build(&fresh, &config, &again, ONE_BUILD, "077");
    let (a, b) = (hashes(&out), hashes(&again));
    assert_eq!(a.len(), 15, "{a:#?}");
    assert_eq!(a, b);

    // Two builds of other images in the same place, then this one: the
    // last is written over the spares the first variant's outputs became,
    // and must still be these bytes.
    for n in 1..=2 {
        let variant = work.path().join(format!("variant{n}.yml"));
        let entry = format!("files:\n  - path: etc/variant\n    contents: \"{n}\"\n");
        fs::write(&variant, entry).unwrap();
        build_all(&fresh, &[&config, &variant], &again, ONE_BUILD, "022");
    }
    build(&fresh, &config, &again, ONE_BUILD, "077");
    assert_eq!(hashes(&again), a);
    let spares: Vec<String> = fs::read_dir(&again)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".slipway-spare-"))
        .collect();
    // One per output of a mebibyte or more, and the two scratch disks.
    assert!(spares.len() >= 12, "{spares:?}");
}

/// A `--size` smaller than the image is refused with the size it needs,
/// and the previous outputs stay.
#[test]
fn a_disk_too_small_says_how_much_is_needed() {
    let pkgs = packages();
    let config = pkgs.example("minimal.yml");
    let work = tempfile::tempdir().unwrap();
    let img = build(&pkgs.cache, &config, work.path(), &["raw-efi"], "022");
    let before = sha256(&file(&img, "-efi.img"));
    for format in ["raw-efi", "raw-bios"] {
        let out = Command::new(slipway())
            .arg("--cache")
            .arg(&pkgs.cache)
            .args([
                "build",
                "--offline",
                "--size",
                "1M",
                "-f",
                format,
                "--name",
                "img",
                "--dir",
            ])
            .arg(work.path())
            .arg(&config)
            .output()
            .unwrap();
        let all = text(&out);
        assert!(!out.status.success(), "{format}: {all}");
        assert!(
            all.contains("needs a disk of at least") && all.contains("--size is 1 MiB"),
            "{format}: {all}"
        );
    }
    assert_eq!(sha256(&file(&img, "-efi.img")), before);
    let left: Vec<String> = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["img-efi.img"], "temporary files were left");
}

/// A configuration that prints a line from an onboot task and has a
/// service that powers the machine off (SIGUSR2 to the init). The
/// command line carries the kernel parameters TCG boots need.
fn boot_config(pkgs: &Packages) -> PathBuf {
    let path = pkgs.example("formats-boot.yml");
    fs::write(
        &path,
        r#"kernel:
  image: "@pkg:../pkg/kernel"
  cmdline: "console=ttyS0 no_timer_check panic=-1"
init:
  - "@pkg:../pkg/init"
  - "@pkg:../pkg/crun"
onboot:
  - name: hello
    image: "@pkg:../pkg/busybox"
    command: ["/bin/sh", "-c", "echo onboot-ran-$((6*7))"]
services:
  - name: last
    image: "@pkg:../pkg/busybox"
    command: ["/bin/sh", "-c", "sleep 1; kill -USR2 1"]
    pid: host
"#,
    )
    .unwrap();
    path
}

/// How one image is booted: qemu's arguments after the common ones.
struct Case {
    name: String,
    args: Vec<String>,
}

/// qemu (TCG, no display, no reboot) until it exits or [`BOOT`] passes;
/// `Err` with the console when the guest did not run its onboot task and
/// service and power off.
fn boot(case: &Case) -> Result<Duration, String> {
    let log = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let mut child = Command::new(need("qemu-system-x86_64"))
        .args(["-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot"])
        .args(&case.args)
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > BOOT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let took = started.elapsed();
    let console = String::from_utf8_lossy(&fs::read(log.path()).unwrap()).into_owned();
    // The onboot task's line is on the console; the service's goes to its
    // log, and the poweroff it asks for is the proof that it ran.
    let ran = [
        "onboot-ran-42",
        "services-started",
        "shutdown - poweroff (SIGUSR2)",
        "reboot: Power down",
    ]
    .iter()
    .all(|l| console.contains(l));
    match exited {
        Some(_) if ran => Ok(took),
        Some(status) => Err(format!(
            "{}: qemu exited ({status}) without the guest's lines and a poweroff:\n{console}",
            case.name
        )),
        None => Err(format!(
            "{}: no poweroff in {BOOT:?}:\n{console}",
            case.name
        )),
    }
}

fn boot_or_fail(case: &Case) {
    if let Err(e) = boot(case) {
        panic!("{e}");
    }
}

fn drive(path: &Path, format: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},format={format}", path.display()),
    ]
}

fn ovmf() -> Vec<String> {
    assert!(Path::new(OVMF).is_file(), "{OVMF}: install Debian's ovmf");
    vec!["-bios".into(), OVMF.into()]
}

/// SeaBIOS boots the hybrid ISO from a CD: isolinux, the kernel and the
/// whole image in the initrd.
#[test]
fn iso_bios_boots_from_a_cd_with_seabios() {
    let pkgs = packages();
    let work = tempfile::tempdir().unwrap();
    let img = build(
        &pkgs.cache,
        &boot_config(&pkgs),
        work.path(),
        &["iso-bios"],
        "022",
    );
    boot_or_fail(&Case {
        name: "iso-bios, SeaBIOS, -cdrom".into(),
        args: vec!["-cdrom".into(), file(&img, ".iso").display().to_string()],
    });
}

/// OVMF boots the GPT disk: the firmware's removable-media path on the
/// EFI system partition, the UKI.
#[test]
fn raw_efi_boots_from_a_disk_with_ovmf() {
    let pkgs = packages();
    let work = tempfile::tempdir().unwrap();
    let img = build(
        &pkgs.cache,
        &boot_config(&pkgs),
        work.path(),
        &["raw-efi"],
        "022",
    );
    let mut args = ovmf();
    args.extend(drive(&file(&img, "-efi.img"), "raw"));
    boot_or_fail(&Case {
        name: "raw-efi, OVMF, -drive".into(),
        args,
    });
}

/// The kernel and the small initrd boot the squashfs root from the first
/// disk, as its command line says (`root=/dev/sda`): the onboot task and
/// the service are only on that root.
#[test]
fn kernel_squashfs_boots_its_root_from_a_disk() {
    let pkgs = packages();
    let work = tempfile::tempdir().unwrap();
    let img = build(
        &pkgs.cache,
        &boot_config(&pkgs),
        work.path(),
        &["kernel+squashfs"],
        "022",
    );
    let mut args = vec![
        "-kernel".into(),
        file(&img, "-kernel").display().to_string(),
        "-initrd".into(),
        file(&img, "-initrd.img").display().to_string(),
        "-append".into(),
        fs::read_to_string(file(&img, "-cmdline")).unwrap(),
    ];
    args.extend(drive(&file(&img, "-squashfs.img"), "raw"));
    boot_or_fail(&Case {
        name: "kernel+squashfs, -kernel, -drive".into(),
        args,
    });
}

/// The images the boot matrices boot: one build of [`ONE_BUILD`], the
/// dynamic VHD, the GCP tar's disk unpacked, and each root format.
struct Matrix {
    work: tempfile::TempDir,
    /// `DIR/img` of the one build.
    img: PathBuf,
    /// The dynamic VHD's prefix.
    dynamic: PathBuf,
    /// Where the GCP tar's `disk.raw` was unpacked.
    gcp: PathBuf,
    /// `(format, prefix)` of `kernel+squashfs`, `kernel+erofs`, `kernel+iso`.
    roots: Vec<(&'static str, PathBuf)>,
}

fn matrix_images(pkgs: &Packages) -> Matrix {
    let work = tempfile::tempdir().unwrap();
    let config = boot_config(pkgs);
    let img = build(&pkgs.cache, &config, work.path(), ONE_BUILD, "022");
    let dir = work.path().join("dynamic");
    fs::create_dir(&dir).unwrap();
    let dynamic = build(&pkgs.cache, &config, &dir, &["dynamic-vhd"], "022");
    let gcp = work.path().join("gcp");
    fs::create_dir(&gcp).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(file(&img, ".img.tar.gz"))
        .arg("-C")
        .arg(&gcp));
    let roots = ["kernel+squashfs", "kernel+erofs", "kernel+iso"]
        .into_iter()
        .map(|format| {
            let dir = work.path().join(format);
            fs::create_dir(&dir).unwrap();
            (format, build(&pkgs.cache, &config, &dir, &[format], "022"))
        })
        .collect();
    Matrix {
        work,
        img,
        dynamic,
        gcp,
        roots,
    }
}

/// Boots each case with `boot`, printing each result and its time; fails
/// with every failure at the end.
fn boot_all<C>(
    cases: Vec<C>,
    name: impl Fn(&C) -> String,
    boot: impl Fn(&C) -> Result<Duration, String>,
) {
    let mut failed = Vec::new();
    let started = Instant::now();
    let total = cases.len();
    for case in &cases {
        let name = name(case);
        match boot(case) {
            Ok(took) => eprintln!("BOOT {name}: ok in {:.0} s", took.as_secs_f64()),
            Err(e) => {
                eprintln!("BOOT {name}: FAILED");
                failed.push(e);
            }
        }
    }
    eprintln!(
        "BOOTS: {} of {total} passed in {:.0} s",
        total - failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// Every format booted the plain way a user would, with the firmware it is
/// for. `cargo xtask test --boot-matrix` runs it; each boot is printed with
/// the time it took.
#[test]
#[ignore = "the boot matrix: many TCG boots (cargo xtask test --boot-matrix)"]
fn boot_matrix() {
    let pkgs = packages();
    let m = matrix_images(&pkgs);
    let img = &m.img;
    let f = |suffix: &str| file(img, suffix);
    let s = |p: PathBuf| p.display().to_string();
    let with_ovmf = |rest: Vec<String>| {
        let mut a = ovmf();
        a.extend(rest);
        a
    };
    let cmdline = fs::read_to_string(f("-cmdline")).unwrap();
    let mut cases = vec![
        (
            "kernel+initrd, -kernel",
            vec![
                "-kernel".into(),
                s(f("-kernel")),
                "-initrd".into(),
                s(f("-initrd.img")),
                "-append".into(),
                cmdline.trim().to_owned(),
            ],
        ),
        (
            "iso-bios, SeaBIOS, -cdrom",
            vec!["-cdrom".into(), s(f(".iso"))],
        ),
        ("iso-bios, SeaBIOS, -drive raw", drive(&f(".iso"), "raw")),
        (
            "iso-bios, OVMF, -cdrom",
            with_ovmf(vec!["-cdrom".into(), s(f(".iso"))]),
        ),
        (
            "iso-efi, OVMF, -cdrom",
            with_ovmf(vec!["-cdrom".into(), s(f("-efi.iso"))]),
        ),
        (
            "iso-efi, OVMF, -drive raw",
            with_ovmf(drive(&f("-efi.iso"), "raw")),
        ),
        (
            "iso-efi-initrd, OVMF, -cdrom",
            with_ovmf(vec!["-cdrom".into(), s(f("-efi-initrd.iso"))]),
        ),
        ("raw-bios, SeaBIOS", drive(&f("-bios.img"), "raw")),
        ("raw-efi, OVMF", with_ovmf(drive(&f("-efi.img"), "raw"))),
        ("qcow2-bios, SeaBIOS", drive(&f(".qcow2"), "qcow2")),
        (
            "qcow2-efi, OVMF",
            with_ovmf(drive(&f("-efi.qcow2"), "qcow2")),
        ),
        ("vhd, SeaBIOS", drive(&f(".vhd"), "vpc")),
        (
            "dynamic-vhd, SeaBIOS",
            drive(&file(&m.dynamic, ".vhd"), "vpc"),
        ),
        (
            "vmdk, SeaBIOS",
            vec![
                "-drive".into(),
                format!("file={},format=vmdk,snapshot=on", f(".vmdk").display()),
            ],
        ),
        (
            "gcp disk.raw, SeaBIOS",
            drive(&m.gcp.join("disk.raw"), "raw"),
        ),
        ("aws, SeaBIOS", drive(&f(".raw"), "raw")),
        (
            "uki, OVMF, -kernel",
            with_ovmf(vec!["-kernel".into(), s(f(".efi"))]),
        ),
    ];
    // The root formats: the kernel and the small initrd by -kernel, the
    // root image as the first disk or CD, as the command line names it.
    for (format, r) in &m.roots {
        let (suffix, cdrom) = match *format {
            "kernel+squashfs" => ("-squashfs.img", false),
            "kernel+erofs" => ("-erofs.img", false),
            _ => (".iso", true),
        };
        let cmdline = fs::read_to_string(file(r, "-cmdline")).unwrap();
        let root = file(r, suffix).display().to_string();
        let mut args = vec![
            "-kernel".into(),
            s(file(r, "-kernel")),
            "-initrd".into(),
            s(file(r, "-initrd.img")),
            "-append".into(),
            cmdline,
        ];
        if cdrom {
            args.extend(["-cdrom".into(), root]);
        } else {
            args.extend(drive(Path::new(&root), "raw"));
        }
        cases.push((*format, args));
    }
    boot_all(
        cases,
        |(name, _)| (*name).to_owned(),
        |(name, args)| {
            boot(&Case {
                name: (*name).into(),
                args: args.clone(),
            })
        },
    );
}

/// `slipway run ARGS PATH` (TCG, 1 GiB, no network, its own state
/// directory) until it exits or [`BOOT`] passes; `Err` with its output
/// unless it exited 0 (a clean poweroff) with every line of `want` on the
/// console.
fn run_boot(name: &str, args: &[String], want: &[&str], state: &Path) -> Result<Duration, String> {
    let log = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let mut child = Command::new(slipway())
        .args([
            "run",
            "--accel",
            "tcg",
            "--mem",
            "1024",
            "--networking",
            "none",
        ])
        .arg("--timeout")
        .arg(BOOT.as_secs().to_string())
        .arg("--state")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    // slipway run kills the machine at its --timeout; this is the backstop.
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > BOOT + Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let took = started.elapsed();
    let console = String::from_utf8_lossy(&fs::read(log.path()).unwrap()).into_owned();
    let missing: Vec<&&str> = want.iter().filter(|l| !console.contains(**l)).collect();
    match exited {
        Some(status) if status.success() && missing.is_empty() => Ok(took),
        Some(status) => Err(format!(
            "{name}: slipway run exited ({status}); missing {missing:?}:\n{console}"
        )),
        None => Err(format!(
            "{name}: slipway run still running after {BOOT:?}:\n{console}"
        )),
    }
}

/// The lines of a boot of [`boot_config`] that powered itself off.
const RAN: &[&str] = &["onboot-ran-42", "services-started", "reboot: Power down"];

/// The persistent-disk example booted from a disk image with a blank
/// second disk (`qcow2-bios` and `raw-efi`: both are the first virtio
/// disk under `slipway run`, the data disk the second; `raw-bios` would
/// boot as the hybrid ISO it starts with, from a CD): `format` must take
/// the blank disk, never the boot disk
/// (it takes the first disk whose first 64 KiB are all zero, and a boot
/// disk starts with its partition table), `mount` mounts it by label,
/// the service writes its log there; the boot disk is left as it was.
/// A second config adds a service that powers the machine off once the
/// log is on the disk.
fn persistent_cases(pkgs: &Packages, work: &Path) -> Vec<(String, Vec<String>, PathBuf)> {
    let stop = pkgs.example("persistent-stop.yml");
    fs::write(
        &stop,
        r#"services:
  - name: stop
    image: "@pkg:../pkg/busybox"
    command: ["/bin/sh", "-c", "until [ -s /data/boots ]; do sleep 1; done; sleep 2; kill -USR2 1"]
    pid: host
    binds:
      - /var/lib/data:/data
"#,
    )
    .unwrap();
    let dir = work.join("persistent");
    fs::create_dir(&dir).unwrap();
    let mut cmd = Command::new(slipway());
    cmd.arg("--cache")
        .arg(&pkgs.cache)
        .args(["build", "--offline", "--name", "p", "--dir"])
        .arg(&dir)
        .args(["-f", "qcow2-bios", "-f", "raw-efi"])
        .arg(pkgs.example("persistent.yml"))
        .arg(&stop);
    run(&mut cmd);
    [
        ("persistent.yml, qcow2-bios, --disk", ".qcow2"),
        ("persistent.yml, raw-efi, --disk", "-efi.img"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, suffix))| {
        let disk = dir.join(format!("data{i}.qcow2"));
        let args = vec![
            "--disk".into(),
            format!("file={},size=256M", disk.display()),
            file(&dir.join("p"), suffix).display().to_string(),
        ];
        (name.to_owned(), args, file(&dir.join("p"), suffix))
    })
    .collect()
}

/// One boot of [`boot_matrix_slipway_run`].
struct RunCase {
    name: String,
    /// `slipway run`'s arguments after the common ones, the path last.
    args: Vec<String>,
    /// A disk image the boot must leave as it was.
    boot_disk: Option<PathBuf>,
    /// Lines the console must show.
    want: &'static [&'static str],
}

/// Every format booted by `slipway run`, which finds what each file is
/// from its bytes and picks the firmware (OVMF for a UKI, an EFI-only ISO
/// or a disk without BIOS boot code; `--uefi` for the hybrid ISO), and
/// the persistent-disk example booted from a disk with a data disk beside
/// it. `cargo xtask test --boot-matrix` runs it after [`boot_matrix`].
#[test]
#[ignore = "the boot matrix through slipway run: many TCG boots (cargo xtask test --boot-matrix)"]
fn boot_matrix_slipway_run() {
    let pkgs = packages();
    let m = matrix_images(&pkgs);
    let img = &m.img;
    let f = |suffix: &str| file(img, suffix).display().to_string();
    let uefi = |p: String| vec!["--uefi".to_owned(), p];
    let mut cases: Vec<RunCase> = [
        ("kernel+initrd prefix", vec![img.display().to_string()]),
        ("iso-bios", vec![f(".iso")]),
        ("iso-bios, --uefi", uefi(f(".iso"))),
        ("iso-efi, --uefi", uefi(f("-efi.iso"))),
        ("iso-efi-initrd", vec![f("-efi-initrd.iso")]),
        ("raw-bios", vec![f("-bios.img")]),
        ("raw-efi", vec![f("-efi.img")]),
        ("qcow2-bios", vec![f(".qcow2")]),
        ("qcow2-efi", vec![f("-efi.qcow2")]),
        ("vhd", vec![f(".vhd")]),
        (
            "dynamic-vhd",
            vec![file(&m.dynamic, ".vhd").display().to_string()],
        ),
        ("vmdk", vec![f(".vmdk")]),
        ("gcp", vec![f(".img.tar.gz")]),
        ("aws", vec![f(".raw")]),
        ("uki", vec![f(".efi")]),
    ]
    .into_iter()
    .map(|(name, args)| RunCase {
        name: name.to_owned(),
        args,
        boot_disk: None,
        want: RAN,
    })
    .collect();
    for (format, prefix) in &m.roots {
        cases.push(RunCase {
            name: format!("{format} prefix"),
            args: vec![prefix.display().to_string()],
            boot_disk: None,
            want: RAN,
        });
    }
    for (name, args, boot_disk) in persistent_cases(&pkgs, m.work.path()) {
        cases.push(RunCase {
            name,
            args,
            boot_disk: Some(boot_disk),
            want: &[
                "format: /dev/vdb as ext4, LABEL=slipway-data",
                "mount: /dev/vdb on /var/lib/data",
                "bootlog: 1 boot(s) on the disk:",
                "reboot: Power down",
            ],
        });
    }
    let states = m.work.path().join("states");
    fs::create_dir(&states).unwrap();
    let count = std::cell::Cell::new(0);
    boot_all(
        cases,
        |c| c.name.clone(),
        |c| {
            count.set(count.get() + 1);
            let state = states.join(count.get().to_string());
            let before = c.boot_disk.as_deref().map(sha256);
            let took = run_boot(&c.name, &c.args, c.want, &state)?;
            if let (Some(disk), Some(before)) = (&c.boot_disk, before)
                && sha256(disk) != before
            {
                return Err(format!("{}: the boot disk changed", c.name));
            }
            Ok(took)
        },
    );
}

/// What a path is, as the `tar` output lists it or an extracted root image
/// holds it: kind and content, mode, owner.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Obj {
    Dir,
    File(String),
    Symlink(String),
    Char(u64, u64),
    Block(u64, u64),
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    obj: Obj,
    /// Permission bits (none for a symbolic link).
    mode: u32,
    uid: u64,
    gid: u64,
}

fn hash_reader(r: &mut dyn Read) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

/// The tree of a tar as the kernel or a root image sees it: entries in
/// order, a later one replacing an earlier one of its path (and what was
/// under it, when a non-directory replaces a directory); `boot/` left out.
fn tar_tree(tar: &Path) -> BTreeMap<String, Node> {
    let mut archive = tar::Archive::new(fs::File::open(tar).unwrap());
    let mut out: BTreeMap<String, Node> = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = clean(&e.path().unwrap().to_string_lossy());
        if path.is_empty() || path == "boot" || path.starts_with("boot/") {
            continue;
        }
        let h = e.header().clone();
        let link = || clean(&e.link_name().unwrap().unwrap().to_string_lossy());
        let raw_link = || {
            e.link_name()
                .unwrap()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        use tar::EntryType as T;
        let obj = match h.entry_type() {
            T::Regular | T::Continuous => None,
            T::Directory => Some(Obj::Dir),
            T::Symlink => Some(Obj::Symlink(raw_link())),
            T::Link => Some(out[&link()].obj.clone()),
            T::Char => Some(Obj::Char(
                h.device_major().unwrap().unwrap().into(),
                h.device_minor().unwrap().unwrap().into(),
            )),
            T::Block => Some(Obj::Block(
                h.device_major().unwrap().unwrap().into(),
                h.device_minor().unwrap().unwrap().into(),
            )),
            T::Fifo => Some(Obj::Fifo),
            other => panic!("{path}: {other:?}"),
        };
        let obj = obj.unwrap_or_else(|| Obj::File(hash_reader(&mut e)));
        let mode = if matches!(obj, Obj::Symlink(_)) {
            0
        } else {
            h.mode().unwrap() & 0o7777
        };
        if obj != Obj::Dir {
            let under = format!("{path}/");
            out.retain(|p, _| !p.starts_with(&under));
        }
        let (uid, gid) = (h.uid().unwrap(), h.gid().unwrap());
        out.insert(
            path,
            Node {
                obj,
                mode,
                uid,
                gid,
            },
        );
    }
    out
}

/// The tree under `root` on the host, as [`tar_tree`] describes one.
fn dir_tree(root: &Path) -> BTreeMap<String, Node> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let t = m.file_type();
            let rdev = m.rdev();
            let (major, minor) = (
                (rdev >> 8) & 0xfff,
                (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
            );
            let obj = if t.is_dir() {
                Obj::Dir
            } else if t.is_symlink() {
                Obj::Symlink(fs::read_link(&p).unwrap().to_string_lossy().into_owned())
            } else if t.is_file() {
                Obj::File(hash_reader(&mut fs::File::open(&p).unwrap()))
            } else if t.is_char_device() {
                Obj::Char(major, minor)
            } else if t.is_block_device() {
                Obj::Block(major, minor)
            } else {
                Obj::Fifo
            };
            let mode = if t.is_symlink() { 0 } else { m.mode() & 0o7777 };
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(
                rel,
                Node {
                    obj,
                    mode,
                    uid: m.uid().into(),
                    gid: m.gid().into(),
                },
            );
            if t.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The first differences between two trees, for the failure message.
fn differences(want: &BTreeMap<String, Node>, got: &BTreeMap<String, Node>) -> Vec<String> {
    let mut d = Vec::new();
    for (p, n) in want {
        match got.get(p) {
            None => d.push(format!("missing {p}")),
            Some(g) if g != n => d.push(format!("{p}: {n:?} != {g:?}")),
            Some(_) => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        d.push(format!("extra {p}"));
    }
    d.truncate(20);
    d
}

/// `kernel+squashfs`, `kernel+erofs`, `kernel+iso`: each root image
/// extracted by its own tool (unsquashfs, fsck.erofs, xorriso) is the
/// `tar` output of the same configuration less `boot/`, file by file
/// (content, mode, owner, link targets, devices); the kernel is the
/// build's; the command line names the root device; the small initrd
/// holds the init and the root device's modules and nothing of the rest;
/// a second build elsewhere, under another umask, gives the same bytes.
#[test]
fn root_images_hold_the_tar_output() {
    let pkgs = packages();
    let config = pkgs.example("minimal.yml");
    let work = tempfile::tempdir().unwrap();
    let t = build(&pkgs.cache, &config, work.path(), &["tar"], "022");
    let want = tar_tree(&file(&t, ".tar"));
    assert!(want.contains_key("init"), "no /init in the tar");
    let k = work.path().join("k");
    fs::create_dir(&k).unwrap();
    let k = build(&pkgs.cache, &config, &k, &["kernel+initrd"], "022");
    for (format, suffix, root) in [
        ("kernel+squashfs", "-squashfs.img", "root=/dev/sda"),
        ("kernel+erofs", "-erofs.img", "root=/dev/sda"),
        ("kernel+iso", ".iso", "root=/dev/sr0"),
    ] {
        let dir = work.path().join(format);
        fs::create_dir(&dir).unwrap();
        let img = build(&pkgs.cache, &config, &dir, &[format], "022");
        // Built again elsewhere under another umask: the same bytes.
        let again = work.path().join(format!("{format}-again"));
        fs::create_dir(&again).unwrap();
        build(&pkgs.cache, &config, &again, &[format], "077");
        assert_eq!(hashes(&dir), hashes(&again), "{format}");
        assert_eq!(hashes(&dir).len(), 4, "{format}");
        fs::remove_dir_all(&again).unwrap();
        assert_eq!(sha256(&file(&img, "-kernel")), sha256(&file(&k, "-kernel")));
        let cmdline = fs::read_to_string(file(&img, "-cmdline")).unwrap();
        assert_eq!(cmdline, format!("console=ttyS0 {root}"), "{format}");
        // The small initrd: /init and modules, far smaller than the whole.
        // zstd's tool reads gzip too: the standard kernel package says its
        // kernel unpacks zstd, so the default is zstd with it, gzip without.
        let listing = run(Command::new("sh").arg("-c").arg(format!(
            "zstd -dcq '{}' | cpio -it --quiet",
            file(&img, "-initrd.img").display()
        )));
        assert!(listing.lines().any(|l| l == "init"), "{format}: {listing}");
        assert!(
            listing
                .lines()
                .any(|l| l.ends_with("/squashfs.ko.xz") || l.ends_with("/squashfs.ko")),
            "{format}: {listing}"
        );
        assert!(
            !listing.contains("containers/") && !listing.contains("etc/www"),
            "{format}: {listing}"
        );
        let x = dir.join("x");
        let image = file(&img, suffix);
        match format {
            "kernel+squashfs" => {
                run(Command::new(need("unsquashfs"))
                    .arg("-d")
                    .arg(&x)
                    .arg(&image));
            }
            "kernel+erofs" => {
                run(Command::new(need("fsck.erofs"))
                    .arg(format!("--extract={}", x.display()))
                    .arg(&image));
            }
            _ => {
                run(Command::new(need("xorriso"))
                    .args(["-osirrox", "on:device_files", "-hardlinks", "on", "-indev"])
                    .arg(&image)
                    .args(["-extract", "/"])
                    .arg(&x));
            }
        }
        let mut got = dir_tree(&x);
        // The writers may keep `boot` itself, empty, as a mount point.
        if got.get("boot").is_some_and(|n| n.obj == Obj::Dir) {
            got.remove("boot");
        }
        let diff = differences(&want, &got);
        assert!(diff.is_empty(), "{format}:\n{}", diff.join("\n"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
