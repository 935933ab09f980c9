//! `GET /runs/{id}/steps` and `POST /runs/{id}/rerun`.

use super::Correlation;
use super::bodies::Accepted;
use super::runs::{not_found, run_id};
use crate::AppState;
use crate::body::json_body;
use crate::problem::{ApiError, FieldError, PROBLEM, Problem};
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use plinth_core::steps::{Step, for_listing};
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, NewRun, Trigger};
use plinth_store::Enqueued;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// A run's steps, in the order they were first reached.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunSteps {
    /// The run.
    run_id: String,
    /// Its steps; an output longer than 64 KiB is cut, with `truncated` set.
    steps: Vec<Step>,
}

/// `POST /runs/{id}/rerun`'s body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RerunRequest {
    /// Keep the stored steps reached before this one, and run from it.
    #[serde(default)]
    from_step: Option<String>,
}

/// A run's steps.
///
/// Each step's op, status, attempts, times, and its output or error. Works for any run; a run of
/// a function without steps has none.
#[utoipa::path(get, path = "/runs/{id}/steps", operation_id = "get_run_steps", tag = "runs",
    params(("id" = String, Path, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The run's id.")),
    responses(
        (status = 200, description = "The run's steps.", body = RunSteps),
        (status = 404, description = "No run has this id (`PLINTH_006`).", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The run store cannot be used now (`PLINTH_002`).", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn steps(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = run_id(path)?;
    let steps = state.store.steps(&id).await?.ok_or_else(|| not_found(&id))?;
    let steps = steps.into_iter().map(for_listing).collect();
    Ok(Json(RunSteps { run_id: id, steps }).into_response())
}

fn refuse(message: String) -> ApiError {
    ApiError::new(Code::RerunRefused, message)
        .with_errors(vec![FieldError { pointer: "/from_step".into(), message: "not a step of this run".into() }])
}

/// Reruns a run.
///
/// A new run of the same function with the same input (`trigger.type` `rerun`). With
/// `{"from_step": ID}` (step functions only), the new run starts with the original's steps
/// reached before that step, and runs from it. The original must have ended.
#[utoipa::path(post, path = "/runs/{id}/rerun", operation_id = "rerun_run", tag = "runs",
    params(("id" = String, Path, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The run to repeat.")),
    request_body(content = Option<RerunRequest>, content_type = "application/json",
        description = "Optional: the step to rerun from."),
    responses(
        (status = 202, description = "The new run is accepted.", body = Accepted,
            headers(("Location" = String, description = "`/runs/{run_id}` of the new run."))),
        (status = 400, description = "The body is not JSON (`PLINTH_003`).", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No run has this id (`PLINTH_006`), or its function is gone (`PLINTH_005`).",
            body = Problem, content_type = PROBLEM),
        (status = 409, description = "The run has not ended yet (`PLINTH_018`).", body = Problem, content_type = PROBLEM),
        (status = 413, description = "The body is over the limit (`PLINTH_007`).", body = Problem, content_type = PROBLEM),
        (status = 415, description = "The body is not sent as JSON (`PLINTH_008`).", body = Problem, content_type = PROBLEM),
        (status = 422, description = "A field is invalid (`PLINTH_004`), or `from_step` names no step of the run or \
            the function has no steps (`PLINTH_019`).", body = Problem, content_type = PROBLEM),
        (status = 429, description = "The function's queue is full (`PLINTH_040`).", body = Problem, content_type = PROBLEM,
            headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 503, description = "The run store cannot be used now (`PLINTH_002`).", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn rerun(
    State(state): State<Arc<AppState>>,
    Extension(Correlation(correlation_id)): Extension<Correlation>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = run_id(path)?;
    let empty = body.as_ref().is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace));
    let req: RerunRequest = if empty {
        RerunRequest::default()
    } else {
        let value = json_body(&headers, body, state.body_limit)?;
        serde_json::from_value(value).map_err(|e| {
            ApiError::new(Code::ValidationFailed, format!("invalid rerun request: {e}"))
                .with_errors(vec![FieldError { pointer: "/from_step".into(), message: e.to_string() }])
        })?
    };
    let run = rerun_run(&state, &id, req.from_step.as_deref(), &correlation_id).await?;
    Ok(super::runs::accepted(run))
}

/// Starts run `id` again as a new run with the same input, as `POST /runs/{id}/rerun` and the
/// dashboard do it: from the start, or from step `from_step` (the steps before it kept).
///
/// # Errors
/// An unknown or unfinished run, a function the component lost, a step it does not have.
pub async fn rerun_run(
    state: &AppState,
    id: &str,
    from_step: Option<&str>,
    correlation_id: &str,
) -> Result<plinth_core::Run, ApiError> {
    let original = state.store.get(id, false).await?.ok_or_else(|| not_found(id))?;
    if !original.status.is_terminal() {
        return Err(ApiError::new(
            Code::RunNotFinished,
            format!("run {id} is still {}; wait for it to end or cancel it first", original.status.as_str()),
        ));
    }
    let component = state.component.get();
    let (_, spec) = component.function(&original.function).ok_or_else(|| {
        ApiError::new(
            Code::FunctionNotFound,
            format!("run {id} ran function `{}`, which this component no longer has", original.function),
        )
    })?;
    let keep = match from_step {
        None => Vec::new(),
        Some(_) if !spec.steps => {
            return Err(refuse(format!(
                "function `{}` is not a step function (`steps: true`): rerun it without `from_step`",
                spec.name
            )));
        }
        Some(from) => {
            let steps = state.store.steps(id).await?.ok_or_else(|| not_found(id))?;
            let Some(at) = steps.iter().find(|s| s.id == from).map(|s| s.seq) else {
                let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
                let known = if ids.is_empty() { "it has none".to_string() } else { format!("it has {}", ids.join(", ")) };
                return Err(refuse(format!("run {id} has no step `{from}`; {known}")));
            };
            steps.into_iter().filter(|s| s.seq < at && s.status.is_done()).collect()
        }
    };
    let now = now_micros();
    let mut new = NewRun::of(spec, original.input, Trigger::Rerun { of: id.to_string() }, correlation_id, now);
    new.priority = original.priority;
    // Why: a rerun repeats the same work; it stays in the trace the original was accepted in.
    new.traceparent = original.traceparent;
    new.tracestate = original.tracestate;
    let run = if keep.is_empty() {
        match state.store.enqueue(new).await? {
            Enqueued::Created(r) | Enqueued::Replayed(r) | Enqueued::Debounced(r) => r,
        }
    } else {
        state.store.enqueue_with_steps(new, keep).await?
    };
    state.wake.notify_one();
    tracing::info!(run_id = %run.run_id, of = %id, from_step = from_step.unwrap_or(""), "rerun accepted");
    Ok(run)
}
