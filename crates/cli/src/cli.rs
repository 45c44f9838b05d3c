//! The command line: global options and subcommands.
//!
//! LinuxKit's own spellings are accepted beside slipway's (`--o`, `--outfile`,
//! `-v N`), so scripts written for `linuxkit build` keep working.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use slipway_reference::Arch;

use crate::commands::{
    build::BuildArgs, cache::CacheArgs, completions::CompletionsArgs,
    control_bridge::ControlBridgeArgs, ctl::CtlArgs, pkg::PkgArgs, report::ReportArgs,
    run::RunArgs, schema::SchemaArgs, timeline::TimelineArgs, validate::ValidateArgs,
};

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Build minimal, immutable Linux machine images out of OCI containers",
    long_about = "Build minimal, immutable Linux machine images out of OCI containers.\n\n\
        slipway reads LinuxKit YAML, pulls the images it names from any OCI registry \
        and writes bootable images, with no Docker daemon and no root.",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes, before or after its name.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// The image cache: an OCI image layout [default: $XDG_CACHE_HOME/slipway]
    #[arg(long, global = true, env = "SLIPWAY_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,

    /// Architecture to build for: amd64, arm64, riscv64 or s390x [default: the host's]
    #[arg(long, global = true, value_name = "ARCH")]
    pub arch: Option<Arch>,

    /// Registry mirror: `URL` for Docker Hub, or `REGISTRY=URL` (repeatable)
    #[arg(long, global = true, value_name = "MIRROR", env = "LINUXKIT_MIRROR")]
    pub mirror: Vec<String>,

    /// A CA certificate (PEM) to trust for registries, besides the system's
    #[arg(long = "cert-file", global = true, value_name = "FILE")]
    pub cert_file: Option<PathBuf>,

    /// A registry to reach over plain HTTP, as written in references (repeatable; loopback registries always are)
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    /// Verbosity: 0 quiet, 1 info (default), 2 debug, 3 trace
    #[arg(short = 'v', long = "verbose", global = true, value_name = "N",
          value_parser = clap::value_parser!(u8).range(0..=3))]
    pub verbose: Option<u8>,

    /// Print errors only
    #[arg(short = 'q', long = "quiet", global = true)]
    pub quiet: bool,

    /// The most one image layer may inflate to, in M (MiB) or G (GiB): a
    /// larger layer is refused as it is read
    #[arg(long = "max-layer-size", global = true, value_name = "SIZE",
          env = "SLIPWAY_MAX_LAYER_SIZE", default_value = "16G", value_parser = layer_size)]
    pub max_layer_size: u64,
}

/// `--max-layer-size`: the syntax of `--size`.
fn layer_size(text: &str) -> Result<u64, String> {
    slipway_formats::disk::parse_size(text).map_err(|e| e.to_string())
}

impl GlobalArgs {
    /// The effective verbosity level, 0 to 3.
    pub fn level(&self) -> u8 {
        if self.quiet {
            0
        } else {
            self.verbose.unwrap_or(1)
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from one or more configuration files
    Build(Box<BuildArgs>),
    /// Check configuration files exactly as `build` would, offline
    Validate(ValidateArgs),
    /// Manage the image cache (an OCI layout, shared with `linuxkit cache`)
    Cache(CacheArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print a JSON Schema of the configuration language, for editors
    Schema(SchemaArgs),
    /// Build packages (build.yml directories) into the cache, without Docker
    Pkg(PkgArgs),
    /// Boot an image under qemu: a kernel+initrd prefix, an ISO or a disk image
    Run(Box<RunArgs>),
    /// Drive a running machine: its services, logs, containers, power, any gRPC call
    Ctl(CtlArgs),
    /// A detached machine's control bridge (started by `run --detached`)
    #[command(name = "control-bridge", hide = true)]
    ControlBridge(ControlBridgeArgs),
    /// Show a saved boot timeline as text, or draw it as an SVG boot chart
    Timeline(TimelineArgs),
    /// Compare the size reports of two builds
    Report(ReportArgs),
}
