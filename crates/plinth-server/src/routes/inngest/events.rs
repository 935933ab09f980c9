//! `POST /e/{event_key}`: the event API Inngest's SDKs call (`client.send()`, `step.send_event`)
//! when pointed at Plinth (`INNGEST_DEV=http://plinth:8000`, or `INNGEST_EVENT_API_BASE_URL`).
//!
//! The events go where `POST /events` puts them: stored, deduplicated by `id`, each starting the
//! runs its triggers match. The answer is the SDK's own shape: `{"ids": [...], "status": 200}`,
//! one id per event in order; a refusal is `{"ids": [], "status": 400, "error": "..."}`, which the
//! SDK raises as an error. The key in the path is checked against `inngest.event_key_env`
//! instead of `auth:` (the SDK sends no other credential).

use crate::AppState;
use crate::routes::Correlation;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// The path, also exempt from `auth:` and from the problem+json answers of the other routes.
pub(crate) const PATH: &str = "/e/{event_key}";

/// An event as Inngest's SDKs send it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct InngestEvent {
    /// `component/event.name`.
    name: String,
    /// The payload.
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    /// The sender's id: a second event with it within the dedup window starts nothing.
    id: Option<String>,
    /// Milliseconds since the epoch; 0 or none is when it arrived.
    ts: Option<i64>,
    /// Dropped.
    #[schema(value_type = Option<Object>)]
    user: Option<Value>,
    /// Dropped.
    v: Option<String>,
}

/// The answer Inngest's SDKs read.
#[derive(Serialize, ToSchema)]
pub(crate) struct InngestAnswer {
    /// One id per event, in order (empty when refused).
    ids: Vec<String>,
    /// The HTTP status, repeated.
    status: u16,
    /// Why the events were refused; the SDK raises it.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The fields an Inngest event may carry that Plinth's events do not keep.
const DROPPED: [&str; 2] = ["user", "v"];

fn answer(status: StatusCode, ids: Vec<String>, error: Option<String>) -> Response {
    (status, axum::Json(InngestAnswer { ids, status: status.as_u16(), error })).into_response()
}

/// Whether two keys are equal, compared in constant time (through their digests, so their
/// lengths do not show either).
fn same(a: &str, b: &str) -> bool {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    let a: [u8; 32] = sha2::Sha256::digest(a.as_bytes()).into();
    let b: [u8; 32] = sha2::Sha256::digest(b.as_bytes()).into();
    bool::from(a.ct_eq(&b))
}

/// Whether `given` is the key this server takes; `Err` says why not.
fn key_allowed(state: &AppState, given: &str) -> Result<(), String> {
    match (&state.inngest_event_key, &state.auth) {
        (Some(key), _) if same(key, given) => Ok(()),
        (Some(_), _) => Err("Event key not found".into()),
        (None, Some(_)) => {
            Err("Event key not found: with `auth:` configured, set `inngest.event_key_env` to take Inngest events".into())
        }
        (None, None) => Ok(()),
    }
}

/// An Inngest event made a Plinth one: `user` and `v` dropped, a zero `ts` left for Plinth to
/// fill; names under `inngest/` are Inngest's own and refused.
fn adapt(event: Value, at: &str) -> Result<Value, String> {
    let Value::Object(mut obj) = event else { return Err(format!("{at}: must be an event object")) };
    for key in DROPPED {
        obj.remove(key);
    }
    if obj.get("ts").and_then(Value::as_i64) == Some(0) {
        obj.remove("ts");
    }
    if obj.get("id").and_then(Value::as_str) == Some("") {
        obj.remove("id");
    }
    if let Some(name) = obj.get("name").and_then(Value::as_str)
        && name.starts_with("inngest/")
    {
        return Err(format!("{at}/name: `{name}` is a name Inngest keeps for its own events"));
    }
    Ok(Value::Object(obj))
}

/// Events sent by Inngest's SDKs (their event API), stored and started as `POST /events` does.
#[utoipa::path(post, path = "/e/{event_key}", operation_id = "send_inngest_events", tag = "events",
    params(("event_key" = String, Path, description = "The event key (`INNGEST_EVENT_KEY`); any key without \
        `inngest.event_key_env` and `auth:`.")),
    request_body(content = Vec<InngestEvent>, content_type = "application/json",
        description = "Events as Inngest's SDKs send them: an array, or one object."),
    responses(
        (status = 200, description = "Stored, each starting the runs its triggers match; the ids in order.", body = InngestAnswer),
        (status = 400, description = "The body is not JSON, or an event is invalid (`error` says where); nothing is stored.",
            body = InngestAnswer),
        (status = 401, description = "The event key is not this server's (`Event key not found`).", body = InngestAnswer),
        (status = 503, description = "The store cannot be used now.", body = InngestAnswer),
    ))]
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Extension(Correlation(correlation_id)): Extension<Correlation>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = key_allowed(&state, &key) {
        tracing::info!(reason = "inngest_event_key", "events refused");
        return answer(StatusCode::UNAUTHORIZED, vec![], Some(e));
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return answer(StatusCode::BAD_REQUEST, vec![], Some(format!("the body is not JSON: {e}"))),
    };
    let adapted = match value {
        Value::Array(items) => {
            let items: Result<Vec<Value>, String> =
                items.into_iter().enumerate().map(|(i, e)| adapt(e, &format!("/{i}"))).collect();
            items.map(Value::Array)
        }
        one => adapt(one, ""),
    };
    let events = match adapted {
        Ok(v) => v,
        Err(e) => return answer(StatusCode::BAD_REQUEST, vec![], Some(e)),
    };
    let trace = crate::routes::request_trace(&headers);
    match crate::routes::events::send_events(&state, events, &correlation_id, &trace).await {
        Ok(ingested) => {
            let ids: Vec<String> = ingested.into_iter().map(|i| i.event_id).collect();
            answer(StatusCode::OK, ids, None)
        }
        Err(e) if e.status().is_server_error() => {
            answer(e.status(), vec![], Some(format!("{} ({})", e.detail(), e.code().as_str())))
        }
        Err(e) => answer(StatusCode::BAD_REQUEST, vec![], Some(format!("{} ({})", e.detail(), e.code().as_str()))),
    }
}
