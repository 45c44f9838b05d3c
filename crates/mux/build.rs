//! Compiles the multiplexer's own protos with protox (no `protoc` needed):
//! Rust code for tonic, and the FileDescriptorSet its reflection serves.

use std::path::PathBuf;

use prost::Message as _;

const PROTOS: &[&str] = &[
    "grpc/reflection/v1/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
    "grpc/health/v1/health.proto",
    "slipway/mux/v1/components.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(out.join("mux_descriptors.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .compile_fds(fds)?;

    // The test components' protos (tests/), each with its descriptor set.
    println!("cargo:rerun-if-changed=tests/proto");
    for (proto, set) in [("echo.proto", "echo.binpb"), ("info.proto", "info.binpb")] {
        let fds = protox::compile([proto], ["tests/proto"])?;
        std::fs::write(out.join(set), fds.encode_to_vec())?;
        tonic_prost_build::configure()
            .build_transport(false)
            .compile_fds(fds)?;
    }
    Ok(())
}
