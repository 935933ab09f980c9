//! What every backend does the same way for timeouts and `cancel_on`: the errors a run ends
//! with, and whether an event's rule reaches a run.

use plinth_core::flow::CancelMatch;
use plinth_core::timefmt::rfc3339;
use plinth_core::{Code, Event, RunError};
use serde_json::Value;

/// The most runs one sweep cancels for each timeout; the rest wait for the next sweep.
pub(crate) const SWEEP: u32 = 500;

/// A run a timeout ended, or asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The run.
    pub run_id: String,
    /// Its function.
    pub function: String,
    /// The error it ends with (PLINTH_046 or PLINTH_047).
    pub error: RunError,
    /// It was running: its worker is asked to stop it, and it ends when it does.
    pub stopping: bool,
}

/// The error of a run that did not start by `start_by` (micros).
pub(crate) fn start_error(start_by: i64) -> RunError {
    RunError::new(Code::RunStartTimeout, format!("not started by {} (policy.timeouts.start)", rfc3339(start_by)))
}

/// The error of a run that did not finish by `finish_by` (micros).
pub(crate) fn finish_error(finish_by: i64) -> RunError {
    RunError::new(Code::RunFinishTimeout, format!("not finished by {} (policy.timeouts.finish)", rfc3339(finish_by)))
}

/// Whether `rule` of `event` cancels the run; a condition that fails is no match, logged at
/// warn.
pub(crate) fn reaches(rule: &CancelMatch, event: &Event, run_id: &str, input: &Value) -> bool {
    let run = crate::steps::run_var(run_id, &rule.function, input);
    match rule.matches(event, &run) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(event_id = %event.id, run_id, rule = rule.rule, error = %e, "a cancel_on condition failed; no match");
            false
        }
    }
}
