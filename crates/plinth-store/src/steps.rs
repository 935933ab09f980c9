//! What every backend does the same way for step functions: how a wait is stored, whether an
//! event ends a wait, and what an invoked run's end gives its parent's step.

use plinth_core::steps::{Step, StepError, Wait};
use plinth_core::trigger::Expr;
use plinth_core::{Event, Run, RunStatus};
use serde_json::{Value, json};

/// Far enough in the future to mean "never": a wait without a timeout is due then.
pub const FOREVER: i64 = i64::MAX / 4;

/// How far an event's stored key (made from the clock of the node that stored it) may lag its
/// `received_at`: a wait looks this much further back by key, then filters by `received_at`.
pub(crate) const CLOCK_SLACK: i64 = 60_000_000;

/// The wait as stored JSON.
pub(crate) fn wait_text(step: &Step) -> Option<String> {
    step.wait.as_ref().and_then(|w| serde_json::to_string(w).ok())
}

/// The stored JSON back as a wait.
pub(crate) fn parse_wait(text: Option<&str>) -> Option<Wait> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// The run as a wait's `if` sees it: `{"run_id","function","input"}`.
pub(crate) fn run_var(run_id: &str, function: &str, input: &Value) -> Value {
    json!({"run_id": run_id, "function": function, "input": input})
}

/// Whether `event` ends `wait` of the run `run` (see [`run_var`]). A condition that fails to
/// evaluate counts as no match and is logged at warn.
pub(crate) fn event_matches(wait: &Wait, event: &Event, run: &Value) -> bool {
    let Wait::Event { cond, .. } = wait else { return false };
    let compiled = cond.as_deref().map(|c| Expr::compile(c, &["event", "run"]));
    matches_compiled(wait, event, run, compiled.as_ref())
}

/// [`event_matches`] with the wait's condition compiled once by the caller (`None` when the
/// wait has no condition), for a group of waits that share it.
pub(crate) fn matches_compiled(wait: &Wait, event: &Event, run: &Value, cond: Option<&Result<Expr, String>>) -> bool {
    let Wait::Event { event: name, since, .. } = wait else { return false };
    if *name != event.name || event.received_at < *since {
        return false;
    }
    let Some(compiled) = cond else { return true };
    let result = compiled.as_ref().map_err(Clone::clone).and_then(|e| e.eval_bool(&[("event", &event.as_input()), ("run", run)]));
    match result {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(event_id = %event.id, run_id = %run["run_id"], error = %e, "a wait_for_event condition failed; no match");
            false
        }
    }
}

/// The parent's step once its invoked run `child` ended.
pub(crate) fn child_result(step: Step, child: &Run, now: i64) -> Step {
    match child.status {
        RunStatus::Succeeded => step.succeed(child.output.clone().unwrap_or(Value::Null), now),
        _ => {
            let why =
                child.error.as_ref().map_or_else(|| child.status.as_str().to_string(), |e| format!("{}: {}", e.code, e.message));
            let message =
                format!("the invoked run {} of `{}` ended {}: {why}", child.run_id, child.function, child.status.as_str());
            step.fail(StepError { message, retryable: false }, now)
        }
    }
}

/// A waiting step of a cancelled run: failed, so the listing does not show it waiting.
pub(crate) fn cancelled_step(step: Step, now: i64) -> Step {
    if step.status.is_done() {
        return step;
    }
    step.fail(StepError { message: "the run was cancelled".into(), retryable: false }, now)
}
