//! Builds a raw disk and re-encodes it, to measure time and peak memory
//! (run under `/usr/bin/time -v`):
//!
//! ```text
//! disk_reencode raw OUT [SIZE] [MB]   GPT disk of SIZE (LinuxKit syntax, default
//!                                     1024M): a 64 MiB ESP holding a 40 MB file,
//!                                     a root partition of MB - 40 MB (default 200)
//! disk_reencode FORMAT RAW OUT        FORMAT: qcow2, vhd, dynamic-vhd, vmdk, gcp
//! ```
//!
//! The content is random-looking (xorshift), the worst case for the
//! compressing formats.

#![allow(
    clippy::disallowed_methods,
    reason = "measures the writers it reports on"
)]

use std::error::Error;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::Path;
use std::time::Instant;

use slipway_formats::disk::{
    Disk, FatBuilder, FatOptions, PartitionSize, PartitionSpec, PartitionType, RawImage,
    ReaderContent, Table, gcp, parse_size, qcow2, vhd, vmdk,
};

/// `len` random-looking bytes.
struct Noise {
    left: u64,
    x: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize / 8 * 8;
        let n = if n == 0 {
            self.left.min(buf.len() as u64) as usize
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            chunk.copy_from_slice(&self.x.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn noise(len: u64, seed: u64) -> Noise {
    Noise {
        left: len,
        x: 0x9e37_79b9_7f4a_7c15 ^ seed,
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: disk_reencode raw OUT [SIZE] [MB] | disk_reencode FORMAT RAW OUT";
    let (Some(what), Some(a)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let start = Instant::now();
    if what == "raw" {
        let size = parse_size(args.get(2).map_or("1024M", String::as_str))?;
        let mb: u64 = args.get(3).map_or(Ok(200), |s| s.parse())?;
        let esp_file = 40_000_000;
        let mut esp = FatBuilder::new(FatOptions {
            label: Some("EFI".into()),
            ..FatOptions::default()
        });
        esp.file("EFI/BOOT/BOOTX64.EFI", esp_file, noise(esp_file, 1))?;
        let root = mb * 1_000_000 - esp_file;
        let mut disk = Disk::new(Table::Gpt {
            boot_code: [0; 440],
        });
        disk.size = Some(size);
        disk.partitions.push(PartitionSpec {
            name: "EFI system".into(),
            kind: PartitionType::EFI_SYSTEM,
            size: PartitionSize::Bytes(64 << 20),
            bootable: false,
            guid: None,
            content: Box::new(esp),
        });
        disk.partitions.push(PartitionSpec {
            name: "root".into(),
            kind: PartitionType::LINUX,
            size: PartitionSize::Rest,
            bootable: false,
            guid: None,
            content: Box::new(ReaderContent::new("root", root, noise(root, 2))),
        });
        let (_, report) = disk.write(File::create(a)?)?;
        println!("raw: {} bytes in {:?}", report.size, start.elapsed());
        return Ok(());
    }
    let Some(out) = args.get(2) else {
        return Err(usage.into());
    };
    let raw = RawImage::open(Path::new(a))?;
    let scanned = start.elapsed();
    let file = File::create(out)?;
    let mtime = 1_492_533_000;
    match what.as_str() {
        "qcow2" => drop(qcow2::write(&raw, BufWriter::new(file))?),
        "vhd" => drop(vhd::write_fixed(&raw, file, mtime)?),
        "dynamic-vhd" => drop(vhd::write_dynamic(&raw, BufWriter::new(file), mtime)?),
        "vmdk" => drop(vmdk::write(&raw, BufWriter::new(file), "disk.vmdk")?),
        "gcp" => drop(gcp::write(&raw, BufWriter::new(file), mtime)?),
        _ => return Err(usage.into()),
    }
    println!(
        "{what}: {} bytes allocated of {}; scan {:?}, total {:?}",
        raw.allocated(),
        raw.len(),
        scanned,
        start.elapsed()
    );
    Ok(())
}
