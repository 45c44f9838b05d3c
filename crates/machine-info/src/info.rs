//! What the machine is, read from procfs, uname and getifaddrs.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::{AddressFamily, SockaddrLike as _};
use slipway_control::machine::{Interface, MachineInfo, Mount};

/// Everything `Info/Get` answers, read now; `proc` is where procfs is.
pub fn gather(proc: &Path) -> io::Result<MachineInfo> {
    let read = |name: &str| std::fs::read_to_string(proc.join(name));
    let uts = nix::sys::utsname::uname()?;
    let meminfo = read("meminfo")?;
    // PID 1's mounts are the machine's; a container without the host's PID
    // namespace only sees its own.
    let mounts = read("1/mounts").or_else(|_| read("self/mounts"))?;
    Ok(MachineInfo {
        hostname: nix::unistd::gethostname()?.to_string_lossy().into_owned(),
        kernel_release: uts.release().to_string_lossy().into_owned(),
        kernel_version: uts.version().to_string_lossy().into_owned(),
        architecture: uts.machine().to_string_lossy().into_owned(),
        cmdline: read("cmdline")?.trim_end().to_owned(),
        uptime_seconds: first_number(&read("uptime")?).unwrap_or_default(),
        load_average: read("loadavg")?
            .split_whitespace()
            .take(3)
            .filter_map(|f| f.parse().ok())
            .collect(),
        memory_total: meminfo_bytes(&meminfo, "MemTotal").unwrap_or_default(),
        memory_available: meminfo_bytes(&meminfo, "MemAvailable").unwrap_or_default(),
        cpus: cpus(&read("cpuinfo").unwrap_or_default()),
        mounts: parse_mounts(&mounts),
        interfaces: interfaces()?,
    })
}

fn first_number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// A `/proc/meminfo` field in bytes (the file gives kB).
pub fn meminfo_bytes(meminfo: &str, field: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name != field {
            return None;
        }
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// The processors `/proc/cpuinfo` lists.
pub fn cpus(cpuinfo: &str) -> u32 {
    let listed = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    u32::try_from(listed).unwrap_or(u32::MAX)
}

/// `/proc/<pid>/mounts`: source, target, type, options, with the kernel's
/// octal escapes (`\040` for a space) undone.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            Some(Mount {
                source: unescape(f.next()?),
                target: unescape(f.next()?),
                fstype: unescape(f.next()?),
                options: unescape(f.next()?),
            })
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            d.iter()
                .all(|b| (b'0'..=b'7').contains(b))
                .then(|| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0')))
        });
        match (bytes[i], octal.and_then(|n| u8::try_from(n).ok())) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every interface with its state, MAC and addresses (CIDR), by name.
fn interfaces() -> io::Result<Vec<Interface>> {
    let mut by_name: BTreeMap<String, Interface> = BTreeMap::new();
    for ifa in getifaddrs()? {
        let entry = by_name
            .entry(ifa.interface_name.clone())
            .or_insert_with(|| Interface {
                name: ifa.interface_name.clone(),
                ..Interface::default()
            });
        entry.state = if ifa.flags.contains(InterfaceFlags::IFF_UP) {
            "up".into()
        } else {
            "down".into()
        };
        let Some(address) = ifa.address else {
            continue;
        };
        match address.family() {
            Some(AddressFamily::Packet) => {
                if let Some(mac) = address.as_link_addr().and_then(|l| l.addr()) {
                    entry.mac = mac
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":");
                }
            }
            Some(AddressFamily::Inet) => {
                if let Some(ip) = address.as_sockaddr_in() {
                    let prefix = ifa
                        .netmask
                        .and_then(|m| m.as_sockaddr_in().map(|m| m.ip().to_bits().count_ones()))
                        .unwrap_or(32);
                    entry.addresses.push(format!("{}/{prefix}", ip.ip()));
                }
            }
            Some(AddressFamily::Inet6) => {
                if let Some(ip) = address.as_sockaddr_in6() {
                    let prefix = ifa
                        .netmask
                        .and_then(|m| m.as_sockaddr_in6().map(|m| m.ip().to_bits().count_ones()))
                        .unwrap_or(128);
                    entry.addresses.push(format!("{}/{prefix}", ip.ip()));
                }
            }
            _ => {}
        }
    }
    Ok(by_name.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_in_bytes() {
        let text = "MemTotal:        2035464 kB\nMemFree:  10 kB\nMemAvailable:    1843212 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal"), Some(2_035_464 * 1024));
        assert_eq!(meminfo_bytes(text, "MemAvailable"), Some(1_843_212 * 1024));
        assert_eq!(meminfo_bytes(text, "Mem"), None);
    }

    #[test]
    fn mounts_unescaped() {
        let text = "proc /proc proc rw,nosuid 0 0\n/dev/vda /mnt/with\\040space ext4 ro 0 0\n";
        let mounts = parse_mounts(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[1].target, "/mnt/with space");
        assert_eq!(mounts[1].fstype, "ext4");
        assert_eq!(mounts[0].options, "rw,nosuid");
        // A backslash that is not an escape stays.
        assert_eq!(unescape("a\\9b"), "a\\9b");
    }

    #[test]
    fn processors_counted() {
        assert_eq!(cpus("processor\t: 0\nflags: x\n\nprocessor\t: 1\n"), 2);
        assert_eq!(cpus(""), 0);
    }
}
