//! The `xfrm-agent` binary.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    agent::cli::dispatch(agent::cli::Cli::parse())
}
