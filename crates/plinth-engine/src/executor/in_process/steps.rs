//! Durable steps for in-process Rust handlers: `ctx.step(...)`, `ctx.sleep(...)`,
//! `ctx.wait_for_event(...)`, `ctx.invoke(...)`, `ctx.send_event(...)` with typed outputs.
//!
//! A step runs once: its result is committed to the store before the code after it runs, and
//! a later attempt replays it from the store. The handler is entered again from the top only
//! after a suspension (a sleep, a wait, an invoke, a step's retry) or a crash. The operations
//! return `HandlerError`, so `?` carries a suspension up to the engine like any failure.

use super::{HandlerContext, HandlerError};
use crate::Shared;
use crate::executor::steps::{apply, put};
use crate::inflight::Stop;
use plinth_core::steps::protocol::ProtocolError;
use plinth_core::steps::{MAX_STEP_ID, Step, StepError, StepStatus, Suspension, Wait};
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, Run};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a step operation tells the engine through a [`HandlerError`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Signal {
    /// The run leaves the worker here.
    Suspend(Box<Suspension>),
    /// The handler broke a rule of steps (the code changed, an invalid op).
    Protocol(Code, String),
    /// The lease moved to another worker: record nothing.
    Lost,
}

fn signal(s: Signal) -> HandlerError {
    let message = match &s {
        Signal::Suspend(_) => "the run waits at a step".to_string(),
        Signal::Protocol(_, m) => m.clone(),
        Signal::Lost => "the run's lease moved to another worker".to_string(),
    };
    HandlerError { message, retryable: false, signal: Some(s) }
}

fn protocol(e: ProtocolError) -> HandlerError {
    signal(Signal::Protocol(e.code, e.message))
}

/// The memo of one attempt and what the operations need to extend it.
pub(crate) struct StepState {
    shared: Arc<Shared>,
    run: Run,
    /// The admission holding the attempt's worker slot, given up while a step is written.
    slot: Stop,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for StepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepState").field("run_id", &self.run.run_id).finish_non_exhaustive()
    }
}

struct Inner {
    memo: Vec<Step>,
    /// The finished steps in the order first reached, to check the code reaches them so.
    order: Vec<String>,
    pos: usize,
    counts: HashMap<String, u32>,
}

/// What an operation finds for its step.
enum Found {
    Done(Step),
    New(Step),
}

impl StepState {
    pub(crate) fn new(shared: Arc<Shared>, run: Run, slot: Stop, memo: Vec<Step>) -> Self {
        let order = memo.iter().filter(|s| s.status.is_done()).map(|s| s.id.clone()).collect();
        Self { shared, run, slot, inner: Mutex::new(Inner { memo, order, pos: 0, counts: HashMap::new() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The step `name` (or `name:N`) reaches now, checking the stored order.
    fn reach(&self, name: &str, op: &str) -> Result<Found, HandlerError> {
        if name.is_empty() || name.len() > MAX_STEP_ID - 6 {
            return Err(protocol(ProtocolError::new(
                Code::StepInvalidOp,
                format!("a step name is 1 to {} characters", MAX_STEP_ID - 6),
            )));
        }
        let mut inner = self.lock();
        let n = inner.counts.entry(name.to_string()).or_insert(0);
        let id = if *n == 0 { name.to_string() } else { format!("{name}:{n}") };
        *n += 1;
        let existing = inner.memo.iter().find(|s| s.id == id).cloned();
        match existing {
            Some(s) if s.status.is_done() => {
                let expected = inner.order.get(inner.pos).cloned();
                if expected.as_deref() != Some(id.as_str()) {
                    return Err(order_changed(&id, expected.as_deref()));
                }
                inner.pos += 1;
                Ok(Found::Done(s))
            }
            other => {
                if let Some(stored) = inner.order.get(inner.pos) {
                    return Err(order_changed(&id, Some(stored)));
                }
                let seq = inner.memo.iter().map(|s| s.seq + 1).max().unwrap_or(0);
                Ok(Found::New(other.unwrap_or_else(|| Step::reached(&id, op, seq, now_micros()))))
            }
        }
    }

    /// Commits a step before the code after it runs, the worker slot given up meanwhile
    /// (decision 0040).
    async fn checkpoint(&self, step: Step) -> Result<(), HandlerError> {
        crate::executor::steps::spans::finished(&self.run, std::slice::from_ref(&step));
        crate::executor::slot_freed(&self.shared, self.shared.inflight.step_away(&self.run.run_id, &self.slot));
        let saved =
            self.shared.store.save_steps(&self.run.run_id, &self.shared.config.owner, self.run.attempt, vec![step.clone()]).await;
        // Why whatever the write answered: the handler's code goes on after this call (it may
        // handle a failed write), and it runs on a slot.
        if crate::executor::steps::slot_again(&self.shared, &self.run, &self.slot).await.is_err() {
            // Why: stopped from outside while it waited for a slot; the engine ends the attempt
            // as stopped when it sees the stop, so the code after the step never runs.
            std::future::pending::<()>().await;
        }
        match saved {
            Ok(true) => {
                put(&mut self.lock().memo, step);
                Ok(())
            }
            Ok(false) => Err(signal(Signal::Lost)),
            Err(e) => Err(HandlerError::retryable(format!("cannot store step `{}`: {e}", step.id))),
        }
    }
}

fn order_changed(id: &str, stored: Option<&str>) -> HandlerError {
    let message = match stored {
        Some(s) => format!("step `{id}` was reached where the stored run has `{s}`: the code changed under this run"),
        None => format!("step `{id}` was reached after every stored step"),
    };
    protocol(ProtocolError::new(Code::StepOrderChanged, message))
}

fn stored<T: DeserializeOwned>(step: &Step) -> Result<T, HandlerError> {
    if let Some(e) = &step.error {
        return Err(HandlerError::fatal(format!("step `{}` failed: {}", step.id, e.message)));
    }
    serde_json::from_value(step.output.clone().unwrap_or(Value::Null)).map_err(|e| {
        let msg = format!(
            "the stored output of step `{}` does not fit the type the code asks for now ({e}): the code changed under this run",
            step.id
        );
        protocol(ProtocolError::new(Code::StepOrderChanged, msg))
    })
}

fn suspend(mut step: Step, wait: Wait) -> HandlerError {
    step.attempts = step.attempts.max(1);
    step.status = StepStatus::Waiting;
    step.wait = Some(wait);
    signal(Signal::Suspend(Box::new(Suspension { step, child: None })))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

impl HandlerContext {
    fn state(&self) -> Result<&Arc<StepState>, HandlerError> {
        self.steps.as_ref().ok_or_else(|| {
            protocol(ProtocolError::new(
                Code::StepInvalidOp,
                format!("`{}` uses steps: declare it with `steps: true`", self.function),
            ))
        })
    }

    /// Runs `work` once for the whole run and returns its output; later attempts get the stored
    /// output back without running it. A failure is retried by the function's retry policy
    /// (the run leaves the worker until the retry is due); once its attempts are spent, or
    /// when it is not retryable, the step's error is returned here, now and on every replay.
    ///
    /// # Errors
    /// The step's failure, or a signal for the engine (carry it up with `?`).
    pub async fn step<T, F>(&self, name: &str, work: F) -> Result<T, HandlerError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, HandlerError>>,
    {
        let state = self.state()?;
        let mut step = match state.reach(name, "step")? {
            Found::Done(s) => return stored(&s),
            Found::New(s) => s,
        };
        let result = work.await;
        let now = now_micros();
        match result {
            Ok(v) => {
                let out = serde_json::to_value(&v)
                    .map_err(|e| HandlerError::fatal(format!("step `{}`: output is not JSON: {e}", step.id)))?;
                apply::check_size(&state.shared, &state.lock().memo, &step.id, &out).map_err(protocol)?;
                step.attempts += 1;
                state.checkpoint(step.succeed(out, now)).await?;
                Ok(v)
            }
            Err(e) if e.signal.is_some() => Err(e),
            Err(e) => {
                let failed = apply::step_failed(
                    &state.shared,
                    &state.run,
                    step,
                    StepError { message: e.message.clone(), retryable: e.retryable },
                    now,
                );
                if failed.status == StepStatus::Retrying {
                    return Err(signal(Signal::Suspend(Box::new(Suspension { step: failed, child: None }))));
                }
                state.checkpoint(failed).await?;
                Err(HandlerError::fatal(format!("step `{name}` failed: {}", e.message)))
            }
        }
    }

    /// Sleeps `duration` without holding a worker (the run is `waiting`, then woken on any node).
    ///
    /// # Errors
    /// A zero duration (`PLINTH_060`), or the suspension to carry up with `?`.
    pub async fn sleep(&self, name: &str, duration: Duration) -> Result<(), HandlerError> {
        let state = self.state()?;
        if duration.is_zero() {
            return Err(protocol(ProtocolError::new(
                Code::StepInvalidOp,
                format!("sleep `{name}`: the duration must be longer than 0s"),
            )));
        }
        match state.reach(name, "sleep")? {
            Found::Done(_) => Ok(()),
            Found::New(s) => Err(suspend(s, Wait::Sleep { until: now_micros() + micros(duration) })),
        }
    }

    /// Waits for an event named `event` received from now on that matches `cond` (CEL over
    /// `event` and `run`); `None` when `timeout` passes first.
    ///
    /// # Errors
    /// An invalid name or condition (`PLINTH_060`), or the suspension to carry up with `?`.
    pub async fn wait_for_event(
        &self,
        name: &str,
        event: &str,
        cond: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Option<Value>, HandlerError> {
        let state = self.state()?;
        if !plinth_core::event::is_event_name(event) {
            return Err(protocol(ProtocolError::new(
                Code::StepInvalidOp,
                format!("wait_for_event `{name}`: `{event}` is not an event name"),
            )));
        }
        if let Some(c) = cond {
            plinth_core::trigger::Expr::compile(c, &["event", "run"])
                .map_err(|e| protocol(ProtocolError::new(Code::StepInvalidOp, format!("wait_for_event `{name}`: `if`: {e}"))))?;
        }
        match state.reach(name, "wait_for_event")? {
            Found::Done(s) => Ok(stored::<Option<Value>>(&s)?.filter(|v| !v.is_null())),
            Found::New(s) => {
                let now = now_micros();
                let wait = Wait::Event {
                    event: event.to_string(),
                    cond: cond.map(str::to_string),
                    since: now,
                    timeout_at: timeout.map(|t| now + micros(t)),
                };
                Err(suspend(s, wait))
            }
        }
    }

    /// Starts a run of `function` with `input` and returns its output once it ends; its
    /// failure is this step's error.
    ///
    /// # Errors
    /// The child's failure, an unknown function or a cycle too deep, or the suspension.
    pub async fn invoke<T: DeserializeOwned>(&self, name: &str, function: &str, input: Value) -> Result<T, HandlerError> {
        let state = self.state()?;
        match state.reach(name, "invoke")? {
            Found::Done(s) => stored(&s),
            Found::New(s) => {
                let child =
                    apply::child_run(&state.shared, &state.run, function, input, now_micros()).await.map_err(|f| match f {
                        apply::Failure::Protocol(p) => protocol(p),
                        apply::Failure::Store(e) => HandlerError::retryable(e),
                    })?;
                let mut err = suspend(s, Wait::Run { run_id: child.run_id.clone(), timeout_at: None });
                if let Some(Signal::Suspend(sus)) = &mut err.signal {
                    sus.child = Some(child);
                }
                Err(err)
            }
        }
    }

    /// Sends events (one object or an array, as `POST /events` takes them) once per run;
    /// returns their ids.
    ///
    /// # Errors
    /// Invalid events (`PLINTH_060`), or the store not answering.
    pub async fn send_event(&self, name: &str, events: Value) -> Result<Vec<String>, HandlerError> {
        let state = self.state()?;
        match state.reach(name, "send_event")? {
            Found::Done(s) => Ok(stored::<Value>(&s)?["event_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()),
            Found::New(mut s) => {
                let now = now_micros();
                let ids = apply::send_events(&state.shared, &state.run, &s.id, events, now).await.map_err(|f| match f {
                    apply::Failure::Protocol(p) => protocol(p),
                    apply::Failure::Store(e) => HandlerError::retryable(e),
                })?;
                s.attempts = 1;
                state.checkpoint(s.succeed(serde_json::json!({"event_ids": ids}), now)).await?;
                Ok(ids)
            }
        }
    }
}

/// The built-in step function `flow`, driven by its input: `steps` no-op steps (default 3),
/// then a sleep of `sleep_ms` when given, then a wait for an event named `wait_event` whose
/// `data.key` equals the input's `key` when given (up to `wait_timeout_ms`, default one hour),
/// then one last step `after` that records when it ran. Returns the number of steps.
///
/// # Errors
/// As the step operations (a suspension is carried up).
pub(crate) async fn flow(ctx: HandlerContext, input: Value) -> Result<Value, HandlerError> {
    let n = input["steps"].as_u64().unwrap_or(3);
    for i in 0..n {
        ctx.step(&format!("s{i}"), async { Ok(Value::Null) }).await?;
    }
    if let Some(ms) = input["sleep_ms"].as_u64() {
        ctx.sleep("nap", Duration::from_millis(ms.max(1))).await?;
    }
    if let Some(event) = input["wait_event"].as_str() {
        let timeout = Duration::from_millis(input["wait_timeout_ms"].as_u64().unwrap_or(3_600_000));
        ctx.wait_for_event("wait", event, Some("event.data.key == run.input.key"), Some(timeout)).await?;
    }
    let at: i64 = ctx.step("after", async { Ok(now_micros()) }).await?;
    Ok(serde_json::json!({"steps": n, "after_at": at}))
}
