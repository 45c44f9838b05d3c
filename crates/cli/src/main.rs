//! `slipway`: build minimal, immutable Linux machine images out of OCI containers.

mod cli;
mod commands;
mod config_input;
mod context;
mod local_checks;
mod output;
mod progress;
mod report;
mod timeline_files;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command ran and found problems it has already reported (exit 1).
    Failure,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.level());
    let result = match &cli.command {
        Command::Build(args) => commands::build::run(args, &cli.global),
        Command::Validate(args) => commands::validate::run(args, &cli.global),
        Command::Cache(args) => commands::cache::run(args, &cli.global),
        Command::Completions(args) => commands::completions::run(args).map(|()| Outcome::Success),
        Command::Schema(args) => commands::schema::run(args).map(|()| Outcome::Success),
        Command::Pkg(args) => commands::pkg::run(args, &cli.global),
        Command::Run(args) => commands::run::run(args, &cli.global),
        Command::Ctl(args) => commands::ctl::run(args, &cli.global),
        Command::ControlBridge(args) => commands::control_bridge::run(args),
        Command::Timeline(args) => commands::timeline::run(args, &cli.global),
        Command::Report(args) => commands::report::run(args, &cli.global),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(1),
        // The reader of standard output has gone: what it wanted, it got.
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("slipway: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(level: u8) {
    let filter = match level {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let env = tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
}
