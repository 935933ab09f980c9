//! One span per finished step and per wait (decision 0013), made when OpenTelemetry records the
//! attempt. A step's span is told after the fact with the times its record holds, under the
//! attempt that finished it; a wait (sleep, wait_for_event, invoke) spans the time the run was
//! away, so it sits under the run's own context, beside the attempts before and after it.

use plinth_core::Run;
use plinth_core::steps::{Step, StepStatus};
use plinth_core::trace::KeyValue;
use plinth_core::trace::{Past, emit, recording};

/// The ops that wait outside a call.
const WAITS: [&str; 3] = ["sleep", "wait_for_event", "invoke"];

/// A step's id without the `:N` a repeated name gets, so span names stay few.
fn base(id: &str) -> &str {
    match id.rsplit_once(':') {
        Some((b, n)) if n.chars().all(|c| c.is_ascii_digit()) => b,
        _ => id,
    }
}

fn past(run: &Run, step: &Step) -> Past {
    let outcome = if step.status == StepStatus::Failed { "failed" } else { "succeeded" };
    Past {
        name: format!("{} {}", step.op, base(&step.id)),
        start: step.started_at,
        end: step.finished_at.unwrap_or(step.started_at),
        attributes: vec![
            KeyValue::new("run_id", run.run_id.clone()),
            KeyValue::new("function", run.function.clone()),
            KeyValue::new("attempt", i64::from(run.attempt)),
            KeyValue::new("correlation_id", run.correlation_id.clone()),
            KeyValue::new("step_id", step.id.clone()),
            KeyValue::new("step_op", step.op.clone()),
            KeyValue::new("outcome", outcome),
        ],
        failed: step.status == StepStatus::Failed,
    }
}

/// The run's own context: the stored `traceparent`, or the one its id names.
fn root(run: &Run) -> String {
    run.traceparent.clone().unwrap_or_else(|| plinth_core::ids::traceparent(&run.run_id))
}

/// Spans for the steps of `dirty` that finished in this attempt.
pub(crate) fn finished(run: &Run, dirty: &[Step]) {
    let done = |s: &&Step| s.status.is_done() && s.finished_at.is_some();
    if !dirty.iter().any(|s| done(&s)) || !recording() {
        return;
    }
    for step in dirty.iter().filter(done) {
        let parent = WAITS.contains(&step.op.as_str()).then(|| root(run));
        emit(past(run, step), parent.as_deref());
    }
}

/// Spans for the waits the store ended while the run was away (an event matched, an invoked
/// run ended). Such a wait is the last step reached: once the run goes on past it, the handler
/// reaches a later one. (An attempt lost before reaching any would tell the wait twice.)
pub(crate) fn resumed(run: &Run, memo: &[Step]) {
    let Some(last) = memo.iter().map(|s| s.seq).max() else { return };
    let ended = |s: &&Step| s.seq == last && matches!(s.op.as_str(), "wait_for_event" | "invoke") && s.status.is_done();
    if !memo.iter().any(|s| ended(&s)) || !recording() {
        return;
    }
    let parent = root(run);
    for step in memo.iter().filter(ended) {
        emit(past(run, step), Some(&parent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_name_keeps_its_base() {
        assert_eq!(base("charge"), "charge");
        assert_eq!(base("charge:2"), "charge");
        assert_eq!(base("a:b"), "a:b");
        assert_eq!(base("x:"), "x");
    }
}
