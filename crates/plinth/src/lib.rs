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
mod check;
mod cli;
mod client;
mod config;
mod inngest;
mod migrate;
mod new;
mod otlp;
mod serve;
mod spec;
mod telemetry;

pub use plinth_engine::{Handler, HandlerContext, HandlerError, Handlers};

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

/// Parses the command line and runs the subcommand with these in-process handlers.
#[must_use]
pub fn run_cli(handlers: Handlers) -> ExitCode {
    let matches = match cli::Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => exit_on(&e),
    };
    let parsed = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let sub = matches.subcommand().map(|(_, m)| m.clone());
    match parsed.command {
        cli::Command::Serve(args) => serve::main(&args, sub.as_ref(), handlers),
        cli::Command::Config(args) => config::print(&args, sub.as_ref()),
        cli::Command::Migrate(args) => migrate::main(&args, sub.as_ref()),
        cli::Command::Bench(args) => bench::main(&args),
        cli::Command::Run(args) => client::run(&args),
        cli::Command::Runs(command) => client::runs(&command),
        cli::Command::Events(command) => client::events(&command),
        cli::Command::Schedules(args) => client::schedules(&args),
        cli::Command::Spec(command) => spec::main(&command),
        cli::Command::Check(args) => check::main(&args),
        cli::Command::Inngest(cli::InngestCommand::Sync(args)) => inngest::main(&args),
        cli::Command::New(args) => new::main(&args),
    }
}

/// Prints a command-line error and exits; an invalid flag or `PLINTH_*` value is `PLINTH_001`,
/// as the error catalog promises, like the invalid values `config` itself finds.
fn exit_on(e: &clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
        let _ = e.print();
        eprintln!("plinth: invalid setting ({})", plinth_core::Code::InvalidConfig);
        std::process::exit(e.exit_code());
    }
    e.exit()
}
