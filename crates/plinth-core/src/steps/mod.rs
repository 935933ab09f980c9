//! Durable steps (functions with `steps: true`): the records Plinth keeps of each step, why a
//! run waits, and the step protocol a handler in any language speaks (see [`protocol`]).
//!
//! A step function's handler is called once per step boundary with the memo of what earlier
//! calls achieved; it answers with the op it reached. The memo is one row per step, so a
//! 100-step run never rewrites a growing blob.

pub mod envelope;
pub mod protocol;

use crate::timefmt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The longest step id.
pub const MAX_STEP_ID: usize = 128;
/// The deepest chain of runs invoking runs.
pub const MAX_INVOKE_DEPTH: u32 = 16;

/// A step's failure, as the handler reported it and as the memo hands it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StepError {
    /// What went wrong.
    pub message: String,
    /// Whether trying the step again may help (default true).
    #[serde(default = "yes")]
    pub retryable: bool,
}

const fn yes() -> bool {
    true
}

/// Where a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Planned or executing in a call now.
    Running,
    /// Failed and waits for its next attempt.
    Retrying,
    /// Sleeps, waits for an event or for an invoked run.
    Waiting,
    /// Done, with an output.
    Succeeded,
    /// Done, with an error the handler sees.
    Failed,
}

impl StepStatus {
    /// Every status.
    pub const ALL: [StepStatus; 5] =
        [StepStatus::Running, StepStatus::Retrying, StepStatus::Waiting, StepStatus::Succeeded, StepStatus::Failed];

    /// The status as text.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Retrying => "retrying",
            StepStatus::Waiting => "waiting",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
        }
    }

    /// Parses the text form.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the step's result is in the memo.
    #[must_use]
    pub const fn is_done(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Failed)
    }
}

/// What an unfinished step waits for (kept with the step; never shown to clients as such).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wait {
    /// A sleep until this time (micros).
    Sleep {
        /// When it ends.
        until: i64,
    },
    /// An event with this name received at or after `since`, matching `cond`.
    Event {
        /// The event name.
        event: String,
        /// A CEL condition over `event` and `run`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cond: Option<String>,
        /// When the op was recorded (micros): earlier events do not count.
        since: i64,
        /// When the wait gives up (micros).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_at: Option<i64>,
    },
    /// An invoked run's end.
    Run {
        /// The child run.
        run_id: String,
        /// When the wait gives up (micros).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_at: Option<i64>,
    },
    /// The next attempt of a failed step, not before this time (micros).
    Retry {
        /// When.
        at: i64,
    },
}

impl Wait {
    /// When the wait ends on its own (micros), if ever.
    #[must_use]
    pub const fn deadline(&self) -> Option<i64> {
        match self {
            Wait::Sleep { until } => Some(*until),
            Wait::Retry { at } => Some(*at),
            Wait::Event { timeout_at, .. } | Wait::Run { timeout_at, .. } => *timeout_at,
        }
    }

    /// The key an index finds the wait by: the event name, or the child run id.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Wait::Event { event, .. } => Some(event),
            Wait::Run { run_id, .. } => Some(run_id),
            Wait::Sleep { .. } | Wait::Retry { .. } => None,
        }
    }

    /// Why the run waits, as `waiting_for` shows it; `None` for a step retry (the run is
    /// queued then, like any retry).
    #[must_use]
    pub fn waiting_for(&self, step: &str) -> Option<WaitingFor> {
        let base =
            WaitingFor { step: step.to_string(), kind: String::new(), until: None, event: None, timeout_at: None, run_id: None };
        let opt = |t: &Option<i64>| t.map(timefmt::rfc3339);
        match self {
            Wait::Sleep { until } => Some(WaitingFor { kind: "sleep".into(), until: Some(timefmt::rfc3339(*until)), ..base }),
            Wait::Event { event, timeout_at, .. } => {
                Some(WaitingFor { kind: "event".into(), event: Some(event.clone()), timeout_at: opt(timeout_at), ..base })
            }
            Wait::Run { run_id, timeout_at } => {
                Some(WaitingFor { kind: "run".into(), run_id: Some(run_id.clone()), timeout_at: opt(timeout_at), ..base })
            }
            Wait::Retry { .. } => None,
        }
    }
}

/// Why a `waiting` run waits: `{"step","kind":"sleep","until"}`, `{"step","kind":"event",
/// "event","timeout_at"}` or `{"step","kind":"run","run_id"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WaitingFor {
    /// The step that waits.
    pub step: String,
    /// `sleep`, `event` or `run`.
    pub kind: String,
    /// A sleep's end, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The event name waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// When the wait gives up, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_at: Option<String>,
    /// The invoked run waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// One step of a run, as stored and as `GET /runs/{id}/steps` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Step {
    /// The handler's name for it (`name:1` for a repeated name).
    pub id: String,
    /// `step`, `sleep`, `wait_for_event`, `invoke` or `send_event`.
    pub op: String,
    /// Where it is.
    pub status: StepStatus,
    /// Attempts made (for `step`: calls that ran it).
    pub attempts: u32,
    /// When it was first reached.
    #[serde(serialize_with = "timefmt::serde_req::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    /// When it finished.
    #[serde(serialize_with = "timefmt::serde_opt::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<f64>,
    /// Its output, once succeeded.
    pub output: Option<Value>,
    /// Its error, once failed (or the last attempt's while retrying).
    pub error: Option<StepError>,
    /// Whether `output` was cut for this listing (the handler still gets all of it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Its order among the run's steps, from 0.
    #[serde(skip)]
    pub seq: u32,
    /// What it waits for, while unfinished.
    #[serde(skip)]
    pub wait: Option<Wait>,
}

impl Step {
    /// A step reached now, not finished.
    #[must_use]
    pub fn reached(id: &str, op: &str, seq: u32, now: i64) -> Self {
        Self {
            id: id.to_string(),
            op: op.to_string(),
            status: StepStatus::Running,
            attempts: 0,
            started_at: now,
            finished_at: None,
            duration_ms: None,
            output: None,
            error: None,
            truncated: false,
            seq,
            wait: None,
        }
    }

    /// The step, succeeded now with `output`.
    #[must_use]
    pub fn succeed(mut self, output: Value, now: i64) -> Self {
        self.status = StepStatus::Succeeded;
        self.output = Some(output);
        self.error = None;
        self.wait = None;
        self.end(now)
    }

    /// The step, failed for good now with `error`.
    #[must_use]
    pub fn fail(mut self, error: StepError, now: i64) -> Self {
        self.status = StepStatus::Failed;
        self.error = Some(error);
        self.wait = None;
        self.end(now)
    }

    fn end(mut self, now: i64) -> Self {
        self.finished_at = Some(now);
        #[allow(clippy::cast_precision_loss)]
        let ms = (now - self.started_at).max(0) as f64 / 1000.0;
        self.duration_ms = Some(ms);
        self
    }

    /// The step's entry in the memo: `{"output": V}` or `{"error": {...}}`, once done.
    #[must_use]
    pub fn memo(&self) -> Option<Value> {
        match self.status {
            StepStatus::Succeeded => Some(serde_json::json!({"output": self.output.clone().unwrap_or(Value::Null)})),
            StepStatus::Failed => Some(serde_json::json!({"error": self.error})),
            _ => None,
        }
    }
}

/// How a step function's call ended at a step boundary, as the store records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Suspension {
    /// The step that waits (status `waiting`, or `retrying` for a step's next attempt), with
    /// its [`Wait`].
    pub step: Step,
    /// The run an `invoke` starts, stored in the same transaction.
    pub child: Option<crate::run::NewRun>,
}

impl Suspension {
    /// The step's wait.
    #[must_use]
    pub fn wait(&self) -> Option<&Wait> {
        self.step.wait.as_ref()
    }
}

/// The longest step output shown by `GET /runs/{id}/steps` before it is cut.
pub const SHOWN_OUTPUT_BYTES: usize = 64 * 1024;

/// The step as a listing shows it: an output longer than [`SHOWN_OUTPUT_BYTES`] of JSON is
/// replaced by the start of its text, with `truncated` set.
#[must_use]
pub fn for_listing(mut step: Step) -> Step {
    if let Some(out) = &step.output {
        let text = out.to_string();
        if text.len() > SHOWN_OUTPUT_BYTES {
            let mut cut = SHOWN_OUTPUT_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            step.output = Some(Value::String(text[..cut].to_string()));
            step.truncated = true;
        }
    }
    step
}

#[cfg(test)]
mod tests;
