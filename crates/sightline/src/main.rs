//! `sightline`: the command line. Each subcommand lives in its own module; this file only
//! reads arguments and dispatches.

// Handlers and their helpers return a ready `Response` as the error: boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod activate;
mod api;
mod cli;
mod config;
mod consent;
mod crm;
mod files;
mod journeys;
mod lineage;
mod metrics;
mod profile_commands;
mod profiles;
mod registry;
mod registry_cli;
mod report;
mod scan;
mod serve;
mod sync;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<scan::Exit>() {
            Some(exit) => {
                eprintln!("{exit}");
                ExitCode::from(exit.code)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
