//! `plinth migrate`: create and migrate the run store, then exit (for deploy jobs that
//! migrate before any node starts; `serve` migrates at start too, under the same lock).

use crate::cli::ServeArgs;
use crate::config;
use clap::ArgMatches;
use plinth_store::postgres::PostgresStore;
use plinth_store::sqlite::SqliteStore;
use std::process::ExitCode;

pub(crate) fn main(args: &ServeArgs, matches: Option<&ArgMatches>) -> ExitCode {
    let (_, settings) = match config::load(args, matches) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (what, result) = if config::is_postgres_url(&settings.database_url) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("plinth: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        let schema = settings.database_schema.clone();
        (format!("PostgreSQL schema {schema}"), runtime.block_on(PostgresStore::migrate(&settings.database_url, &schema)))
    } else {
        match plinth_store::sqlite::path_from_url(&settings.database_url) {
            Ok(path) => (format!("SQLite database {}", path.display()), SqliteStore::migrate(&path)),
            Err(e) => {
                eprintln!("plinth: database_url: {e} ({})", plinth_core::Code::InvalidConfig);
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(m) => {
            println!("{what}: applied {} migration(s); schema version {}", m.applied, m.version);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plinth: cannot migrate the {what}: {e} ({})", plinth_core::Code::ConnectionFailed);
            ExitCode::FAILURE
        }
    }
}
