//! A tiny test initramfs: Debian's static busybox as `/init`'s shell, the
//! kernel modules asked for (with their dependencies, decompressed for
//! busybox's `insmod`) and a script. `/init` mounts proc, sysfs and
//! devtmpfs, loads the modules, prints [`UP`], runs the script and powers
//! off. About 1 MB; boots in about 3 s under TCG.
//!
//! Needs busybox-static, cpio, gzip, xz and the test kernel. Like the other
//! boot helpers these panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::initramfs::{kernel_dir, need};

/// What `/init` prints once the modules are loaded.
pub const UP: &str = "TINY-INIT-UP";

/// Modules that show the CD-ROMs qemu's q35 machine has (AHCI) and read
/// ISO 9660 on them.
pub const CDROM_MODULES: &[&str] = &["ahci", "sr_mod", "isofs"];

/// Modules for the ACPI power button as an input device.
pub const POWER_BUTTON_MODULES: &[&str] = &["button", "evdev"];

/// A script that prints `DATA-CONFIG: <contents>` for the `config` file of
/// every CD that has one (what `slipway run --data` attaches).
pub const PRINT_DATA: &str = r#"
i=0
while [ $i -lt 100 ] && [ ! -e /dev/sr0 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.5
mkdir -p /cd
for d in /dev/sr*; do
  if mount -t iso9660 -o ro "$d" /cd 2>/dev/null; then
    [ -f /cd/config ] && echo "DATA-CONFIG $d: $(cat /cd/config)"
    umount /cd
  fi
done
"#;

/// A script that waits for the ACPI power button, then lets `/init`
/// power off: a guest that shuts down cleanly when asked.
pub const WAIT_FOR_POWER_BUTTON: &str = r#"
dev=
for e in /sys/class/input/event*; do
  grep -q "Power Button" "$e/device/name" && dev=/dev/input/$(basename "$e") && break
done
[ -n "$dev" ] || echo "NO-POWER-BUTTON"
# Opened before saying so: a press that comes before the read is kept.
exec 3< "$dev"
echo "WAITING-FOR-POWER-BUTTON"
head -c 24 <&3 > /dev/null
echo "POWER-BUTTON-PRESSED"
"#;

/// A script that never ends, and ignores the power button.
pub const SLEEP_FOREVER: &str = "echo SLEEPING-FOREVER\nwhile :; do sleep 1; done\n";

/// Build the initramfs under `work`; returns `work/tiny-initrd.img`.
pub fn initramfs(work: &Path, modules: &[&str], script: &str) -> PathBuf {
    let kdir = kernel_dir();
    let version = fs::read_to_string(kdir.join("version")).unwrap();
    let src = kdir.join("lib/modules").join(version.trim());
    let root = work.join("tiny-root");
    let _ = fs::remove_dir_all(&root);
    for dir in ["bin", "proc", "sys", "dev", "lib/modules"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::copy(need("busybox"), root.join("bin/busybox")).unwrap();
    let order = module_order(&src.join("modules.dep"), modules);
    for (name, path) in &order {
        let out = fs::File::create(root.join(format!("lib/modules/{name}.ko"))).unwrap();
        let status = Command::new(need("xz"))
            .arg("-dc")
            .arg(src.join(path))
            .stdout(out)
            .status()
            .unwrap();
        assert!(status.success(), "xz -dc {path} failed");
    }
    let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
    let init = format!(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\n\
         mount -t proc proc /proc\nmount -t sysfs sysfs /sys\nmount -t devtmpfs devtmpfs /dev\n\
         for m in {modules}; do insmod /lib/modules/$m.ko || echo \"INSMOD-FAILED $m\"; done\n\
         echo {UP}\n{script}\nsync\npoweroff -f\n",
        modules = names.join(" "),
    );
    fs::write(root.join("init"), init).unwrap();
    fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755)).unwrap();
    let out = work.join("tiny-initrd.img");
    let status = Command::new("sh")
        .arg("-ec")
        .arg(format!(
            "cd '{}' && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > '{}'",
            root.display(),
            out.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "packing the tiny initramfs failed");
    out
}

/// The modules to load, dependencies first: `(name, path in modules.dep)`.
fn module_order(modules_dep: &Path, wanted: &[&str]) -> Vec<(String, String)> {
    let text = fs::read_to_string(modules_dep).unwrap();
    let name_of = |path: &str| {
        path.rsplit('/')
            .next()
            .unwrap()
            .split(".ko")
            .next()
            .unwrap()
            .replace('-', "_")
    };
    let deps: Vec<(String, String, Vec<String>)> = text
        .lines()
        .filter_map(|line| {
            let (path, rest) = line.split_once(':')?;
            Some((
                name_of(path),
                path.to_owned(),
                rest.split_whitespace().map(str::to_owned).collect(),
            ))
        })
        .collect();
    let find = |name: &str| {
        deps.iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("module {name} is not in {}", modules_dep.display()))
    };
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for want in wanted {
        let (name, path, needs) = find(&want.replace('-', "_"));
        // modules.dep lists every dependency, the ones to load first last.
        for dep in needs.iter().rev() {
            let dep_name = name_of(dep);
            if seen.insert(dep_name.clone()) {
                order.push((dep_name, dep.clone()));
            }
        }
        if seen.insert(name.clone()) {
            order.push((name.clone(), path.clone()));
        }
    }
    order
}
