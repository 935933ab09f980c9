//! The settings of `spec generate` and `spec status`.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of `spec generate`.
#[derive(Debug, Args, Clone)]
pub(crate) struct GenerateArgs {
    /// The component file, loaded and validated as `plinth serve` does.
    #[arg(long, env = "PLINTH_CONFIG", default_value = "component.yaml")]
    pub(crate) config: PathBuf,
    /// Where to write: a new document when FILE does not exist, else its generated blocks refreshed.
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    pub(crate) output: Option<PathBuf>,
    /// Compare FILE's generated blocks with what the code generates; exit 1 with a diff when
    /// one differs.
    #[arg(long, value_name = "FILE")]
    pub(crate) check: Option<PathBuf>,
}

/// How `spec status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StatusFormat {
    /// The Markdown table, then what is missing for each row.
    Markdown,
    /// One JSON object: `{url, spec, server, rows: [{requirement, status, current, target, owner, measured, missing, notes}]}`.
    Json,
}

/// Settings of `spec status`.
#[derive(Debug, Args, Clone)]
pub(crate) struct StatusArgs {
    /// The specification document (the 001 template's family).
    #[arg(long, value_name = "FILE")]
    pub(crate) spec: PathBuf,
    /// The live component's base URL, such as http://127.0.0.1:8000.
    #[arg(long)]
    pub(crate) url: String,
    /// An lcov coverage file (LF/LH totals) for the "Test coverage" row [default: not measured].
    #[arg(long, value_name = "FILE")]
    pub(crate) lcov: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Markdown)]
    pub(crate) format: StatusFormat,
    /// How long each request may take.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// The prefix of the metric names the contract requires.
    #[arg(long, default_value = "plinth")]
    pub(crate) metrics_prefix: String,
    /// Sent as `Authorization: Bearer KEY` on every request, for components with access control.
    #[arg(long, env = "PLINTH_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    plinth_core::DurationSpec::parse(text).map(plinth_core::DurationSpec::get)
}
