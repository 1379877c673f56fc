//! `sightline`: one binary over the services (`sightline_service`). `cli` is the command
//! line, `http` the admin API, `serve` wires the server; this file only starts the runtime
//! and reports how the command ended.

// Handlers and their helpers return a ready `Response` as the error: boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod cli;
mod config;
mod console;
mod http;
mod serve;

use clap::Parser;
use std::process::ExitCode;

/// See the workspace Cargo.toml for why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Err(e) => match e.downcast_ref::<cli::scan::Exit>() {
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
