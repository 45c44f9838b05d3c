//! `slipway build` end to end against the real registry on loopback: the
//! tar layout, the initrd read back by GNU cpio, reproducibility across
//! umask and working directory, and a golden hash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command as Std, Stdio};

use assert_cmd::Command;
use sha2::{Digest, Sha256};
use slipway_testkit::image::{pseudo_random_bytes, tar_bytes};
use slipway_testkit::{Artifact, Entry, ImageBuilder, PushTarget, Registry};

/// The tar of the fixture config, built with `--format tar`. Changes only
/// when slipway's output changes on purpose (then bump FORMAT_VERSION).
const GOLDEN_TAR_SHA256: &str = "90293f3e2bc5f7a68b166c4446d2e40dcf358a59f2052775627f5fbda1e81b3e";

fn push(registry: &Registry, repo: &str, builder: ImageBuilder) {
    let artifact: Artifact = builder.arch("amd64").build().unwrap().into();
    PushTarget::new(registry, repo)
        .push(&artifact, Some("1"))
        .unwrap();
}

/// kernel, init, tool and svc images under `test/` in `registry`.
fn seed(registry: &Registry) {
    let modules = tar_bytes(&[
        Entry::dir("lib/modules/6.6.0"),
        Entry::file("lib/modules/6.6.0/modules.dep", "kernel/x.ko:\n"),
        Entry::file("lib/modules/6.6.0/kernel/x.ko", "\x7fELF module"),
    ])
    .unwrap();
    push(
        registry,
        "test/kernel",
        ImageBuilder::new().layer([
            Entry::file("kernel", pseudo_random_bytes(7, 5000)),
            Entry::file("kernel.tar", modules),
        ]),
    );
    let long = format!("usr/share/{}/file", "d".repeat(120));
    push(
        registry,
        "test/init",
        ImageBuilder::new()
            .layer([
                Entry::dir("bin"),
                Entry::executable("bin/init", "#!/bin/sh\n"),
                Entry::hard_link("bin/init-again", "bin/init"),
                Entry::dir("sbin"),
                Entry::symlink("sbin/init", "../bin/init"),
                Entry::dir("etc"),
                Entry::file("etc/hosts", "replaced"),
                Entry::file("etc/owned", "x")
                    .with_owner(1000, 1001)
                    .with_mode(0o640),
                Entry::dir("dev"),
                Entry::char_device("dev/null", 1, 3),
                Entry::block_device("dev/loop0", 7, 0),
                Entry::fifo("dev/pipe"),
                Entry::file(long, "long"),
                Entry::file("gone", "deleted below"),
            ])
            .layer([Entry::whiteout("gone"), Entry::file("etc/motd", "hi\n")]),
    );
    push(
        registry,
        "test/tool",
        ImageBuilder::new()
            .layer([Entry::dir("bin"), Entry::executable("bin/tool", "tool")])
            .cmd(["/bin/tool"]),
    );
    push(
        registry,
        "test/svc",
        ImageBuilder::new()
            .layer([
                Entry::dir("usr"),
                Entry::dir("usr/bin"),
                Entry::executable("usr/bin/svc", "svc"),
            ])
            .cmd(["/usr/bin/svc", "-d"])
            .env(["PATH=/usr/bin", "FROM_IMAGE=1"])
            .label(
                "org.mobyproject.config",
                r#"{"capabilities":["CAP_NET_ADMIN"],"binds":["/var/run:/var/run"],"env":["FROM_LABEL=1"]}"#,
            ),
    );
}

const CONFIG: &str = r#"kernel:
  image: example.org/test/kernel:1
  cmdline: console=ttyS0 quiet
init:
  - example.org/test/init:1
onboot:
  - name: setup
    image: example.org/test/tool:1
    command: ["/bin/tool", "setup"]
onshutdown:
  - name: bye
    image: example.org/test/tool:1
    readonly: true
services:
  - name: daemon
    image: example.org/test/svc:1
    env: ["FROM_YAML=1"]
  - name: ro
    image: example.org/test/svc:1
    readonly: true
volumes:
  - name: data
    image: example.org/test/tool:1
  - name: blob
    image: example.org/test/svc:1
    format: oci
  - name: scratch
files:
  - path: etc/motd
    contents: "hello\n"
    mode: "0644"
  - path: etc/app/config
    source: ~/src.txt
    uid: daemon
    gid: 7
    mode: "0640"
  - path: etc/linuxkit.yml
    metadata: yaml
  - path: etc/linuxkit.json
    metadata: json
  - path: var/link
    symlink: /etc/motd
  - path: var/empty
    directory: true
    mode: "0750"
  - path: opt/missing
    source: ~/not-there
    optional: true
"#;

struct Fixture {
    registry: Registry,
    work: tempfile::TempDir,
    home: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let registry = Registry::start().unwrap();
        seed(&registry);
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("image.yml"), CONFIG).unwrap();
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("src.txt"), "from the host\n").unwrap();
        Fixture {
            registry,
            work,
            home,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> PathBuf {
        self.work.path().join("image.yml")
    }

    /// `slipway --cache C --arch amd64 --mirror example.org=REGISTRY ARGS`
    /// in `cwd` under `umask`, through `sh`.
    fn slipway(&self, cwd: &Path, umask: &str, args: &[&str]) -> Command {
        let bin = assert_cmd::cargo::cargo_bin("slipway");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(bin)
            .arg("--cache")
            .arg(self.cache.path())
            .args(["--arch", "amd64", "--mirror"])
            .arg(format!("example.org=http://{}", self.registry.host()))
            .args(args)
            .current_dir(cwd)
            .env("HOME", self.home.path())
            .env_remove("SLIPWAY_CACHE")
            .env_remove("LINUXKIT_MIRROR")
            .env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    fn build(&self, dir: &Path, format: &str) -> assert_cmd::assert::Assert {
        self.build_assert(dir, format).success()
    }

    /// `slipway build --format FORMAT --dir DIR` of the fixture, not yet checked.
    fn build_assert(&self, dir: &Path, format: &str) -> assert_cmd::assert::Assert {
        let config = self.config();
        self.slipway(
            self.work.path(),
            "022",
            &[
                "build",
                "--format",
                format,
                "--dir",
                dir.to_str().unwrap(),
                config.to_str().unwrap(),
            ],
        )
        .assert()
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// One line per tar entry: type, mode, owner, size, path, link, PAX records.
fn listing(tar: &[u8]) -> String {
    let mut archive = tar::Archive::new(tar);
    let mut out = String::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => "f",
            tar::EntryType::Directory => "d",
            tar::EntryType::Symlink => "l",
            tar::EntryType::Link => "h",
            tar::EntryType::Char => "c",
            tar::EntryType::Block => "b",
            tar::EntryType::Fifo => "p",
            _ => "?",
        };
        let mut pax = Vec::new();
        if let Some(exts) = entry.pax_extensions().unwrap() {
            for e in exts {
                let e = e.unwrap();
                let key = e.key().unwrap().to_string();
                if key.starts_with("LINUXKIT.") {
                    pax.push(format!("{key}={}", e.value().unwrap()));
                }
            }
        }
        let path = entry.path().unwrap().display().to_string();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| format!(" -> {}", l.display()))
            .unwrap_or_default();
        let dev = if matches!(kind, "c" | "b") {
            format!(
                " {},{}",
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap()
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{kind} {:04o} {}:{} {:>5} {path}{link}{dev} [{}]\n",
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.size().unwrap(),
            pax.join(" ")
        ));
        let mut sink = Vec::new();
        entry.read_to_end(&mut sink).unwrap();
    }
    out
}

#[test]
fn tar_layout_initrd_agreement_and_reproducibility() {
    let fx = Fixture::new();
    let out = tempfile::tempdir().unwrap();
    let a = fx.build(out.path(), "tar");
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("slipway: built image (tar)"), "{err}");
    assert!(err.contains("example.org/test/svc:1 sha256:"), "{err}");
    let tar_path = out.path().join("image.tar");
    let tar = std::fs::read(&tar_path).unwrap();
    insta::assert_snapshot!("tar_listing", listing(&tar));

    // The same config as kernel+initrd: GNU cpio unpacks the initrd, and it
    // holds exactly the tar's entries outside boot/.
    fx.build(out.path(), "kernel+initrd");
    let kernel = std::fs::read(out.path().join("image-kernel")).unwrap();
    assert_eq!(kernel, pseudo_random_bytes(7, 5000));
    assert_eq!(
        std::fs::read_to_string(out.path().join("image-cmdline")).unwrap(),
        "console=ttyS0 quiet"
    );
    let gz = std::fs::read(out.path().join("image-initrd.img")).unwrap();
    let mut cpio = Vec::new();
    flate_decode(&gz, &mut cpio);
    let unpacked = tempfile::tempdir().unwrap();
    // The kernel reads the concatenated archives as one; GNU cpio stops at
    // the first trailer, so it is given one archive at a time.
    let archives = split_archives(&cpio);
    assert!(archives.len() > 1, "one archive per unit");
    for archive in archives {
        let mut child = Std::new("cpio")
            .args(["-i", "-d", "-u", "--quiet", "--no-absolute-filenames"])
            .current_dir(unpacked.path())
            .stdin(Stdio::piped())
            .spawn()
            .expect("GNU cpio (apt-get install cpio)");
        child.stdin.take().unwrap().write_all(archive).unwrap();
        assert!(child.wait().unwrap().success());
    }
    compare_with_tar(&tar, unpacked.path());

    // Again, from another directory, under another umask: the same bytes.
    let other = tempfile::tempdir().unwrap();
    let out2 = other.path().join("out");
    let config = fx.config();
    for format in ["tar", "kernel+initrd"] {
        fx.slipway(
            other.path(),
            "077",
            &[
                "build",
                "--format",
                format,
                "--dir",
                "out",
                config.to_str().unwrap(),
            ],
        )
        .assert()
        .success();
    }
    for name in [
        "image.tar",
        "image-kernel",
        "image-initrd.img",
        "image-cmdline",
    ] {
        assert_eq!(
            sha256(&out.path().join(name)),
            sha256(&out2.join(name)),
            "{name} differs between the two builds"
        );
        // Outputs are ordinary files: 0666 less the umask.
        assert_eq!(
            mode(&out.path().join(name)),
            0o644,
            "{name} under umask 022"
        );
        assert_eq!(mode(&out2.join(name)), 0o600, "{name} under umask 077");
    }
    // And with a fresh segment cache, so every unit is encoded again.
    let fresh = tempfile::tempdir().unwrap();
    let mut cmd = fx.slipway(
        other.path(),
        "077",
        &["build", "-o", "-", config.to_str().unwrap()],
    );
    cmd.arg("--cache").arg(fresh.path());
    let streamed = cmd.assert().success().get_output().stdout.clone();
    assert_eq!(hex::encode(Sha256::digest(&streamed)), sha256(&tar_path));

    let golden = sha256(&tar_path);
    assert_eq!(
        golden, GOLDEN_TAR_SHA256,
        "the tar of the fixture changed; if on purpose, update GOLDEN_TAR_SHA256"
    );
}

/// The newc archives of a concatenation, each up to and including its
/// trailer (and the zero padding after it).
fn split_archives(mut data: &[u8]) -> Vec<&[u8]> {
    let field = |h: &[u8], i: usize| {
        let start = 6 + 8 * i;
        usize::from_str_radix(std::str::from_utf8(&h[start..start + 8]).unwrap(), 16).unwrap()
    };
    let pad = |n: usize| n.div_ceil(4) * 4;
    let mut out = Vec::new();
    while !data.is_empty() {
        let mut at = 0;
        loop {
            let h = &data[at..];
            assert_eq!(&h[..6], b"070701", "a newc header at {at}");
            let (filesize, namesize) = (field(h, 6), field(h, 11));
            let name = &h[110..110 + namesize - 1];
            at += pad(110 + namesize) + pad(filesize);
            if name == b"TRAILER!!!" {
                break;
            }
        }
        while at < data.len() && data[at] == 0 {
            at += 1;
        }
        out.push(&data[..at]);
        data = &data[at..];
    }
    out
}

fn flate_decode(gz: &[u8], out: &mut Vec<u8>) {
    let mut child = Std::new("gzip")
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = gz.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    child.stdout.take().unwrap().read_to_end(out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
}

/// Every tar entry outside boot/ is in `dir` with its type, mode, owner,
/// contents and link target, and `dir` holds nothing else.
fn compare_with_tar(tar: &[u8], dir: &Path) {
    let mut archive = tar::Archive::new(tar);
    let mut expected: BTreeMap<String, (u8, u32, u64, u64, Vec<u8>)> = BTreeMap::new();
    let mut hard: Vec<(String, String)> = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry
            .path()
            .unwrap()
            .display()
            .to_string()
            .trim_end_matches('/')
            .to_string();
        if path == "boot" || path.starts_with("boot/") {
            continue;
        }
        let h = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let t = h.entry_type();
        if t == tar::EntryType::Link {
            let target = entry.link_name().unwrap().unwrap().display().to_string();
            hard.push((path.clone(), target));
        }
        if t == tar::EntryType::Symlink {
            data = entry
                .link_name()
                .unwrap()
                .unwrap()
                .display()
                .to_string()
                .into_bytes();
        }
        expected.insert(
            path,
            (
                t.as_byte(),
                h.mode().unwrap() & 0o7777,
                h.uid().unwrap(),
                h.gid().unwrap(),
                data,
            ),
        );
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    // cpio -d makes the parents an image does not list; nothing else is extra.
    let found_names: Vec<&String> = found
        .iter()
        // The initrd keeps the (empty) boot/ directory itself.
        .filter(|f| *f != "boot")
        .filter(|f| {
            expected.contains_key(*f) || !expected.keys().any(|e| e.starts_with(&format!("{f}/")))
        })
        .collect();
    let expected_names: Vec<&String> = expected.keys().collect();
    assert_eq!(found_names, expected_names, "the initrd's paths");
    for (path, (t, mode, uid, gid, data)) in &expected {
        let p = dir.join(path);
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let ft = meta.file_type();
        match *t {
            b'5' => assert!(ft.is_dir(), "{path}"),
            b'2' => {
                assert!(ft.is_symlink(), "{path}");
                assert_eq!(
                    std::fs::read_link(&p)
                        .unwrap()
                        .display()
                        .to_string()
                        .as_bytes(),
                    data.as_slice(),
                    "{path}"
                );
                continue;
            }
            b'3' | b'4' | b'6' => {
                use std::os::unix::fs::FileTypeExt;
                assert!(
                    ft.is_char_device() || ft.is_block_device() || ft.is_fifo(),
                    "{path}"
                );
            }
            b'1' => {}
            _ => {
                assert!(ft.is_file(), "{path}");
                assert_eq!(&std::fs::read(&p).unwrap(), data, "{path}");
            }
        }
        if *t != b'1' {
            assert_eq!(meta.permissions().mode() & 0o7777, *mode, "mode of {path}");
            assert_eq!(
                (meta.uid() as u64, meta.gid() as u64),
                (*uid, *gid),
                "owner of {path}"
            );
        }
    }
    // Hard links are real: one inode.
    for (link, target) in hard {
        let a = std::fs::metadata(dir.join(&link)).unwrap();
        let b = std::fs::metadata(dir.join(&target)).unwrap();
        assert_eq!(a.ino(), b.ino(), "{link} is a hard link to {target}");
        assert_eq!(
            std::fs::read(dir.join(&link)).unwrap(),
            std::fs::read(dir.join(&target)).unwrap()
        );
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        out.push(p.strip_prefix(root).unwrap().display().to_string());
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            walk(root, &p, out);
        }
    }
    out.sort();
}

#[test]
fn format_flags_are_checked_before_anything_is_fetched() {
    let fx = Fixture::new();
    let config = fx.config();
    let cfg = config.to_str().unwrap();
    let cwd = fx.work.path();
    for (args, message) in [
        (
            vec!["build", "--format", "rpi3", cfg],
            "the rpi3 format is a Raspberry Pi 3 image, which is arm64; this build is for amd64",
        ),
        (
            vec!["build", "--format", "raw-efi", "--size", "12X", cfg],
            "--size: ",
        ),
        (
            vec!["build", "-f", "vhd", "-f", "dynamic-vhd", cfg],
            "the vhd and dynamic-vhd formats both write NAME.vhd",
        ),
        (
            vec!["build", "--format", "floppy", cfg],
            "unknown format \"floppy\"",
        ),
        (
            vec!["build", "--format", "tar,kernel+initrd", cfg],
            "the tar format must be the only format",
        ),
        (
            vec!["build", "-f", "kernel+initrd", "-o", "x", cfg],
            "-o writes a single file",
        ),
        (
            vec!["build", "--compress", "lz4", cfg],
            "unknown compression",
        ),
    ] {
        let a = fx.slipway(cwd, "022", &args).assert().failure();
        let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn a_failed_build_leaves_the_previous_outputs() {
    let fx = Fixture::new();
    let out = tempfile::tempdir().unwrap();
    fx.build(out.path(), "kernel+initrd");
    let before: Vec<String> = ["image-kernel", "image-initrd.img", "image-cmdline"]
        .iter()
        .map(|n| sha256(&out.path().join(n)))
        .collect();
    // A required source file disappears: the build fails.
    std::fs::remove_file(fx.home.path().join("src.txt")).unwrap();
    let config = fx.config();
    let a = fx
        .slipway(
            fx.work.path(),
            "022",
            &[
                "build",
                "--compress",
                "zstd",
                "--dir",
                out.path().to_str().unwrap(),
                config.to_str().unwrap(),
            ],
        )
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("src.txt"), "{err}");
    let after: Vec<String> = ["image-kernel", "image-initrd.img", "image-cmdline"]
        .iter()
        .map(|n| sha256(&out.path().join(n)))
        .collect();
    assert_eq!(before, after);
    let stray: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
}

#[test]
fn cache_export_filesystem_flattens_one_image() {
    let fx = Fixture::new();
    let cwd = fx.work.path();
    fx.slipway(cwd, "022", &["cache", "pull", "example.org/test/init:1"])
        .assert()
        .success();
    let file = cwd.join("init-fs.tar");
    let file_arg = file.to_str().unwrap();
    fx.slipway(
        cwd,
        "022",
        &[
            "cache",
            "export",
            "--format",
            "filesystem",
            "-o",
            file_arg,
            "example.org/test/init:1",
        ],
    )
    .assert()
    .success();
    assert_eq!(mode(&file), 0o644, "0666 less the umask 022");
    let tar = std::fs::read(&file).unwrap();
    let list = listing(&tar);
    // The upper layer's whiteout removed `gone`, its etc/motd is there,
    // the hard link, devices and long name survive.
    assert!(!list.contains(" gone "), "{list}");
    assert!(list.contains("f 0644 0:0     3 etc/motd"), "{list}");
    assert!(
        list.contains("h 0755 0:0     0 bin/init-again -> bin/init"),
        "{list}"
    );
    assert!(list.contains("c 0666 0:0     0 dev/null 1,3"), "{list}");
    assert!(list.contains("f 0640 1000:1001     1 etc/owned"), "{list}");
    assert!(
        list.contains(&format!("usr/share/{}/file", "d".repeat(120))),
        "{list}"
    );
    // Standard output gives the same bytes.
    let a = fx
        .slipway(
            cwd,
            "022",
            &[
                "cache",
                "export",
                "--format",
                "filesystem",
                "-o",
                "-",
                "example.org/test/init:1",
            ],
        )
        .assert()
        .success();
    assert_eq!(a.get_output().stdout, tar);
}

#[test]
fn a_build_failing_at_its_last_output_replaces_none_of_them() {
    let fx = Fixture::new();
    let out = tempfile::tempdir().unwrap();
    fx.build(out.path(), "kernel+initrd");
    let names = ["image-kernel", "image-initrd.img", "image-cmdline"];
    let hashes = || -> Vec<String> { names.iter().map(|n| sha256(&out.path().join(n))).collect() };
    let before = hashes();
    // The next build's initrd differs, and its last output cannot be
    // written: a directory is where the tar-kernel-initrd file goes.
    std::fs::write(
        fx.config(),
        CONFIG.replace("contents: \"hello\\n\"", "contents: \"changed\\n\""),
    )
    .unwrap();
    std::fs::create_dir(out.path().join("image-initrd.tar")).unwrap();
    let a = fx
        .build_assert(out.path(), "kernel+initrd,tar-kernel-initrd")
        .failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("image-initrd.tar"), "{err}");
    assert_eq!(before, hashes(), "an output was replaced by a failed build");
    let stray: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
    // Out of the way, the same build replaces the initrd (it did differ).
    std::fs::remove_dir(out.path().join("image-initrd.tar")).unwrap();
    fx.build(out.path(), "kernel+initrd,tar-kernel-initrd");
    let after = hashes();
    assert_eq!(before[0], after[0]);
    assert_ne!(before[1], after[1]);
    assert!(out.path().join("image-initrd.tar").is_file());
}

/// `path -> mtime` of every entry of a tar.
fn mtimes(tar: &[u8]) -> BTreeMap<String, u64> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            (path, e.header().mtime().unwrap())
        })
        .collect()
}

#[test]
fn generated_entries_take_source_date_epoch_and_image_entries_keep_their_time() {
    let fx = Fixture::new();
    let out = tempfile::tempdir().unwrap();
    let config = fx.config();
    let tar_with = |epoch: Option<&str>, name: &str| -> Vec<u8> {
        let path = out.path().join(name);
        let mut cmd = fx.slipway(
            fx.work.path(),
            "022",
            &[
                "build",
                "--format",
                "docker",
                "-o",
                path.to_str().unwrap(),
                config.to_str().unwrap(),
            ],
        );
        if let Some(e) = epoch {
            cmd.env("SOURCE_DATE_EPOCH", e);
        }
        cmd.assert().success();
        std::fs::read(path).unwrap()
    };
    let fixed = mtimes(&tar_with(None, "fixed.tar"));
    let epoch = tar_with(Some("1700000000"), "epoch.tar");
    let stamped = mtimes(&epoch);
    assert_eq!(
        fixed.keys().collect::<Vec<_>>(),
        stamped.keys().collect::<Vec<_>>()
    );
    let generated = [
        "boot",
        "boot/cmdline",
        "boot/kernel",
        "containers/onboot/000-setup/config.json",
        "containers/onboot/000-setup/runtime.json",
        "containers/onboot/000-setup/tmp",
        "containers/services/daemon/lower/etc/hosts",
        "containers/volumes/scratch/merged",
        "etc/motd",
        "etc/app/config",
        "etc/linuxkit.yml",
        "var/empty",
        "Dockerfile",
    ];
    for path in generated {
        assert_eq!(fixed[path], 1_492_533_000, "{path} without the variable");
        assert_eq!(
            stamped[path], 1_700_000_000,
            "{path} with SOURCE_DATE_EPOCH"
        );
    }
    // Entries from images keep the time their layer gave them.
    for path in ["bin/init", "etc/owned", "lib/modules/6.6.0/kernel/x.ko"] {
        assert_eq!(fixed[path], 0, "{path}");
        assert_eq!(stamped[path], 0, "{path}");
    }
    for (path, t) in &stamped {
        assert!(
            *t == 0 || *t == 1_700_000_000,
            "{path} has neither its image's time nor SOURCE_DATE_EPOCH: {t}"
        );
    }
    // The same epoch gives the same bytes again.
    assert_eq!(epoch, tar_with(Some("1700000000"), "again.tar"));

    for bad in ["yesterday", "-1", "99999999999"] {
        let a = fx
            .slipway(
                fx.work.path(),
                "022",
                &["build", "-o", "-", config.to_str().unwrap()],
            )
            .env("SOURCE_DATE_EPOCH", bad)
            .assert()
            .failure();
        let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
        assert!(err.contains("SOURCE_DATE_EPOCH"), "{bad}: {err}");
    }
}

/// `program args` run in `dir` with `input` on standard input; its output.
fn run_filter(program: &str, args: &[&str], dir: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Std::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    out.stdout
}

/// The members of a tar, by name.
fn tar_members(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    let mut out = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

#[test]
fn microcode_is_prepended_uncompressed_and_gnu_cpio_reads_both_parts() {
    let fx = Fixture::new();
    // An early-microcode archive as distributions make it, by GNU cpio.
    let src = tempfile::tempdir().unwrap();
    let ucode_dir = src.path().join("kernel/x86/microcode");
    std::fs::create_dir_all(&ucode_dir).unwrap();
    let blob = pseudo_random_bytes(11, 3000);
    std::fs::write(ucode_dir.join("GenuineIntel.bin"), &blob).unwrap();
    let ucode = run_filter(
        "cpio",
        &["-o", "-H", "newc", "--quiet"],
        src.path(),
        b"kernel\nkernel/x86\nkernel/x86/microcode\nkernel/x86/microcode/GenuineIntel.bin\n",
    );
    let modules = tar_bytes(&[Entry::file("lib/modules/6.6.0/modules.dep", "\n")]).unwrap();
    push(
        &fx.registry,
        "test/kernel-ucode",
        ImageBuilder::new().layer([
            Entry::file("kernel", pseudo_random_bytes(7, 5000)),
            Entry::file("kernel.tar", modules),
            Entry::file("intel-ucode.cpio", &ucode),
        ]),
    );
    std::fs::write(
        fx.config(),
        CONFIG.replace(
            "image: example.org/test/kernel:1",
            "image: example.org/test/kernel-ucode:1\n  ucode: intel-ucode.cpio",
        ),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    fx.build(out.path(), "kernel+initrd,tar-kernel-initrd");

    // The initrd is the microcode archive as it was, then gzip.
    let initrd = std::fs::read(out.path().join("image-initrd.img")).unwrap();
    assert!(
        initrd.starts_with(&ucode),
        "the initrd does not start with it"
    );
    let rest = &initrd[ucode.len()..];
    assert_eq!(&rest[..2], &[0x1f, 0x8b], "gzip after the microcode");
    // GNU cpio reads the first part from the initrd itself...
    let first = tempfile::tempdir().unwrap();
    run_filter(
        "cpio",
        &["-i", "-d", "--quiet", "--no-absolute-filenames"],
        first.path(),
        &initrd,
    );
    assert_eq!(
        std::fs::read(first.path().join("kernel/x86/microcode/GenuineIntel.bin")).unwrap(),
        blob
    );
    // ...and every archive of the compressed part after it.
    let mut cpio = Vec::new();
    flate_decode(rest, &mut cpio);
    let second = tempfile::tempdir().unwrap();
    for archive in split_archives(&cpio) {
        run_filter(
            "cpio",
            &["-i", "-d", "-u", "--quiet", "--no-absolute-filenames"],
            second.path(),
            archive,
        );
    }
    assert_eq!(
        std::fs::read_to_string(second.path().join("etc/motd")).unwrap(),
        "hello\n"
    );
    assert!(
        second
            .path()
            .join("lib/modules/6.6.0/modules.dep")
            .is_file()
    );
    assert!(
        !second.path().join("kernel").exists(),
        "microcode compressed too"
    );
    // As in LinuxKit, whose initrd writer drops only `boot/...`: the `boot`
    // directory itself stays, empty.
    let boot: Vec<_> = std::fs::read_dir(second.path().join("boot"))
        .unwrap()
        .collect();
    assert!(boot.is_empty(), "boot/ holds {boot:?}");

    // tar-kernel-initrd: the same initrd, and the microcode on its own.
    let members = tar_members(&std::fs::read(out.path().join("image-initrd.tar")).unwrap());
    assert_eq!(
        members.keys().collect::<Vec<_>>(),
        ["cmdline", "initrd.img", "kernel", "ucode.cpio"]
    );
    assert!(members["ucode.cpio"] == ucode);
    assert!(members["initrd.img"] == initrd);
    // tar: boot/ucode.cpio.
    fx.build(out.path(), "tar");
    let members = tar_members(&std::fs::read(out.path().join("image.tar")).unwrap());
    assert!(members["boot/ucode.cpio"] == ucode);
}

/// The names in one newc archive, in order (GNU cpio's listing).
fn cpio_names(archive: &[u8]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    String::from_utf8(run_filter("cpio", &["-t", "--quiet"], tmp.path(), archive))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_large_unit_is_cut_at_entry_boundaries_keeping_hard_link_groups_whole() {
    let fx = Fixture::new();
    // 33 MiB, then a hard-link group: the cut (every 32 MiB of cpio) comes
    // before the group, between two entries, and the group stays together.
    let block = pseudo_random_bytes(21, 4096);
    let big: Vec<u8> = block.iter().copied().cycle().take(33 << 20).collect();
    let mut entries = vec![
        Entry::dir("data"),
        Entry::file("data/a-big", big),
        Entry::file("data/b-group", pseudo_random_bytes(22, 70_000)),
        Entry::hard_link("data/b-link1", "data/b-group"),
        Entry::hard_link("data/b-link2", "data/b-group"),
    ];
    for i in 0..40 {
        entries.push(Entry::file(format!("data/c-{i:02}"), format!("small {i}")));
    }
    push(&fx.registry, "test/big", ImageBuilder::new().layer(entries));
    std::fs::write(
        fx.config(),
        CONFIG.replace(
            "init:\n  - example.org/test/init:1\n",
            "init:\n  - example.org/test/init:1\n  - example.org/test/big:1\n",
        ),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    fx.build(out.path(), "tar");
    let config = fx.config();
    let a = fx
        .slipway(
            fx.work.path(),
            "022",
            &[
                "-v",
                "2",
                "build",
                "--format",
                "kernel+initrd",
                "--dir",
                out.path().to_str().unwrap(),
                config.to_str().unwrap(),
            ],
        )
        .assert()
        .success();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    let line = err
        .lines()
        .find(|l| l.contains("unit init example.org/test/big:1"))
        .unwrap_or_else(|| panic!("no report of the big unit: {err}"));
    assert!(line.contains("in 2 segment(s)"), "{line}");

    let mut cpio = Vec::new();
    flate_decode(
        &std::fs::read(out.path().join("image-initrd.img")).unwrap(),
        &mut cpio,
    );
    let archives = split_archives(&cpio);
    let listings: Vec<Vec<String>> = archives.iter().map(|a| cpio_names(a)).collect();
    let holding = |name: &str| -> Vec<usize> {
        (0..listings.len())
            .filter(|i| listings[*i].iter().any(|n| n == name))
            .collect()
    };
    // The unit is two archives: the big file in one, the rest in the next.
    let first = holding("data/a-big");
    assert_eq!(first.len(), 1);
    let group = holding("data/b-group");
    assert_eq!(group, [first[0] + 1], "the cut comes after the big file");
    for name in ["data/b-link1", "data/b-link2", "data/c-00", "data/c-39"] {
        assert_eq!(holding(name), group, "{name} is not with its group");
    }
    // Each archive holds what it names: the group's data in its own archive.
    let one = tempfile::tempdir().unwrap();
    run_filter(
        "cpio",
        &["-i", "-d", "--quiet", "--no-absolute-filenames"],
        one.path(),
        archives[group[0]],
    );
    let ino = |n: &str| std::fs::metadata(one.path().join(n)).unwrap();
    assert_eq!(ino("data/b-group").ino(), ino("data/b-link2").ino());
    assert_eq!(ino("data/b-group").nlink(), 3);
    assert_eq!(
        std::fs::read(one.path().join("data/b-link1")).unwrap(),
        pseudo_random_bytes(22, 70_000)
    );
    // And the whole initrd, archive after archive, is the tar entry for
    // entry: the same as if the unit had been one archive.
    let all = tempfile::tempdir().unwrap();
    for archive in &archives {
        run_filter(
            "cpio",
            &["-i", "-d", "-u", "--quiet", "--no-absolute-filenames"],
            all.path(),
            archive,
        );
    }
    compare_with_tar(
        &std::fs::read(out.path().join("image.tar")).unwrap(),
        all.path(),
    );
}

/// A zstd layer holding one file whose header says `size` bytes (zeros):
/// a few hundred KiB of blob for gigabytes of tar.
fn huge_layer(path: &str, size: u64) -> slipway_testkit::image::Layer {
    let mut header = tar::Header::new_ustar();
    header.set_path(path).unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let mut hash = Sha256::new();
    let mut put = |bytes: &[u8]| {
        enc.write_all(bytes).unwrap();
        hash.update(bytes);
    };
    put(header.as_bytes());
    let zeros = vec![0u8; 1 << 20];
    let mut left = size + (512 - size % 512) % 512 + 1024;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        put(&zeros[..n]);
        left -= n as u64;
    }
    slipway_testkit::image::Layer {
        diff_id: format!("sha256:{}", hex::encode(hash.finalize())),
        blob: slipway_testkit::image::Blob::new(
            slipway_testkit::image::media::OCI_LAYER_ZSTD,
            enc.finish().unwrap(),
        ),
    }
}

#[test]
fn a_file_over_4_gib_fails_the_initrd_clearly_and_keeps_the_previous_outputs() {
    let fx = Fixture::new();
    let out = tempfile::tempdir().unwrap();
    fx.build(out.path(), "kernel+initrd");
    let names = ["image-kernel", "image-initrd.img", "image-cmdline"];
    let before: Vec<String> = names.iter().map(|n| sha256(&out.path().join(n))).collect();

    let size = (4u64 << 30) + 1;
    push(
        &fx.registry,
        "test/huge",
        ImageBuilder::new()
            .format(slipway_testkit::Format::Oci)
            .prebuilt_layer(huge_layer("data/huge", size)),
    );
    std::fs::write(
        fx.config(),
        CONFIG.replace(
            "init:\n  - example.org/test/init:1\n",
            "init:\n  - example.org/test/init:1\n  - example.org/test/huge:1\n",
        ),
    )
    .unwrap();
    let a = fx
        .build_assert(out.path(), "kernel+initrd")
        .failure()
        .code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("data/huge"), "{err}");
    assert!(err.contains(&size.to_string()), "{err}");
    assert!(err.contains("at most 4 GiB"), "{err}");
    assert!(err.contains("Use another format"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let after: Vec<String> = names.iter().map(|n| sha256(&out.path().join(n))).collect();
    assert_eq!(before, after, "the previous outputs changed");
    let stray: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
    // Nothing half-written is left in the segment cache either.
    let segments = fx.cache.path().join("segments");
    let partial: Vec<_> = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(partial.is_empty(), "partial segments: {partial:?}");
}

/// Text with long and short repeats, so the compressors' match finders
/// (where CPU-specific code lives) have work to do.
fn bulk_text(len: usize) -> Vec<u8> {
    let noise = pseudo_random_bytes(31, len);
    let words: Vec<String> = (0..500)
        .map(|i| {
            let b = &noise[i * 8..i * 8 + 8];
            b.iter()
                .take(3 + usize::from(b[0] % 6))
                .map(|c| char::from(b'a' + c % 26))
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        let r = usize::from(noise[i % len]) * 2 + usize::from(noise[(i * 7 + 3) % len] & 1);
        out.extend_from_slice(words[r % words.len()].as_bytes());
        out.push(if noise[(i * 13) % len].is_multiple_of(11) {
            b'\n'
        } else {
            b' '
        });
        i += 1;
    }
    out.truncate(len);
    out
}

/// gzip (libdeflate for these small segments, zlib-rs for large ones) and
/// zstd pick SIMD code by the CPU's features at run time. The same build natively (AVX-512, AVX2, PCLMULQDQ, SSE4.2 on our
/// machines) and under qemu-x86_64 -cpu qemu64 (none of them, as glibc's
/// own hardware-capability report confirms) gives the same bytes.
#[test]
fn initrd_bytes_do_not_depend_on_the_cpu_features() {
    let qemu = slipway_testkit::initramfs::need("qemu-x86_64");
    let caps = |emulated: bool| -> String {
        let loader = "/lib64/ld-linux-x86-64.so.2";
        let out = if emulated {
            Std::new(&qemu)
                .args(["-cpu", "qemu64", loader, "--help"])
                .output()
        } else {
            Std::new(loader).arg("--help").output()
        };
        String::from_utf8_lossy(&out.unwrap().stdout).into_owned()
    };
    let emulated_caps = caps(true);
    assert!(
        emulated_caps.contains("x86-64-v2") && !emulated_caps.contains("x86-64-v2 (supported"),
        "qemu64 should lack SSE4.2 and later: {emulated_caps}"
    );
    let native_caps = caps(false);
    if !native_caps.contains("x86-64-v3 (supported") {
        eprintln!("note: this machine lacks AVX2 itself; the comparison is weaker");
    }

    let fx = Fixture::new();
    push(
        &fx.registry,
        "test/bulk",
        ImageBuilder::new().layer([
            Entry::dir("srv"),
            Entry::file("srv/text", bulk_text(3 << 20)),
            Entry::file("srv/noise", pseudo_random_bytes(32, 256 << 10)),
        ]),
    );
    std::fs::write(
        fx.config(),
        CONFIG.replace(
            "init:\n  - example.org/test/init:1\n",
            "init:\n  - example.org/test/init:1\n  - example.org/test/bulk:1\n",
        ),
    )
    .unwrap();
    let config = fx.config();
    let build = |emulated: bool, cache: &Path, compress: &str, dir: &Path| {
        let bin = assert_cmd::cargo::cargo_bin("slipway");
        let mut cmd = if emulated {
            let mut c = Std::new(&qemu);
            c.args(["-cpu", "qemu64"]).arg(&bin);
            c
        } else {
            Std::new(&bin)
        };
        let out = cmd
            .arg("--cache")
            .arg(cache)
            .args(["--arch", "amd64", "--mirror"])
            .arg(format!("example.org=http://{}", fx.registry.host()))
            .args(["build", "--compress", compress, "--format", "kernel+initrd"])
            .arg("--dir")
            .arg(dir)
            .arg(&config)
            .current_dir(fx.work.path())
            .env("HOME", fx.home.path())
            .env_remove("SLIPWAY_CACHE")
            .env_remove("LINUXKIT_MIRROR")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "emulated {emulated}: {err}");
        assert!(err.contains("0 from the segment cache"), "{err}");
        sha256(&dir.join("image-initrd.img"))
    };
    let out = tempfile::tempdir().unwrap();
    for compress in ["gzip", "zstd"] {
        // A fresh cache each time, so every unit is compressed again.
        let native_cache = out.path().join(format!("native-{compress}"));
        let emulated_cache = out.path().join(format!("emulated-{compress}"));
        let native = build(
            false,
            &native_cache,
            compress,
            &out.path().join(format!("n-{compress}")),
        );
        let emulated = build(
            true,
            &emulated_cache,
            compress,
            &out.path().join(format!("e-{compress}")),
        );
        eprintln!("{compress}: native {native}, qemu64 {emulated}");
        assert_eq!(native, emulated, "{compress} output depends on the CPU");
    }
}

#[test]
fn init_images_apk_databases_are_united_as_linuxkit_does() {
    let fx = Fixture::new();
    let db_a = "P:musl\nV:1.2.5-r0\n";
    let db_b = "P:runc\nV:1.1.12-r3\n";
    for (repo, db) in [("test/apk-a", db_a), ("test/apk-b", db_b)] {
        push(
            &fx.registry,
            repo,
            ImageBuilder::new().layer([
                Entry::dir("lib"),
                Entry::dir("lib/apk"),
                Entry::dir("lib/apk/db"),
                Entry::file("lib/apk/db/installed", db),
                Entry::file(format!("{}-marker", repo.replace('/', "-")), "x"),
            ]),
        );
    }
    let out = tempfile::tempdir().unwrap();
    let with_inits = |inits: &[&str]| {
        let list: String = inits
            .iter()
            .map(|i| format!("  - example.org/test/{i}:1\n"))
            .collect();
        std::fs::write(
            fx.config(),
            CONFIG.replace(
                "init:\n  - example.org/test/init:1\n",
                &format!("init:\n{list}"),
            ),
        )
        .unwrap();
    };
    let entries = |tar: &[u8]| -> Vec<(String, String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        let mut out = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut source = String::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for x in exts {
                    let x = x.unwrap();
                    if x.key().unwrap() == "LINUXKIT.source" {
                        source = x.value().unwrap().to_string();
                    }
                }
            }
            let path = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((path, source, data));
        }
        out
    };

    // Two databases among three init images: their union comes last.
    with_inits(&["init", "apk-a", "apk-b"]);
    fx.build(out.path(), "tar");
    let all = entries(&std::fs::read(out.path().join("image.tar")).unwrap());
    let dbs: Vec<usize> = (0..all.len())
        .filter(|i| all[*i].0 == "lib/apk/db/installed")
        .collect();
    assert_eq!(dbs.len(), 3, "each image's database, then the union");
    let union = &all[dbs[2]];
    assert_eq!(union.1, "LINUXKIT.apkinit");
    assert_eq!(
        String::from_utf8(union.2.clone()).unwrap(),
        format!("{db_a}\n\n{db_b}\n\n")
    );
    // After every init image's entries, before the volumes and bundles.
    let last_init = all
        .iter()
        .rposition(|e| e.0 == "test-apk-b-marker")
        .unwrap();
    let first_bundle = all
        .iter()
        .position(|e| e.0.starts_with("containers"))
        .unwrap();
    assert!(last_init < dbs[2] && dbs[2] < first_bundle);
    // In the initrd the kernel keeps the last copy: the union.
    fx.build(out.path(), "kernel+initrd");
    let mut cpio = Vec::new();
    flate_decode(
        &std::fs::read(out.path().join("image-initrd.img")).unwrap(),
        &mut cpio,
    );
    let dir = tempfile::tempdir().unwrap();
    for archive in split_archives(&cpio) {
        run_filter(
            "cpio",
            &["-i", "-d", "-u", "--quiet", "--no-absolute-filenames"],
            dir.path(),
            archive,
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("lib/apk/db/installed")).unwrap(),
        format!("{db_a}\n\n{db_b}\n\n")
    );

    // One database: nothing is added.
    with_inits(&["init", "apk-a"]);
    fx.build(out.path(), "tar");
    let all = entries(&std::fs::read(out.path().join("image.tar")).unwrap());
    assert_eq!(
        all.iter().filter(|e| e.0 == "lib/apk/db/installed").count(),
        1
    );
    assert!(all.iter().all(|e| e.1 != "LINUXKIT.apkinit"));
    // ...and the initrd gets no archive for it.
    let config = fx.config();
    let a = fx
        .slipway(
            fx.work.path(),
            "022",
            &[
                "-v",
                "2",
                "build",
                "--dir",
                out.path().to_str().unwrap(),
                config.to_str().unwrap(),
            ],
        )
        .assert()
        .success();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("unit apk database of 2 init images: 0 B in 0 segment(s)"),
        "{err}"
    );
}

#[test]
fn json_summary_lists_images_units_and_files() {
    let fx = Fixture::new();
    let out = tempfile::tempdir().unwrap();
    let config = fx.config();
    let run_as = |format: &str, extra: &[&str]| {
        let mut args = vec!["build", "--format", format, "--json"];
        args.extend_from_slice(extra);
        args.push(config.to_str().unwrap());
        fx.slipway(fx.work.path(), "022", &args).output().unwrap()
    };
    let run = |extra: &[&str]| run_as("kernel+initrd", extra);
    let first = run(&["--dir", out.path().to_str().unwrap()]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(doc["name"], "image");
    assert_eq!(doc["formats"], serde_json::json!(["kernel+initrd"]));
    let images = doc["images"].as_array().unwrap();
    assert!(
        images.iter().any(|i| i["reference"]
            .as_str()
            .unwrap()
            .contains("example.org/test/svc:1")
            && i["digest"].as_str().unwrap().starts_with("sha256:")),
        "{doc:#}"
    );
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{doc:#}");
    for f in files {
        let path = Path::new(f["path"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(path).unwrap().len(),
            f["bytes"].as_u64().unwrap()
        );
    }
    let units = doc["units"].as_array().unwrap();
    assert!(!units.is_empty());
    assert!(units.iter().all(|u| u["bytes"].as_u64().is_some()));
    // The same build prints the same document, now from the segment cache.
    let second = run(&["--dir", out.path().to_str().unwrap()]);
    let again: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(again["files"], doc["files"]);
    assert!(
        again["units"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["cached"] == true)
    );
    // With --resolve-only, the images alone: those the build named.
    let resolved = fx
        .slipway(
            fx.work.path(),
            "022",
            &[
                "build",
                "--resolve-only",
                "--json",
                config.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert!(resolved.status.success());
    let resolved: serde_json::Value = serde_json::from_slice(&resolved.stdout).unwrap();
    assert_eq!(resolved["images"], doc["images"], "{resolved:#}");
    assert_eq!(resolved.as_object().unwrap().len(), 1, "{resolved:#}");
    // Standard output cannot carry both the summary and the image.
    let both = run_as("tar", &["-o", "-"]);
    assert_eq!(both.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&both.stderr)
            .contains("--json prints the summary on standard output"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
}

/// The configuration of `linuxkit_metadata_volume_records_and_kernel_tar_root`.
const PARITY_CONFIG: &str = r#"kernel:
  image: example.org/test/kerneldot:1
  cmdline: console=ttyS0
init:
  - example.org/test/init:1
onboot:
  - name: setup
    image: test/tool:1
    mounts:
      - destination: /run
        type: tmpfs
        options: [nosuid]
services:
  - name: daemon
    image: example.org/test/svc:1
    env: ["A=<b>&c"]
    readonly: true
volumes:
  - name: data
    image: test/tool:1
  - name: scratch
trust:
  org: [linuxkit]
files:
  - path: etc/motd
    contents: "hello\n"
    mode: "0644"
  - path: etc/linuxkit.json
    metadata: json
  - path: etc/linuxkit.yml
    metadata: yaml
"#;

/// `metadata: json` of PARITY_CONFIG as LinuxKit writes it: Go's
/// `json.MarshalIndent(moby, "", "    ")` (zero values present, absent lists
/// `null`, HTML characters escaped, no `trust`, no newline at the end;
/// container images as resolved, fully expanded, volume images as written).
const PARITY_JSON: &str = r#"{
    "kernel": {
        "image": "example.org/test/kerneldot:1",
        "cmdline": "console=ttyS0"
    },
    "init": [
        "example.org/test/init:1"
    ],
    "onboot": [
        {
            "name": "setup",
            "image": "docker.io/test/tool:1",
            "mounts": [
                {
                    "destination": "/run",
                    "type": "tmpfs",
                    "options": [
                        "nosuid"
                    ]
                }
            ]
        }
    ],
    "onshutdown": null,
    "services": [
        {
            "name": "daemon",
            "image": "example.org/test/svc:1",
            "env": [
                "A=\u003cb\u003e\u0026c"
            ],
            "readonly": true
        }
    ],
    "files": [
        {
            "path": "etc/motd",
            "directory": false,
            "contents": "hello\n",
            "optional": false,
            "mode": "0644"
        },
        {
            "path": "etc/linuxkit.json",
            "directory": false,
            "metadata": "json",
            "optional": false
        },
        {
            "path": "etc/linuxkit.yml",
            "directory": false,
            "metadata": "yaml",
            "optional": false
        }
    ],
    "volumes": [
        {
            "name": "data",
            "image": "test/tool:1"
        },
        {
            "name": "scratch"
        }
    ]
}"#;

/// `metadata: yaml` of PARITY_CONFIG as yaml.v2 marshals LinuxKit's struct:
/// runtime-spec mounts under lower-cased Go names with every field, empty
/// lists as `[]`, sequences not indented under their key.
const PARITY_YAML: &str = r#"kernel:
  image: example.org/test/kerneldot:1
  cmdline: console=ttyS0
init:
- example.org/test/init:1
onboot:
- name: setup
  image: docker.io/test/tool:1
  mounts:
  - destination: /run
    type: tmpfs
    source: ""
    options:
    - nosuid
    uidmappings: []
    gidmappings: []
onshutdown: []
services:
- name: daemon
  image: example.org/test/svc:1
  env:
  - A=<b>&c
  readonly: true
files:
- path: etc/motd
  directory: false
  contents: |
    hello
  optional: false
  mode: "0644"
- path: etc/linuxkit.json
  directory: false
  metadata: json
  optional: false
- path: etc/linuxkit.yml
  directory: false
  metadata: yaml
  optional: false
volumes:
- name: data
  image: test/tool:1
- name: scratch
"#;

/// Every entry of a tar: raw path and its `LINUXKIT.source`.
fn sources(tar: &[u8]) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let mut source = String::new();
        if let Some(exts) = entry.pax_extensions().unwrap() {
            for e in exts {
                let e = e.unwrap();
                if e.key().unwrap() == "LINUXKIT.source" {
                    source = e.value().unwrap().to_string();
                }
            }
        }
        out.push((path, source));
    }
    out
}

#[test]
fn linuxkit_metadata_volume_records_and_kernel_tar_root() {
    let fx = Fixture::new();
    // A kernel.tar as LinuxKit's kernels carry it: `tar -C dir .`, names
    // with `./` and the root's own entry first.
    let modules = tar_bytes(&[
        Entry::dir("./").with_mode(0o700),
        Entry::dir("./lib"),
        Entry::file("./lib/modules.dep", "x.ko:\n"),
    ])
    .unwrap();
    push(
        &fx.registry,
        "test/kerneldot",
        ImageBuilder::new().layer([
            Entry::file("kernel", pseudo_random_bytes(9, 300)),
            Entry::file("kernel.tar", modules),
        ]),
    );
    let config = fx.work.path().join("parity.yml");
    std::fs::write(&config, PARITY_CONFIG).unwrap();
    let out = tempfile::tempdir().unwrap();
    // Docker Hub names (`test/tool:1`) come from the loopback registry too.
    let hub = format!("http://{}", fx.registry.host());
    let build = fx
        .slipway(
            fx.work.path(),
            "022",
            &[
                "--mirror",
                &hub,
                "build",
                "--format",
                "tar",
                "--dir",
                out.path().to_str().unwrap(),
                config.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let tar = std::fs::read(out.path().join("parity.tar")).unwrap();
    let members = tar_members(&tar);
    assert_eq!(
        String::from_utf8_lossy(&members["etc/linuxkit.json"]),
        PARITY_JSON
    );
    assert_eq!(
        String::from_utf8_lossy(&members["etc/linuxkit.yml"]),
        PARITY_YAML
    );
    // Both read back as the same document, `null` and `[]` aside.
    let from_yaml: serde_json::Value =
        serde_saphyr::from_slice(&members["etc/linuxkit.yml"]).unwrap();
    let mut from_json: serde_json::Value = serde_json::from_str(PARITY_JSON).unwrap();
    from_json["onshutdown"] = serde_json::json!([]);
    from_json["onboot"][0]["mounts"][0]["source"] = serde_json::json!("");
    from_json["onboot"][0]["mounts"][0]["uidmappings"] = serde_json::json!([]);
    from_json["onboot"][0]["mounts"][0]["gidmappings"] = serde_json::json!([]);
    assert_eq!(from_yaml, from_json);

    let sources = sources(&tar);
    let source_of = |path: &str| -> Vec<&str> {
        sources
            .iter()
            .filter(|(p, _)| p.trim_end_matches('/') == path)
            .map(|(_, s)| s.as_str())
            .collect()
    };
    // kernel.tar verbatim, its root entry included, right after boot/kernel.
    let kernel_at = sources
        .iter()
        .position(|(p, _)| p == "boot/kernel")
        .unwrap();
    let root = &sources[kernel_at + 1];
    assert!(root.0 == "./" || root.0 == ".", "{sources:?}");
    assert_eq!(root.1, "example.org/test/kerneldot:1");
    // (The tar writer of the test stores `./lib` as `lib`.)
    assert_eq!(sources[kernel_at + 2].0, "lib", "{sources:?}");
    // The initrd carries it too, in the kernel unit's archive (GNU cpio
    // lists each archive of the concatenation on its own).
    let initrd = fx
        .slipway(
            fx.work.path(),
            "022",
            &[
                "--mirror",
                &hub,
                "build",
                "--format",
                "kernel+initrd",
                "--dir",
                out.path().to_str().unwrap(),
                config.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert!(
        initrd.status.success(),
        "{}",
        String::from_utf8_lossy(&initrd.stderr)
    );
    let gz = std::fs::read(out.path().join("parity-initrd.img")).unwrap();
    let mut cpio = Vec::new();
    flate_decode(&gz, &mut cpio);
    let first = cpio_names(split_archives(&cpio)[0]);
    assert!(first.iter().any(|n| n == "." || n == "./"), "{first:?}");
    // A volume's lower/ and the directories above it come with its image
    // (`empty` without one); tmp/ and merged/ with the volume.
    let tool = "docker.io/test/tool:1";
    for (path, source) in [
        ("containers/volumes/data", tool),
        ("containers/volumes/data/lower", tool),
        ("containers/volumes/data/lower/bin/tool", tool),
        ("containers/volumes/data/tmp", "linuxkit.volumes"),
        ("containers/volumes/data/merged", "linuxkit.volumes"),
        ("containers/volumes/scratch", "empty"),
        ("containers/volumes/scratch/lower", "empty"),
        ("containers/volumes/scratch/tmp", "linuxkit.volumes"),
        ("containers/volumes/scratch/merged", "linuxkit.volumes"),
    ] {
        assert_eq!(source_of(path), [source], "{path}");
    }
}

/// `report diff --json` between two builds' size reports: what grew, by
/// how much, in the units and the totals.
#[test]
fn report_diff_as_json() {
    let fx = Fixture::new();
    let out = tempfile::tempdir().unwrap();
    let report = |config: &Path, name: &str| {
        let path = out.path().join(name);
        fx.slipway(
            fx.work.path(),
            "022",
            &[
                "build",
                "--format",
                "tar",
                "--dir",
                out.path().to_str().unwrap(),
                "--report",
                path.to_str().unwrap(),
                config.to_str().unwrap(),
            ],
        )
        .assert()
        .success();
        path
    };
    let a = report(&fx.config(), "a.json");
    let bigger = fx.work.path().join("bigger.yml");
    std::fs::write(
        &bigger,
        format!(
            "{CONFIG}  - path: srv/extra\n    contents: \"{}\"\n",
            "x".repeat(1000)
        ),
    )
    .unwrap();
    let b = report(&bigger, "b.json");
    let o = fx
        .slipway(
            fx.work.path(),
            "022",
            &[
                "report",
                "diff",
                "--json",
                a.to_str().unwrap(),
                b.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = |list: &str, name: &str| {
        doc[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}: {doc:#}"))
            .clone()
    };
    let files = row("totals", "files");
    assert_eq!(
        files["to"].as_u64().unwrap(),
        files["from"].as_u64().unwrap() + 1,
        "{doc:#}"
    );
    assert_eq!(files["change"], 1);
    // The new file, and the metadata files, which hold the configuration.
    let bytes = row("totals", "bytes");
    assert!(bytes["change"].as_i64().unwrap() > 1000, "{doc:#}");
    let srv = row("directories", "srv");
    assert_eq!(
        (&srv["from"], &srv["to"]),
        (&0.into(), &1000.into()),
        "{doc:#}"
    );
    // Only what changed is listed.
    assert!(
        doc["directories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["change"] != 0)
    );
}

/// Without `--compress`, the initrd is zstd when the kernel image's
/// `org.slipway.kernel.initrd-compression` label lists zstd, gzip when the
/// label does not or is absent; `--compress` still decides.
#[test]
fn initrd_compression_follows_the_kernel_label() {
    const LABEL: &str = "org.slipway.kernel.initrd-compression";
    let fx = Fixture::new();
    let kernel = || {
        ImageBuilder::new().layer([
            Entry::file("kernel", pseudo_random_bytes(7, 5000)),
            Entry::file("kernel.tar", tar_bytes(&[Entry::dir("lib")]).unwrap()),
        ])
    };
    push(
        &fx.registry,
        "test/zkernel",
        kernel().label(LABEL, "gzip,bzip2,zstd"),
    );
    push(
        &fx.registry,
        "test/xkernel",
        kernel().label(LABEL, "gzip,xz"),
    );
    let initrd = |image: &str, extra: &[&str]| -> Vec<u8> {
        std::fs::write(
            fx.config(),
            CONFIG.replace("example.org/test/kernel:1", image),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let config = fx.config();
        let mut args = vec!["build", "--format", "kernel+initrd", "--dir"];
        args.push(out.path().to_str().unwrap());
        args.extend_from_slice(extra);
        args.push(config.to_str().unwrap());
        fx.slipway(fx.work.path(), "022", &args).assert().success();
        std::fs::read(out.path().join("image-initrd.img")).unwrap()
    };
    let zstd = initrd("example.org/test/zkernel:1", &[]);
    assert_eq!(&zstd[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame");
    let cpio = zstd::decode_all(&zstd[..]).unwrap();
    assert!(cpio.starts_with(b"070701"), "a newc archive inside");
    for (image, extra) in [
        ("example.org/test/xkernel:1", &[][..]),
        ("example.org/test/kernel:1", &[][..]),
        ("example.org/test/zkernel:1", &["--compress", "gzip"][..]),
    ] {
        let gz = initrd(image, extra);
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip for {image} {extra:?}");
    }
}
