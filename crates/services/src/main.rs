//! `slipway-services`: see the library's documentation.

use std::process::ExitCode;

use slipway_services::cli::{self, Command};

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    // One thread: the manager waits on sockets and files.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("slipway-services: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Service { listen, args } => {
            let code = runtime.block_on(slipway_services::client::service(&listen, &args));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Serve(args) => match runtime.block_on(slipway_services::run::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("slipway-services: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
