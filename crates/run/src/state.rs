//! The machine's state directory and what is made in it before qemu
//! starts: the directory itself (mode 0700), the MAC address, new disks,
//! the EFI variable store, the `--data` ISO, a GCP image's `disk.raw`.
//!
//! | file | what |
//! |---|---|
//! | `qemu.pid` | qemu's pid (qemu writes it) |
//! | `qmp.sock` | qemu's monitor (QMP) |
//! | `control.chardev`, `control.sock`, `control.pid`, `control.log` | the control channel ([`crate::control`]) |
//! | `mac-addr` | the network card's address, kept across boots |
//! | `console.log` | a detached machine's console |
//! | `data.iso` | `--data`/`--data-file` as `config` on an ISO 9660 image |
//! | `disk.img`, `disk1.img`... | `--disk size=N` without a path |
//! | `efivars.fd` | the variable store of a split OVMF (`--fw ..._CODE...fd`) |
//! | `disk.raw` | a GCP image's disk, extracted |

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::boot::Boot;
use crate::options::Options;
use crate::{RunError, io};

/// The state directory LinuxKit uses for `path`: `<prefix>-state`, where
/// the prefix is a kernel+initrd prefix as given, or a file's path without
/// its extension (without `.img.tar.gz` for a GCP image).
pub fn default_state_dir(boot: &Boot, path: &Path) -> PathBuf {
    let prefix = match boot {
        Boot::Kernel { .. } | Boot::KernelRoot { .. } => path.to_path_buf(),
        _ => {
            let text = path.to_string_lossy();
            match text.strip_suffix(".img.tar.gz") {
                Some(stem) => PathBuf::from(stem),
                None => path.with_extension(""),
            }
        }
    };
    let mut text = prefix.into_os_string();
    text.push("-state");
    PathBuf::from(text)
}

/// Create the state directory, mode 0700 (it holds the monitor and the
/// control sockets, through which anyone could drive the machine); its
/// parents as the umask says. An existing directory is made 0700 too.
pub fn create_state_dir(dir: &Path) -> Result<(), RunError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {
            let mode = fs::metadata(dir)
                .map_err(io(format!("reading {}", dir.display())))?
                .permissions()
                .mode();
            if mode & 0o777 != 0o700 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(io(format!("making {} private (mode 0700)", dir.display())))?;
            }
            Ok(())
        }
        Err(e) => Err(RunError::Io {
            what: format!("creating {}", dir.display()),
            source: e,
        }),
    }
}

/// The MAC address kept in `<state>/mac-addr`, made (locally administered,
/// unicast, random) and written there on the first run, so a machine keeps
/// its address, and with it its DHCP lease and hostname, across boots.
pub fn persistent_mac(state_dir: &Path) -> Result<String, RunError> {
    let file = state_dir.join("mac-addr");
    if let Ok(text) = fs::read_to_string(&file) {
        let mac = text.trim();
        if valid_mac(mac) {
            return Ok(mac.to_owned());
        }
    }
    create_state_dir(state_dir)?;
    let mut bytes = [0u8; 6];
    let mut random =
        File::open("/dev/urandom").map_err(io("opening /dev/urandom for a MAC address"))?;
    random
        .read_exact(&mut bytes)
        .map_err(io("reading /dev/urandom for a MAC address"))?;
    // Locally administered (bit 1), unicast (bit 0 clear).
    bytes[0] = (bytes[0] | 0x02) & 0xfe;
    let mac = bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    write_atomic(&file, format!("{mac}\n").as_bytes())?;
    Ok(mac)
}

pub(crate) fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn write_atomic(file: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, file).map_err(io(format!("writing {}", file.display())))
}

/// Create the `--disk`s that do not exist yet, with `qemu-img`.
pub fn create_disks(options: &Options) -> Result<(), RunError> {
    for (i, disk) in options.disks.iter().enumerate() {
        let path = disk.file(&options.state_dir, i);
        if path.exists() {
            continue;
        }
        let format = disk.format.as_deref().unwrap_or("qcow2");
        let output = Command::new("qemu-img")
            .args(["create", "-q", "-f", format])
            .arg(&path)
            .arg(disk.size.to_string())
            .output()
            .map_err(io("running qemu-img (Debian package qemu-utils)"))?;
        if !output.status.success() {
            return Err(RunError::QemuImg {
                path: path.display().to_string(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
    }
    Ok(())
}

/// The per-machine variable store of a split OVMF: `--fw` naming a
/// `..._CODE...fd` file has a `..._VARS...fd` template beside it, copied
/// into the state directory as `efivars.fd`. `None` for a single-file
/// firmware (`OVMF.fd`), which qemu loads with `-bios`.
pub fn efi_vars(firmware: &Path, state_dir: &Path) -> Option<PathBuf> {
    vars_template(firmware).map(|_| state_dir.join("efivars.fd"))
}

fn vars_template(firmware: &Path) -> Option<PathBuf> {
    let name = firmware.file_name()?.to_str()?;
    if !name.contains("_CODE") {
        return None;
    }
    Some(firmware.with_file_name(name.replacen("_CODE", "_VARS", 1)))
}

/// Copy a split firmware's variable store into the state directory the
/// first time.
fn prepare_efi_vars(firmware: &Path, state_dir: &Path) -> Result<(), RunError> {
    let Some(template) = vars_template(firmware) else {
        return Ok(());
    };
    let vars = state_dir.join("efivars.fd");
    if vars.is_file() {
        return Ok(());
    }
    if !template.is_file() {
        return Err(RunError::Firmware {
            path: format!(
                "{} (the variable store {} a split firmware needs)",
                firmware.display(),
                template.display()
            ),
        });
    }
    let bytes = fs::read(&template).map_err(io(format!("reading {}", template.display())))?;
    write_atomic(&vars, &bytes)
}

/// Where the `--data` ISO goes.
pub fn data_iso(state_dir: &Path) -> PathBuf {
    state_dir.join("data.iso")
}

/// Where a GCP image's disk is extracted.
pub fn gcp_disk(state_dir: &Path) -> PathBuf {
    state_dir.join("disk.raw")
}

/// Everything the machine needs in its state directory before qemu starts.
pub fn prepare(boot: &Boot, options: &Options) -> Result<(), RunError> {
    options.check(boot)?;
    create_state_dir(&options.state_dir)?;
    create_disks(options)?;
    if let Some(firmware) = &options.firmware {
        prepare_efi_vars(firmware, &options.state_dir)?;
    }
    if let Some(data) = &options.data {
        crate::data::write(&data_iso(&options.state_dir), data)?;
    }
    if let Boot::GcpTarball { path } = boot {
        extract_gcp(path, &gcp_disk(&options.state_dir))?;
    }
    // A stale pid file would name a process that is not ours.
    let _ = fs::remove_file(options.pid_file());
    Ok(())
}

/// Extract `disk.raw` from a GCP image, sparsely (runs of zeros become
/// holes), unless the copy already there is newer than the archive: the
/// guest's writes to it persist like any disk's.
pub fn extract_gcp(archive: &Path, out: &Path) -> Result<(), RunError> {
    let what = || format!("extracting disk.raw from {}", archive.display());
    let archive_meta = fs::metadata(archive).map_err(io(what()))?;
    if let Ok(existing) = fs::metadata(out)
        && existing.mtime() >= archive_meta.mtime()
    {
        return Ok(());
    }
    let file = File::open(archive).map_err(io(what()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let entries = tar.entries().map_err(io(what()))?;
    for entry in entries {
        let mut entry = entry.map_err(io(what()))?;
        let path = entry.path().map_err(io(what()))?.into_owned();
        if path != Path::new("disk.raw") && path != Path::new("./disk.raw") {
            continue;
        }
        let mut tmp = out.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut dst = File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        let len = copy_sparse(&mut entry, &mut dst).map_err(io(what()))?;
        dst.set_len(len).map_err(io(what()))?;
        dst.sync_all().map_err(io(what()))?;
        fs::rename(&tmp, out).map_err(io(format!("writing {}", out.display())))?;
        return Ok(());
    }
    Err(RunError::Io {
        what: what(),
        source: io::Error::new(io::ErrorKind::NotFound, "the archive has no disk.raw"),
    })
}

/// Copy `src` to `dst`, seeking over blocks of zeros; returns the length.
fn copy_sparse(src: &mut impl Read, dst: &mut File) -> io::Result<u64> {
    const BLOCK: usize = 64 << 10;
    let mut buf = vec![0u8; BLOCK];
    let mut len = 0u64;
    loop {
        let mut filled = 0;
        while filled < BLOCK {
            match src.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            return Ok(len);
        }
        if buf[..filled].iter().all(|b| *b == 0) {
            dst.seek(SeekFrom::Current(filled as i64))?;
        } else {
            dst.write_all(&buf[..filled])?;
        }
        len += filled as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_and_mac() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = Boot::Kernel {
            kernel: "k".into(),
            initrd: "i".into(),
            cmdline: String::new(),
        };
        assert_eq!(
            default_state_dir(&kernel, Path::new("out/img")),
            PathBuf::from("out/img-state")
        );
        let disk = Boot::Disk {
            path: "d.qcow2".into(),
            format: "qcow2",
            snapshot: false,
            firmware: None,
        };
        assert_eq!(
            default_state_dir(&disk, Path::new("out/d.qcow2")),
            PathBuf::from("out/d-state")
        );
        let gcp = Boot::GcpTarball {
            path: "out/g.img.tar.gz".into(),
        };
        assert_eq!(
            default_state_dir(&gcp, Path::new("out/g.img.tar.gz")),
            PathBuf::from("out/g-state")
        );
        let state = dir.path().join("a/b/s");
        let mac = persistent_mac(&state).unwrap();
        assert!(valid_mac(&mac), "{mac}");
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 0x03, 0x02, "{mac}");
        assert_eq!(persistent_mac(&state).unwrap(), mac);
        // The state directory is private; its parents are not.
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_ne!(mode(&dir.path().join("a/b")), 0o700);
        // One made before, with the umask's permissions, is made private.
        let old = dir.path().join("old-state");
        fs::create_dir(&old).unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
        create_state_dir(&old).unwrap();
        assert_eq!(mode(&old), 0o700);
    }

    #[test]
    fn split_firmware_vars() {
        assert_eq!(
            vars_template(Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd")),
            Some(PathBuf::from("/usr/share/OVMF/OVMF_VARS_4M.fd"))
        );
        assert_eq!(vars_template(Path::new("/usr/share/ovmf/OVMF.fd")), None);
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("X_CODE.fd");
        fs::write(&code, b"c").unwrap();
        let err = prepare_efi_vars(&code, dir.path()).unwrap_err().to_string();
        assert!(err.contains("X_VARS.fd"), "{err}");
        fs::write(dir.path().join("X_VARS.fd"), b"vars").unwrap();
        prepare_efi_vars(&code, dir.path()).unwrap();
        assert_eq!(fs::read(dir.path().join("efivars.fd")).unwrap(), b"vars");
    }
}
