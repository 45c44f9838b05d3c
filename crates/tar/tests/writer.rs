//! The writer against independent readers: GNU tar lists what was written,
//! the tar crate reads names, links, owners and records back; content of
//! the wrong length is an error; no end marker until asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::Command;

use slipway_tar::{BLOCK, Entry, Kind, TarWriter};

fn long(n: usize) -> String {
    (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect()
}

#[test]
fn gnu_tar_and_the_tar_crate_read_back_every_kind() {
    let long_dir = format!("d/{}", long(120));
    let long_target = format!("/{}", long(150));
    let records = vec![
        (
            "LINUXKIT.source".to_string(),
            b"docker.io/library/alpine:3".to_vec(),
        ),
        ("LINUXKIT.location".to_string(), b"init[0]".to_vec()),
    ];
    let mut w = TarWriter::new(Vec::new());
    let mut dir = Entry::new("d/", Kind::Dir, 0o755, 7);
    dir.pax = &records;
    w.append(&dir, &mut std::io::empty()).unwrap();
    let mut file = Entry::new(&long_dir, Kind::File { size: 5 }, 0o4755, 1_492_533_000);
    file.uid = 1000;
    file.gid = 3_000_000; // over the 7 octal digits of ustar: a PAX record
    w.append(&file, &mut &b"hello"[..]).unwrap();
    let link = Entry::new("d/hard", Kind::Link { target: &long_dir }, 0o644, 7);
    w.append(&link, &mut std::io::empty()).unwrap();
    let sym = Entry::new(
        "d/sym",
        Kind::Symlink {
            target: &long_target,
        },
        0o777,
        7,
    );
    w.append(&sym, &mut std::io::empty()).unwrap();
    let null = Entry::new("dev/null", Kind::Char { major: 1, minor: 3 }, 0o666, 7);
    w.append(&null, &mut std::io::empty()).unwrap();
    let fifo = Entry::new("dev/fifo", Kind::Fifo, 0o600, 7);
    w.append(&fifo, &mut std::io::empty()).unwrap();
    let bytes = w.finish().unwrap();

    let mut archive = tar::Archive::new(&bytes[..]);
    let mut seen = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let header = e.header().clone();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let pax: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .into_iter()
            .flatten()
            .map(|r| {
                let r = r.unwrap();
                (r.key().unwrap().to_string(), r.value_bytes().to_vec())
            })
            .filter(|(k, _)| k.starts_with("LINUXKIT."))
            .collect();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        seen.push((path, header.entry_type(), link, content, pax));
    }
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "d/",
            long_dir.as_str(),
            "d/hard",
            "d/sym",
            "dev/null",
            "dev/fifo"
        ]
    );
    assert_eq!(seen[1].3, b"hello");
    assert_eq!(seen[2].2.as_deref(), Some(long_dir.as_str()));
    assert_eq!(seen[3].2.as_deref(), Some(long_target.as_str()));
    // Records sorted by key.
    assert_eq!(
        seen[0].4,
        [
            ("LINUXKIT.location".to_string(), b"init[0]".to_vec()),
            (
                "LINUXKIT.source".to_string(),
                b"docker.io/library/alpine:3".to_vec()
            ),
        ]
    );
    // No GNU extension entries: only ustar and PAX headers.
    let mut at = 0;
    while at + BLOCK <= bytes.len() && bytes[at..at + BLOCK].iter().any(|&b| b != 0) {
        let block = &bytes[at..at + BLOCK];
        assert_eq!(&block[257..265], b"ustar\x0000", "ustar magic at {at}");
        assert!(!matches!(block[156], b'L' | b'K'), "GNU long name at {at}");
        let size = std::str::from_utf8(&block[124..135]).unwrap();
        let size = u64::from_str_radix(size, 8).unwrap();
        at += BLOCK + size.div_ceil(BLOCK as u64) as usize * BLOCK;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tar");
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvf"])
        .arg(&path)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    // Columns are aligned with runs of spaces: one space each.
    let lines: Vec<String> = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines.len(), 6, "{listing}");
    assert!(lines[0].starts_with("drwxr-xr-x 0/0 "), "{listing}");
    assert!(
        lines[1].starts_with("-rwsr-xr-x 1000/3000000 5 2017-04-18 16:30:00 "),
        "{listing}"
    );
    assert!(lines[1].ends_with(&long_dir), "{listing}");
    assert!(
        lines[2].ends_with(&format!("d/hard link to {long_dir}")),
        "{listing}"
    );
    assert!(
        lines[3].ends_with(&format!("d/sym -> {long_target}")),
        "{listing}"
    );
    assert!(
        lines[4].starts_with("crw-rw-rw- 0/0 1,3 1970-01-01 00:00:07 dev/null"),
        "{listing}"
    );
    assert!(lines[5].starts_with("prw------- 0/0 "), "{listing}");
}

#[test]
fn content_of_the_wrong_length_is_an_error() {
    let mut w = TarWriter::new(Vec::new());
    let e = Entry::new("f", Kind::File { size: 4 }, 0o644, 0);
    let err = w.append(&e, &mut &b"abc"[..]).unwrap_err();
    assert!(err.to_string().contains("expected 4 bytes"), "{err}");
    let mut w = TarWriter::new(Vec::new());
    let err = w.append(&e, &mut &b"abcde"[..]).unwrap_err();
    assert!(err.to_string().contains("more than the 4 bytes"), "{err}");
}

#[test]
fn a_device_number_too_large_for_the_header_is_an_error() {
    let mut w = TarWriter::new(Vec::new());
    let e = Entry::new(
        "dev/x",
        Kind::Block {
            major: 1 << 21,
            minor: 0,
        },
        0o600,
        0,
    );
    let err = w.append(&e, &mut std::io::empty()).unwrap_err();
    assert!(err.to_string().contains("device number"), "{err}");
}

#[test]
fn the_end_marker_comes_only_when_asked() {
    let mut w = TarWriter::new(Vec::new());
    let e = Entry::new("f", Kind::File { size: 3 }, 0o644, 0);
    w.append(&e, &mut &b"abc"[..]).unwrap();
    assert_eq!(w.written(), 2 * BLOCK as u64);
    let open = w.into_inner();
    assert_eq!(open.len(), 2 * BLOCK);
    let mut w = TarWriter::new(Vec::new());
    w.append(&e, &mut &b"abc"[..]).unwrap();
    let closed = w.finish().unwrap();
    assert_eq!(closed.len(), 4 * BLOCK);
    assert!(closed[2 * BLOCK..].iter().all(|&b| b == 0));
}
