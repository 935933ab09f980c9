//! `POST /run`, `GET /runs`, `GET /runs/{id}`, `POST /runs/{id}/cancel`, `GET /runs/{id}/logs`.

use super::bodies::{Accepted, LogLine, RunLogs, RunPage, sorted};
use super::request::{self, RunRequest};
use super::{Correlation, page_cursor, page_limit, query_error};
use crate::AppState;
use crate::body::json_body;
use crate::problem::{ApiError, FieldError, PROBLEM, Problem};
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_core::timefmt::{now_micros, parse_rfc3339, rfc3339};
use plinth_core::{Code, NewRun, Run, RunStatus};
use plinth_store::{CancelOutcome, Enqueued, ListFilter};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The longest `?wait=` accepted, in seconds.
const MAX_WAIT: f64 = 60.0;

/// How often a long-poll reads the run again even without a wake-up.
const RECHECK: Duration = Duration::from_secs(2);

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::new(Code::RunNotFound, format!("no run has the id `{id}`"))
}

/// The path's `{id}`: one that is not UTF-8 (`%FF`) names no run either.
fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id).map_err(|_| ApiError::new(Code::RunNotFound, "no run has this id: it is not valid UTF-8"))
}

/// The `{id}` of a run route, when it can name a run at all.
pub(crate) fn run_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let id = path_id(path)?;
    if plinth_core::ids::is_run_id(&id) { Ok(id) } else { Err(not_found(&id)) }
}

fn resolve_function<'a>(
    component: &'a plinth_core::component::Component,
    req: &RunRequest,
) -> Result<(usize, &'a plinth_core::FunctionSpec), ApiError> {
    let functions = &component.file.functions;
    match &req.function {
        Some(name) => component.function(name).ok_or_else(|| {
            let known: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
            ApiError::new(Code::FunctionNotFound, format!("no function `{name}`; this component has: {}", known.join(", ")))
        }),
        None if functions.len() == 1 => Ok((0, &functions[0])),
        None => Err(ApiError::new(Code::FunctionRequired, "this component has several functions: name one in `function`")
            .with_errors(vec![FieldError { pointer: "/function".into(), message: "required".into() }])),
    }
}

/// Submits a run.
///
/// Answers 202 with where to follow the run. The same `Idempotency-Key` and request again give
/// the same run, with `Idempotent-Replayed: true`; the same key with another request is a 422.
#[utoipa::path(post, path = "/run", operation_id = "submit_run", tag = "runs",
    request_body(content = RunRequest, content_type = "application/json",
        description = "The function and its input. `Content-Type` may be `application/json` or any `application/*+json`."),
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, max_length = 255, min_length = 1, pattern = "^[ -~]+$",
        description = "Makes a retried submit safe: kept at least 24 hours. \
            Wins over the body's `idempotency_key`, which must then match it.")),
    responses(
        (status = 202, description = "Accepted (or replayed): follow it at `status_url`.", body = Accepted, headers(
            ("Location" = String, description = "`/runs/{run_id}`."),
            ("Idempotent-Replayed" = String, description = "`true` when an earlier run with this idempotency key is answered."),
        )),
        (status = 400, description = "The body is not JSON, or nests deeper than 64 levels (`PLINTH_003`, `PLINTH_042`).",
            body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such function (`PLINTH_005`).",
            body = Problem, content_type = PROBLEM),
        (status = 409, description = "The function's `singleton` key already has an unfinished run (`PLINTH_045`).",
            body = Problem, content_type = PROBLEM),
        (status = 413, description = "The body is over the limit (`PLINTH_007`).",
            body = Problem, content_type = PROBLEM),
        (status = 415, description = "The body is not sent as JSON (`PLINTH_008`).",
            body = Problem, content_type = PROBLEM),
        (status = 422, description = "A field or the input is invalid (`PLINTH_004`), the function is not named \
            (`PLINTH_011`), or the idempotency key was used for another request (`PLINTH_015`).",
            body = Problem, content_type = PROBLEM),
        (status = 429, description = "The function's queue is full (`PLINTH_040`), or its `rate_limit` allows no more runs of this key now (`PLINTH_044`); `Retry-After` says when to try again.",
            body = Problem, content_type = PROBLEM,
            headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 503, description = "The run store cannot be used now (`PLINTH_002`).",
            body = Problem, content_type = PROBLEM,
            headers(("Retry-After" = u32, description = "Seconds to wait."))),
    ))]
pub(crate) async fn submit(
    State(state): State<Arc<AppState>>,
    Extension(Correlation(correlation_id)): Extension<Correlation>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut req = request::parse(json_body(&headers, body, state.body_limit)?)?;
    if let Some(h) = headers.get("idempotency-key") {
        let key = h.to_str().unwrap_or("").to_string();
        let mut errors = Vec::new();
        request::check_key(&key, "/headers/Idempotency-Key", &mut errors);
        if req.idempotency_key.as_ref().is_some_and(|k| *k != key) {
            errors.push(FieldError {
                pointer: "/idempotency_key".into(),
                message: "differs from the Idempotency-Key header".into(),
            });
        }
        if !errors.is_empty() {
            return Err(ApiError::new(Code::ValidationFailed, "invalid idempotency key").with_errors(errors));
        }
        req.idempotency_key = Some(key);
    }
    let component = state.component.get();
    let (index, function) = resolve_function(&component, &req)?;
    super::start::check_input(&component, index, &req.input)?;
    let now = now_micros();
    #[allow(clippy::cast_possible_truncation)]
    let delay = (req.delay_seconds * 1e6) as i64;
    let request_hash = req.idempotency_key.as_ref().map(|_| {
        let canonical =
            json!({"function": function.name, "input": req.input, "priority": req.priority, "delay_seconds": req.delay_seconds});
        plinth_core::ids::fingerprint(&canonical.to_string())
    });
    let mut new = NewRun::of(function, req.input, plinth_core::Trigger::Api, &correlation_id, now);
    new.priority = req.priority;
    if delay > 0 {
        // Why: a delay is an explicit start time; a positive priority factor never starts the
        // run before it, a negative one still moves it later.
        new.not_before = new.not_before.max(now) + delay;
    }
    new.idempotency_key = req.idempotency_key;
    new.request_hash = request_hash;
    // Why: the run's attempts are the children of its enqueue (producer, then consumers, as
    // the messaging conventions draw it); an invalid traceparent starts a new trace, no error.
    let enqueue = tracing::info_span!(
        "enqueue",
        otel.name = %format!("enqueue {}", function.name),
        otel.kind = "producer",
        function = %function.name
    );
    let trace = enqueue.in_scope(|| super::request_trace(&headers));
    (new.traceparent, new.tracestate) = (trace.parent, trace.state);
    let stored = super::enqueue::store_run(&state, new, now);
    let (run, replayed) = match tracing::Instrument::instrument(stored, enqueue).await? {
        Enqueued::Created(run) => (super::enqueue::as_accepted(run), false),
        Enqueued::Debounced(run) => (run, false),
        Enqueued::Replayed(run) => (run, true),
    };
    if !replayed {
        tracing::debug!(run_id = %run.run_id, function = %run.function, "run accepted");
    }
    let mut resp = accepted(run);
    if replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// The 202 of an accepted run: its id, where to follow it (also in `Location`), its status.
pub(super) fn accepted(run: Run) -> Response {
    let status_url = format!("/runs/{}", run.run_id);
    let location = HeaderValue::from_str(&status_url);
    let body = Accepted {
        run_id: run.run_id,
        function: run.function,
        status: run.status,
        status_url,
        correlation_id: run.correlation_id,
    };
    let mut resp = (StatusCode::ACCEPTED, Json(sorted(&body))).into_response();
    if let Ok(v) = location {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn run_response(run: &Run) -> Response {
    let mut resp = Json(run).into_response();
    if !run.status.is_terminal() {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
    }
    resp
}

/// Shows a run.
///
/// Its status, attempts, output or error. `?wait=S` long-polls up to S seconds for the run to end.
#[utoipa::path(get, path = "/runs/{id}", operation_id = "get_run", tag = "runs",
    params(
        ("id" = String, Path, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$",
            description = "The run's id, as `POST /run` answered it."),
        ("wait" = Option<f64>, Query, minimum = 0, maximum = 60,
            description = "Seconds to wait for the run to end before answering (at most 60)."),
    ),
    responses(
        (status = 200, description = "The run. `Retry-After` is set while it has not ended.", body = Run,
            headers(("Retry-After" = u32, description = "Seconds before asking again, while the run has not ended."))),
        (status = 400, description = "A bad or unknown query parameter (`PLINTH_014`).",
            body = Problem, content_type = PROBLEM),
        (status = 404, description = "No run has this id (`PLINTH_006`).",
            body = Problem, content_type = PROBLEM),
        (status = 503, description = "The run store cannot be used now (`PLINTH_002`).",
            body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    let Query(params) = query.map_err(|e| query_error(e.body_text(), "query"))?;
    let mut wait = 0.0;
    for (k, v) in &params {
        match k.as_str() {
            "wait" => {
                wait = v
                    .parse::<f64>()
                    .ok()
                    .filter(|w| (0.0..=MAX_WAIT).contains(w))
                    .ok_or_else(|| query_error(format!("wait must be a number of seconds from 0 to {MAX_WAIT}"), "wait"))?;
            }
            other => return Err(query_error(format!("unknown query parameter `{other}`; known: wait"), other)),
        }
    }
    if !plinth_core::ids::is_run_id(&id) {
        return Err(not_found(&id));
    }
    let notifier = state.store.notifier();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
    loop {
        // Why: the waiter is registered before the read, so a finish in between is not missed.
        let waiter = (wait > 0.0).then(|| notifier.wait_terminal(&id));
        let found = state.store.get(&id, true).await;
        let Ok(Some(mut run)) = found else {
            // Why: a waiter left behind would keep this node asking the others for their ends.
            drop(waiter);
            notifier.forget_closed(&id);
            return Err(found.map_or_else(Into::into, |_| not_found(&id)));
        };
        run.held_by = super::flow::held_by(&state, &run).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(waiter) = waiter.filter(|_| !run.status.is_terminal() && !left.is_zero()) else {
            notifier.forget_closed(&id);
            return Ok(run_response(&run));
        };
        // Why: a run finished by another node is announced over the database; if that notice
        // is lost (a dropped connection), reading again now and then still ends the wait.
        if tokio::time::timeout(left.min(RECHECK), waiter).await.is_err() {
            notifier.forget_closed(&id);
        }
    }
}

/// Lists runs, newest first, a page at a time.
#[utoipa::path(get, path = "/runs", operation_id = "list_runs", tag = "runs",
    params(
        ("function" = Option<String>, Query, description = "Only runs of this function."),
        ("status" = Option<RunStatus>, Query, description = "Only runs in this status."),
        ("correlation_id" = Option<String>, Query, description = "Only runs created with this correlation id."),
        ("trigger" = Option<String>, Query, description = "Only runs with this trigger type: api, event, cron, invoke or rerun."),
        ("event_id" = Option<String>, Query, description = "Only runs this event started."),
        ("created_after" = Option<String>, Query, format = DateTime,
            description = "Only runs created at or after this time (RFC 3339)."),
        ("created_before" = Option<String>, Query, format = DateTime,
            description = "Only runs created before this time (RFC 3339)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Runs per page, 50 by default."),
        ("cursor" = Option<String>, Query, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$",
            description = "The `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of runs.", body = RunPage),
        (status = 400, description = "A bad or unknown query parameter (`PLINTH_014`).",
            body = Problem, content_type = PROBLEM),
        (status = 503, description = "The run store cannot be used now (`PLINTH_002`).",
            body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|e| query_error(e.body_text(), "query"))?;
    let mut f = ListFilter { limit: 50, ..ListFilter::default() };
    for (k, v) in params {
        match k.as_str() {
            "function" => f.function = Some(v),
            "status" => {
                f.status = Some(RunStatus::parse(&v).ok_or_else(|| {
                    query_error(format!("status `{v}` is not one of queued, running, succeeded, failed, cancelled"), "status")
                })?);
            }
            "limit" => f.limit = page_limit(&v)?,
            "cursor" => f.before_id = Some(page_cursor(v)?),
            "correlation_id" => f.correlation_id = Some(v),
            "event_id" => f.event_id = Some(v),
            "trigger" => {
                if !plinth_core::Trigger::TYPES.contains(&v.as_str()) {
                    return Err(query_error(
                        format!("trigger `{v}` is not one of {}", plinth_core::Trigger::TYPES.join(", ")),
                        "trigger",
                    ));
                }
                f.trigger = Some(v);
            }
            "created_after" => f.created_after = Some(parse_rfc3339(&v).map_err(|e| query_error(e, "created_after"))?),
            "created_before" => f.created_before = Some(parse_rfc3339(&v).map_err(|e| query_error(e, "created_before"))?),
            other => {
                return Err(query_error(
                    format!(
                        "unknown query parameter `{other}`; known: function, status, trigger, event_id, limit, cursor, correlation_id, created_after, created_before"
                    ),
                    other,
                ));
            }
        }
    }
    let page = state.store.list(f).await?;
    Ok(Json(sorted(&RunPage { runs: page.runs, next_cursor: page.next_cursor })).into_response())
}

/// Cancels a run.
///
/// A queued run ends `cancelled` at once; a running one is stopped by whoever runs it (it shows
/// `running` with `cancel_requested` until then).
#[utoipa::path(post, path = "/runs/{id}/cancel", operation_id = "cancel_run", tag = "runs",
    params(("id" = String, Path, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$",
            description = "The run's id.")),
    responses(
        (status = 202, description = "Cancelled, or the cancel is on its way to the running attempt.", body = Run),
        (status = 404, description = "No run has this id (`PLINTH_006`).",
            body = Problem, content_type = PROBLEM),
        (status = 409, description = "The run has already ended (`PLINTH_009`).",
            body = Problem, content_type = PROBLEM),
        (status = 503, description = "The run store cannot be used now (`PLINTH_002`).",
            body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = run_id(path)?;
    let run = cancel_run(&state, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(run)).into_response())
}

/// Cancels run `id` (at once when it is queued or waiting; a running one is asked to stop): the
/// run as it is now, as `POST /runs/{id}/cancel` and the dashboard do it.
///
/// # Errors
/// `PLINTH_006` for an unknown run, `PLINTH_0xx` RunAlreadyTerminal for one that ended, or the
/// store's error.
pub async fn cancel_run(state: &AppState, id: &str) -> Result<Run, ApiError> {
    match state.store.cancel(id, now_micros()).await? {
        CancelOutcome::Cancelled(run) | CancelOutcome::Requested(run) => {
            tracing::info!(run_id = %id, status = run.status.as_str(), "cancel accepted");
            Ok(run)
        }
        CancelOutcome::AlreadyTerminal(run) => {
            Err(ApiError::new(Code::RunAlreadyTerminal, format!("run {id} already ended as {}", run.status.as_str())))
        }
        CancelOutcome::NotFound => Err(not_found(id)),
    }
}

/// What the run's handler wrote to stderr, by attempt.
#[utoipa::path(get, path = "/runs/{id}/logs", operation_id = "get_run_logs", tag = "runs",
    params(("id" = String, Path, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$",
            description = "The run's id.")),
    responses(
        (status = 200, description = "The run's log lines.", body = RunLogs),
        (status = 404, description = "No run has this id (`PLINTH_006`).",
            body = Problem, content_type = PROBLEM),
        (status = 503, description = "The run store cannot be used now (`PLINTH_002`).",
            body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn logs(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = run_id(path)?;
    let entries = state.store.logs(&id).await?.ok_or_else(|| not_found(&id))?;
    let logs = entries
        .into_iter()
        .map(|e| {
            // Why: handlers that log JSON lines keep their structure.
            let json = e
                .line
                .line
                .starts_with('{')
                .then(|| serde_json::from_str::<Value>(&e.line.line).ok().filter(Value::is_object))
                .flatten();
            LogLine { attempt: e.attempt, seq: e.line.seq, timestamp: rfc3339(e.line.ts), text: e.line.line, json }
        })
        .collect();
    Ok(Json(sorted(&RunLogs { run_id: id, logs })).into_response())
}
