//! `slipway validate FILE...`: silent on success, warnings on standard error,
//! every error with its file, line and column.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::config_input::{ConfigFiles, load_config};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub files: ConfigFiles,
}

pub fn run(args: &ValidateArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    match load_config(&args.files, global)? {
        Some(_) => Ok(Outcome::Success),
        None => Ok(Outcome::Failure),
    }
}
