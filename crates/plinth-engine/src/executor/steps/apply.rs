//! What Plinth does with an answer's ops: stores finished steps, plans parallel ones, retries
//! failed ones by the function's policy, and turns sleep, wait_for_event and invoke into a
//! suspension; send_event is done at once.

use crate::Shared;
use plinth_core::steps::protocol::{Op, ProtocolError};
use plinth_core::steps::{MAX_INVOKE_DEPTH, Step, StepError, StepStatus, Suspension, Wait};
use plinth_core::{Code, NewRun, Run, Trigger};
use plinth_store::NewEvent;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Where the session goes after an answer.
pub(crate) enum Next {
    /// Call again (the planned steps, each with `ctx.target`, or the handler from the top).
    Call,
    /// End the call session at a step boundary.
    Suspend(Box<Suspension>),
}

/// A failure to act on an answer: a protocol error, or the store not answering.
pub(crate) enum Failure {
    Protocol(ProtocolError),
    Store(String),
}

impl From<ProtocolError> for Failure {
    fn from(e: ProtocolError) -> Self {
        Failure::Protocol(e)
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

/// The memo's step `id`, or a new one reached now.
fn take(memo: &[Step], id: &str, op: &str, now: i64) -> Step {
    memo.iter().find(|s| s.id == id).cloned().unwrap_or_else(|| {
        let seq = memo.iter().map(|s| s.seq + 1).max().unwrap_or(0);
        Step::reached(id, op, seq, now)
    })
}

/// Puts `step` into the memo, replacing the one with its id.
pub(crate) fn put(memo: &mut Vec<Step>, step: Step) {
    match memo.iter_mut().find(|s| s.id == step.id) {
        Some(slot) => *slot = step,
        None => memo.push(step),
    }
}

fn too_large(what: &str, bytes: usize, limit: u64) -> ProtocolError {
    ProtocolError::new(Code::StepTooLarge, format!("{what} is {bytes} bytes, over the limit of {limit} bytes"))
}

/// Checks a step's output against the output limit and the memo against the memo limit.
pub(crate) fn check_size(shared: &Shared, memo: &[Step], id: &str, output: &Value) -> Result<(), ProtocolError> {
    let bytes = output.to_string().len();
    if bytes as u64 > shared.config.max_output_bytes {
        return Err(too_large(&format!("the output of step `{id}`"), bytes, shared.config.max_output_bytes));
    }
    let total = plinth_core::steps::envelope::memo_bytes(memo) + bytes;
    if total as u64 > shared.config.max_memo_bytes {
        return Err(too_large("the run's memo with this step", total, shared.config.max_memo_bytes));
    }
    Ok(())
}

/// A step's failure in this call: retried by the policy while attempts remain and it is
/// retryable, else stored as its error.
pub(crate) fn step_failed(shared: &Shared, run: &Run, mut step: Step, error: StepError, now: i64) -> Step {
    step.attempts += 1;
    if error.retryable && step.attempts < run.max_attempts {
        let backoff = shared
            .component
            .get()
            .function(&run.function)
            .map(|(_, f)| f.policy.retries.backoff.delay(step.attempts, super::super::fastrand_unit()))
            .unwrap_or_default();
        step.status = StepStatus::Retrying;
        step.error = Some(error);
        step.wait = Some(Wait::Retry { at: now + micros(backoff) });
        return step;
    }
    step.fail(error, now)
}

/// When a call was made and when its answer came: a step reached in the call started at the
/// first, and finishes (or starts waiting) at the second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    pub(crate) called: i64,
    pub(crate) answered: i64,
}

/// Acts on an untargeted answer's ops (already checked), in order. Finished steps go into
/// `memo` and `dirty` (to be saved); a suspension's step is returned instead.
pub(crate) async fn apply(
    shared: &Shared,
    run: &Run,
    memo: &mut Vec<Step>,
    dirty: &mut Vec<Step>,
    ops: Vec<Op>,
    at: At,
) -> Result<Next, Failure> {
    let now = at.answered;
    let take = |memo: &[Step], id: &str, op: &str| take(memo, id, op, at.called);
    for op in ops {
        let id = op.id().to_string();
        let step = match op {
            Op::Step { output, .. } => {
                check_size(shared, memo, &id, &output)?;
                let mut s = take(memo, &id, "step");
                s.attempts += 1;
                s.succeed(output, now)
            }
            Op::StepError { error, .. } => {
                let s = step_failed(shared, run, take(memo, &id, "step"), error, now);
                if s.status == StepStatus::Retrying {
                    return Ok(Next::Suspend(Box::new(Suspension { step: s, child: None })));
                }
                s
            }
            Op::Plan { .. } => {
                let mut s = take(memo, &id, "step");
                s.status = StepStatus::Running;
                s
            }
            Op::Sleep { until, .. } => {
                let mut s = take(memo, &id, "sleep");
                if until <= now {
                    s.attempts = 1;
                    s.succeed(Value::Null, now)
                } else {
                    return Ok(Next::Suspend(Box::new(waiting(s, Wait::Sleep { until }))));
                }
            }
            Op::WaitForEvent { event, cond, timeout, .. } => {
                let wait = Wait::Event { event, cond, since: now, timeout_at: timeout.map(|t| now + micros(t)) };
                return Ok(Next::Suspend(Box::new(waiting(take(memo, &id, "wait_for_event"), wait))));
            }
            Op::Invoke { function, input, timeout, .. } => {
                let child = child_run(shared, run, &function, input, now).await?;
                let wait = Wait::Run { run_id: child.run_id.clone(), timeout_at: timeout.map(|t| now + micros(t)) };
                let mut s = waiting(take(memo, &id, "invoke"), wait);
                s.child = Some(child);
                return Ok(Next::Suspend(Box::new(s)));
            }
            Op::SendEvent { events, .. } => {
                let ids = send_events(shared, run, &id, events, now).await?;
                let mut s = take(memo, &id, "send_event");
                s.attempts = 1;
                s.succeed(json!({"event_ids": ids}), now)
            }
        };
        put(memo, step.clone());
        put(dirty, step);
    }
    Ok(Next::Call)
}

fn waiting(mut step: Step, wait: Wait) -> Suspension {
    step.attempts = step.attempts.max(1);
    step.status = StepStatus::Waiting;
    step.wait = Some(wait);
    Suspension { step, child: None }
}

/// The child run an `invoke` starts: the function must exist, its input match its schema, and
/// the chain of invoking runs stay within [`MAX_INVOKE_DEPTH`].
pub(crate) async fn child_run(shared: &Shared, run: &Run, function: &str, input: Value, now: i64) -> Result<NewRun, Failure> {
    let component = shared.component.get();
    let Some((index, spec)) = component.function(function) else {
        let names: Vec<&str> = component.file.functions.iter().map(|f| f.name.as_str()).collect();
        return Err(ProtocolError::new(
            Code::InvokeUnknownFunction,
            format!("`invoke` names function `{function}`, which this component does not have; it has {}", names.join(", ")),
        )
        .into());
    };
    if let Some(Some(schema)) = component.schemas.get(index) {
        let problems = schema.violations(&input);
        if let Some(first) = problems.first() {
            return Err(ProtocolError::new(
                Code::InvokeUnknownFunction,
                format!("the input of `invoke {function}` does not match its schema: {}: {}", first.pointer, first.message),
            )
            .into());
        }
    }
    let mut depth = 1;
    let mut parent = run.trigger.clone();
    while let Trigger::Invoke { parent_run_id } = parent {
        depth += 1;
        if depth > MAX_INVOKE_DEPTH {
            return Err(ProtocolError::new(
                Code::InvokeTooDeep,
                format!("runs invoke runs more than {MAX_INVOKE_DEPTH} levels deep (this run's chain ends at {parent_run_id})"),
            )
            .into());
        }
        parent = match shared.store.get(&parent_run_id, false).await {
            Ok(Some(p)) => p.trigger,
            Ok(None) => break,
            Err(e) => return Err(Failure::Store(e.to_string())),
        };
    }
    let trigger = Trigger::Invoke { parent_run_id: run.run_id.clone() };
    let mut child = NewRun::of(spec, input, trigger, &run.correlation_id, now);
    child.max_queued = None;
    // Why: the invoked run continues its parent's trace, whichever the parent is in.
    child.traceparent = Some(plinth_core::trace::for_handler(&run.run_id, run.traceparent.as_deref()));
    child.tracestate = plinth_core::trace::state_for_handler(run.tracestate.as_deref());
    Ok(child)
}

/// Stores a `send_event` op's events with ids derived from the run and step, so a repeat of
/// the op (a crash before its step was stored) sends nothing twice.
pub(crate) async fn send_events(
    shared: &Shared,
    run: &Run,
    step_id: &str,
    events: Value,
    now: i64,
) -> Result<Vec<String>, Failure> {
    let base = plinth_core::ids::fingerprint(&format!("{}/{step_id}", run.run_id));
    let mut n = 0;
    let parsed = plinth_core::event::parse_events(events, now, || {
        n += 1;
        format!("{}-{base}-{n}", run.run_id)
    })
    .map_err(|problems| {
        let text: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.pointer, p.message)).collect();
        ProtocolError::new(Code::StepInvalidOp, format!("`send_event` `{step_id}`: {}", text.join("; ")))
    })?;
    // Why: the runs its events start continue the sending run's trace.
    let trace = plinth_core::trace::Carried {
        parent: Some(plinth_core::trace::for_handler(&run.run_id, run.traceparent.as_deref())),
        state: plinth_core::trace::state_for_handler(run.tracestate.as_deref()),
    };
    let planned: Vec<NewEvent> = parsed
        .into_iter()
        .map(|e| NewEvent::planned(&shared.component.get(), e, &run.correlation_id, now).traced(&trace))
        .collect();
    let window = micros(shared.config.event_dedup_window);
    // Why a starter: the runs the events start begin on this node while it has room (decision
    // 0035), as those of `POST /events` do.
    let starter = shared.me.upgrade().map(|s| Arc::new(crate::starter::EngineStarter(s)) as Arc<dyn plinth_store::Starter>);
    let stored = plinth_store::ingest_starting(shared.store.clone(), starter, planned, now - window, now)
        .await
        .map_err(|e| Failure::Store(e.to_string()))?;
    if stored.queued {
        shared.wake.notify_one();
    }
    Ok(stored.ingested.into_iter().map(|i| i.event_id).collect())
}
