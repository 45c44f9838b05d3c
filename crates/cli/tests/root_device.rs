//! Roots on devices, booted under TCG the plain way (qemu's `-kernel`,
//! `-initrd`, `-drive`, `-cdrom`): an image built from slipway's packages
//! with `slipway build` (its `tar` output) becomes a squashfs, an erofs and
//! an ISO 9660 root filesystem; the small initrd comes from the image's
//! real kernel and init units through [`write_root_initrd`]. Each boot must
//! reach the image's onboot task (a read-write bundle, whose overlay sits
//! on the read-only device) and services (a web server on the device's
//! files, a client that fetches its page and powers the machine off), and
//! qemu must end by a clean poweroff.
//!
//! * squashfs on a virtio disk, `root=/dev/vda`, `-machine pc`;
//! * erofs on q35's SATA disk (AHCI: `sda`), `root=UUID=...`;
//! * ISO 9660 (Rock Ridge, by xorriso) on q35's `-cdrom` (`sr0`),
//!   `root=LABEL=...`;
//! * a `root=LABEL=` no device has, on `-machine pc`'s IDE CD: the
//!   `root-missing` event naming what is there, a `fatal`, a poweroff.
//!
//! `root_device_timeline` (ignored; `--run-ignored only root_device_timeline
//! --no-capture`) boots the same image from its full initramfs and from
//! each root device and prints the timelines' numbers.
//!
//! Needs what `slipway_testkit::packages` needs, qemu-system-x86_64,
//! xorriso and GNU tar; run as root (the ISO's tree keeps its owners).
#![allow(
    clippy::disallowed_methods,
    reason = "boot deadlines and the timeline measurement read the clock"
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use slipway_assemble::{
    EntrySink, Header, ImageInput, Inputs, Kind, RootInitrd, plan_units, root_initrd_of,
    write_root_initrd,
};
use slipway_config::model::ImageName;
use slipway_contract::timeline::{Entry, Event, Summary, parse_transcript};
use slipway_formats::CpioWriter;
use slipway_formats::erofs::{ErofsOptions, ErofsWriter};
use slipway_formats::squashfs::{Compressor, SquashfsOptions, SquashfsWriter};
use slipway_oci::{Store, cache_name};
use slipway_reference::{Arch, Platform};
use slipway_testkit::boot::TCG_APPEND;
use slipway_testkit::initramfs::need;
use slipway_testkit::packages::{self, Packages};

/// Generous: TCG on a loaded two-core host.
const BOOT: Duration = Duration::from_secs(420);
const BUILD_TIME: u64 = 1_700_000_000;
const LABEL: &str = "SLIPWAY_ROOT";
const UUID: [u8; 16] = [
    0x5e, 0x1f, 0x00, 0xd7, 0x60, 0x0d, 0x4b, 0x1e, 0x9a, 0x11, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71,
];
const UUID_TEXT: &str = "5e1f00d7-600d-4b1e-9a11-2c3d4e5f6071";

/// The image: kernel and init from the packages, a read-write onboot task
/// that writes into its own root, a web server serving a file of the image,
/// and a client that prints the page and powers the machine off.
const CONFIG: &str = r#"kernel:
  image: "@pkg:../pkg/kernel"
  cmdline: "console=ttyS0"
init:
  - "@pkg:../pkg/init"
  - "@pkg:../pkg/crun"
onboot:
  - name: hello
    image: "@pkg:../pkg/busybox"
    command: ["/bin/sh", "-c", "echo written > /marker && echo \"hello from the root device: $(cat /marker)\""]
services:
  - name: web
    image: "@pkg:../pkg/busybox"
    command: ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]
    net: host
    capabilities: [CAP_NET_BIND_SERVICE]
    binds: ["/etc/www:/www:ro"]
    annotations:
      org.slipway.ready: "tcp:80"
  - name: check
    image: "@pkg:../pkg/busybox"
    command: ["/bin/sh", "-c", "wget -q -O - http://127.0.0.1/ && sleep 1 && kill -USR2 1"]
    net: host
    pid: host
    readonly: true
    capabilities: [CAP_KILL]
    binds: []
    annotations:
      org.slipway.after: "web"
      org.slipway.console: "true"
files:
  - path: etc/www/index.html
    mode: "0644"
    contents: "served from the root device\n"
"#;

/// What the boots share: the built image and the roots made of it.
struct Built {
    pkgs: Packages,
    dir: tempfile::TempDir,
    /// `slipway build`'s kernel+initrd output: `img-kernel`, `img-initrd.img`.
    prefix: PathBuf,
    tar: PathBuf,
    small_initrd: PathBuf,
    contents: RootInitrd,
}

impl Built {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn kernel(&self) -> PathBuf {
        suffixed(&self.prefix, "-kernel")
    }
}

fn suffixed(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn run(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{cmd:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The small initrd of the image's kernel and init units, planned as
/// `slipway build` plans them from the packages' references.
fn small_initrd(slipway: &Path, pkgs: &Packages, out: &Path) -> RootInitrd {
    let tag = |name: &str| {
        run(Command::new(slipway)
            .arg("--cache")
            .arg(&pkgs.cache)
            .args(["pkg", "show-tag"])
            .arg(pkgs.package(name)))
        .trim()
        .to_owned()
    };
    let yaml = format!(
        "kernel:\n  image: {}\n  cmdline: console=ttyS0\ninit:\n  - {}\n  - {}\n",
        tag("kernel"),
        tag("init"),
        tag("crun")
    );
    let loaded = slipway_config::load::load_str("root-device.yml", &yaml).unwrap();
    let store = Store::open(&pkgs.cache).unwrap();
    let platform = Platform::linux(Arch::Amd64);
    let mut names: Vec<ImageName> = vec![
        loaded
            .config
            .kernel
            .as_ref()
            .unwrap()
            .value
            .image
            .as_ref()
            .unwrap()
            .value
            .clone(),
    ];
    names.extend(
        loaded
            .config
            .init
            .as_ref()
            .unwrap()
            .value
            .iter()
            .map(|i| i.value.clone()),
    );
    let mut images = HashMap::new();
    for name in names {
        let ImageName::Reference(r) = &name else {
            panic!("{name} is not a reference")
        };
        let reference = cache_name(r);
        let resolved = store.resolve(&reference, &platform).unwrap();
        images.insert(
            name,
            ImageInput {
                name: reference.to_string(),
                resolved,
                max_layer_size: slipway_assemble::DEFAULT_MAX_LAYER_SIZE,
            },
        );
    }
    let inputs = Inputs {
        images,
        decompress_kernel: false,
        source_dir: PathBuf::from("."),
        metadata_yaml: String::new(),
        metadata_json: String::new(),
        source_date_epoch: None,
    };
    let units = plan_units(&loaded.config, &inputs, &store).unwrap();
    let kernel = units.iter().find(|u| u.is_kernel()).unwrap();
    let inits: Vec<&slipway_assemble::Unit> = units.iter().filter(|u| u.is_init()).collect();
    assert_eq!(inits.len(), 2);
    let gz = flate2::write::GzEncoder::new(
        BufWriter::new(File::create(out).unwrap()),
        flate2::Compression::default(),
    );
    let mut cpio = CpioWriter::new(gz, false);
    let contents = write_root_initrd(kernel, &inits, &store, &mut cpio).unwrap();
    cpio.finish().unwrap().finish().unwrap().flush().unwrap();
    contents
}

/// Replays a tar archive's entries into a sink (hard links as entries of
/// their own, which the root filesystem writers take).
fn replay_tar(tar: &Path, sink: &mut dyn EntrySink) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(File::open(tar)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let h = entry.header().clone();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let link =
            || String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default()).into_owned();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File { size: h.size()? },
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink { target: link() },
            tar::EntryType::Link => Kind::Link { target: link() },
            tar::EntryType::Char => Kind::Char {
                major: h.device_major()?.unwrap_or(0),
                minor: h.device_minor()?.unwrap_or(0),
            },
            tar::EntryType::Block => Kind::Block {
                major: h.device_major()?.unwrap_or(0),
                minor: h.device_minor()?.unwrap_or(0),
            },
            tar::EntryType::Fifo => Kind::Fifo,
            _ => continue,
        };
        let mut header = Header::new(path, kind, h.mode()?);
        header.uid = h.uid()?;
        header.gid = h.gid()?;
        header.mtime = h.mtime()?;
        header.generated = false;
        sink.entry(&header, &[], &mut entry)?;
    }
    Ok(())
}

/// A path without `./` in front or `/` behind.
fn normal(path: &str) -> &str {
    path.trim_start_matches("./").trim_end_matches('/')
}

/// Paths an entry stream holds, in order.
#[derive(Default)]
struct Paths(Vec<String>);

impl EntrySink for Paths {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> std::io::Result<()> {
        self.0.push(header.path.trim_start_matches("./").to_owned());
        self.0.extend(
            links
                .iter()
                .map(|l| l.path.trim_start_matches("./").to_owned()),
        );
        std::io::copy(content, &mut std::io::sink())?;
        Ok(())
    }
}

fn build() -> Built {
    need("qemu-system-x86_64");
    let slipway = Path::new(env!("CARGO_BIN_EXE_slipway"));
    let pkgs = packages::standard(slipway);
    let config = pkgs.root.path().join("examples").join("root-device.yml");
    fs::write(&config, CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("img");
    let tar = dir.path().join("img.tar");
    // Two builds (tar is a format of its own); the second reuses the
    // first's cached segments.
    run(Command::new(slipway)
        .arg("--cache")
        .arg(&pkgs.cache)
        .args([
            "build",
            "--offline",
            "-f",
            "kernel+initrd",
            "--name",
            "img",
            "--dir",
        ])
        .arg(dir.path())
        .arg(&config));
    run(Command::new(slipway)
        .arg("--cache")
        .arg(&pkgs.cache)
        .args(["build", "--offline", "-f", "tar", "-o"])
        .arg(&tar)
        .arg(&config));
    let small = dir.path().join("img-root-initrd.img");
    let contents = small_initrd(slipway, &pkgs, &small);

    // The same narrowing over the tar output keeps the same paths: the
    // units' entries are what the tar holds.
    let mut from_tar = Paths::default();
    root_initrd_of(
        &mut |s| replay_tar(&tar, s).map_err(slipway_assemble::AssembleError::Sink),
        &mut |s| replay_tar(&tar, s).map_err(slipway_assemble::AssembleError::Sink),
        &mut from_tar,
    )
    .unwrap();
    let listed = run(Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dcq {} | cpio -t --quiet", small.display())));
    let in_cpio: Vec<&str> = listed.lines().map(normal).collect();
    assert_eq!(
        in_cpio,
        from_tar.0.iter().map(|p| normal(p)).collect::<Vec<_>>()
    );
    Built {
        pkgs,
        dir,
        prefix,
        tar,
        small_initrd: small,
        contents,
    }
}

fn squashfs(built: &Built) -> PathBuf {
    let out = built.path("root.squashfs");
    let mut opts = SquashfsOptions::new(Compressor::Zstd, BUILD_TIME);
    opts.skip_boot = true;
    let mut writer = SquashfsWriter::new(File::create(&out).unwrap(), opts).unwrap();
    replay_tar(&built.tar, &mut writer).unwrap();
    writer.finish().unwrap();
    out
}

fn erofs(built: &Built) -> PathBuf {
    let out = built.path("root.erofs");
    let mut opts = ErofsOptions::new(BUILD_TIME);
    opts.skip_boot = true;
    opts.uuid = Some(UUID);
    opts.label = Some(LABEL.to_owned());
    let mut writer = ErofsWriter::new(File::create(&out).unwrap(), opts).unwrap();
    replay_tar(&built.tar, &mut writer).unwrap();
    writer.finish().unwrap();
    out
}

/// An ISO 9660 image with Rock Ridge of the image's tree, by xorriso.
fn iso(built: &Built, label: &str) -> PathBuf {
    let tree = built.path("iso-tree");
    fs::create_dir_all(&tree).unwrap();
    run(Command::new(need("tar"))
        .args(["-xf"])
        .arg(&built.tar)
        .arg("-C")
        .arg(&tree)
        .args([
            "--exclude=boot",
            "--same-owner",
            "--warning=no-unknown-keyword",
        ]));
    let out = built.path(&format!("root-{label}.iso"));
    run(Command::new(need("xorriso"))
        .args(["-as", "mkisofs", "-quiet", "-R", "-V", label, "-o"])
        .arg(&out)
        .arg(&tree));
    out
}

/// A qemu boot of the image's kernel: `-kernel`, `-initrd`, `-append`,
/// then `args`; waits for qemu to end (killing it after [`BOOT`]).
fn boot(kernel: &Path, initrd: &Path, append: &str, args: &[&str]) -> (ExitStatus, String) {
    let mut cmd = Command::new(need("qemu-system-x86_64"));
    cmd.args([
        "-accel",
        "tcg",
        "-m",
        "512",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
    ])
    .arg("-kernel")
    .arg(kernel)
    .arg("-initrd")
    .arg(initrd)
    .arg("-append")
    .arg(format!("console=ttyS0 {append} {}", TCG_APPEND.join(" ")))
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + BOOT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "{cmd:?} did not end within {BOOT:?}:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let console = reader.join().unwrap();
    (status, format!("{console}{stderr}"))
}

fn stamp(timeline: &[Entry], event: Event, name: Option<&str>, console: &str) -> Entry {
    timeline
        .iter()
        .find(|e| e.event == event && (name.is_none() || e.name.as_deref() == name))
        .unwrap_or_else(|| panic!("no {event} {name:?} on the timeline:\n{console}"))
        .clone()
}

/// The boot went from the root device to the services and a clean poweroff.
fn assert_served_from(device: &str, fstype: &str, status: ExitStatus, console: &str) -> Vec<Entry> {
    assert!(status.success(), "qemu: {status}\n{console}");
    let timeline = parse_transcript(console);
    let failed: Vec<&Entry> = timeline
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                Event::OnbootFailed | Event::ServiceFailed | Event::Fatal | Event::RootMissing
            )
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}\n{console}");
    let found = stamp(&timeline, Event::RootFound, None, console);
    assert_eq!(found.name.as_deref(), Some(device), "{console}");
    assert!(
        found
            .detail
            .as_deref()
            .unwrap_or_default()
            .starts_with(fstype),
        "{found:?}"
    );
    let root = stamp(&timeline, Event::RootDone, None, console);
    assert!(
        root.detail
            .as_deref()
            .unwrap_or_default()
            .starts_with(&format!("moved to {device} ({fstype}, read-only)")),
        "{root:?}"
    );
    // Only the root's drivers before the root; the image's own modules
    // from the device afterwards.
    let root_modules = stamp(&timeline, Event::ModulesDone, Some("root"), console);
    assert!(
        root_modules
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains(" 0 failed"),
        "{root_modules:?}"
    );
    assert!(
        console.contains("hello from the root device: written"),
        "the read-write onboot task wrote into its root:\n{console}"
    );
    assert!(
        console.contains("check: served from the root device"),
        "the service served the device's file:\n{console}"
    );
    let order = [
        root.ms,
        stamp(&timeline, Event::OnbootExit, Some("000-hello"), console).ms,
        stamp(&timeline, Event::ServiceReady, Some("web"), console).ms,
        stamp(&timeline, Event::Shutdown, None, console).ms,
        stamp(&timeline, Event::Poweroff, None, console).ms,
    ];
    assert!(order.is_sorted(), "{order:?}\n{console}");
    timeline
}

#[test]
fn squashfs_root_on_a_virtio_disk() {
    let built = build();
    let root = squashfs(&built);
    let (status, console) = boot(
        &built.kernel(),
        &built.small_initrd,
        "root=/dev/vda",
        &[
            "-machine",
            "pc",
            "-drive",
            &format!("file={},format=raw,if=virtio,readonly=on", root.display()),
        ],
    );
    let timeline = assert_served_from("/dev/vda", "squashfs", status, &console);
    // A virtio disk needs virtio_blk alone, not the machine's IDE driver.
    let modules = stamp(&timeline, Event::ModulesDone, Some("root"), &console);
    assert!(
        modules
            .detail
            .as_deref()
            .unwrap_or_default()
            .starts_with("1 loaded"),
        "{modules:?}"
    );
    assert!(!console.contains("ata_piix"), "{console}");
}

#[test]
fn erofs_root_by_uuid_on_a_sata_disk() {
    let built = build();
    let root = erofs(&built);
    let (status, console) = boot(
        &built.kernel(),
        &built.small_initrd,
        &format!("root=UUID={UUID_TEXT}"),
        &[
            "-machine",
            "q35",
            "-drive",
            &format!("file={},format=raw", root.display()),
        ],
    );
    assert_served_from("/dev/sda", "erofs", status, &console);
}

#[test]
fn iso9660_root_by_label_on_a_cd() {
    let built = build();
    let root = iso(&built, LABEL);
    let (status, console) = boot(
        &built.kernel(),
        &built.small_initrd,
        &format!("root=LABEL={LABEL}"),
        &["-machine", "q35", "-cdrom", &root.display().to_string()],
    );
    assert_served_from("/dev/sr0", "iso9660", status, &console);
}

#[test]
fn a_missing_root_device_is_reported_and_the_machine_powers_off() {
    let built = build();
    // A CD with another label, behind -machine pc's IDE controller.
    let other = iso(&built, "OTHER");
    let (status, console) = boot(
        &built.kernel(),
        &built.small_initrd,
        &format!("root=LABEL={LABEL} rootdelay=3"),
        &["-machine", "pc", "-cdrom", &other.display().to_string()],
    );
    // The init powered off (qemu ended by itself, -no-reboot).
    assert!(status.success(), "qemu: {status}\n{console}");
    assert!(console.contains("reboot: Power down"), "{console}");
    let timeline = parse_transcript(&console);
    let missing = stamp(&timeline, Event::RootMissing, None, &console);
    assert_eq!(missing.name.as_deref(), Some(&*format!("LABEL={LABEL}")));
    let detail = missing.detail.unwrap_or_default();
    assert!(detail.starts_with("after 3"), "{detail}");
    assert!(detail.contains("sr0 (iso9660 LABEL=OTHER"), "{detail}");
    let fatal = stamp(&timeline, Event::Fatal, None, &console);
    assert!(
        fatal
            .detail
            .unwrap_or_default()
            .starts_with(&format!("root=LABEL={LABEL}: no such device after 3")),
        "{console}"
    );
    assert!(
        console.contains(&format!(
            "the root device LABEL={LABEL} did not appear within 3 s"
        )),
        "{console}"
    );
    assert!(timeline.iter().all(|e| e.event != Event::RootDone));
}

/// The small initrd holds the init and the root's modules, nothing else of
/// the image: checked on the archive itself.
#[test]
fn the_small_initrd_holds_the_init_and_the_root_modules() {
    let built = build();
    assert!(built.contents.missing.is_empty(), "{:?}", built.contents);
    // Written again from a fresh plan: the same bytes.
    let again = built.path("again-initrd.img");
    let slipway = Path::new(env!("CARGO_BIN_EXE_slipway"));
    assert_eq!(small_initrd(slipway, &built.pkgs, &again), built.contents);
    assert!(
        fs::read(&again).unwrap() == fs::read(&built.small_initrd).unwrap(),
        "two writes of the small initrd differ"
    );
    let names: Vec<String> = built
        .contents
        .modules
        .iter()
        .map(|m| m.rsplit('/').next().unwrap().to_owned())
        .collect();
    for module in [
        "virtio_blk.ko.xz",
        "ahci.ko.xz",
        "libahci.ko.xz",
        "libata.ko.xz",
        "ata_piix.ko.xz",
        "sd_mod.ko.xz",
        "sr_mod.ko.xz",
        "cdrom.ko.xz",
        "scsi_mod.ko.xz",
        "squashfs.ko.xz",
        "erofs.ko.xz",
        "libcrc32c.ko.xz",
        "crc32c_generic.ko.xz",
        "isofs.ko.xz",
    ] {
        assert!(names.iter().any(|n| n == module), "{module}: {names:?}");
    }
    for absent in [
        "virtio_net.ko.xz",
        "overlay.ko.xz",
        "ext4.ko.xz",
        "bridge.ko.xz",
    ] {
        assert!(!names.iter().any(|n| n == absent), "{absent}: {names:?}");
    }
    let listed = run(Command::new("sh").arg("-c").arg(format!(
        "zstd -dcq {} | cpio -t --quiet",
        built.small_initrd.display()
    )));
    assert!(listed.lines().any(|l| normal(l) == "init"), "{listed}");
    assert!(
        listed
            .lines()
            .map(normal)
            .all(|l| l == "init" || l == "lib" || l.starts_with("lib/modules")),
        "{listed}"
    );
    let full = fs::metadata(suffixed(&built.prefix, "-initrd.img"))
        .unwrap()
        .len();
    let small = fs::metadata(&built.small_initrd).unwrap().len();
    assert!(small * 4 < full, "small {small} B, full {full} B");
}

/// Boots the image from its full initramfs and from each root device and
/// prints each timeline's numbers on the guest's clock.
#[test]
#[ignore = "a measurement: --run-ignored only root_device_timeline --no-capture"]
fn root_device_timeline() {
    let built = build();
    let squash = squashfs(&built);
    let ero = erofs(&built);
    let cd = iso(&built, LABEL);
    let runs: usize = std::env::var("SLIPWAY_TIMELINE_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let full = suffixed(&built.prefix, "-initrd.img");
    let cases: Vec<(&str, PathBuf, String, Vec<String>)> = vec![
        (
            "initramfs (pc)",
            full.clone(),
            String::new(),
            vec!["-machine".into(), "pc".into()],
        ),
        (
            "squashfs /dev/vda (pc)",
            built.small_initrd.clone(),
            "root=/dev/vda".into(),
            vec![
                "-machine".into(),
                "pc".into(),
                "-drive".into(),
                format!("file={},format=raw,if=virtio,readonly=on", squash.display()),
            ],
        ),
        (
            "initramfs (q35)",
            full,
            String::new(),
            vec!["-machine".into(), "q35".into()],
        ),
        (
            "erofs UUID= sda (q35)",
            built.small_initrd.clone(),
            format!("root=UUID={UUID_TEXT}"),
            vec![
                "-machine".into(),
                "q35".into(),
                "-drive".into(),
                format!("file={},format=raw", ero.display()),
            ],
        ),
        (
            "iso9660 LABEL= sr0 (q35)",
            built.small_initrd.clone(),
            format!("root=LABEL={LABEL}"),
            vec![
                "-machine".into(),
                "q35".into(),
                "-cdrom".into(),
                cd.display().to_string(),
            ],
        ),
    ];
    for run in 0..runs {
        for (name, initrd, append, args) in &cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (status, console) = boot(&built.kernel(), initrd, append, &args);
            assert!(status.success(), "{name}: {status}\n{console}");
            let timeline = parse_transcript(&console);
            let at = |event: Event, name: Option<&str>| {
                timeline
                    .iter()
                    .find(|e| e.event == event && (name.is_none() || e.name.as_deref() == name))
                    .map_or(0, |e| e.ms)
            };
            let init = at(Event::InitStart, None);
            let summary = Summary::of(&timeline).unwrap();
            println!(
                "TIMELINE run {run} {name}: kernel->init {} ms; init->root-done {} ms \
                 (root modules until {} ms, device found {} ms); root-done->onboot-done {} ms; \
                 init->services-started {} ms; module loading {} ms; {}",
                init,
                at(Event::RootDone, None).saturating_sub(init),
                at(Event::ModulesDone, Some("root")).saturating_sub(init),
                at(Event::RootFound, None).saturating_sub(init),
                at(Event::OnbootDone, None).saturating_sub(at(Event::RootDone, None)),
                at(Event::ServicesStarted, None).saturating_sub(init),
                summary.module_loading,
                timeline
                    .iter()
                    .filter(|e| e.ms <= at(Event::OnbootStart, None))
                    .map(|e| format!("{} {}", e.ms, e.event))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}
