//! The settings of `plinth bench`.

use clap::Args;
use std::path::PathBuf;

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
    /// After the rounds, one more paced at this many submissions per second, for `POST /run`
    /// latency at that load rather than at full speed; 0 skips it.
    #[arg(long, default_value_t = 5000)]
    pub(crate) paced_rate: u32,
    /// Paced rounds, one after the other; the report gives each and the median of their
    /// `POST /run` p99 (the lower middle for an even count), which the target reads.
    #[arg(long, default_value_t = 3)]
    pub(crate) paced_rounds: usize,
    /// Runs of a no-op HTTP handler (a local endpoint) in one more closed-loop round; 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) http_runs: usize,
    /// Runs in one more closed-loop round where each `POST /run` carries an `Idempotency-Key` of
    /// its own, for what remembering the keys costs; 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) keyed_runs: usize,
    /// Runs in each of four paced rounds on fresh servers, alternating without and with an API
    /// key, for the cost of access control; 0 skips them.
    #[arg(long, default_value_t = 6_000)]
    pub(crate) auth_runs: usize,
    /// Submissions per second in the access-control rounds (and the span export's paced rounds).
    #[arg(long, default_value_t = 2000)]
    pub(crate) auth_rate: u32,
    /// Compare rounds with span export off and on (to a local OTLP receiver that discards).
    #[arg(long)]
    pub(crate) otlp: bool,
    /// Runs in each round of the span export comparison.
    #[arg(long, default_value_t = 5_000)]
    pub(crate) otlp_runs: usize,
    /// The server's `--log-level` (its logs are read and dropped).
    #[arg(long, default_value = "info")]
    pub(crate) server_log_level: String,
    /// Keep the database in this folder instead of a temporary one.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Benchmark the PostgreSQL store at this URL (postgres://...) instead of SQLite; each run
    /// of the benchmark works in a fresh schema, dropped at the end.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    /// Nodes serving the component at once (PostgreSQL only); submissions go to each in turn.
    #[arg(long, default_value_t = 1)]
    pub(crate) nodes: usize,
    /// The servers' --claim-batch [default: theirs].
    #[arg(long)]
    pub(crate) claim_batch: Option<u32>,
    /// Events in each of the two `POST /events` rounds (arrays of 1,000; one round stores
    /// them, one starts a run for each); 0 skips the events part.
    #[arg(long, default_value_t = 200_000)]
    pub(crate) events: usize,
    /// Seconds to watch the every-second schedule on the idle server for tick lateness.
    #[arg(long, default_value_t = 10)]
    pub(crate) tick_seconds: u64,
    /// Workflows in each steps round (three-step in-process, five-step HTTP); 0 skips the
    /// steps part.
    #[arg(long, default_value_t = 5_000)]
    pub(crate) step_runs: usize,
    /// Runs parked waiting on other events while event-to-resume is measured.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) waiting: usize,
    /// Runs in each flow-control round (no-op runs without a limit, then with
    /// `concurrency: {limit: 4, key}` over 1,000 keys, twice); 0 skips the flow-control part.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) flow_runs: usize,
    /// Runs queued under one saturated key; a free key's pickup and the reads an operator makes
    /// (runs list, one run, the overview, /metrics) are timed before and after.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) flow_backlog: usize,
    /// Runs put in the store (each started by an event, all ended) before the dashboard's pages
    /// are timed on a server of their own; 0 skips the dashboard part (issue 13 asks 1000000).
    #[arg(long, default_value_t = 0)]
    pub(crate) ui_history: usize,
    /// Runs queued (due, held by one full concurrency key) for the flat-at-scale measure: every
    /// figure it takes on an empty store is taken again with these and `--history` in the store,
    /// on a server of its own; 0 with `--history` 0 skips it (issue 16 asks 1000000).
    #[arg(long, default_value_t = 0)]
    pub(crate) backlog: u64,
    /// Finished runs kept in the store for the flat-at-scale measure (issue 16 asks 10000000);
    /// `--prune-runs` of them are old enough for the pruner.
    #[arg(long, default_value_t = 0)]
    pub(crate) history: u64,
    /// Of `--history`, the runs the pruner deletes while `POST /run` is timed (at most
    /// `--history`).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) prune_runs: u64,
    /// Runs of a five-step Python function through Inngest's SDK and through Plinth's native
    /// step protocol, in each of two passes (issue 14's ratio); 0 skips it. Needs --sdk-python.
    #[arg(long, default_value_t = 0)]
    pub(crate) sdk_runs: usize,
    /// A python that imports inngest, fastapi and uvicorn (a virtual environment made from
    /// examples/inngest-fastapi/requirements.txt).
    #[arg(long, default_value = "python3")]
    pub(crate) sdk_python: PathBuf,
    /// The plinth binary to start [default: this one].
    #[arg(long)]
    pub(crate) binary: Option<PathBuf>,
}
