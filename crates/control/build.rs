//! Compiles the control-plane protos with protox (no `protoc` needed): Rust
//! code for tonic, and the descriptor sets that reflection serves.

use std::path::{Path, PathBuf};

use prost::Message as _;

/// slipway's own components.
const SLIPWAY: &[&str] = &[
    "slipway/services/v1/services.proto",
    "slipway/machine/v1/machine.proto",
];

/// containerd's API directory, under proto/containerd.
const CONTAINERD_API: &str = "github.com/containerd/containerd/api";

/// The containerd services slipway's own code calls: Rust code is generated
/// for these (and what they import) only.
const CONTAINERD_CLIENT: &[&str] = &[
    "services/containers/v1/containers.proto",
    "services/tasks/v1/tasks.proto",
    "services/namespaces/v1/namespace.proto",
    "services/version/v1/version.proto",
    "services/events/v1/events.proto",
    "events/task.proto",
    "types/runc/options/oci.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);

    let fds = protox::compile(SLIPWAY, ["proto"])?;
    std::fs::write(out.join("slipway.binpb"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds(fds)?;

    // Every containerd API file, for reflection: containerd serves none.
    let root = Path::new("proto/containerd");
    let mut all = Vec::new();
    collect(&root.join(CONTAINERD_API), root, &mut all)?;
    all.sort();
    // The ttrpc events service is served to shims over ttrpc, not over gRPC.
    all.retain(|f| !f.contains("/ttrpc/"));
    let fds = protox::compile(&all, [root])?;
    let mut services = Vec::new();
    for file in &fds.file {
        for service in &file.service {
            services.push(format!("{}.{}", file.package(), service.name()));
        }
    }
    services.sort();
    std::fs::write(out.join("containerd.binpb"), fds.encode_to_vec())?;
    std::fs::write(out.join("containerd_services.rs"), format!("&{services:?}"))?;

    let client: Vec<String> = CONTAINERD_CLIENT
        .iter()
        .map(|f| format!("{CONTAINERD_API}/{f}"))
        .collect();
    let mut fds = protox::compile(&client, [root])?;
    // Without containerd's comments in the Rust code: they hold indented
    // examples that rustdoc would run as doctests. The protos (and the
    // descriptor set above) keep them.
    for file in &mut fds.file {
        file.source_code_info = None;
    }
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}

/// The `.proto` files under `dir`, as paths relative to `root`.
fn collect(dir: &Path, root: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, root, out)?;
        } else if path.extension().is_some_and(|e| e == "proto")
            && let Ok(relative) = path.strip_prefix(root)
        {
            out.push(relative.to_string_lossy().into_owned());
        }
    }
    Ok(())
}
