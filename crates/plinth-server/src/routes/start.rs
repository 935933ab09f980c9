//! Starting a run from outside `POST /run`'s request body: the dashboard's form.

use crate::AppState;
use crate::problem::{ApiError, FieldError};
use plinth_core::component::Component;
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, NewRun, Run};
use plinth_store::Enqueued;
use serde_json::Value;

/// Checks `input` against function `index`'s input schema, as `POST /run` does.
///
/// # Errors
/// `PLINTH_004` with each violation's JSON pointer.
pub(crate) fn check_input(component: &Component, index: usize, input: &Value) -> Result<(), ApiError> {
    let Some(schema) = component.schemas.get(index).and_then(Option::as_ref) else { return Ok(()) };
    let violations = schema.violations(input);
    if violations.is_empty() {
        return Ok(());
    }
    let detail = violations.iter().map(|v| format!("{}: {}", v.pointer, v.message)).collect::<Vec<_>>().join("; ");
    let errors = violations.into_iter().map(|v| FieldError { pointer: v.pointer, message: v.message }).collect();
    Err(ApiError::new(Code::ValidationFailed, detail).with_errors(errors))
}

/// Starts a run of `function` with `input`, checked against its schema and under its policy,
/// as `POST /run` does without a delay or an idempotency key.
///
/// # Errors
/// `PLINTH_005` for an unknown function, `PLINTH_004` for input its schema refuses, or the
/// store's error (a full queue, a store that cannot answer).
pub async fn start_run(state: &AppState, function: &str, input: Value, correlation_id: &str) -> Result<Run, ApiError> {
    let component = state.component.get();
    let (index, spec) =
        component.function(function).ok_or_else(|| ApiError::new(Code::FunctionNotFound, format!("no function `{function}`")))?;
    check_input(&component, index, &input)?;
    let new = NewRun::of(spec, input, plinth_core::Trigger::Api, correlation_id, now_micros());
    let run = match state.store.enqueue(new).await? {
        Enqueued::Created(run) | Enqueued::Debounced(run) | Enqueued::Replayed(run) => run,
    };
    state.wake.notify_one();
    tracing::info!(run_id = %run.run_id, function = %run.function, "run started from the dashboard");
    Ok(run)
}
