//! Before a root format (`kernel+squashfs`, `kernel+erofs`, `kernel+iso`)
//! is written: does the kernel have what finds and mounts its root?
//! The small initrd carries the root device's modules from the kernel
//! image; what the kernel lacks (neither a module nor built in,
//! `slipway_assemble::missing_root_modules`) is said here, naming the
//! modules and the kernel image, before any file is written:
//!
//! * the root's filesystem missing is an error: the root cannot be
//!   mounted on any machine;
//! * no way to reach the root device at all (neither virtio's disk nor
//!   the ATA drivers with the SCSI disk or CD driver) is an error;
//! * one of those ways missing is a warning: the image boots the other
//!   way (plain qemu's `-drive`/`-cdrom`, or `slipway run`'s virtio disk).

use slipway_assemble::{BlobSource, Unit, missing_root_modules};
use slipway_contract::root_device::fs_alias;
use slipway_formats::Output;

use crate::report::warn;

/// What the root of `output` is on, when plain qemu shows it: the SCSI
/// upper driver that names it, the filesystem, and the device's name.
fn root_of(output: Output) -> Option<(&'static str, &'static str, &'static str)> {
    match output {
        Output::KernelSquashfs => Some(("sd_mod", "squashfs", "the first disk, /dev/sda")),
        Output::KernelErofs => Some(("sd_mod", "erofs", "the first disk, /dev/sda")),
        Output::KernelIso => Some(("sr_mod", "iso9660", "the CD, /dev/sr0")),
        _ => None,
    }
}

/// What the check found for one format: an error, or warnings.
#[derive(Debug, Default, PartialEq, Eq)]
struct Verdict {
    error: Option<String>,
    warnings: Vec<String>,
}

fn judge(output: Output, missing: &[String], kernel: &str) -> Verdict {
    let Some((scsi, fs, device)) = root_of(output) else {
        return Verdict::default();
    };
    let lacks = |m: &str| missing.iter().any(|x| x == m);
    let list = |ms: &[&str]| {
        ms.iter()
            .filter(|m| lacks(m))
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut v = Verdict::default();
    let alias = fs_alias(fs);
    if lacks(&alias) {
        v.error = Some(format!(
            "{output}: the kernel image {kernel} has no {fs} filesystem (no module for {alias}, nor built in): \
             the root image could not be mounted; use a kernel with {fs}, or a format that boots from the initrd (kernel+initrd, iso-bios, raw-bios...)"
        ));
        return v;
    }
    let virtio = !lacks("virtio_blk");
    let ata_driver = !lacks("ahci") || !lacks("ata_piix");
    let ata = ata_driver && !lacks(scsi);
    match (virtio, ata) {
        (true, true) => {}
        (false, false) => {
            v.error = Some(format!(
                "{output}: the kernel image {kernel} lacks the modules that find the root device \
                 (missing, neither modules nor built in: {}): no virtio disk and no IDE or SATA {}; \
                 use a kernel with them, or a format that boots from the initrd (kernel+initrd, iso-bios, raw-bios...)",
                list(&["virtio_blk", "ahci", "ata_piix", scsi]),
                if scsi == "sr_mod" { "CD" } else { "disk" }
            ));
        }
        (true, false) => v.warnings.push(format!(
            "{output}: the kernel image {kernel} lacks {} (neither modules nor built in): \
             the root as {device} (plain qemu's -{}) cannot be found; it boots as a virtio disk (slipway run, root=/dev/vda)",
            list(&["ahci", "ata_piix", scsi]),
            if scsi == "sr_mod" { "cdrom" } else { "drive" }
        )),
        (false, true) => v.warnings.push(format!(
            "{output}: the kernel image {kernel} lacks virtio_blk (neither a module nor built in): \
             the root as a virtio disk (slipway run, root=/dev/vda) cannot be found; it boots as {device}"
        )),
    }
    // One ATA driver of two missing is not worth a word: either finds the
    // disks of its machine type, and the other type still boots.
    v
}

/// Checks the kernel of `units` for every root format of `outputs`;
/// warns, or fails with what is missing. `kernel` names its image.
pub fn check(
    outputs: &[Output],
    units: &[&Unit],
    store: &dyn BlobSource,
    kernel: &str,
) -> anyhow::Result<()> {
    let roots: Vec<Output> = outputs
        .iter()
        .copied()
        .filter(|o| root_of(*o).is_some())
        .collect();
    if roots.is_empty() {
        return Ok(());
    }
    // No kernel unit: the format's own check says so when writing.
    let Some(unit) = units.iter().find(|u| u.is_kernel()) else {
        return Ok(());
    };
    let missing = missing_root_modules(unit, store)?;
    if missing.is_empty() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for output in roots {
        let v = judge(output, &missing, kernel);
        for w in &v.warnings {
            warn(w);
        }
        errors.extend(v.error);
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ms: &[&str]) -> Vec<String> {
        ms.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn a_missing_filesystem_is_an_error_naming_it_and_the_kernel() {
        let v = judge(Output::KernelSquashfs, &names(&["fs-squashfs"]), "k:1");
        let e = v.error.unwrap();
        assert!(e.contains("kernel+squashfs") && e.contains("k:1"), "{e}");
        assert!(e.contains("fs-squashfs"), "{e}");
        // Another format's filesystem does not matter.
        let v = judge(Output::KernelErofs, &names(&["fs-squashfs"]), "k:1");
        assert_eq!(v, Verdict::default());
    }

    #[test]
    fn one_way_to_the_device_missing_is_a_warning() {
        let v = judge(Output::KernelIso, &names(&["virtio_blk"]), "k");
        assert!(v.error.is_none());
        assert!(v.warnings[0].contains("virtio_blk"), "{:?}", v.warnings);
        let v = judge(Output::KernelIso, &names(&["sr_mod"]), "k");
        assert!(v.error.is_none());
        assert!(v.warnings[0].contains("sr_mod"), "{:?}", v.warnings);
        // sd_mod matters to disks only.
        assert_eq!(
            judge(Output::KernelIso, &names(&["sd_mod"]), "k"),
            Verdict::default()
        );
        assert_eq!(
            judge(Output::KernelErofs, &names(&["ahci"]), "k"),
            Verdict::default()
        );
    }

    #[test]
    fn no_way_to_the_device_is_an_error() {
        let v = judge(
            Output::KernelErofs,
            &names(&["virtio_blk", "sd_mod", "fs-iso9660"]),
            "k",
        );
        let e = v.error.unwrap();
        assert!(e.contains("virtio_blk, sd_mod"), "{e}");
        assert!(!e.contains("iso9660"), "{e}");
    }
}
