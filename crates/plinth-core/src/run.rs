//! Runs: what `POST /run` creates and `GET /runs/{id}` shows, and how an attempt ends.

use crate::error::Code;
use crate::timefmt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for a worker (first attempt, or a retry after its backoff).
    Queued,
    /// An attempt holds a lease and executes.
    Running,
    /// A step sleeps or waits for an event or an invoked run; no worker holds it.
    Waiting,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error, no attempt left or not retryable.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The status as text.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the text form.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the run can change no more.
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled)
    }
}

/// What started a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Trigger {
    /// `POST /run` (or the library API).
    #[default]
    Api,
    /// An event whose trigger matched.
    Event {
        /// The event's id.
        event_id: String,
    },
    /// A schedule's tick.
    Cron {
        /// The tick, RFC 3339.
        scheduled_at: String,
    },
    /// Another run's `invoke` step.
    Invoke {
        /// The run that invoked it.
        parent_run_id: String,
    },
    /// A rerun of another run.
    Rerun {
        /// The run it repeats.
        of: String,
    },
}

impl Trigger {
    /// Every trigger type, as `GET /runs?trigger=` takes it.
    pub const TYPES: [&'static str; 5] = ["api", "event", "cron", "invoke", "rerun"];

    /// The trigger's type word.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Event { .. } => "event",
            Trigger::Cron { .. } => "cron",
            Trigger::Invoke { .. } => "invoke",
            Trigger::Rerun { .. } => "rerun",
        }
    }

    /// The event that started the run, if an event did.
    #[must_use]
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Trigger::Event { event_id } => Some(event_id),
            _ => None,
        }
    }
}

/// Why an attempt or a run failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunError {
    /// A catalog code, `PLINTH_0xx`.
    #[schema(pattern = "^PLINTH_[0-9]{3}$", example = "PLINTH_020")]
    pub code: String,
    /// What happened, for a person.
    pub message: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// The event that cancelled the run (`cancel_on`), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// When the handler asked to be tried again (`Retry-After`), micros; not stored.
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_at: Option<i64>,
}

impl RunError {
    /// An error with the code's default retryability.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        let retryable = code.entry().retryable;
        Self { code: code.as_str().to_string(), message: message.into(), retryable, event_id: None, retry_at: None }
    }

    /// The same error, with retryability set.
    #[must_use]
    pub const fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
}

/// One attempt of a run, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Attempt {
    /// Its number, from 1.
    pub attempt: u32,
    /// When it started.
    #[serde(serialize_with = "timefmt::serde_req::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    /// When it ended, if it has.
    #[serde(serialize_with = "timefmt::serde_opt::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
    /// `running`, `succeeded`, `failed`, `retrying`, `cancelled`, `lease_expired` or `released`.
    pub outcome: String,
    /// Why it failed.
    pub error: Option<RunError>,
    /// How long it ran, in milliseconds.
    pub duration_ms: Option<f64>,
}

/// A run, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Run {
    /// Its id (a ULID: sorts by creation time).
    pub run_id: String,
    /// The function it runs.
    pub function: String,
    /// Where it is.
    pub status: RunStatus,
    /// The number of the current or last attempt (0 before the first).
    pub attempt: u32,
    /// Attempts it may have in all.
    pub max_attempts: u32,
    /// Its input.
    pub input: Value,
    /// The handler's output, once succeeded.
    pub output: Option<Value>,
    /// The last error.
    pub error: Option<RunError>,
    /// When it was accepted.
    #[serde(serialize_with = "timefmt::serde_req::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When its latest attempt started.
    #[serde(serialize_with = "timefmt::serde_opt::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<i64>,
    /// When it reached a terminal state.
    #[serde(serialize_with = "timefmt::serde_opt::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
    /// While queued: the earliest time its next attempt may start.
    #[serde(serialize_with = "timefmt::serde_opt::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<i64>,
    /// The correlation id of the request that created it.
    pub correlation_id: String,
    /// The idempotency key it was created with.
    pub idempotency_key: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// While waiting: the step and what it waits for.
    pub waiting_for: Option<crate::steps::WaitingFor>,
    /// Higher runs first.
    pub priority: i32,
    /// Whether a cancel was asked while it ran.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cancel_requested: bool,
    /// Every attempt, when asked for one run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
    /// Its lane under the function's `concurrency` limit, when the function has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_key: Option<String>,
    /// While queued: the rule that holds it back, if one does (computed when read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<crate::flow::HeldBy>,
    /// The W3C `traceparent` of the request that created it, when it came with a valid one: its
    /// attempts continue that trace (handlers get its trace id with a new parent id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The W3C `tracestate` sent with that `traceparent`, handed on with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// A run to enqueue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    /// Its id.
    pub run_id: String,
    /// The function.
    pub function: String,
    /// The input, already validated.
    pub input: Value,
    /// From the function's policy.
    pub max_attempts: u32,
    /// Higher first.
    pub priority: i32,
    /// When it was accepted (micros).
    pub created_at: i64,
    /// Not before this time (micros): `created_at` plus any delay.
    pub not_before: i64,
    /// The request's correlation id.
    pub correlation_id: String,
    /// The idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// A hash of the request, to tell a replay from a different request with the same key.
    pub request_hash: Option<String>,
    /// Refuse the run when this many runs of its function are already queued.
    pub max_queued: Option<u32>,
    /// What started it.
    pub trigger: Trigger,
    /// Its lane under the function's `concurrency` limit (`""`: the shared lane); none when
    /// the function has no limit.
    pub flow_key: Option<String>,
    /// The function's `concurrency` limit when it is the lane's only rule (no throttle): the
    /// store may then start the run as it stores it, while its lane has room (decision 0034).
    pub lane_limit: Option<u32>,
    /// The rate limit it must pass to be stored, if its function has one.
    pub rate: Option<crate::flow::RateCheck>,
    /// Its function's debounce: the store replaces the input of the key's queued run instead
    /// of storing this one, when there is such a run.
    pub debounce: Option<crate::flow::DebounceCheck>,
    /// Its function's singleton rule: at most one unfinished run per key.
    pub singleton: Option<crate::flow::SingletonCheck>,
    /// Its function's batch: the store adds this run's event to the key's open batch instead
    /// of storing it, when there is one.
    pub batch: Option<crate::flow::BatchCheck>,
    /// Its timeouts' deadlines and whether `cancel_on` rules reach it.
    pub expiry: crate::flow::Expiry,
    /// The trace it continues: the request's valid W3C `traceparent`, or its parent run's.
    pub traceparent: Option<String>,
    /// The W3C `tracestate` that goes with `traceparent`.
    pub tracestate: Option<String>,
    /// Set when the node that accepts the run starts it at once: the run is stored leased to
    /// that node, its first attempt begun, and never enters the queue (decision 0019).
    pub start: Option<StartNow>,
}

impl NewRun {
    /// The run as it stands once stored: queued, no attempt yet.
    #[must_use]
    pub fn into_queued(self) -> Run {
        Run {
            run_id: self.run_id,
            function: self.function,
            status: RunStatus::Queued,
            attempt: 0,
            max_attempts: self.max_attempts,
            input: self.input,
            output: None,
            error: None,
            created_at: self.created_at,
            started_at: None,
            finished_at: None,
            next_attempt_at: Some(self.not_before),
            correlation_id: self.correlation_id,
            idempotency_key: self.idempotency_key,
            trigger: self.trigger,
            waiting_for: None,
            priority: self.priority,
            cancel_requested: false,
            attempts: None,
            flow_key: self.flow_key,
            held_by: None,
            traceparent: self.traceparent,
            tracestate: self.tracestate,
        }
    }
}

/// How an attempt ended, as the engine reports it to the store.
#[derive(Clone, Debug, PartialEq)]
pub enum Finish {
    /// It succeeded with this output.
    Succeeded(Value),
    /// It failed and will be tried again at this time (micros).
    Retry(RunError, i64),
    /// It failed for good.
    Failed(RunError),
    /// It was cancelled.
    Cancelled(RunError),
    /// It was given back unfinished (shutdown): queued again, the attempt not counted.
    Released,
    /// A step function's call ended at a step boundary: the run waits (sleep, event, child
    /// run) or is queued for a step's retry, the attempt not counted. Stored with it in the
    /// same transaction.
    Suspended(Box<crate::steps::Suspension>),
}

impl Finish {
    /// The attempt's outcome word, as recorded.
    #[must_use]
    pub const fn outcome(&self) -> &'static str {
        match self {
            Finish::Succeeded(_) => "succeeded",
            Finish::Retry(..) => "retrying",
            Finish::Failed(_) => "failed",
            Finish::Cancelled(_) => "cancelled",
            Finish::Released => "released",
            Finish::Suspended(_) => "suspended",
        }
    }
}

mod start;
pub use start::StartNow;

#[cfg(test)]
mod tests;
