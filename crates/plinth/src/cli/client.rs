//! The client commands' settings: `run`, `runs ...`, `events ...`, `schedules`.

use clap::{Args, Subcommand};

/// Where the server is, and how to print.
#[derive(Debug, Args, Clone)]
pub(crate) struct ClientArgs {
    /// The server's base URL.
    #[arg(long, env = "PLINTH_URL", default_value = "http://127.0.0.1:8000", global = true)]
    pub(crate) url: String,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Sent as `Authorization: Bearer KEY`, for servers with access control (an API key or a JWT).
    #[arg(long, env = "PLINTH_API_KEY", hide_env_values = true, global = true)]
    pub(crate) api_key: Option<String>,
}

/// Settings of `run`.
#[derive(Debug, Args, Clone)]
pub(crate) struct RunArgs {
    /// The function to run.
    pub(crate) function: String,
    /// The input: JSON text, @FILE, or - for standard input [default: {}].
    #[arg(long)]
    pub(crate) input: Option<String>,
    /// Wait for the run to end (showing progress on a terminal) and exit with its outcome.
    #[arg(long)]
    pub(crate) wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// Sent as the Idempotency-Key header: the same key and request give back the same run.
    #[arg(long)]
    pub(crate) idempotency_key: Option<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

pub(super) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    plinth_core::DurationSpec::parse(text).map(plinth_core::DurationSpec::get)
}

/// `runs` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// Recent runs, newest first, with filters.
    List(ListArgs),
    /// One run with its attempts.
    Show(RunIdArgs),
    /// Cancel a queued or running run.
    Cancel(RunIdArgs),
    /// A run's log lines.
    Logs(RunIdArgs),
    /// A step function's steps: op, status, attempts, duration, output or error.
    Steps(RunIdArgs),
    /// Run an ended run again (same function and input), whole or from one of its steps.
    Rerun(RerunArgs),
}

/// Settings of `runs rerun`.
#[derive(Debug, Args, Clone)]
pub(crate) struct RerunArgs {
    /// The run to repeat.
    pub(crate) run_id: String,
    /// Keep the steps reached before this one and run from it (step functions).
    #[arg(long)]
    pub(crate) from_step: Option<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Settings of `runs list`.
#[derive(Debug, Args, Clone)]
pub(crate) struct ListArgs {
    /// Only this function's runs.
    #[arg(long)]
    pub(crate) function: Option<String>,
    /// Only runs in this state: queued, running, waiting, succeeded, failed, cancelled.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Only runs with this correlation id.
    #[arg(long)]
    pub(crate) correlation_id: Option<String>,
    /// Only runs with this trigger type: api, event, cron, invoke, rerun.
    #[arg(long)]
    pub(crate) trigger: Option<String>,
    /// Only runs this event started.
    #[arg(long)]
    pub(crate) event_id: Option<String>,
    /// How many runs (1 to 500).
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: u32,
    /// Continue after this cursor (printed under a full page).
    #[arg(long)]
    pub(crate) cursor: Option<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// A run id, for `show`, `cancel` and `logs`.
#[derive(Debug, Args, Clone)]
pub(crate) struct RunIdArgs {
    /// The run's id.
    pub(crate) run_id: String,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `events` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Send one event; prints its id and the runs it started.
    Send(EventSendArgs),
    /// Recent events, newest first.
    List(EventListArgs),
    /// One event, the runs it started and why listening functions started none.
    Show(EventIdArgs),
}

/// Settings of `events send`.
#[derive(Debug, Args, Clone)]
pub(crate) struct EventSendArgs {
    /// The event's name, `component/event.name`.
    pub(crate) name: String,
    /// Its data: a JSON object as text, @FILE, or - for standard input [default: {}].
    #[arg(long)]
    pub(crate) data: Option<String>,
    /// Its id: the same id again within the dedup window (24 h) is not stored again.
    #[arg(long)]
    pub(crate) id: Option<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Settings of `events list`.
#[derive(Debug, Args, Clone)]
pub(crate) struct EventListArgs {
    /// Only events with this name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Only events received at or after this time (RFC 3339).
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// How many events (1 to 500).
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: u32,
    /// Continue after this cursor (printed under a full page).
    #[arg(long)]
    pub(crate) cursor: Option<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// An event id, for `events show`.
#[derive(Debug, Args, Clone)]
pub(crate) struct EventIdArgs {
    /// The event's id.
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}
