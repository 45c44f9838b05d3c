//! Writes a squashfs or erofs image of a tar archive's entries, for
//! measuring the writers (`/usr/bin/time -v`) and comparing their sizes
//! with mksquashfs and mkfs.erofs on the same tree:
//!
//! ```sh
//! cargo run --release -p slipway-formats --example rootfs_image -- \
//!     tree.tar out.img squashfs-gzip|squashfs-zstd|squashfs-xz|erofs [THREADS]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::BufWriter;

use slipway_assemble::{EntrySink, Header, Kind};
use slipway_formats::erofs::{ErofsOptions, ErofsWriter};
use slipway_formats::squashfs::{Compressor, SquashfsOptions, SquashfsWriter};

const BUILD_TIME: u64 = 1_700_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, tar_path, out_path, format, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: rootfs_image TAR OUT squashfs-gzip|squashfs-zstd|squashfs-xz|erofs [THREADS]"
        );
        std::process::exit(2);
    };
    let threads = rest.first().map_or(2, |t| t.parse().unwrap());
    let out = BufWriter::with_capacity(1 << 20, File::create(out_path).unwrap());
    let mut sink: Box<dyn Finish> = match format.as_str() {
        "erofs" => Box::new(ErofsWriter::new(out, ErofsOptions::new(BUILD_TIME)).unwrap()),
        f => {
            let c = Compressor::parse(f.trim_start_matches("squashfs-")).expect("a format");
            let mut o = SquashfsOptions::new(c, BUILD_TIME);
            o.threads = threads;
            Box::new(SquashfsWriter::new(out, o).unwrap())
        }
    };
    let mut archive = tar::Archive::new(File::open(tar_path).unwrap());
    let mut entries = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let link = || String::from_utf8(entry.link_name_bytes().unwrap().into_owned()).unwrap();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File {
                size: h.size().unwrap(),
            },
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink { target: link() },
            tar::EntryType::Link => Kind::Link { target: link() },
            tar::EntryType::Char => Kind::Char {
                major: h.device_major().unwrap().unwrap(),
                minor: h.device_minor().unwrap().unwrap(),
            },
            tar::EntryType::Block => Kind::Block {
                major: h.device_major().unwrap().unwrap(),
                minor: h.device_minor().unwrap().unwrap(),
            },
            tar::EntryType::Fifo => Kind::Fifo,
            _ => continue,
        };
        let mut header = Header::new(path, kind, h.mode().unwrap());
        header.uid = h.uid().unwrap();
        header.gid = h.gid().unwrap();
        header.mtime = h.mtime().unwrap();
        header.generated = false;
        sink.sink().entry(&header, &[], &mut entry).unwrap();
        entries += 1;
    }
    let (inodes, bytes, replaced, skipped) = sink.finish();
    println!(
        "{entries} entries, {inodes} inodes, {bytes} bytes, {replaced} bytes replaced, {skipped} skipped"
    );
}

trait Finish {
    fn sink(&mut self) -> &mut dyn EntrySink;
    fn finish(self: Box<Self>) -> (u64, u64, u64, usize);
}

impl Finish for SquashfsWriter<BufWriter<File>> {
    fn sink(&mut self) -> &mut dyn EntrySink {
        self
    }
    fn finish(self: Box<Self>) -> (u64, u64, u64, usize) {
        let (_, s) = (*self).finish().unwrap();
        (s.inodes, s.bytes, s.replaced_bytes, s.skipped.len())
    }
}

impl Finish for ErofsWriter<BufWriter<File>> {
    fn sink(&mut self) -> &mut dyn EntrySink {
        self
    }
    fn finish(self: Box<Self>) -> (u64, u64, u64, usize) {
        let (_, s) = (*self).finish().unwrap();
        (s.inodes, s.bytes, s.replaced_bytes, s.skipped.len())
    }
}
