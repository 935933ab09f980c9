//! `POST /events`, `GET /events`, `GET /events/{id}`.

use super::bodies::sorted;
use super::{Correlation, page_cursor, page_limit, query_error};
use crate::AppState;
use crate::body::json_body;
use crate::problem::{ApiError, FieldError, PROBLEM, Problem};
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use plinth_core::Code;
use plinth_core::event::{Event, parse_events};
use plinth_core::timefmt::{now_micros, parse_rfc3339};
use plinth_store::{EventFilter, NewEvent, Skipped, StoredEvent};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// `POST /events`' answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventsAccepted {
    /// Each event's id, in the order sent (for a repeat within the dedup window: the first one's).
    pub(crate) event_ids: Vec<String>,
    /// The runs each event started, in the same order.
    pub(crate) run_ids: Vec<Vec<String>>,
}

/// An event with what it started.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventDetail {
    /// The event.
    #[serde(flatten)]
    pub(crate) event: Event,
    /// The runs it started.
    pub(crate) run_ids: Vec<String>,
    /// The functions listening to its name that it did not start, and why.
    pub(crate) skipped: Vec<Skipped>,
}

impl From<StoredEvent> for EventDetail {
    fn from(e: StoredEvent) -> Self {
        Self { event: e.event, run_ids: e.run_ids, skipped: e.skipped }
    }
}

/// A page of events, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventList {
    /// The events of this page.
    pub(crate) events: Vec<EventDetail>,
    /// Pass as `cursor` to get the next page; null on the last one.
    pub(crate) next_cursor: Option<String>,
}

/// The example body `POST /events` documents.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "shop/order.paid", "data": {"order": "o-1", "amount": 120}, "id": "order-o-1-paid"}))]
pub(crate) struct EventIn {
    /// `component/event.name`: lowercase letters, digits, `_`, `-` and `.`, at most 128.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_.-]*$", max_length = 128)]
    pub(crate) name: String,
    /// A JSON object (default `{}`).
    #[schema(value_type = Option<Object>)]
    pub(crate) data: Option<serde_json::Value>,
    /// Deduplicates: an id received within the dedup window (24 h) is not stored again.
    #[schema(min_length = 1, max_length = 128)]
    pub(crate) id: Option<String>,
    /// When it happened, in milliseconds since the epoch (default: when received).
    #[schema(minimum = 0)]
    pub(crate) ts: Option<i64>,
}

/// Sends events.
///
/// One event or an array of up to 1,000. Each event starts one run of every function whose
/// trigger matches it. 202 means every event and every run it started is on disk.
#[utoipa::path(post, path = "/events", operation_id = "send_events", tag = "events",
    request_body(content = Vec<EventIn>, content_type = "application/json",
        description = "One event object, or an array of 1 to 1,000 of them."),
    responses(
        (status = 202, description = "Stored, with the runs each event started.", body = EventsAccepted),
        (status = 400, description = "The body is not JSON, or nests too deep (`PLINTH_003`, `PLINTH_042`).",
            body = Problem, content_type = PROBLEM),
        (status = 413, description = "The body is over the limit (`PLINTH_007`).", body = Problem, content_type = PROBLEM),
        (status = 415, description = "The body is not sent as JSON (`PLINTH_008`).", body = Problem, content_type = PROBLEM),
        (status = 422, description = "An event is invalid (`PLINTH_004`); `errors` points at each field (`/2/name`). \
            Nothing is stored.", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The store cannot be used now (`PLINTH_002`).", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn send(
    State(state): State<Arc<AppState>>,
    Extension(Correlation(correlation_id)): Extension<Correlation>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value = json_body(&headers, body, state.body_limit)?;
    let trace = crate::routes::request_trace(&headers);
    let ingested = send_events(&state, value, &correlation_id, &trace).await?;
    let body = EventsAccepted {
        event_ids: ingested.iter().map(|i| i.event_id.clone()).collect(),
        run_ids: ingested.into_iter().map(|i| i.run_ids).collect(),
    };
    Ok((StatusCode::ACCEPTED, Json(sorted(&body))).into_response())
}

/// Lists events, newest first, a page at a time.
#[utoipa::path(get, path = "/events", operation_id = "list_events", tag = "events",
    params(
        ("name" = Option<String>, Query, description = "Only events with this name."),
        ("since" = Option<String>, Query, format = DateTime, description = "Only events received at or after this time (RFC 3339)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Events per page, 50 by default."),
        ("cursor" = Option<String>, Query, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$",
            description = "The `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of events.", body = EventList),
        (status = 400, description = "A bad or unknown query parameter (`PLINTH_014`).", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The store cannot be used now (`PLINTH_002`).", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|e| query_error(e.body_text(), "query"))?;
    let mut f = EventFilter { limit: 50, ..EventFilter::default() };
    for (k, v) in params {
        match k.as_str() {
            "name" => f.name = Some(v),
            "since" => f.since = Some(parse_rfc3339(&v).map_err(|e| query_error(e, "since"))?),
            "limit" => f.limit = page_limit(&v)?,
            "cursor" => f.cursor = Some(page_cursor(v)?),
            other => {
                return Err(query_error(format!("unknown query parameter `{other}`; known: name, since, limit, cursor"), other));
            }
        }
    }
    let page = state.store.events(f).await?;
    let body = EventList { events: page.events.into_iter().map(EventDetail::from).collect(), next_cursor: page.next_cursor };
    Ok(Json(sorted(&body)).into_response())
}

/// Shows an event, the runs it started and why listening functions started nothing.
#[utoipa::path(get, path = "/events/{id}", operation_id = "get_event", tag = "events",
    params(("id" = String, Path, description = "The event's id (the newest event with it, after the dedup window).")),
    responses(
        (status = 200, description = "The event.", body = EventDetail),
        (status = 404, description = "No event has this id (`PLINTH_017`).", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The store cannot be used now (`PLINTH_002`).", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let not_found = |id: &str| ApiError::new(Code::EventNotFound, format!("no event has the id `{id}`"));
    let Path(id) = path.map_err(|_| not_found("(not UTF-8)"))?;
    let event = state.store.event(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(sorted(&EventDetail::from(event))).into_response())
}

/// Takes one event (`{"name", "data", "id"?, "ts"?}`) or an array of them, as `POST /events`
/// and the dashboard's form do: each is stored and starts the runs its triggers match.
///
/// # Errors
/// `PLINTH_004` naming each bad field, or the store's error.
pub async fn send_events(
    state: &AppState,
    value: serde_json::Value,
    correlation_id: &str,
    trace: &plinth_core::trace::Carried,
) -> Result<Vec<plinth_store::Ingested>, ApiError> {
    let now = now_micros();
    let events = parse_events(value, now, plinth_core::ids::new_run_id).map_err(|problems| {
        let detail = problems.iter().map(|p| format!("{}: {}", if p.pointer.is_empty() { "/" } else { &p.pointer }, p.message));
        let detail = detail.collect::<Vec<_>>().join("; ");
        let errors = problems.into_iter().map(|p| FieldError { pointer: p.pointer, message: p.message }).collect();
        ApiError::new(Code::ValidationFailed, detail).with_errors(errors)
    })?;
    let batch = events
        .into_iter()
        .map(|event| NewEvent::planned(&state.component.get(), event, correlation_id, now).traced(trace))
        .collect();
    let dedup_after = now.saturating_sub(i64::try_from(state.event_dedup_window.as_micros()).unwrap_or(i64::MAX));
    let stored = plinth_store::ingest_starting(state.store.clone(), state.starter.clone(), batch, dedup_after, now).await?;
    if stored.queued {
        state.wake.notify_one();
    }
    let ingested = stored.ingested;
    let started: usize = ingested.iter().filter(|i| !i.duplicate).map(|i| i.run_ids.len()).sum();
    tracing::debug!(events = ingested.len(), runs = started, "events accepted");
    Ok(ingested)
}
