//! `runtime.json`: LinuxKit's per-bundle runtime settings, written by the
//! builder beside `config.json` and honoured by the guest's init.
//!
//! The schema is LinuxKit's `Runtime` (see `linuxkit-compat.md` §1.8, §2.2):
//! `cgroups`, `mounts`, `mkdir`, `interfaces`, `bindNS` and `namespace`.
//! Reading accepts absent keys and `null` for every list; writing emits every
//! key, as LinuxKit does, with the same four-space indentation.

use serde::{Deserialize, Deserializer, Serialize};

/// The whole `runtime.json` document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Runtime {
    /// cgroup paths created (`mkdir -p`) under `/sys/fs/cgroup` before the container starts.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cgroups: Vec<String>,
    /// Mounts made in the root mount namespace before the container is created.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mounts: Vec<Mount>,
    /// Directories created (mode 0755) after the mounts; relative ones under the bundle's `rootfs`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mkdir: Vec<String>,
    /// Network interfaces created or moved into the container's network namespace.
    #[serde(default, deserialize_with = "null_as_default")]
    pub interfaces: Vec<Interface>,
    /// Namespaces of the container bind-mounted to paths after it is created.
    #[serde(default, rename = "bindNS", deserialize_with = "null_as_default")]
    pub bind_ns: BindNamespaces,
    /// The containerd namespace of a service (LinuxKit's default `services.linuxkit` when empty).
    #[serde(default, deserialize_with = "null_as_default")]
    pub namespace: String,
}

/// One mount, in the OCI runtime-spec shape LinuxKit uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Where to mount; relative paths are relative to the bundle's `rootfs`.
    #[serde(default)]
    pub destination: String,
    /// Filesystem type; empty for bind mounts and remounts.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// What to mount (a device, a directory, or a name such as `tmpfs`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// fstab-style options: flags (`bind`, `ro`, `remount`, `private`, ...) and data (`size=10m`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<String>,
}

/// A network interface for the container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// The interface's name (moved into the container when `add` is empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The link type to create (`veth`, `dummy`, `bridge`, ...); empty to move an existing one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub add: String,
    /// The other end of a veth pair, left in the root namespace. Implies `add: veth`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer: String,
    /// Create in the root namespace, then move into the container's.
    #[serde(default)]
    pub create_in_root: bool,
}

impl Interface {
    /// The link type to create, if any: `add`, or `veth` when only `peer` is given.
    pub fn link_kind(&self) -> Option<&str> {
        if !self.add.is_empty() {
            Some(&self.add)
        } else if !self.peer.is_empty() {
            Some("veth")
        } else {
            None
        }
    }
}

/// Paths to bind-mount the container's namespaces to; empty strings mean none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindNamespaces {
    /// cgroup namespace.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cgroup: String,
    /// IPC namespace.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ipc: String,
    /// Mount namespace.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mnt: String,
    /// Network namespace.
    #[serde(default, deserialize_with = "null_as_default")]
    pub net: String,
    /// PID namespace.
    #[serde(default, deserialize_with = "null_as_default")]
    pub pid: String,
    /// User namespace.
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: String,
    /// UTS namespace.
    #[serde(default, deserialize_with = "null_as_default")]
    pub uts: String,
}

impl BindNamespaces {
    /// `(namespace name in /proc/<pid>/ns, path)` for every non-empty path, in a fixed order.
    pub fn entries(&self) -> Vec<(&'static str, &str)> {
        [
            ("cgroup", &self.cgroup),
            ("ipc", &self.ipc),
            ("mnt", &self.mnt),
            ("net", &self.net),
            ("pid", &self.pid),
            ("user", &self.user),
            ("uts", &self.uts),
        ]
        .into_iter()
        .filter(|(_, path)| !path.is_empty())
        .map(|(ns, path)| (ns, path.as_str()))
        .collect()
    }
}

/// Why a `runtime.json` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid runtime.json: {0}")]
pub struct RuntimeError(#[from] serde_json::Error);

impl Runtime {
    /// Parse a `runtime.json` document.
    pub fn from_json(bytes: &[u8]) -> Result<Runtime, RuntimeError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// The document as LinuxKit writes it: every key, four-space indentation.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        // Serialising plain strings, vectors and booleans into memory cannot fail.
        if self.serialize(&mut ser).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_linuxkit_output() {
        let json = br#"{
            "cgroups": ["podruntime/dhcpcd"],
            "mounts": [
                {"type": "tmpfs", "source": "tmpfs", "destination": "/containers/onboot/000-x/tmp"},
                {"destination": "/containers/onboot/000-x/tmp", "options": ["remount", "private"]},
                {"type": "overlay", "source": "overlay", "destination": "/containers/onboot/000-x/rootfs",
                 "options": ["lowerdir=/containers/onboot/000-x/lower", "upperdir=/containers/onboot/000-x/tmp/upper", "workdir=/containers/onboot/000-x/tmp/work"]}
            ],
            "mkdir": ["/var/lib/x", "etc/y"],
            "interfaces": [{"name": "vethA", "peer": "vethB", "createInRoot": false}, {"name": "eth1"}],
            "bindNS": {"cgroup": "", "ipc": "", "mnt": "", "net": "/run/netns/x", "pid": "", "user": "", "uts": ""},
            "namespace": ""
        }"#;
        let runtime = Runtime::from_json(json).unwrap();
        assert_eq!(runtime.cgroups, ["podruntime/dhcpcd"]);
        assert_eq!(runtime.mounts.len(), 3);
        assert_eq!(runtime.mounts[1].kind, "");
        assert_eq!(runtime.mounts[1].options, ["remount", "private"]);
        assert_eq!(runtime.mkdir, ["/var/lib/x", "etc/y"]);
        assert_eq!(runtime.interfaces[0].link_kind(), Some("veth"));
        assert_eq!(runtime.interfaces[1].link_kind(), None);
        assert_eq!(runtime.bind_ns.entries(), [("net", "/run/netns/x")]);
    }

    #[test]
    fn null_and_missing_are_empty() {
        let runtime =
            Runtime::from_json(br#"{"cgroups": null, "mounts": null, "bindNS": null}"#).unwrap();
        assert_eq!(runtime, Runtime::default());
        assert_eq!(Runtime::from_json(b"{}").unwrap(), Runtime::default());
    }

    #[test]
    fn writes_every_key_and_round_trips() {
        let runtime = Runtime {
            mkdir: vec!["/a".into()],
            interfaces: vec![Interface {
                name: "v0".into(),
                add: "veth".into(),
                peer: "v1".into(),
                create_in_root: true,
            }],
            ..Runtime::default()
        };
        let json = runtime.to_json();
        for key in [
            "\"cgroups\": []",
            "\"mounts\": []",
            "\"bindNS\": {",
            "\"namespace\": \"\"",
            "\"createInRoot\": true",
            "\n    \"mkdir\": [",
        ] {
            assert!(json.contains(key), "{key} missing in {json}");
        }
        assert_eq!(Runtime::from_json(json.as_bytes()).unwrap(), runtime);
    }

    #[test]
    fn rejects_garbage() {
        let err = Runtime::from_json(b"{\"mounts\": 3}").unwrap_err();
        assert!(err.to_string().starts_with("invalid runtime.json"));
    }
}
