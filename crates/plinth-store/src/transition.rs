//! What an attempt's end does to its run, the same for every backend.

use crate::{FinishRequest, cancelled_error};
use plinth_core::{Finish, RunError, RunStatus};

/// The run's next state after an attempt's end.
pub(crate) struct Transition {
    pub(crate) status: RunStatus,
    /// The output as JSON text, for a success.
    pub(crate) output: Option<String>,
    pub(crate) error: Option<RunError>,
    pub(crate) next_attempt_at: Option<i64>,
    pub(crate) attempt: u32,
}

/// The run's next state: a cancel asked during the attempt turns a retry or a release into
/// `cancelled`; a released attempt is not counted.
pub(crate) fn transition(req: &FinishRequest, cancel_requested: bool) -> Transition {
    let ends = |status, output, error, next_attempt_at, attempt| Transition { status, output, error, next_attempt_at, attempt };
    match req.finish.clone() {
        Finish::Succeeded(out) => {
            // Why: serializing a serde_json value to a String cannot fail.
            let text = serde_json::to_string(&out).unwrap_or_else(|_| "null".to_string());
            ends(RunStatus::Succeeded, Some(text), None, None, req.attempt)
        }
        Finish::Retry(..) | Finish::Released | Finish::Suspended(_) if cancel_requested => {
            ends(RunStatus::Cancelled, None, Some(cancelled_error()), None, req.attempt)
        }
        Finish::Retry(error, at) => ends(RunStatus::Queued, None, Some(error), Some(at), req.attempt),
        Finish::Failed(error) => ends(RunStatus::Failed, None, Some(error), None, req.attempt),
        Finish::Cancelled(error) => ends(RunStatus::Cancelled, None, Some(error), None, req.attempt),
        Finish::Released | Finish::Suspended(_) => {
            ends(RunStatus::Queued, None, None, Some(req.now), req.attempt.saturating_sub(1))
        }
    }
}

/// The error recorded on the attempt itself.
pub(crate) fn attempt_error(req: &FinishRequest) -> Option<RunError> {
    match &req.finish {
        Finish::Retry(e, _) | Finish::Failed(e) | Finish::Cancelled(e) => Some(e.clone()),
        Finish::Succeeded(_) | Finish::Released | Finish::Suspended(_) => None,
    }
}
