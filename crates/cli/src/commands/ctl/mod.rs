//! `slipway ctl`: drive a running machine through its control channel
//! (docs/control.md): the bridge `slipway run` serves on
//! `<state>/control.sock`, or the guest multiplexer's TCP listener (mutual
//! TLS) by `--address`, reaching the components behind it.
//!
//! Exit status: 0 when the call succeeded, 1 when it failed (a gRPC status,
//! printed as `CODE: message`, or no machine to reach), 2 for a usage error.

mod call;
mod codes;
mod components;
mod containers;
mod services;
mod table;
mod target;

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use crate::Outcome;
use crate::cli::GlobalArgs;

pub use codes::GrpcError;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["state", "machine", "address"])))]
pub struct CtlArgs {
    /// The machine's state directory (`slipway run --state`)
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// The machine by what `slipway run` booted (PATH as given to run):
    /// its default state directory, `<prefix>-state`
    #[arg(short = 'm', long, value_name = "PATH")]
    pub machine: Option<PathBuf>,

    /// The machine's TCP listener (its slipway-mux configured for TCP),
    /// reached with mutual TLS
    #[arg(long, value_name = "HOST:PORT", requires_all = ["ca", "cert", "key"])]
    pub address: Option<String>,

    /// With --address: the CA the machine's certificate must chain to (PEM)
    #[arg(long, value_name = "PEM", requires = "address")]
    pub ca: Option<PathBuf>,

    /// With --address: this client's certificate (PEM), from the CA the
    /// machine trusts
    #[arg(long, value_name = "PEM", requires = "address")]
    pub cert: Option<PathBuf>,

    /// With --address: this client's private key (PEM)
    #[arg(long, value_name = "PEM", requires = "address")]
    pub key: Option<PathBuf>,

    /// With --address: the name the machine's certificate must carry
    /// [default: the host part of --address]
    #[arg(long, value_name = "NAME", requires = "address")]
    pub server_name: Option<String>,

    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// List the services: name, state, pid, restarts, runtime
    Ps {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// One service's state
    Status {
        /// The service
        service: String,
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// A service's log (its standard output and error)
    Logs {
        /// Keep printing what the service writes, until Ctrl-C
        #[arg(short = 'f', long)]
        follow: bool,
        /// Start with the last N lines (0: the whole log)
        #[arg(long, value_name = "N", default_value_t = 0)]
        tail: u32,
        /// The service
        service: String,
    },
    /// Start a stopped or ended service
    Start {
        /// The service
        service: String,
    },
    /// Stop a service: SIGTERM, then SIGKILL after the grace period
    Stop {
        /// The service
        service: String,
        /// Seconds from SIGTERM to SIGKILL [default: the machine's, 10]
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        grace: u32,
    },
    /// Stop a service, then start it
    Restart {
        /// The service
        service: String,
        /// Seconds from SIGTERM to SIGKILL [default: the machine's, 10]
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        grace: u32,
    },
    /// The boot timeline so far
    Timeline {
        /// As JSON (the shape of `slipway run --timeline`)
        #[arg(long)]
        json: bool,
    },
    /// The components the guest's multiplexer routes to
    Components {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// The containers containerd runs in the services.linuxkit namespace
    Containers {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// Power the machine off (services stopped, onshutdown run)
    Poweroff,
    /// Reboot the machine (as poweroff, then boot again)
    Reboot,
    /// Call any method the machine serves, described by its reflection:
    /// the request as JSON, each response message as a line of JSON;
    /// without METHOD, list the services
    Call {
        /// `package.Service/Method`
        #[arg(value_name = "SERVICE/METHOD")]
        method: Option<String>,
        /// The request as JSON (`-`: read standard input) [default: {}];
        /// several JSON values for a client-streaming method
        #[arg(value_name = "JSON")]
        request: Option<String>,
        /// Request metadata `NAME:VALUE` (repeatable)
        #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
    },
}

pub fn run(args: &CtlArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let target = target::Target::of(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let channel = target.connect().await?;
        match &args.command {
            CtlCommand::Ps { json } => services::ps(channel, *json).await,
            CtlCommand::Status { service, json } => services::status(channel, service, *json).await,
            CtlCommand::Logs {
                follow,
                tail,
                service,
            } => services::logs(channel, service, *follow, *tail).await,
            CtlCommand::Start { service } => services::start(channel, service).await,
            CtlCommand::Stop { service, grace } => {
                services::stop(channel, service, *grace, false).await
            }
            CtlCommand::Restart { service, grace } => {
                services::stop(channel, service, *grace, true).await
            }
            CtlCommand::Timeline { json } => services::timeline(channel, *json).await,
            CtlCommand::Components { json } => components::list(channel, *json).await,
            CtlCommand::Containers { json } => containers::list(channel, *json).await,
            CtlCommand::Poweroff => services::power(channel, false, global.quiet).await,
            CtlCommand::Reboot => services::power(channel, true, global.quiet).await,
            CtlCommand::Call {
                method,
                request,
                headers,
            } => call::call(channel, method.as_deref(), request.as_deref(), headers).await,
        }
    })?;
    Ok(Outcome::Success)
}
