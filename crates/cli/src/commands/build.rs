//! `slipway build`: LinuxKit's flags; for now `--dry-run` prints the merged,
//! normalised configuration.

use std::path::PathBuf;

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::config_input::{ConfigFiles, load_config};
use crate::report::warn;

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub files: ConfigFiles,

    /// Print the merged, normalised configuration as YAML and stop
    #[arg(long)]
    pub dry_run: bool,

    /// Resolve every image to a digest, print them, and stop
    #[arg(long)]
    pub resolve_only: bool,

    /// Output formats, repeatable or comma-separated [default: kernel+initrd, or tar with -o]
    #[arg(
        short = 'f',
        long = "format",
        value_delimiter = ',',
        value_name = "FORMAT"
    )]
    pub format: Vec<String>,

    /// Name of the outputs [default: the last file's name without extension]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Directory for the outputs [default: the working directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Write a single streamable output to FILE (`-` for standard output)
    #[arg(
        short = 'o',
        long = "o",
        visible_alias = "outfile",
        value_name = "FILE"
    )]
    pub output: Option<String>,

    /// Fetch every tagged image again, even if the cache has it
    #[arg(long)]
    pub pull: bool,

    /// Never use the network; name every image missing from the cache
    #[arg(long, conflicts_with = "pull")]
    pub offline: bool,

    /// Build missing `@pkg:` packages first
    #[arg(long)]
    pub build_packages: bool,

    /// Decompress the kernel (gzip, xz, zstd) before writing it
    #[arg(long)]
    pub decompress_kernel: bool,

    /// Compression of the initrd: gzip (default), zstd or none
    #[arg(long, value_name = "ALGORITHM")]
    pub compress: Option<String>,

    /// Disk size for disk formats, e.g. 1024M or 4G
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,

    /// Do not write an SBOM
    #[arg(long)]
    pub no_sbom: bool,

    /// Where to write the SBOM inside the image
    #[arg(long, value_name = "PATH")]
    pub sbom_output: Option<String>,

    /// Use the current time in the SBOM (LinuxKit flag)
    #[arg(long, hide = true)]
    pub sbom_current_time: bool,

    /// LinuxKit: take images from a Docker daemon (slipway needs none)
    #[arg(long, hide = true)]
    pub docker: bool,

    /// LinuxKit: reuse a previous tar (slipway caches each unit instead)
    #[arg(long, value_name = "TAR", hide = true)]
    pub input_tar: Option<PathBuf>,
}

impl BuildArgs {
    /// Say which accepted LinuxKit flags have no effect (yet).
    fn warn_unimplemented(&self) {
        if self.docker {
            warn(
                "--docker is accepted for compatibility and ignored: slipway reads images from its cache and registries, never from a Docker daemon",
            );
        }
        if self.input_tar.is_some() {
            warn(
                "--input-tar is accepted for compatibility and ignored: slipway caches every unit of the image, so unchanged parts are reused anyway",
            );
        }
        if self.sbom_output.is_some() || self.sbom_current_time {
            warn("SBOMs are not written yet: --sbom-output and --sbom-current-time have no effect");
        }
    }
}

pub fn run(args: &BuildArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    args.warn_unimplemented();
    let Some(loaded) = load_config(&args.files, global)? else {
        return Ok(Outcome::Failure);
    };
    if args.dry_run {
        print!(
            "{}",
            slipway_config::print::to_yaml(&slipway_config::print::ToOut::to_out(&loaded.config))
        );
        return Ok(Outcome::Success);
    }
    if args.resolve_only {
        return super::resolve::run(args, global, &loaded);
    }
    anyhow::bail!(
        "building images is not available in this version of slipway yet; \
         `slipway build --dry-run` prints the merged configuration"
    )
}
