//! The command line. Every setting is a flag with a `PLINTH_*` variable (clap shows it in
//! `--help`); defaults live in `config.rs` so the component file can sit between.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

mod bench;
mod client;

pub(crate) use bench::BenchArgs;
use client::parse_duration;
pub(crate) use client::{ClientArgs, EventsCommand, RunArgs, RunsCommand};

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
    /// Create the run store's database (or PostgreSQL schema) and apply its migrations, then
    /// exit; `serve` also does this at start. Takes the same settings as `serve`.
    ///
    /// Exit codes: 0 migrated (or already up to date), 1 the database cannot be reached or
    /// holds a newer or edited schema (PLINTH_002), 2 invalid settings (PLINTH_001).
    Migrate(ServeArgs),
    /// Start a server on a temporary database, load it with no-op runs, print a JSON report.
    Bench(BenchArgs),
    /// Submit a run to a server; with --wait, follow it to its end.
    ///
    /// Exit codes: 0 succeeded (or accepted, without --wait), 1 failed, 2 usage error or
    /// request refused, 3 cancelled, 4 server unreachable or unavailable, 5 still running
    /// when --timeout ran out.
    Run(RunArgs),
    /// List, show, cancel runs and read their logs on a server.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Send, list and show events on a server. Exit codes as for `run`: 0 done, 2 refused
    /// (an invalid event, an unknown id), 4 unreachable.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Each schedule of a server's functions: its pattern, time zone, last and next tick.
    Schedules(ClientArgs),
    /// Specification documents: lint them against their template family, generate their
    /// factual sections from the code, measure their 1.0 status against a live component.
    #[command(subcommand)]
    Spec(SpecCommand),
    /// Apps built with Inngest's SDKs: sync them (they register their functions with the Plinth
    /// their SDK points at).
    #[command(subcommand)]
    Inngest(InngestCommand),
    /// Check a server (any language) against the component contract: each check passes,
    /// fails (what was expected, what came back) or is skipped (why).
    ///
    /// Exit codes: 0 nothing failed (skips allowed), 1 a check failed, 2 usage error or the
    /// server cannot be reached. Redirects are reported, not followed.
    Check(CheckArgs),
    /// Create a component folder that `plinth serve` runs at once and `plinth check` passes:
    /// component.yaml, a handler that works, README.md with its commands, SPEC.md.
    ///
    /// Exit codes: 0 created, 1 a file could not be written, 2 usage error (an invalid name,
    /// or the folder exists and --force was not given).
    New(NewArgs),
}

/// Settings of `new`.
#[derive(Debug, Args, Clone)]
pub(crate) struct NewArgs {
    /// The component's name, also its folder's: a lowercase letter, then a-z, 0-9, _ or -
    /// (64 characters at most), as component.yaml requires.
    pub(crate) name: String,
    /// What runs the work of its function.
    #[arg(long, value_enum, default_value_t = crate::new::Kind::Command)]
    pub(crate) handler: crate::new::Kind,
    /// The folder to create NAME in.
    #[arg(long, value_name = "PARENT", default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Write into NAME even when it exists: files of the same names are overwritten, others kept.
    #[arg(long)]
    pub(crate) force: bool,
    /// With --handler rust: the Plinth checkout the project depends on (by path)
    /// [default: the checkout this plinth was built from].
    #[arg(long, value_name = "PATH")]
    pub(crate) plinth_path: Option<PathBuf>,
}

/// How `check` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CheckFormat {
    /// A table, one check a line, and a summary.
    Table,
    /// One JSON object: `{url, results: [{id, outcome, expected, got, why, elapsed_ms}], summary}`.
    Json,
    /// JUnit XML, for CI.
    Junit,
}

/// `plinth inngest ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum InngestCommand {
    /// Send each app a `PUT`, so it registers its functions with the Plinth its SDK points at
    /// (`INNGEST_DEV` or `INNGEST_BASE_URL`); print how each went.
    ///
    /// Exit codes: 0 every app registered, 1 one did not (unreachable, refused: the reason is
    /// printed), 2 usage error (no app to sync, an invalid component file).
    Sync(InngestSyncArgs),
}

/// Settings of `inngest sync`.
#[derive(Debug, Args, Clone)]
pub(crate) struct InngestSyncArgs {
    /// The component file whose `inngest.apps` lists the apps.
    #[arg(long, default_value = "component.yaml", env = "PLINTH_CONFIG")]
    pub(crate) config: PathBuf,
    /// An app's serve URL (e.g. http://127.0.0.1:8000/api/inngest), instead of the listed ones;
    /// repeat for several.
    #[arg(long)]
    pub(crate) app: Vec<String>,
}

/// Settings of `check`.
#[derive(Debug, Args, Clone)]
pub(crate) struct CheckArgs {
    /// The server's base URL, such as http://127.0.0.1:8000.
    pub(crate) url: String,
    /// The function the run checks submit to [default: the only one GET /functions lists].
    #[arg(long)]
    pub(crate) function: Option<String>,
    /// The input of the runs submitted: JSON text, @FILE, or - for standard input [default: {}].
    #[arg(long)]
    pub(crate) input: Option<String>,
    /// Only these checks (ids, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<String>,
    /// Not these checks (ids, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(crate) skip: Vec<String>,
    /// How long each check may take.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
    pub(crate) format: CheckFormat,
    /// The prefix of the metric names the contract requires.
    #[arg(long, default_value = "plinth")]
    pub(crate) metrics_prefix: String,
    /// Sent as `Authorization: Bearer KEY` on every request, for servers with access control.
    #[arg(long, env = "PLINTH_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// The size in bytes of the body run.body_too_large sends; it must be over the server's limit.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub(crate) large_body: usize,
    /// Check rate limiting: send up to N requests to GET /functions, one after another, and
    /// expect a 429 with Retry-After among them [default: rate_limit.retry_after is skipped].
    #[arg(long, value_name = "N")]
    pub(crate) rate_limit_probe: Option<u32>,
    /// Check step functions with this one: it must sleep, wait for an event (the check sends
    /// it, with the run's input as its data) or invoke a run, then succeed [default: steps.* skipped].
    #[arg(long, value_name = "NAME")]
    pub(crate) steps_function: Option<String>,
    /// The input of the --steps-function run (JSON, @file or -) [default: {}].
    #[arg(long, value_name = "JSON")]
    pub(crate) steps_input: Option<String>,
}

/// `spec` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SpecCommand {
    /// Finds unfilled template placeholders and missing sections; exit 1 when it finds any
    /// error (or, with --strict, any note too).
    ///
    /// Output: `file:line: code: message`. Codes: placeholder, date-placeholder, ellipsis,
    /// ellipsis-cell, instruction, question, missing-section, unknown-family, empty,
    /// not-markdown, not-text, too-large; and, as a note (`file:line: note: ...`, printed with
    /// --strict, always in JSON with `"severity": "note"`), optional-section.
    Lint(SpecLintArgs),
    /// Writes the factual sections of a specification from the code and a component file:
    /// endpoints, flags, environment variables, metrics, error codes, health checks, functions.
    ///
    /// Without --output or --check, prints a new document. --output FILE writes a new one when
    /// FILE does not exist, else refreshes only its generated blocks. --check FILE exits 1 and
    /// prints a diff when a generated block differs, 0 when none does. Exit 2: usage error,
    /// invalid component file, unreadable document, or a document without generated blocks.
    Generate(crate::spec::GenerateArgs),
    /// Computes the "1.0 Standardization Status" table of a specification (001) by comparing
    /// it with a live component, and prints it ready to paste.
    ///
    /// Exit 0 with the table; 2 on a usage error, an unreadable document or lcov file, or a
    /// component that cannot be reached.
    Status(crate::spec::StatusArgs),
}

/// How findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SpecFormat {
    /// `file:line: code: message`, one a line.
    Text,
    /// One JSON array of `{file, line, code, message}`.
    Json,
}

/// Settings of `spec lint`.
#[derive(Debug, Args, Clone)]
pub(crate) struct SpecLintArgs {
    /// The Markdown documents.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SpecFormat::Text)]
    pub(crate) format: SpecFormat,
    /// Also print the notes (optional sections left out, `optional-section`) and fail on them.
    #[arg(long)]
    pub(crate) strict: bool,
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
    /// The run store: sqlite://PATH, or postgres://USER@HOST:PORT/DB for several nodes sharing
    /// the work [default: sqlite://.plinth/plinth.db].
    #[arg(long, env = "PLINTH_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// The PostgreSQL schema of the run store, so components can share a database [default: plinth].
    #[arg(long, env = "PLINTH_DATABASE_SCHEMA")]
    pub(crate) database_schema: Option<String>,
    /// Attempts executing at once on this node [default: 16].
    #[arg(long, env = "PLINTH_WORKERS")]
    pub(crate) workers: Option<u32>,
    /// The most runs one claim takes (never more than the free workers) [default: 32].
    #[arg(long, env = "PLINTH_CLAIM_BATCH")]
    pub(crate) claim_batch: Option<u32>,
    /// On SIGTERM, how long in-flight runs may finish before they are released [default: 30s].
    #[arg(long, env = "PLINTH_SHUTDOWN_GRACE")]
    pub(crate) shutdown_grace: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "PLINTH_BODY_LIMIT")]
    pub(crate) body_limit: Option<u64>,
    /// Requests per second each client (API key, token subject, or address) may send; 0 is no
    /// limit. /health, /ready and /metrics are never limited [default: 0].
    #[arg(long, env = "PLINTH_RATE_LIMIT")]
    pub(crate) rate_limit: Option<u32>,
    /// Requests a client may send at once above its rate [default: twice the rate].
    #[arg(long, env = "PLINTH_RATE_BURST")]
    pub(crate) rate_burst: Option<u32>,
    /// Finished runs are deleted after this long [default: 7d].
    #[arg(long, env = "PLINTH_RETENTION")]
    pub(crate) retention: Option<String>,
    /// How long an idempotency key gives back its run; after it the key makes a new run [default: 24h].
    #[arg(long, env = "PLINTH_IDEMPOTENCY_WINDOW")]
    pub(crate) idempotency_window: Option<String>,
    /// Events are deleted after this long [default: 7d].
    #[arg(long, env = "PLINTH_EVENT_RETENTION")]
    pub(crate) event_retention: Option<String>,
    /// How long an event id deduplicates: the same id again within it is not stored again [default: 24h].
    #[arg(long, env = "PLINTH_EVENT_DEDUP_WINDOW")]
    pub(crate) event_dedup_window: Option<String>,
    /// Lease of a claimed run; a dead worker's runs are taken back after it [default: 30s].
    #[arg(long, env = "PLINTH_LEASE")]
    pub(crate) lease: Option<String>,
    /// Between SIGTERM and SIGKILL when a command handler is stopped [default: 5s].
    #[arg(long, env = "PLINTH_KILL_GRACE")]
    pub(crate) kill_grace: Option<String>,
    /// How long a run that finds every worker busy may wait on this node for one before it
    /// goes back to the queue, at most 1m; 0 sends it to the queue at once [default: 1s].
    #[arg(long, env = "PLINTH_NODE_WAIT")]
    pub(crate) node_wait: Option<String>,
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
    /// Calls of a step function's handler per run before it fails with PLINTH_059 [default: 10000].
    #[arg(long, env = "PLINTH_MAX_STEP_CALLS")]
    pub(crate) max_step_calls: Option<u32>,
    /// Bytes a step function's stored step results may hold in all [default: 67108864].
    #[arg(long, env = "PLINTH_MAX_MEMO_BYTES")]
    pub(crate) max_memo_bytes: Option<u64>,
    /// Serve the web dashboard (`--ui false` turns it off) [default: true].
    #[arg(long, env = "PLINTH_UI", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) ui: Option<bool>,
    /// Where the web dashboard is served [default: /ui].
    #[arg(long, env = "PLINTH_UI_PATH")]
    pub(crate) ui_path: Option<String>,
    /// The secret that signs the dashboard's session cookies, at least 32 bytes; give every node
    /// the same one. Unset: a random one per start (sessions end with the process).
    #[arg(long, env = "PLINTH_UI_SECRET", hide_env_values = true)]
    pub(crate) ui_secret: Option<String>,
    /// Export spans over OTLP/HTTP to this base endpoint (`/v1/traces` is added), e.g.
    /// http://127.0.0.1:4318. Unset: OpenTelemetry's `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, else no export.
    #[arg(long, env = "PLINTH_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,
}
