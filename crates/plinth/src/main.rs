//! The `plinth` binary: a thin main over the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    plinth::run_cli(plinth_engine::Handlers::builtin())
}
