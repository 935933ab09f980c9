//! `/health`, `/ready`, `/functions`, `/metrics`, `/errors`, and the fallbacks.

use crate::AppState;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_core::Code;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks the store with a write probe; `(ok, detail json)`.
async fn database_check(state: &AppState) -> (bool, serde_json::Value) {
    let backend = state.store.backend();
    match tokio::time::timeout(CHECK_TIMEOUT, state.store.check()).await {
        Ok(Ok(latency)) => (true, json!({"status": "ok", "backend": backend, "latency_ms": latency.as_secs_f64() * 1000.0})),
        Ok(Err(e)) => (
            false,
            json!({"status": "failing", "backend": backend, "error": e.to_string(), "code": Code::ConnectionFailed.as_str()}),
        ),
        Err(_) => (
            false,
            json!({"status": "failing", "backend": backend, "error": format!("no answer within {}s", CHECK_TIMEOUT.as_secs()), "code": Code::ConnectionFailed.as_str()}),
        ),
    }
}

pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    let (ok, db) = database_check(&state).await;
    let id = &state.component.file.component;
    let body = json!({
        "status": if ok { "healthy" } else { "unhealthy" },
        "component": id.name,
        "version": id.version,
        "plinth_version": plinth_core::VERSION,
        "checks": {"database": db},
    });
    if !ok {
        tracing::warn!(check = %body["checks"]["database"], "health check failing");
    }
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

pub(crate) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let reason = match state.readiness.not_ready_reason() {
        Some(r) => Some(r),
        None if !database_check(&state).await.0 => Some("database"),
        None => None,
    };
    match reason {
        None => Json(json!({"status": "ready"})).into_response(),
        Some(reason) => {
            let mut resp =
                (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "reason": reason}))).into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            resp
        }
    }
}

pub(crate) async fn functions(State(state): State<Arc<AppState>>) -> Response {
    let functions: Vec<_> = state
        .component
        .file
        .functions
        .iter()
        .map(|f| {
            json!({
                "name": f.name, "description": f.description, "handler": f.handler.kind(),
                "input_schema": f.input_schema, "policy": f.policy,
            })
        })
        .collect();
    Json(json!({"component": state.component.file.component, "functions": functions})).into_response()
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(depths) = state.store.queue_depth().await {
        for f in &state.component.file.functions {
            let depth = depths.iter().find(|(name, _)| *name == f.name).map_or(0, |d| d.1);
            state.metrics.set_queue_depth(&f.name, depth);
        }
    }
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    resp
}

pub(crate) async fn error_list() -> Response {
    let entries: Vec<_> = Code::ALL.iter().map(|c| c.entry()).collect();
    Json(json!({"errors": entries})).into_response()
}

pub(crate) async fn error_entry(Path(code): Path<String>) -> Result<Response, ApiError> {
    let c = Code::parse(&code)
        .ok_or_else(|| ApiError::new(Code::UnknownErrorCode, format!("`{code}` is not in the error catalog; see GET /errors")))?;
    Ok(Json(c.entry()).into_response())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(Code::RouteNotFound, "no endpoint has this path")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "this path does not accept this method")
}
