//! Files larger than one extent, made small: the extent limit is lowered
//! so xorriso can read back a multi-extent file of a few sectors.

use std::io::Cursor;
use std::process::Command;

use super::{IsoOptions, IsoWriter, Meta};

#[test]
fn multi_extent_files_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("multi.iso");
    let options = IsoOptions {
        volume_id: "MULTI".into(),
        epoch: 0,
        catalog_path: None,
        hybrid_mbr: None,
    };
    let mut w = IsoWriter::new(std::fs::File::create(&iso).unwrap(), options).unwrap();
    w.set_max_extent(2);
    let data: Vec<u8> = (0..5 * 4096 + 77)
        .map(|i: u32| (i * 31 % 251) as u8)
        .collect();
    let meta = Meta::new(0o644, 1_000_000_000);
    let region = w
        .add_file(
            "big",
            meta.clone(),
            &mut Cursor::new(&data),
            data.len() as u64,
        )
        .unwrap();
    w.add_extent("part", meta.clone(), region.slice(4096, 3 * 4096).unwrap())
        .unwrap();
    w.add_file("small", meta, &mut Cursor::new(b"x"), 1)
        .unwrap();
    w.finish().unwrap();

    let out = dir.path().join("out");
    let status = Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .args(["-extract", "/"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(std::fs::read(out.join("big")).unwrap(), data);
    assert_eq!(
        std::fs::read(out.join("part")).unwrap(),
        &data[4096..4 * 4096]
    );
    assert_eq!(std::fs::read(out.join("small")).unwrap(), b"x");
    // xorriso lists the file's extents: 11 sectors in extents of 2.
    let list = Command::new("xorriso")
        .arg("-indev")
        .arg(&iso)
        .args(["-find", "/big", "-exec", "report_lba"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    let extents = text.lines().filter(|l| l.contains("'/big'")).count();
    assert_eq!(extents, 6, "{text}");
}
