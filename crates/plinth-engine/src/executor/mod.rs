//! Executing one attempt, and recording how it ended.

pub mod command;
pub(crate) mod http;
pub mod in_process;
mod logsink;
mod steps;

use crate::inflight::{Stop, StopReason};
use crate::{EngineConfig, Shared};
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, Finish, HandlerKind, Run, RunError};
use plinth_store::{FinishRequest, Store, cancelled_error};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What an attempt needs from its surroundings.
pub(crate) struct AttemptEnv<'a> {
    pub(crate) run: &'a Run,
    pub(crate) store: &'a Arc<dyn Store>,
    pub(crate) config: &'a EngineConfig,
    pub(crate) base_dir: &'a Path,
    pub(crate) timeout: Duration,
    pub(crate) stop: &'a CancellationToken,
    /// The admission holding the attempt's worker slot.
    pub(crate) slot: &'a Stop,
    /// The number of the attempt's next log line: each call of a step function's session
    /// adds its lines after the last call's.
    pub(crate) log_seq: Arc<std::sync::atomic::AtomicU32>,
}

/// How the handler's attempt ended, before policy is applied.
#[derive(Debug, PartialEq)]
pub(crate) enum AttemptEnd {
    Succeeded(Value),
    Failed(RunError),
    /// Stopped from outside (cancel, shutdown, lost lease): the stop's reason says which.
    Stopped,
    /// A step function reached a step boundary where the run leaves the worker.
    Suspended(Box<plinth_core::steps::Suspension>),
    /// A write found the lease moved to another worker: record nothing.
    LeaseLost,
}

/// Runs the attempt as a task of its own.
pub(crate) fn spawn(shared: Arc<Shared>, run: Run, stop: Stop) {
    tokio::spawn(execute(shared, run, stop));
}

/// Executes one claimed attempt to its end and records it. Runs as its own task.
pub(crate) async fn execute(shared: Arc<Shared>, run: Run, stop: Stop) {
    let span = tracing::info_span!(
        "attempt",
        run_id = %run.run_id,
        function = %run.function,
        attempt = i64::from(run.attempt),
        correlation_id = %run.correlation_id,
        otel.name = %format_args!("process {}", run.function),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    // Why: every attempt, on any node, continues the trace the run was accepted in (or the one
    // its run id names), so one trace holds the request, each attempt and each handler call.
    let parent = run.traceparent.clone().unwrap_or_else(|| plinth_core::ids::traceparent(&run.run_id));
    plinth_core::trace::continue_with(&span, Some(&parent), run.tracestate.as_deref());
    plinth_core::trace::record_ids(&span, Some(&parent));
    async {
        shared.metrics.in_flight(&run.function, 1);
        let started = Instant::now();
        // Why: a run that waited here for a slot may have been cancelled, lost or released
        // meanwhile; its handler must not start.
        let end = if stop.token().is_cancelled() {
            AttemptEnd::Stopped
        } else {
            tracing::info!("attempt started");
            handle(&shared, &run, &stop).await
        };
        slot_freed(&shared, shared.inflight.handler_done(&run.run_id, &stop));
        let duration = started.elapsed();
        let finish = decide(&shared, &run, end, stop.reason());
        shared.metrics.in_flight(&run.function, -1);
        if let Some(f) = &finish {
            let current = tracing::Span::current();
            current.record("outcome", f.outcome());
            if let plinth_core::Finish::Retry(e, _) | plinth_core::Finish::Failed(e) | plinth_core::Finish::Cancelled(e) = f {
                current.record("error_code", e.code.as_str());
                current.record("otel.status_code", "ERROR");
            }
        }
        match finish {
            Some(finish) => record(&shared, &run, finish, duration).await,
            None => tracing::warn!("lease lost during the attempt; another worker owns the run now"),
        }
        // Why: a node full of ends being written claims nothing (`Load::full`); the dispatcher,
        // if it waits for room, is told there is some.
        if shared.inflight.remove(&run.run_id, &stop) && shared.slot_wanted.load(std::sync::atomic::Ordering::SeqCst) {
            shared.wake.notify_one();
        }
        // Why: a run of a function with a `concurrency` limit frees its lane once its end is
        // written; runs of that lane the last claim left due may start now. When that claim
        // found none due, a run queued since has woken the dispatcher on its own.
        if run.flow_key.is_some() && shared.lanes_due.load(std::sync::atomic::Ordering::SeqCst) {
            shared.wake.notify_one();
        }
    }
    .instrument(span)
    .await;
}

/// Starts the run a freed slot went to, if any; otherwise tells the dispatcher, when it waits
/// for a slot, that one is free.
pub(crate) fn slot_freed(shared: &Arc<Shared>, next: Option<(Run, Stop)>) {
    if let Some((next, stop)) = next {
        spawn(shared.clone(), next, stop);
    } else if shared.slot_wanted.load(std::sync::atomic::Ordering::SeqCst) {
        shared.wake.notify_one();
    }
}

/// Gives back to the queue a run that waited on this node for a slot too long, its attempt not
/// counted (a run cancelled meanwhile ends cancelled); then any node may start it.
pub(crate) async fn give_back(shared: &Shared, run: Run, stop: &Stop) {
    let reason = match stop.reason() {
        StopReason::None => StopReason::Release,
        other => other,
    };
    let span =
        tracing::info_span!("attempt", run_id = %run.run_id, function = %run.function, correlation_id = %run.correlation_id);
    async {
        match decide(shared, &run, AttemptEnd::Stopped, reason) {
            Some(finish) => record(shared, &run, finish, Duration::ZERO).await,
            None => tracing::warn!("lease lost while the run waited for a slot; another worker owns the run now"),
        }
    }
    .instrument(span)
    .await;
    shared.inflight.remove(&run.run_id, stop);
}

async fn handle(shared: &Arc<Shared>, run: &Run, stop: &Stop) -> AttemptEnd {
    let component = shared.component.get();
    let Some((_, spec)) = component.function(&run.function) else {
        let msg = format!("this node's component has no function `{}`", run.function);
        return AttemptEnd::Failed(RunError::new(Code::FunctionNotFound, msg).retryable(true));
    };
    let timeout = spec.policy.timeout.get();
    let env = AttemptEnv {
        run,
        store: &shared.store,
        config: &shared.config,
        base_dir: &component.base_dir,
        timeout,
        stop: stop.token(),
        slot: stop,
        log_seq: Arc::default(),
    };
    if spec.steps
        && let Some(handler @ (HandlerKind::Command(_) | HandlerKind::Http(_) | HandlerKind::Inngest(_))) = spec.handler.get()
    {
        return steps::session(shared, &handler, &env).await;
    }
    match spec.handler.get() {
        Some(HandlerKind::Command(cmd)) => command::run(cmd, &env, &run.input).await,
        Some(HandlerKind::Http(_)) => shared.http.run(&env).await,
        Some(HandlerKind::Rust(name)) => {
            let Some(handler) = shared.handlers.get(name) else {
                let msg = format!("no in-process handler is registered as `{name}`");
                return AttemptEnd::Failed(RunError::new(Code::HandlerNotStarted, msg));
            };
            in_process_attempt(shared, run, stop, handler, spec.steps, timeout).await
        }
        // Why: validation gives every Inngest function `steps: true`; one without is not called.
        Some(HandlerKind::Inngest(_)) | None => {
            AttemptEnd::Failed(RunError::new(Code::HandlerNotStarted, "the function has no valid handler"))
        }
    }
}

/// One attempt of an in-process handler; with `steps`, its memo is loaded first and a step
/// operation's signal (a suspension, a protocol error, a lost lease) ends the attempt as such.
async fn in_process_attempt(
    shared: &Arc<Shared>,
    run: &Run,
    stop: &Stop,
    handler: Arc<dyn in_process::Handler>,
    with_steps: bool,
    timeout: Duration,
) -> AttemptEnd {
    let state = if with_steps {
        match in_process_memo(shared, run).await {
            Ok(memo) => {
                steps::spans::resumed(run, &memo);
                Some(Arc::new(in_process::StepState::new(shared.clone(), run.clone(), stop.clone(), memo)))
            }
            Err(end) => return end,
        }
    } else {
        None
    };
    // Why: a child token also tells the handler's own tasks to stop on timeout,
    // without marking the attempt as stopped from outside.
    let cancel = stop.token().child_token();
    let ctx = in_process::HandlerContext {
        run_id: run.run_id.clone(),
        function: run.function.clone(),
        attempt: run.attempt,
        correlation_id: run.correlation_id.clone(),
        cancel: cancel.clone(),
        steps: state,
    };
    let fut = handler.call(ctx, run.input.clone());
    tokio::select! {
        r = tokio::time::timeout(timeout, fut) => match r {
            Ok(Ok(v)) => AttemptEnd::Succeeded(v),
            Ok(Err(e)) => match e.signal {
                Some(in_process::Signal::Suspend(s)) => AttemptEnd::Suspended(s),
                Some(in_process::Signal::Protocol(code, message)) => AttemptEnd::Failed(RunError::new(code, message)),
                Some(in_process::Signal::Lost) => AttemptEnd::LeaseLost,
                None => AttemptEnd::Failed(RunError::new(Code::HandlerFailed, e.message).retryable(e.retryable)),
            },
            Err(_) => {
                cancel.cancel();
                AttemptEnd::Failed(RunError::new(
                    Code::HandlerTimeout,
                    format!("the handler did not finish within {}", plinth_core::DurationSpec(timeout)),
                ))
            }
        },
        () = stop.token().cancelled() => AttemptEnd::Stopped,
    }
}

/// The memo an in-process step function starts from: waits that ended are resolved and
/// stored; a wait still running gives the run back (`Err`).
async fn in_process_memo(shared: &Shared, run: &Run) -> Result<Vec<plinth_core::steps::Step>, AttemptEnd> {
    let mut memo = match shared.store.steps(&run.run_id).await {
        Ok(Some(m)) => m,
        Ok(None) => return Err(AttemptEnd::LeaseLost),
        Err(e) => return Err(AttemptEnd::Failed(RunError::new(Code::ConnectionFailed, e.to_string()).retryable(true))),
    };
    if memo.len() as u64 >= u64::from(shared.config.max_step_calls) {
        let msg =
            format!("the run has {} steps, as many as --max-step-calls {} allows", memo.len(), shared.config.max_step_calls);
        return Err(AttemptEnd::Failed(RunError::new(Code::StepCallLimit, msg)));
    }
    let mut dirty = Vec::new();
    let pending = steps::settle(&mut memo, &mut dirty, now_micros());
    steps::save(shared, run, &mut dirty).await?;
    match pending {
        steps::Pending::Wait(s) => Err(AttemptEnd::Suspended(s)),
        steps::Pending::Targets(_) | steps::Pending::None => Ok(memo),
    }
}

/// Applies the policy: what the store should record, or nothing when our lease is lost.
fn decide(shared: &Shared, run: &Run, end: AttemptEnd, reason: StopReason) -> Option<Finish> {
    match end {
        AttemptEnd::Succeeded(v) => Some(Finish::Succeeded(v)),
        AttemptEnd::Suspended(s) => Some(Finish::Suspended(s)),
        AttemptEnd::LeaseLost => None,
        AttemptEnd::Stopped => match reason {
            StopReason::Cancel => Some(Finish::Cancelled(cancelled_error())),
            StopReason::Lost => None,
            StopReason::Release | StopReason::None => Some(Finish::Released),
        },
        AttemptEnd::Failed(e) if e.retryable && run.attempt < run.max_attempts => {
            let backoff = shared
                .component
                .get()
                .function(&run.function)
                .map(|(_, f)| f.policy.retries.backoff.delay(run.attempt, fastrand_unit()))
                .unwrap_or_default();
            let now = now_micros();
            // Why: a handler that said when to try again (Retry-After) knows better than the policy.
            let at = e
                .retry_at
                .filter(|t| *t > now)
                .unwrap_or_else(|| now + i64::try_from(backoff.as_micros()).unwrap_or(i64::MAX / 2));
            Some(Finish::Retry(e, at))
        }
        AttemptEnd::Failed(e) => Some(Finish::Failed(e)),
    }
}

pub(crate) fn fastrand_unit() -> f64 {
    // Why: jitter needs no cryptographic quality; the nanoseconds of the clock are enough
    // entropy to spread retries of runs that failed together.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

async fn record(shared: &Shared, run: &Run, finish: Finish, duration: Duration) {
    let outcome = finish.outcome();
    match &finish {
        Finish::Succeeded(_) => tracing::info!(outcome, duration_ms = duration.as_millis() as u64, "attempt succeeded"),
        Finish::Retry(e, at) => {
            tracing::warn!(outcome, code = %e.code, error = %e.message, retry_at = %plinth_core::timefmt::rfc3339(*at), "attempt failed; will retry")
        }
        Finish::Failed(e) => tracing::warn!(outcome, code = %e.code, error = %e.message, "run failed"),
        Finish::Cancelled(_) => tracing::info!(outcome, "run cancelled"),
        Finish::Released if shared.no_claims.is_cancelled() => tracing::info!(outcome, "attempt released at shutdown"),
        Finish::Released => tracing::info!(outcome, "run given back to the queue: it waited too long for a slot on this node"),
        Finish::Suspended(s) => match s.step.wait.as_ref().and_then(|w| w.waiting_for(&s.step.id)) {
            Some(w) => tracing::info!(outcome, step = %s.step.id, kind = %w.kind, "the run waits"),
            None => tracing::info!(outcome, step = %s.step.id, "a step failed; it is retried later"),
        },
    }
    if let Finish::Retry(e, _) | Finish::Failed(e) = &finish {
        let name = Code::parse(&e.code).map_or("HandlerFailed", |c| c.entry().name);
        shared.metrics.error(name);
    }
    // Why: a suspension is not an end of the run; `plinth_runs_total` counts ends only.
    if !matches!(finish, Finish::Suspended(_)) {
        shared.metrics.run_finished(&run.function, outcome, duration.as_secs_f64());
    }
    let req = FinishRequest {
        run_id: run.run_id.clone(),
        owner: shared.config.owner.clone(),
        attempt: run.attempt,
        finish,
        now: now_micros(),
        duration,
    };
    // Why: a finished attempt must not be lost to a database outage. The attempt stays in
    // flight (its lease renewed whenever the database answers) and its end is retried until
    // the database is back; the write is fenced by owner and attempt, so it cannot overwrite
    // a run the rescuer gave to another worker meanwhile.
    let mut pause = Duration::from_millis(50);
    let mut failures = 0u32;
    loop {
        match shared.store.finish(req.clone()).await {
            Ok(true) => {
                if failures > 0 {
                    tracing::info!(retries = failures, "the attempt's end is recorded now that the database answers");
                }
                return;
            }
            Ok(false) => {
                tracing::warn!("the attempt's end was not recorded: the lease had moved to another worker");
                return;
            }
            Err(e) => {
                failures += 1;
                // Why: one line per attempt at first, then one every ~20 retries, so an
                // outage with many finished attempts does not flood the log.
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, retries = failures, "cannot record the attempt's end yet; retrying until the database answers");
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shared.stop.cancelled() => {
                        tracing::error!(error = %e, "stopping before the attempt's end could be recorded; the rescuer will take the run back");
                        return;
                    }
                }
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}
