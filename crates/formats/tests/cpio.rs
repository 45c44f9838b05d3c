//! The newc writer read back by GNU cpio, an independent reader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Command;

use slipway_assemble::{EntrySink, Header, Kind};
use slipway_formats::{CpioWriter, TooLarge};

fn file(path: &str, size: u64) -> Header {
    Header::new(path, Kind::File { size }, 0o644)
}

#[test]
fn gnu_cpio_extracts_files_links_and_hard_link_groups() {
    let mut w = CpioWriter::new(Vec::new(), true);
    w.entry(
        &Header::new("bin", Kind::Dir, 0o755),
        &[],
        &mut std::io::empty(),
    )
    .unwrap();
    let link = |p: &str| {
        Header::new(
            p,
            Kind::Link {
                target: "bin/busybox".into(),
            },
            0o755,
        )
    };
    w.entry(
        &Header::new("bin/busybox", Kind::File { size: 4 }, 0o755),
        &[link("bin/sh"), link("bin/ls")],
        &mut &b"BBOX"[..],
    )
    .unwrap();
    w.entry(
        &Header::new("etc", Kind::Dir, 0o755),
        &[],
        &mut std::io::empty(),
    )
    .unwrap();
    w.entry(&file("etc/motd", 3), &[], &mut &b"hi\n"[..])
        .unwrap();
    w.entry(
        &Header::new(
            "etc/mtab",
            Kind::Symlink {
                target: "/proc/mounts".into(),
            },
            0o777,
        ),
        &[],
        &mut std::io::empty(),
    )
    .unwrap();
    w.entry(&file("boot/kernel", 1), &[], &mut &b"K"[..])
        .unwrap();
    let archive = w.finish().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("cpio")
        .args(["-i", "-d", "--quiet", "--no-absolute-filenames"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("GNU cpio (apt-get install cpio)");
    child.stdin.take().unwrap().write_all(&archive).unwrap();
    assert!(child.wait().unwrap().success());

    use std::os::unix::fs::MetadataExt;
    let bb = std::fs::metadata(dir.path().join("bin/busybox")).unwrap();
    let sh = std::fs::metadata(dir.path().join("bin/sh")).unwrap();
    assert_eq!(bb.ino(), sh.ino(), "a real hard link");
    assert_eq!(bb.nlink(), 3);
    assert_eq!(std::fs::read(dir.path().join("bin/ls")).unwrap(), b"BBOX");
    assert_eq!(std::fs::read(dir.path().join("etc/motd")).unwrap(), b"hi\n");
    assert_eq!(
        std::fs::read_link(dir.path().join("etc/mtab"))
            .unwrap()
            .to_str(),
        Some("/proc/mounts")
    );
    assert!(
        !dir.path().join("boot/kernel").exists(),
        "boot/ is left out of the initrd"
    );
}

#[test]
fn files_over_4_gib_are_a_clear_error() {
    let mut w = CpioWriter::new(Vec::new(), false);
    let err = w
        .entry(&file("huge", 5 << 30), &[], &mut std::io::empty())
        .unwrap_err();
    let too = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<TooLarge>())
        .unwrap();
    assert!(too.to_string().contains("another format"), "{too}");
}
