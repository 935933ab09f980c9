//! The JSON bodies the handlers answer with. Each is the type a handler fills in and the type
//! `/openapi.json` describes, so the description cannot drift from what is sent.

use plinth_core::component::Identity;
use plinth_core::error::CatalogEntry;
use plinth_core::trigger::TriggerSpec;
use plinth_core::{Run, RunPolicy, RunStatus};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The body as a JSON value, object keys sorted at every level (as these bodies have always
/// been sent, when they were built with `json!`).
pub(crate) fn sorted<T: Serialize>(body: &T) -> Value {
    serde_json::to_value(body).unwrap_or_default()
}

/// `POST /run`'s answer: the run was accepted (or replayed), and where to follow it.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    /// The run's id.
    pub(crate) run_id: String,
    /// The function it runs.
    pub(crate) function: String,
    /// `queued` for a new run; a replay shows the run's status now.
    pub(crate) status: RunStatus,
    /// Where to follow it: `/runs/{run_id}`, also in the `Location` header.
    #[schema(example = "/runs/01JD0000000000000000000000")]
    pub(crate) status_url: String,
    /// The correlation id the run carries.
    pub(crate) correlation_id: String,
}

/// A page of runs, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunPage {
    /// The runs of this page.
    pub(crate) runs: Vec<Run>,
    /// Pass as `cursor` to get the next page; null on the last one.
    pub(crate) next_cursor: Option<String>,
}

/// What a run's handler wrote to stderr, line by line, over all its attempts.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunLogs {
    /// The run's id.
    pub(crate) run_id: String,
    /// The lines, in order.
    pub(crate) logs: Vec<LogLine>,
}

/// One line a handler wrote.
#[derive(Serialize, ToSchema)]
pub(crate) struct LogLine {
    /// The attempt that wrote it.
    pub(crate) attempt: u32,
    /// Its position within the attempt's lines.
    pub(crate) seq: u32,
    /// When it was written.
    #[schema(format = DateTime)]
    pub(crate) timestamp: String,
    /// The line as written.
    pub(crate) text: String,
    /// The line parsed, when it is a JSON object; left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) json: Option<Value>,
}

/// `healthy`, `degraded` or `unhealthy`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HealthStatus {
    /// Every dependency answers.
    Healthy,
    /// The database answers; an optional dependency (the NATS bridge) fails.
    Degraded,
    /// A critical dependency (the database) fails.
    Unhealthy,
}

/// `GET /health`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health<'a> {
    /// `unhealthy` (with a 503) when a critical dependency fails.
    pub(crate) status: HealthStatus,
    /// The component's name.
    pub(crate) component: &'a str,
    /// The component's version.
    pub(crate) version: &'a str,
    /// The version of Plinth serving it.
    pub(crate) plinth_version: &'static str,
    /// Each dependency check.
    pub(crate) checks: HealthChecks,
}

/// The dependency checks of `GET /health`.
#[derive(Serialize, ToSchema)]
pub(crate) struct HealthChecks {
    /// The run store: a write probe.
    pub(crate) database: DatabaseCheck,
    /// The NATS bridge, when one is configured: connected and consuming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nats: Option<DependencyCheck>,
    /// The Inngest apps `inngest.apps` lists, when there are some: each synced (its functions
    /// registered). Failing while one is not, with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) inngest: Option<DependencyCheck>,
}

/// An optional dependency's check.
#[derive(Serialize, ToSchema)]
pub(crate) struct DependencyCheck {
    /// Whether it works.
    pub(crate) status: CheckStatus,
    /// Why it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// `ok` or `failing`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CheckStatus {
    /// The check passed.
    Ok,
    /// The check failed.
    Failing,
}

/// The run store's check.
#[derive(Serialize, ToSchema)]
pub(crate) struct DatabaseCheck {
    /// Whether it passed.
    pub(crate) status: CheckStatus,
    /// The store's backend, such as `sqlite`.
    pub(crate) backend: &'static str,
    /// How long the probe took, when it passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) latency_ms: Option<f64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The error code, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<&'static str>,
}

/// `ready` or `not_ready`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReadyStatus {
    /// The node takes traffic.
    Ready,
    /// The node does not take traffic now.
    NotReady,
}

/// `GET /ready`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ready {
    /// Whether the node takes traffic.
    pub(crate) status: ReadyStatus,
    /// Why not: `starting`, `draining` or `database`; left out when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "draining")]
    pub(crate) reason: Option<&'static str>,
}

/// `GET /functions`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Functions<'a> {
    /// The component served.
    pub(crate) component: &'a Identity,
    /// Its functions, as `POST /run` names them.
    pub(crate) functions: Vec<FunctionInfo<'a>>,
}

/// One function of the component.
#[derive(Serialize, ToSchema)]
pub(crate) struct FunctionInfo<'a> {
    /// Its name.
    pub(crate) name: &'a str,
    /// What it does.
    pub(crate) description: Option<&'a str>,
    /// What runs it: `command`, `http` or `rust`.
    #[schema(example = "command")]
    pub(crate) handler: &'static str,
    /// The JSON Schema every run's `input` must match, if one is declared.
    #[schema(value_type = Option<Value>)]
    pub(crate) input_schema: Option<&'a Value>,
    /// Attempts, backoff, timeout and concurrency.
    pub(crate) policy: &'a RunPolicy,
    /// The events and schedules that start it.
    pub(crate) triggers: &'a [TriggerSpec],
    /// Its schedule's ticks, when it has a `cron` trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) schedule: Option<ScheduleInfo>,
}

/// A function's schedule: its last fired tick and its next one.
#[derive(Serialize, ToSchema)]
pub(crate) struct ScheduleInfo {
    /// When the next tick fires.
    #[schema(format = DateTime)]
    pub(crate) next_at: Option<String>,
    /// The last tick that fired, if any.
    #[schema(format = DateTime)]
    pub(crate) last_at: Option<String>,
    /// The run the last tick started.
    pub(crate) last_run_id: Option<String>,
}

/// `GET /errors`'s answer: the whole error catalog.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorList {
    /// Every entry, in code order.
    pub(crate) errors: Vec<CatalogEntry>,
}
