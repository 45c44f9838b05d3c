//! Writes a hybrid ISO the way a build lays one out, to measure the ISO
//! and UKI writers (time, peak memory) on real sizes:
//!
//! ```text
//! cargo run --release -p slipway-formats --example hybrid_iso -- OUT.iso KERNEL INITRD [TREE]
//! ```
//!
//! The UKI (systemd's stub, KERNEL, INITRD) is streamed into a region of
//! the image, where an El Torito FAT image would hold it;
//! `/boot/kernel` and `/boot/initrd.img` are extents inside it; isolinux
//! and the isohybrid MBR come from Debian's isolinux. TREE, if given, is
//! a directory added through the entry stream as a root filesystem.

use std::error::Error;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use slipway_assemble::{EntrySink, Header, Kind};
use slipway_formats::iso::{IsoOptions, IsoWriter, Meta};
use slipway_formats::uki::{Uki, UkiParts};

const EPOCH: u64 = 1_492_533_000;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [out, kernel, initrd, rest @ ..] = &args[..] else {
        return Err("usage: hybrid_iso OUT.iso KERNEL INITRD [TREE]".into());
    };
    let stub = fs::read("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")?;
    let parts = UkiParts {
        os_release: b"ID=slipway\n",
        cmdline: b"console=ttyS0",
        uname: None,
        kernel_len: fs::metadata(kernel)?.len(),
        initrd_len: fs::metadata(initrd)?.len(),
    };
    let uki = Uki::plan(&stub, &parts)?;
    let options = IsoOptions {
        volume_id: "SLIPWAY".into(),
        epoch: EPOCH,
        catalog_path: Some("isolinux/boot.cat".into()),
        hybrid_mbr: Some(fs::read("/usr/lib/ISOLINUX/isohdpfx.bin")?),
    };
    let mut w = IsoWriter::new(File::create(out)?, options)?;
    let meta = Meta::new(0o444, EPOCH);
    let mut isolinux = File::open("/usr/lib/ISOLINUX/isolinux.bin")?;
    let len = isolinux.metadata()?.len();
    w.add_bios_boot("isolinux/isolinux.bin", meta.clone(), &mut isolinux, len)?;
    let mut region = w.region_writer()?;
    uki.write(
        &mut region,
        &mut File::open(kernel)?,
        &mut [&mut File::open(initrd)?],
    )?;
    let region = region.finish()?;
    let layout = uki.layout();
    w.set_efi_boot(region.clone())?;
    w.add_extent("EFI/BOOT/BOOTX64.EFI", meta.clone(), region.clone())?;
    let part = |r: &std::ops::Range<u64>| region.slice(r.start, r.end - r.start);
    w.add_extent("boot/kernel", meta.clone(), part(&layout.linux)?)?;
    w.add_extent("boot/initrd.img", meta, part(&layout.initrd)?)?;
    if let Some(tree) = rest.first() {
        add_tree(&mut w, tree, tree)?;
    }
    let written = w.finish()?;
    eprintln!("{}: {} bytes", out.display(), written.size);
    Ok(())
}

/// A host directory as entries (no hard-link groups: each name is a file).
fn add_tree(sink: &mut impl EntrySink, root: &Path, dir: &Path) -> io::Result<()> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for path in names {
        let m = fs::symlink_metadata(&path)?;
        let rel = path
            .strip_prefix(root)
            .map_err(io::Error::other)?
            .to_string_lossy()
            .into_owned();
        let kind = if m.is_dir() {
            Kind::Dir
        } else if m.file_type().is_symlink() {
            Kind::Symlink {
                target: fs::read_link(&path)?.to_string_lossy().into_owned(),
            }
        } else if m.is_file() {
            Kind::File { size: m.len() }
        } else {
            continue;
        };
        let mut h = Header::new(rel, kind, m.mode() & 0o7777);
        (h.uid, h.gid, h.mtime) = (m.uid().into(), m.gid().into(), m.mtime().max(0) as u64);
        if m.is_file() {
            sink.entry(&h, &[], &mut File::open(&path)?)?;
        } else {
            sink.entry(&h, &[], &mut io::empty())?;
        }
        if m.is_dir() {
            add_tree(sink, root, &path)?;
        }
    }
    Ok(())
}
