//! The qemu command line for a [`Boot`] and its [`Options`].

use std::path::{Path, PathBuf};

use crate::boot::Boot;
use crate::detect::{self, Kind};
use crate::options::{Accel, Networking, Options};
use crate::state;

/// Where a root image is attached, from the command line's `root=`.
#[derive(Debug, PartialEq, Eq)]
enum RootOn {
    /// `root=/dev/sdX`: the first SATA disk (q35's AHCI port 0), as plain
    /// qemu's `-drive` shows it; a root format's own command line says so.
    Sata,
    /// `root=/dev/srN`: a CD, as `-cdrom` shows it (`kernel+iso`).
    Cd,
    /// Anything else (`/dev/vda`, `LABEL=`, `UUID=`): the first virtio disk.
    Virtio,
}

/// The device the last `root=` of `cmdline` names (the kernel takes the
/// last one).
fn root_device(cmdline: &str) -> RootOn {
    match cmdline
        .split_whitespace()
        .filter_map(|p| p.strip_prefix("root="))
        .next_back()
    {
        Some(dev) if dev.starts_with("/dev/sd") => RootOn::Sata,
        Some(dev) if dev.starts_with("/dev/sr") => RootOn::Cd,
        _ => RootOn::Virtio,
    }
}

/// The qemu command line (without the program).
pub fn qemu_args(boot: &Boot, options: &Options) -> Vec<String> {
    let mut args = Args::default();
    let accel = match options.accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    args.push(["-machine", &format!("q35,accel={accel}")]);
    if options.accel == Accel::Kvm {
        args.push(["-cpu", "host"]);
    }
    args.push([
        "-smp",
        &options.cpus.to_string(),
        "-m",
        &options.mem_mb.to_string(),
    ]);
    args.push(["-display", "none", "-monitor", "none", "-no-reboot"]);
    if options.detached {
        // qemu forks once it is set up and its parent exits: the console
        // can only go to a file.
        args.push([
            "-daemonize",
            "-serial",
            &format!("file:{}", options.detached_console().display()),
        ]);
    } else {
        args.push(["-serial", "stdio"]);
    }
    args.push([
        "-qmp",
        &format!("unix:{},server=on,wait=off", options.qmp_socket().display()),
        "-pidfile",
        &options.pid_file().to_string_lossy(),
    ]);
    // The guest's control port (docs/control.md), on every machine: the
    // guest's multiplexer finds it by name, and a guest without one
    // ignores the device.
    args.0.extend(crate::control::qemu_args(&options.state_dir));
    // A guest panic ends qemu with a failure status.
    args.push(["-device", "pvpanic-pci", "-action", "panic=exit-failure"]);
    args.push([
        "-object",
        "rng-random,id=rng0,filename=/dev/urandom",
        "-device",
        "virtio-rng-pci,rng=rng0",
    ]);
    if let Some(firmware) = &options.firmware {
        match state::efi_vars(firmware, &options.state_dir) {
            // A split firmware: its code read-only, the machine's own copy
            // of the variable store beside it.
            Some(vars) => args.push([
                "-drive",
                &format!(
                    "if=pflash,format=raw,readonly=on,file={}",
                    firmware.display()
                ),
                "-drive",
                &format!("if=pflash,format=raw,file={}", vars.display()),
            ]),
            None => args.push(["-bios", &firmware.to_string_lossy()]),
        }
    }
    network(&mut args, options);
    let cmdline = |base: &str| {
        let mut cmdline = base.to_owned();
        for extra in &options.extra_cmdline {
            cmdline.push(' ');
            cmdline.push_str(extra);
        }
        cmdline
    };
    let mut iso_boot = false;
    match boot {
        Boot::Kernel {
            kernel,
            initrd,
            cmdline: base,
        } => {
            args.push([
                "-kernel",
                &kernel.to_string_lossy(),
                "-initrd",
                &initrd.to_string_lossy(),
                "-append",
                &cmdline(base),
            ]);
        }
        Boot::KernelRoot {
            kernel,
            initrd,
            cmdline: base,
            root,
            ..
        } => {
            args.push(["-kernel", &kernel.to_string_lossy()]);
            if let Some(initrd) = initrd {
                args.push(["-initrd", &initrd.to_string_lossy()]);
            }
            let line = cmdline(base);
            args.push(["-append", &line]);
            let interface = match root_device(&line) {
                // qemu's IDE/SATA disk cannot be read-only: writes go to a
                // temporary overlay instead, the image stays as it was.
                RootOn::Sata => ",if=ide,index=0,media=disk,snapshot=on",
                RootOn::Cd => {
                    // Where `-cdrom` goes: a `--data` CD takes the next unit.
                    iso_boot = true;
                    ",if=ide,index=2,media=cdrom,readonly=on"
                }
                RootOn::Virtio => ",if=virtio,readonly=on",
            };
            args.push([
                "-drive",
                &format!("file={},format=raw{interface}", root.display()),
            ]);
        }
        Boot::Iso { path, .. } => {
            iso_boot = true;
            args.push(["-cdrom", &path.to_string_lossy(), "-boot", "d"]);
        }
        Boot::Disk {
            path,
            format,
            snapshot,
            ..
        } => {
            let snapshot = if *snapshot { ",snapshot=on" } else { "" };
            args.push([
                "-drive",
                &format!(
                    "file={},format={format},if=virtio{snapshot}",
                    path.display()
                ),
            ]);
        }
        Boot::GcpTarball { .. } => {
            args.push([
                "-drive",
                &format!(
                    "file={},format=raw,if=virtio",
                    state::gcp_disk(&options.state_dir).display()
                ),
            ]);
        }
        Boot::Efi { path } => {
            // The UKI carries its command line (`Options::check` refuses
            // `--append` here).
            args.push(["-kernel", &path.to_string_lossy()]);
        }
    }
    for (i, disk) in options.disks.iter().enumerate() {
        let path = disk.file(&options.state_dir, i);
        let format = disk
            .format
            .clone()
            .unwrap_or_else(|| disk_format(&path).to_owned());
        args.push([
            "-drive",
            &format!("file={},format={format},if=virtio", path.display()),
        ]);
    }
    if options.data.is_some() {
        let data = state::data_iso(&options.state_dir);
        if iso_boot {
            // The boot CD is `-cdrom` (the third IDE/AHCI unit); the data
            // CD is the next one.
            args.push([
                "-drive",
                &format!(
                    "file={},format=raw,if=ide,index=3,media=cdrom,readonly=on",
                    data.display()
                ),
            ]);
        } else {
            args.push(["-cdrom", &data.to_string_lossy()]);
        }
    }
    for device in &options.devices {
        args.push(["-device", device]);
    }
    args.0
}

#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn push<const N: usize>(&mut self, items: [&str; N]) {
        self.0.extend(items.iter().map(|s| (*s).to_owned()));
    }
}

fn network(args: &mut Args, options: &Options) {
    let netdev = match &options.networking {
        Networking::None => {
            args.push(["-nic", "none"]);
            return;
        }
        Networking::User => {
            let mut netdev = "user,id=net0".to_owned();
            for p in &options.publish {
                netdev.push_str(&format!(
                    ",hostfwd={}:127.0.0.1:{}-:{}",
                    p.proto, p.host, p.guest
                ));
            }
            netdev
        }
        Networking::Tap(name) => format!("tap,id=net0,ifname={name},script=no,downscript=no"),
        Networking::Bridge(name) => format!("bridge,id=net0,br={name}"),
    };
    let mut nic = "virtio-net-pci,netdev=net0".to_owned();
    if let Some(mac) = &options.mac {
        nic.push_str(&format!(",mac={mac}"));
    }
    args.push(["-netdev", &netdev, "-device", &nic]);
}

/// qemu's format for an existing disk, from its bytes; `raw` for anything
/// that is not a qcow2, VHD or VMDK (a blank disk, a filesystem image) and
/// `qcow2` for one that does not exist yet.
pub fn disk_format(path: &Path) -> &'static str {
    if !path.exists() {
        return "qcow2";
    }
    match detect::detect(path) {
        Ok(Kind::Qcow2) => "qcow2",
        Ok(Kind::Vhd { .. }) => "vpc",
        Ok(Kind::Vmdk { .. } | Kind::VmdkDescriptor) => "vmdk",
        _ => "raw",
    }
}

/// The files a boot reads, for a message naming what is started.
pub fn describe(boot: &Boot) -> String {
    let show = |p: &PathBuf| p.display().to_string();
    match boot {
        Boot::Kernel { kernel, initrd, .. } => {
            format!("kernel {} with initrd {}", show(kernel), show(initrd))
        }
        Boot::KernelRoot {
            kernel, root, fs, ..
        } => format!("kernel {} with the {fs} root {}", show(kernel), show(root)),
        Boot::Iso { path, .. } => format!("ISO {} as a CD", show(path)),
        Boot::Disk { path, format, .. } => format!("{format} disk {}", show(path)),
        Boot::GcpTarball { path } => format!("the disk.raw of {}", show(path)),
        Boot::Efi { path } => format!("EFI application {}", show(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::IsoInfo;
    use crate::options::{Disk, Publish};

    fn options() -> Options {
        let mut options = Options::new(PathBuf::from("/state"));
        options.accel = Accel::Tcg;
        options
    }

    #[test]
    fn kernel_boot() {
        let mut options = options();
        options.publish.push(Publish::parse("8080:80").unwrap());
        options.extra_cmdline.push("slipway.runtime=runc".into());
        options.mac = Some("02:00:00:00:00:01".into());
        let boot = Boot::Kernel {
            kernel: "/k".into(),
            initrd: "/i".into(),
            cmdline: "console=ttyS0".into(),
        };
        let args = qemu_args(&boot, &options).join(" ");
        for want in [
            "-machine q35,accel=tcg",
            "-serial stdio",
            "hostfwd=tcp:127.0.0.1:8080-:80",
            "-device virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01",
            "-kernel /k -initrd /i -append console=ttyS0 slipway.runtime=runc",
            "-qmp unix:/state/qmp.sock,server=on,wait=off",
            "-pidfile /state/qemu.pid",
            "panic=exit-failure",
            "-device virtio-serial-pci \
             -chardev socket,id=control,path=/state/control.chardev,server=on,wait=off \
             -device virtserialport,chardev=control,name=org.slipway.control",
        ] {
            assert!(args.contains(want), "{want} not in {args}");
        }
        assert!(!args.contains("-bios"), "{args}");
        assert!(!args.contains("-daemonize"), "{args}");
    }

    #[test]
    fn root_image_iso_disk_efi() {
        let mut options = options();
        let boot = Boot::KernelRoot {
            kernel: "/p-kernel".into(),
            initrd: Some("/p-initrd.img".into()),
            cmdline: "console=ttyS0 root=/dev/vda".into(),
            root: "/p-squashfs.img".into(),
            fs: "squashfs",
        };
        let args = qemu_args(&boot, &options).join(" ");
        assert!(
            args.contains(
                "-kernel /p-kernel -initrd /p-initrd.img -append console=ttyS0 root=/dev/vda \
                 -drive file=/p-squashfs.img,format=raw,if=virtio,readonly=on"
            ),
            "{args}"
        );
        // The root where the build's command line names it.
        for (root, drive) in [
            ("root=/dev/sda", ",if=ide,index=0,media=disk,snapshot=on"),
            ("root=/dev/sr0", ",if=ide,index=2,media=cdrom,readonly=on"),
            ("root=/dev/sda root=LABEL=x", ",if=virtio,readonly=on"),
        ] {
            let boot = Boot::KernelRoot {
                kernel: "/p-kernel".into(),
                initrd: None,
                cmdline: format!("console=ttyS0 {root}"),
                root: "/p.img".into(),
                fs: "squashfs",
            };
            let args = qemu_args(&boot, &options).join(" ");
            assert!(
                args.contains(&format!("-drive file=/p.img,format=raw{drive}")),
                "{root}: {args}"
            );
        }
        let iso = Boot::Iso {
            path: "/x.iso".into(),
            info: IsoInfo {
                bios: true,
                efi: true,
                hybrid: true,
            },
        };
        options.data = Some(b"hello".to_vec());
        let args = qemu_args(&iso, &options).join(" ");
        assert!(args.contains("-cdrom /x.iso -boot d"), "{args}");
        assert!(
            args.contains("-drive file=/state/data.iso,format=raw,if=ide,index=3,media=cdrom"),
            "{args}"
        );
        let disk = Boot::Disk {
            path: "/d.vmdk".into(),
            format: "vmdk",
            snapshot: true,
            firmware: None,
        };
        options.firmware = Some("/fw/OVMF.fd".into());
        options.networking = Networking::None;
        options.devices.push("virtio-balloon".into());
        options
            .disks
            .push(Disk::parse("size=1G,format=raw").unwrap());
        let args = qemu_args(&disk, &options).join(" ");
        for want in [
            "-bios /fw/OVMF.fd",
            "-nic none",
            "-drive file=/d.vmdk,format=vmdk,if=virtio,snapshot=on",
            "-drive file=/state/disk.img,format=raw,if=virtio",
            "-cdrom /state/data.iso",
            "-device virtio-balloon",
        ] {
            assert!(args.contains(want), "{want} not in {args}");
        }
        assert!(!args.contains("netdev"), "{args}");
        let efi = Boot::Efi {
            path: "/uki.efi".into(),
        };
        let args = qemu_args(&efi, &options).join(" ");
        assert!(args.contains("-kernel /uki.efi"), "{args}");
        assert!(!args.contains("-append"), "{args}");
        let gcp = Boot::GcpTarball {
            path: "/x.img.tar.gz".into(),
        };
        let args = qemu_args(&gcp, &options).join(" ");
        assert!(
            args.contains("-drive file=/state/disk.raw,format=raw,if=virtio"),
            "{args}"
        );
    }

    #[test]
    fn control_port_on_every_boot_kind() {
        let boots = [
            Boot::Kernel {
                kernel: "/k".into(),
                initrd: "/i".into(),
                cmdline: String::new(),
            },
            Boot::KernelRoot {
                kernel: "/k".into(),
                initrd: None,
                cmdline: "root=/dev/sr0".into(),
                root: "/r.iso".into(),
                fs: "iso",
            },
            Boot::Iso {
                path: "/x.iso".into(),
                info: IsoInfo {
                    bios: true,
                    efi: false,
                    hybrid: false,
                },
            },
            Boot::Disk {
                path: "/d.img".into(),
                format: "raw",
                snapshot: false,
                firmware: None,
            },
            Boot::GcpTarball {
                path: "/g.img.tar.gz".into(),
            },
            Boot::Efi {
                path: "/u.efi".into(),
            },
        ];
        for detached in [false, true] {
            let mut options = options();
            options.detached = detached;
            options.devices.push("virtio-serial-pci".into());
            for boot in &boots {
                let args = qemu_args(boot, &options);
                let at = args
                    .windows(6)
                    .position(|w| w[0] == "-device" && w[1] == "virtio-serial-pci")
                    .unwrap_or_else(|| panic!("no control port: {args:?}"));
                assert_eq!(
                    args[at + 2..at + 6],
                    [
                        "-chardev",
                        "socket,id=control,path=/state/control.chardev,server=on,wait=off",
                        "-device",
                        "virtserialport,chardev=control,name=org.slipway.control",
                    ],
                    "{boot:?}"
                );
                // A --device of the user's is its own, beside ours.
                assert_eq!(args.iter().filter(|a| *a == "virtio-serial-pci").count(), 2);
            }
        }
    }

    #[test]
    fn detached_and_networks() {
        let mut options = options();
        options.detached = true;
        options.networking = Networking::Tap("tap0".into());
        let boot = Boot::Disk {
            path: "/d.img".into(),
            format: "raw",
            snapshot: false,
            firmware: None,
        };
        let args = qemu_args(&boot, &options).join(" ");
        assert!(
            args.contains("-daemonize -serial file:/state/console.log"),
            "{args}"
        );
        assert!(!args.contains("stdio"), "{args}");
        assert!(
            args.contains(
                "-chardev socket,id=control,path=/state/control.chardev,server=on,wait=off"
            ),
            "{args}"
        );
        assert!(
            args.contains("-netdev tap,id=net0,ifname=tap0,script=no,downscript=no"),
            "{args}"
        );
        options.networking = Networking::Bridge("br0".into());
        let args = qemu_args(&boot, &options).join(" ");
        assert!(args.contains("-netdev bridge,id=net0,br=br0"), "{args}");
    }
}
