//! `slipway build --decompress-kernel` against the real registry on
//! loopback: a plain gzip kernel (arm64's `Image.gz`), bzImages whose
//! payloads are gzip and xz (with the x86 BCJ filter, as the kernel's build
//! makes them), the Debian test kernel (a bzImage with a zstd payload), and
//! clear errors for a payload of another kind and for no payload at all.
//! The compressed kernels are made by the gzip and xz programs, and the
//! Debian kernel's expected output by the zstd program.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use slipway_testkit::image::pseudo_random_bytes;
use slipway_testkit::initramfs::{kernel_dir, need};
use slipway_testkit::{Artifact, Entry, ImageBuilder, PushTarget, Registry};

/// `program args` with `input` on standard input; its standard output.
fn filter(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(need(program))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    out.stdout
}

/// A minimal bzImage (boot protocol 2.15) around `compressed`, followed by
/// the decompressed size, as x86's build appends it.
fn bzimage(compressed: &[u8], size: usize) -> Vec<u8> {
    let mut payload = compressed.to_vec();
    payload.extend_from_slice(&(size as u32).to_le_bytes());
    let mut img = vec![0u8; 1024];
    img[0x1f1] = 1; // setup sectors after the boot sector
    img[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    let offset = 64u32; // from the start of the protected-mode code
    img[0x248..0x24c].copy_from_slice(&offset.to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    img.extend(pseudo_random_bytes(3, offset as usize)); // decompressor code
    img.extend(&payload);
    img.extend(pseudo_random_bytes(4, 200)); // what follows the payload
    img
}

/// The payload of the Debian test kernel (zstd), through its own header.
fn debian_payload(vmlinuz: &[u8]) -> &[u8] {
    let le = |o: usize| u32::from_le_bytes(vmlinuz[o..o + 4].try_into().unwrap()) as usize;
    let setup = usize::from(vmlinuz[0x1f1]);
    let off = le(0x248) + (setup + 1) * 512;
    &vmlinuz[off..off + le(0x24c)]
}

struct Fixture {
    registry: Registry,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn push(&self, repo: &str, kernel: Vec<u8>) {
        let artifact: Artifact = ImageBuilder::new()
            .layer([Entry::file("kernel", kernel)])
            .arch("amd64")
            .build()
            .unwrap()
            .into();
        PushTarget::new(&self.registry, &format!("test/{repo}"))
            .push(&artifact, Some("1"))
            .unwrap();
    }

    /// Builds `repo`'s kernel with `--decompress-kernel` as `format`.
    fn build(&self, repo: &str, format: &str) -> std::process::Output {
        let config = self.dir.path().join(format!("{repo}.yml"));
        std::fs::write(
            &config,
            format!("kernel:\n  image: example.org/test/{repo}:1\n  tar: none\n"),
        )
        .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
        cmd.arg("--cache")
            .arg(self.dir.path().join("cache"))
            .args(["--arch", "amd64", "--mirror"])
            .arg(format!("example.org=http://{}", self.registry.host()))
            .args(["build", "--decompress-kernel", "--format", format])
            .env_remove("SLIPWAY_CACHE")
            .env_remove("LINUXKIT_MIRROR");
        if format == "tar" {
            cmd.arg("-o").arg(self.out(repo, ".tar"));
        } else {
            cmd.arg("--dir").arg(self.dir.path().join("out"));
        }
        cmd.arg(&config).output().unwrap()
    }

    fn out(&self, repo: &str, suffix: &str) -> std::path::PathBuf {
        self.dir.path().join("out").join(format!("{repo}{suffix}"))
    }

    /// The kernel of `repo` decompressed by both outputs equals `expected`.
    fn check(&self, repo: &str, expected: &[u8]) {
        let out = self.build(repo, "kernel+initrd");
        assert!(
            out.status.success(),
            "{repo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kernel = std::fs::read(self.out(repo, "-kernel")).unwrap();
        assert!(kernel == expected, "{repo}: NAME-kernel differs");
        let out = self.build(repo, "tar");
        assert!(out.status.success(), "{repo}");
        let tar = std::fs::read(self.out(repo, ".tar")).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut found = false;
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap() == Path::new("boot/kernel") {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
                assert!(bytes == expected, "{repo}: boot/kernel differs");
                found = true;
            }
        }
        assert!(found, "{repo}: no boot/kernel in the tar");
    }

    fn error(&self, repo: &str) -> String {
        let out = self.build(repo, "kernel+initrd");
        assert!(!out.status.success(), "{repo} was accepted");
        assert!(!self.out(repo, "-kernel").exists());
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[test]
fn gzip_xz_and_zstd_kernels_are_decompressed_and_others_are_clear_errors() {
    let fx = Fixture {
        registry: Registry::start().unwrap(),
        dir: tempfile::tempdir().unwrap(),
    };
    // Text-like content compresses; random bytes keep the codecs honest.
    let mut plain = b"\x7fELF".to_vec();
    for i in 0..4000 {
        plain.extend(format!("kernel text line {i}\n").bytes());
        plain.extend(pseudo_random_bytes(i, 64));
    }
    let gz = filter("gzip", &["-n", "-9"], &plain);
    let xz = filter(
        "xz",
        &["--check=crc32", "--x86", "--lzma2=dict=1MiB", "-c"],
        &plain,
    );
    fx.push("k-gz", gz.clone());
    fx.push("k-bz-gz", bzimage(&gz, plain.len()));
    fx.push("k-bz-xz", bzimage(&xz, plain.len()));
    fx.check("k-gz", &plain);
    fx.check("k-bz-gz", &plain);
    fx.check("k-bz-xz", &plain);

    let vmlinuz = std::fs::read(kernel_dir().join("vmlinuz")).unwrap();
    let payload = debian_payload(&vmlinuz);
    assert_eq!(&payload[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not zstd");
    let vmlinux = filter("zstd", &["-d", "-c"], &payload[..payload.len() - 4]);
    assert_eq!(&vmlinux[..4], b"\x7fELF");
    fx.push("k-debian", vmlinuz);
    fx.check("k-debian", &vmlinux);

    // lz4 (legacy frame, as the kernel's build writes it) is named.
    let mut lz4 = vec![0x02, 0x21, 0x4c, 0x18];
    lz4.extend(pseudo_random_bytes(5, 1000));
    fx.push("k-lz4", bzimage(&lz4, 5000));
    let err = fx.error("k-lz4");
    assert!(
        err.contains("lz4-compressed") && err.contains("gzip, xz and zstd"),
        "{err}"
    );
    // A kernel that is not compressed at all.
    fx.push("k-raw", pseudo_random_bytes(6, 5000));
    let err = fx.error("k-raw");
    assert!(err.contains("is not gzip, xz or zstd"), "{err}");
    // A bzImage whose payload is damaged: the size after it disagrees.
    fx.push("k-bad-size", bzimage(&gz, plain.len() + 1));
    let err = fx.error("k-bad-size");
    assert!(err.contains("but the bzImage says"), "{err}");
}
