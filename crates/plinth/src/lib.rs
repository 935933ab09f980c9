//! Plinth as a library: the command line, `serve`, `config` and `bench`.
//!
//! A Rust component embeds Plinth by registering its in-process handlers and handing the
//! command line over:
//!
//! ```no_run
//! use plinth_engine::{HandlerContext, Handlers};
//! let mut handlers = Handlers::builtin();
//! handlers.register("greet", |_ctx: HandlerContext, input: serde_json::Value| async move {
//!     Ok(serde_json::json!({"hello": input["name"]}))
//! });
//! std::process::exit(i32::from(plinth::run_cli(handlers) != std::process::ExitCode::SUCCESS));
//! ```

mod bench;
mod cli;
mod config;
mod serve;
mod telemetry;

pub use plinth_engine::{Handler, HandlerContext, HandlerError, Handlers};

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

/// Parses the command line and runs the subcommand with these in-process handlers.
#[must_use]
pub fn run_cli(handlers: Handlers) -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let parsed = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let sub = matches.subcommand().map(|(_, m)| m.clone());
    match parsed.command {
        cli::Command::Serve(args) => serve::main(&args, sub.as_ref(), handlers),
        cli::Command::Config(args) => config::print(&args, sub.as_ref()),
        cli::Command::Bench(args) => bench::main(&args),
    }
}
