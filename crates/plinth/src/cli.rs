//! The command line. Every setting is a flag with a `PLINTH_*` variable (clap shows it in
//! `--help`); defaults live in `config.rs` so the component file can sit between.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Plinth hosts a platform component: the contract's endpoints over durable runs.
#[derive(Debug, Parser)]
#[command(name = "plinth", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve a component: /health, /ready, POST /run, /runs, /metrics...
    Serve(ServeArgs),
    /// Print every effective setting and where it came from.
    Config(ServeArgs),
    /// Start a server on a temporary database, load it with no-op runs, print a JSON report.
    Bench(BenchArgs),
}

/// Settings of `bench`.
#[derive(Debug, Args, Clone)]
pub(crate) struct BenchArgs {
    /// Runs submitted in each round of load.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) runs: usize,
    /// Rounds of load; the report gives each and their median.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// Connections submitting runs at once.
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// Runs submitted one at a time on the idle server to measure pickup.
    #[arg(long, default_value_t = 200)]
    pub(crate) pickup_samples: usize,
    /// The server's `--workers` (attempts executing at once); as many as the connections, so
    /// the no-op runs measure Plinth rather than a small worker pool.
    #[arg(long, default_value_t = 64)]
    pub(crate) workers: u32,
    /// The server's SQLite durability: full, normal, off.
    #[arg(long, default_value = "full")]
    pub(crate) sqlite_synchronous: String,
    /// Keep the database in this folder instead of a temporary one.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// The plinth binary to start [default: this one].
    #[arg(long)]
    pub(crate) binary: Option<PathBuf>,
}

/// Settings of `serve` (and `config`). Precedence: flag > environment > component file > default.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ServeArgs {
    /// The component file.
    #[arg(long, env = "PLINTH_CONFIG", default_value = "component.yaml")]
    pub(crate) config: PathBuf,
    /// Address to bind [default: 127.0.0.1].
    #[arg(long, env = "PLINTH_HOST")]
    pub(crate) host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 8000].
    #[arg(long, env = "PLINTH_PORT")]
    pub(crate) port: Option<u16>,
    /// Log level or filter (error, warn, info, debug, trace; or `warn,plinth=info`) [default: info].
    #[arg(long, env = "PLINTH_LOG_LEVEL")]
    pub(crate) log_level: Option<String>,
    /// Also write JSON logs to daily files in this folder [default: none].
    #[arg(long, env = "PLINTH_LOG_DIR")]
    pub(crate) log_dir: Option<PathBuf>,
    /// The run store [default: sqlite://.plinth/plinth.db].
    #[arg(long, env = "PLINTH_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Attempts executing at once on this node [default: 16].
    #[arg(long, env = "PLINTH_WORKERS")]
    pub(crate) workers: Option<u32>,
    /// On SIGTERM, how long in-flight runs may finish before they are released [default: 30s].
    #[arg(long, env = "PLINTH_SHUTDOWN_GRACE")]
    pub(crate) shutdown_grace: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "PLINTH_BODY_LIMIT")]
    pub(crate) body_limit: Option<u64>,
    /// Finished runs are deleted after this long [default: 7d].
    #[arg(long, env = "PLINTH_RETENTION")]
    pub(crate) retention: Option<String>,
    /// Lease of a claimed run; a dead worker's runs are taken back after it [default: 30s].
    #[arg(long, env = "PLINTH_LEASE")]
    pub(crate) lease: Option<String>,
    /// Between SIGTERM and SIGKILL when a command handler is stopped [default: 5s].
    #[arg(long, env = "PLINTH_KILL_GRACE")]
    pub(crate) kill_grace: Option<String>,
    /// SQLite durability: full (survives power loss), normal, off [default: full].
    #[arg(long, env = "PLINTH_SQLITE_SYNCHRONOUS")]
    pub(crate) sqlite_synchronous: Option<String>,
    /// Prefix of every metric name [default: plinth].
    #[arg(long, env = "PLINTH_METRICS_PREFIX")]
    pub(crate) metrics_prefix: Option<String>,
    /// Stderr bytes kept per attempt [default: 1048576].
    #[arg(long, env = "PLINTH_MAX_LOG_BYTES")]
    pub(crate) max_log_bytes: Option<u64>,
    /// Stdout bytes accepted per attempt [default: 16777216].
    #[arg(long, env = "PLINTH_MAX_OUTPUT_BYTES")]
    pub(crate) max_output_bytes: Option<u64>,
}
