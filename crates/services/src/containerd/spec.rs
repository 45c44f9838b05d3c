//! What containerd is given for a bundle: the container (its OCI spec and
//! the runc v2 shim with crun or runc as the binary), and how its exit
//! statuses read.

use std::path::Path;

use prost::Message as _;
use slipway_control::containerd::runc::v1::Options as RuncOptions;
use slipway_control::containerd::services::containers::v1::{Container, container};
use slipway_init::sys::Exit;

/// The shim every service runs under.
pub const RUNC_SHIM: &str = "io.containerd.runc.v2";
/// The type of an OCI runtime spec in containerd's `Any`s.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// The type of the runc shim's options (containerd's `api/types/runc/options`).
pub const RUNC_OPTIONS_TYPE_URL: &str = "containerd.runc.v1.Options";
/// `SIGTERM`.
pub const SIGTERM: u32 = 15;
/// `SIGKILL`.
pub const SIGKILL: u32 = 9;

/// Why a bundle's spec cannot be handed to containerd.
#[derive(Debug, thiserror::Error)]
#[error("bundle {bundle}: invalid config.json: {reason}")]
pub struct SpecError {
    /// The bundle directory.
    pub bundle: String,
    /// What is wrong.
    pub reason: String,
}

/// How the shim runs the OCI runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShimOptions {
    /// crun or runc (the shim's `BinaryName`).
    pub binary: String,
    /// The runtime's state directory (`Root`); empty for the shim's default,
    /// `/run/containerd/runc`.
    pub root: String,
    /// `--no-pivot` (PID 1 stayed on the initramfs, where pivot_root fails).
    pub no_pivot: bool,
}

impl ShimOptions {
    /// The options as the `Any` containerd passes to the shim.
    pub fn to_any(&self) -> prost_types::Any {
        let options = RuncOptions {
            binary_name: self.binary.clone(),
            root: self.root.clone(),
            no_pivot_root: self.no_pivot,
            ..Default::default()
        };
        prost_types::Any {
            type_url: RUNC_OPTIONS_TYPE_URL.to_owned(),
            value: options.encode_to_vec(),
        }
    }
}

/// The spec of the bundle in `dir` as containerd stores it: `config.json`
/// unchanged but for `root.path`, made absolute (the shim writes the spec
/// into a bundle directory of its own, where a relative root means nothing).
pub fn spec_any(dir: &Path, config: &[u8], rootfs: &Path) -> Result<prost_types::Any, SpecError> {
    let bad = |reason: String| SpecError {
        bundle: dir.display().to_string(),
        reason,
    };
    let mut spec: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| bad(e.to_string()))?;
    let object = spec
        .as_object_mut()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    let root = object
        .entry("root")
        .or_insert_with(|| serde_json::json!({}));
    let root = root
        .as_object_mut()
        .ok_or_else(|| bad("root is not an object".into()))?;
    root.insert(
        "path".into(),
        serde_json::Value::String(rootfs.to_string_lossy().into_owned()),
    );
    let value = serde_json::to_vec(&spec).map_err(|e| bad(e.to_string()))?;
    Ok(prost_types::Any {
        type_url: SPEC_TYPE_URL.to_owned(),
        value,
    })
}

/// The container for service `id`.
pub fn container(id: &str, spec: prost_types::Any, shim: &ShimOptions) -> Container {
    Container {
        id: id.to_owned(),
        runtime: Some(container::Runtime {
            name: RUNC_SHIM.to_owned(),
            options: Some(shim.to_any()),
        }),
        spec: Some(spec),
        ..Default::default()
    }
}

/// A task's exit status as the init reports a process's end: the shim
/// reports death by signal n as 128 + n.
pub fn exit_of(status: u32) -> Exit {
    match status.checked_sub(128) {
        Some(signal @ 1..=64) => Exit::Signal(signal as i32),
        _ => Exit::Code(i32::try_from(status).unwrap_or(-1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_made_absolute_and_the_rest_kept() {
        let config = br#"{"ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": true},
                          "process": {"args": ["/bin/sh"]}}"#;
        let any = spec_any(
            Path::new("/containers/services/web"),
            config,
            Path::new("/containers/services/web/rootfs"),
        )
        .unwrap();
        assert_eq!(any.type_url, SPEC_TYPE_URL);
        let spec: serde_json::Value = serde_json::from_slice(&any.value).unwrap();
        assert_eq!(spec["root"]["path"], "/containers/services/web/rootfs");
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(spec["process"]["args"][0], "/bin/sh");
        assert_eq!(spec["ociVersion"], "1.0.2");
    }

    #[test]
    fn a_spec_without_root_gets_one_and_garbage_is_refused() {
        let any = spec_any(Path::new("/b"), b"{}", Path::new("/b/rootfs")).unwrap();
        let spec: serde_json::Value = serde_json::from_slice(&any.value).unwrap();
        assert_eq!(spec["root"]["path"], "/b/rootfs");
        let err = spec_any(Path::new("/b"), b"[1]", Path::new("/b/rootfs")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bundle /b: invalid config.json: not a JSON object"
        );
        assert!(spec_any(Path::new("/b"), b"{", Path::new("/r")).is_err());
    }

    #[test]
    fn the_container_names_the_runc_shim_and_its_binary() {
        let shim = ShimOptions {
            binary: "/usr/bin/crun".into(),
            root: String::new(),
            no_pivot: true,
        };
        let any = spec_any(Path::new("/b"), b"{}", Path::new("/b/rootfs")).unwrap();
        let c = container("web", any, &shim);
        assert_eq!(c.id, "web");
        let runtime = c.runtime.unwrap();
        assert_eq!(runtime.name, "io.containerd.runc.v2");
        let options = runtime.options.unwrap();
        assert_eq!(options.type_url, "containerd.runc.v1.Options");
        let decoded = RuncOptions::decode(options.value.as_slice()).unwrap();
        assert_eq!(decoded.binary_name, "/usr/bin/crun");
        assert!(decoded.no_pivot_root);
        assert_eq!(c.spec.unwrap().type_url, SPEC_TYPE_URL);
    }

    #[test]
    fn exit_statuses_read_as_the_init_reports_them() {
        assert_eq!(exit_of(0), Exit::Code(0));
        assert_eq!(exit_of(3), Exit::Code(3));
        assert_eq!(exit_of(128), Exit::Code(128));
        assert_eq!(exit_of(137), Exit::Signal(9));
        assert_eq!(exit_of(143), Exit::Signal(15));
        assert_eq!(exit_of(255), Exit::Code(255));
        assert_eq!(exit_of(137).to_string(), "killed by signal 9");
    }
}
