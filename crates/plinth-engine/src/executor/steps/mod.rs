//! Step functions (`steps: true`): one attempt is a session of calls. Each call hands the
//! handler the memo of its finished steps and acts on the op it answers, storing each step
//! before the next call, until the function finishes, fails, or reaches a step that waits
//! (sleep, wait_for_event, invoke) or a step's retry: then the run leaves the worker and is
//! woken later on whichever node is free.

pub(crate) mod apply;
mod call;
pub(crate) mod spans;

use super::{AttemptEnd, AttemptEnv};
use crate::Shared;
use crate::inflight::Stop;
pub(crate) use apply::put;
use apply::{Failure, Next, step_failed};
use call::Called;
use plinth_core::steps::protocol::{self, Answer, Op, ProtocolError};
use plinth_core::steps::{Step, StepError, StepStatus, Suspension, Wait};
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, HandlerKind, RunError};
use std::sync::Arc;

fn failed(e: ProtocolError) -> AttemptEnd {
    AttemptEnd::Failed(RunError::new(e.code, e.message))
}

fn store_down(e: impl std::fmt::Display) -> AttemptEnd {
    AttemptEnd::Failed(
        RunError::new(Code::ConnectionFailed, format!("cannot read or write the run's steps: {e}")).retryable(true),
    )
}

impl From<Failure> for AttemptEnd {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Protocol(p) => failed(p),
            Failure::Store(e) => store_down(e),
        }
    }
}

/// What the memo asks for before the next call.
pub(crate) enum Pending {
    /// Nothing: call untargeted.
    None,
    /// Call these steps (planned, or a retry that is due) with `ctx.target`.
    Targets(Vec<String>),
    /// A step still waits: give the run back until then.
    Wait(Box<Suspension>),
}

/// Resolves the waits that ended (a due sleep, a wait's timeout) into `dirty`, and says what
/// the unfinished steps need.
pub(crate) fn settle(memo: &mut Vec<Step>, dirty: &mut Vec<Step>, now: i64) -> Pending {
    let mut targets = Vec::new();
    let mut later: Option<Step> = None;
    for st in memo.clone() {
        let resolved = match (st.status, st.wait.clone()) {
            (StepStatus::Waiting, Some(Wait::Sleep { until })) if until <= now => Some(st.succeed(serde_json::Value::Null, now)),
            (StepStatus::Waiting, Some(Wait::Event { timeout_at: Some(t), .. })) if t <= now => {
                Some(st.succeed(serde_json::Value::Null, now))
            }
            (StepStatus::Waiting, Some(Wait::Run { run_id, timeout_at: Some(t) })) if t <= now => {
                let message = format!("the invoked run {run_id} did not end before the step's timeout");
                Some(st.fail(StepError { message, retryable: false }, now))
            }
            (StepStatus::Retrying, Some(Wait::Retry { at })) if at <= now => {
                targets.push(st.id.clone());
                None
            }
            (StepStatus::Running, _) if st.op == "step" => {
                targets.push(st.id.clone());
                None
            }
            (StepStatus::Waiting | StepStatus::Retrying, Some(w)) => {
                if later.as_ref().is_none_or(|l| l.wait.as_ref().and_then(Wait::deadline) > w.deadline()) {
                    later = Some(st);
                }
                None
            }
            _ => None,
        };
        if let Some(r) = resolved {
            put(memo, r.clone());
            put(dirty, r);
        }
    }
    if !targets.is_empty() {
        return Pending::Targets(targets);
    }
    later.map_or(Pending::None, |step| Pending::Wait(Box::new(Suspension { step, child: None })))
}

/// Saves `dirty` (fenced by the lease); `Err` ends the attempt.
pub(crate) async fn save(shared: &Shared, run: &plinth_core::Run, dirty: &mut Vec<Step>) -> Result<(), AttemptEnd> {
    if dirty.is_empty() {
        return Ok(());
    }
    spans::finished(run, dirty);
    match shared.store.save_steps(&run.run_id, &shared.config.owner, run.attempt, std::mem::take(dirty)).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(AttemptEnd::LeaseLost),
        Err(e) => Err(store_down(e)),
    }
}

/// Saves `dirty` with the attempt's worker slot given up meanwhile (decision 0040); with
/// `back`, then takes a slot again, as the next call needs one. A write that fails ends the
/// attempt without a slot.
pub(crate) async fn save_away(
    shared: &Arc<Shared>,
    run: &plinth_core::Run,
    slot: &Stop,
    dirty: &mut Vec<Step>,
    back: bool,
) -> Result<(), AttemptEnd> {
    if dirty.is_empty() {
        return Ok(());
    }
    super::slot_freed(shared, shared.inflight.step_away(&run.run_id, slot));
    save(shared, run, dirty).await?;
    if back { slot_again(shared, run, slot).await } else { Ok(()) }
}

/// Takes a worker slot again after a step's write, waiting for one if need be; a stop from
/// outside (cancel, shutdown, lost lease) ends the wait.
pub(crate) async fn slot_again(shared: &Shared, run: &plinth_core::Run, slot: &Stop) -> Result<(), AttemptEnd> {
    let workers = usize::try_from(shared.config.workers).unwrap_or(usize::MAX);
    let Some(wait) = shared.inflight.come_back(&run.run_id, slot, workers) else { return Ok(()) };
    tokio::select! {
        // Why either answer goes on: the sender is dropped only when the admission is gone.
        _ = wait => Ok(()),
        () = slot.token().cancelled() => Err(AttemptEnd::Stopped),
    }
}

/// Runs one attempt of a step function.
pub(crate) async fn session(shared: &Arc<Shared>, handler: &HandlerKind<'_>, env: &AttemptEnv<'_>) -> AttemptEnd {
    let run = env.run;
    let mut memo = match shared.store.steps(&run.run_id).await {
        Ok(Some(m)) => m,
        Ok(None) => return AttemptEnd::LeaseLost,
        Err(e) => return store_down(e),
    };
    spans::resumed(run, &memo);
    let mut dirty = Vec::new();
    let mut calls: u64 = 0;
    let limit = u64::from(shared.config.max_step_calls);
    loop {
        if env.stop.is_cancelled() {
            return AttemptEnd::Stopped;
        }
        let now = now_micros();
        let pending = settle(&mut memo, &mut dirty, now);
        if let Err(end) = save_away(shared, run, env.slot, &mut dirty, true).await {
            return end;
        }
        let targets = match pending {
            Pending::Wait(s) => return AttemptEnd::Suspended(s),
            Pending::Targets(t) => t,
            Pending::None => Vec::new(),
        };
        calls += targets.len().max(1) as u64;
        if memo.len() as u64 + calls > limit {
            return failed(ProtocolError::new(
                Code::StepCallLimit,
                format!(
                    "the handler was called {calls} times in this attempt and the run has {} steps, over --max-step-calls {limit}",
                    memo.len()
                ),
            ));
        }
        let next = if targets.is_empty() {
            untargeted(shared, handler, env, &mut memo, &mut dirty, now).await
        } else {
            targeted(shared, handler, env, &mut memo, &mut dirty, targets).await
        };
        match next {
            Ok(None) => {}
            Ok(Some(Ok(output))) => {
                if let Err(end) = save_away(shared, run, env.slot, &mut dirty, false).await {
                    return end;
                }
                return AttemptEnd::Succeeded(output);
            }
            Ok(Some(Err(suspension))) => {
                if let Err(end) = save_away(shared, run, env.slot, &mut dirty, false).await {
                    return end;
                }
                return AttemptEnd::Suspended(suspension);
            }
            Err(end) => return end,
        }
        if let Err(end) = save_away(shared, run, env.slot, &mut dirty, true).await {
            return end;
        }
    }
}

/// What a round of calls leads to: call again (`None`), the function's output, or a suspension.
type Round = Result<Option<Result<serde_json::Value, Box<Suspension>>>, AttemptEnd>;

async fn untargeted(
    shared: &Shared,
    handler: &HandlerKind<'_>,
    env: &AttemptEnv<'_>,
    memo: &mut Vec<Step>,
    dirty: &mut Vec<Step>,
    now: i64,
) -> Round {
    let run = env.run;
    let called = now;
    let req = call::Req { memo, attempt: run.attempt, target: None };
    let ops = match call::call(shared, handler, env, req).await {
        Called::End(end) => return Err(end),
        Called::Protocol(p) => return Err(failed(p)),
        Called::Answer(Answer::Done(output)) => {
            let bytes = output.to_string().len();
            if bytes as u64 > shared.config.max_output_bytes {
                return Err(AttemptEnd::Failed(RunError::new(
                    Code::OutputTooLarge,
                    format!("the function's output is {bytes} bytes, over the limit of {}", shared.config.max_output_bytes),
                )));
            }
            return Ok(Some(Ok(output)));
        }
        Called::Answer(Answer::Ops(ops)) => ops,
    };
    let done = |id: &str| memo.iter().any(|s| s.id == id && s.status.is_done());
    protocol::check(&ops, &done, None).map_err(failed)?;
    let at = apply::At { called, answered: now_micros() };
    match apply::apply(shared, run, memo, dirty, ops, at).await.map_err(AttemptEnd::from)? {
        Next::Call => Ok(None),
        Next::Suspend(s) => Ok(Some(Err(s))),
    }
}

async fn targeted(
    shared: &Shared,
    handler: &HandlerKind<'_>,
    env: &AttemptEnv<'_>,
    memo: &mut Vec<Step>,
    dirty: &mut Vec<Step>,
    targets: Vec<String>,
) -> Round {
    let run = env.run;
    let calls = targets.iter().map(|t| {
        let attempt = memo.iter().find(|s| &s.id == t).map_or(1, |s| s.attempts + 1);
        call::call(shared, handler, env, call::Req { memo, attempt, target: Some(t) })
    });
    let answers = futures_util::future::join_all(calls).await;
    // Each targeted step keeps the start it was planned at and ends when its answer came.
    let now = now_micros();
    let mut retry: Option<Step> = None;
    for (target, answer) in targets.iter().zip(answers) {
        let ops = match answer {
            Called::End(end) => return Err(end),
            Called::Protocol(p) => return Err(failed(p)),
            Called::Answer(Answer::Done(_)) => {
                return Err(failed(ProtocolError::new(
                    Code::StepTargetMismatch,
                    format!("the call targeted step `{target}` but the handler answered that the function finished"),
                )));
            }
            Called::Answer(Answer::Ops(ops)) => ops,
        };
        let done = |id: &str| memo.iter().any(|s| s.id == id && s.status.is_done());
        protocol::check(&ops, &done, Some(target)).map_err(failed)?;
        let Some(step) = memo.iter().find(|s| &s.id == target).cloned() else { continue };
        let step = match ops.into_iter().next() {
            Some(Op::Step { output, .. }) => {
                apply::check_size(shared, memo, target, &output).map_err(failed)?;
                let mut s = step;
                s.attempts += 1;
                s.succeed(output, now)
            }
            Some(Op::StepError { error, .. }) => step_failed(shared, run, step, error, now),
            _ => continue,
        };
        if step.status == StepStatus::Retrying
            && retry
                .as_ref()
                .is_none_or(|r| r.wait.as_ref().and_then(Wait::deadline) > step.wait.as_ref().and_then(Wait::deadline))
        {
            retry = Some(step.clone());
        }
        put(memo, step.clone());
        put(dirty, step);
    }
    Ok(retry.map(|s| Err(Box::new(Suspension { step: s, child: None }))))
}
