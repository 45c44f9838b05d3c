//! Where LinuxKit puts each container's OCI bundle in the image.
//!
//! Paths are relative to the image root, with no leading or trailing slash,
//! exactly as they appear in LinuxKit's output tar (`containers/onboot/000-dhcpcd`).
//! The guest sees them under `/`. Names are used as given: the config
//! validates them.

/// Parent of every bundle and volume.
pub const CONTAINERS_DIR: &str = "containers";
/// Bundles run once at boot, in order.
pub const ONBOOT_DIR: &str = "containers/onboot";
/// Bundles run once at shutdown, in order.
pub const ONSHUTDOWN_DIR: &str = "containers/onshutdown";
/// Long-running service bundles.
pub const SERVICES_DIR: &str = "containers/services";
/// Volumes shared between containers.
pub const VOLUMES_DIR: &str = "containers/volumes";

/// A bundle's OCI runtime configuration.
pub const CONFIG_JSON: &str = "config.json";
/// A bundle's LinuxKit runtime settings (mounts, interfaces, namespaces, ...).
pub const RUNTIME_JSON: &str = "runtime.json";
/// The flattened image of a read-write bundle or of a volume.
pub const LOWER: &str = "lower";
/// Where a read-write bundle's or a volume's tmpfs (overlay upper and work) goes.
pub const TMP: &str = "tmp";
/// A bundle's root: the image itself when read-only, an overlay mountpoint otherwise.
pub const ROOTFS: &str = "rootfs";
/// A volume's overlay mountpoint.
pub const MERGED: &str = "merged";

/// `containers/onboot/<index, three digits>-<name>`, e.g. `containers/onboot/000-dhcpcd`.
/// Indexes from 1000 up take as many digits as they need, as with `%03d`.
pub fn onboot_dir(index: usize, name: &str) -> String {
    format!("{ONBOOT_DIR}/{index:03}-{name}")
}

/// `containers/onshutdown/<index, three digits>-<name>`.
pub fn onshutdown_dir(index: usize, name: &str) -> String {
    format!("{ONSHUTDOWN_DIR}/{index:03}-{name}")
}

/// `containers/services/<name>`.
pub fn service_dir(name: &str) -> String {
    format!("{SERVICES_DIR}/{name}")
}

/// `containers/volumes/<name>`.
pub fn volume_dir(name: &str) -> String {
    format!("{VOLUMES_DIR}/{name}")
}

/// `containers/volumes/<name>/lower`: the volume's image contents.
pub fn volume_lower_dir(name: &str) -> String {
    format!("{VOLUMES_DIR}/{name}/{LOWER}")
}

/// `containers/volumes/<name>/tmp`.
pub fn volume_tmp_dir(name: &str) -> String {
    format!("{VOLUMES_DIR}/{name}/{TMP}")
}

/// `containers/volumes/<name>/merged`: where the volume is mounted.
pub fn volume_merged_dir(name: &str) -> String {
    format!("{VOLUMES_DIR}/{name}/{MERGED}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onboot_and_onshutdown_are_numbered() {
        assert_eq!(onboot_dir(0, "dhcpcd"), "containers/onboot/000-dhcpcd");
        assert_eq!(onboot_dir(7, "sysctl"), "containers/onboot/007-sysctl");
        assert_eq!(onboot_dir(42, "a"), "containers/onboot/042-a");
        assert_eq!(onboot_dir(999, "a"), "containers/onboot/999-a");
        assert_eq!(onboot_dir(1000, "a"), "containers/onboot/1000-a");
        assert_eq!(
            onshutdown_dir(0, "shutdown"),
            "containers/onshutdown/000-shutdown"
        );
        assert_eq!(onshutdown_dir(12, "x"), "containers/onshutdown/012-x");
    }

    #[test]
    fn services_and_volumes() {
        assert_eq!(service_dir("getty"), "containers/services/getty");
        assert_eq!(volume_dir("data"), "containers/volumes/data");
        assert_eq!(volume_lower_dir("data"), "containers/volumes/data/lower");
        assert_eq!(volume_tmp_dir("data"), "containers/volumes/data/tmp");
        assert_eq!(volume_merged_dir("data"), "containers/volumes/data/merged");
    }

    #[test]
    fn directories_nest_under_containers() {
        for dir in [ONBOOT_DIR, ONSHUTDOWN_DIR, SERVICES_DIR, VOLUMES_DIR] {
            assert_eq!(
                dir.split_once('/').map(|(parent, _)| parent),
                Some(CONTAINERS_DIR)
            );
        }
    }
}
