//! Per-request plumbing: the correlation id, a span, metrics and a log line for errors.

use crate::AppState;
use crate::problem::{CORRELATION_ID, ProblemCode};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

static X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client-sent id is kept when it is 1 to 128 visible ASCII characters; otherwise a new one
/// is made, so logs never carry control characters or unbounded text from a client.
fn correlation_from(req: &Request) -> String {
    [&X_CORRELATION_ID, &X_REQUEST_ID]
        .iter()
        .filter_map(|h| req.headers().get(*h))
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .find(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(plinth_core::ids::new_correlation_id, str::to_string)
}

pub(crate) async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let correlation_id = correlation_from(&req);
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    req.extensions_mut().insert(crate::routes::Correlation(correlation_id.clone()));
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        correlation_id = %correlation_id,
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    // Why: the request continues the client's trace; an invalid traceparent starts a new one.
    let sent = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
    let vendors = req.headers().get("tracestate").and_then(|v| v.to_str().ok());
    plinth_core::trace::continue_with(&span, sent, vendors);
    plinth_core::trace::record_ids(&span, sent);
    let mut resp = CORRELATION_ID.scope(correlation_id.clone(), next.run(req).instrument(span.clone())).await;
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        resp.headers_mut().insert(X_CORRELATION_ID.clone(), v);
    }
    let status = resp.status().as_u16();
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    let elapsed = started.elapsed();
    state.metrics.observe_request(&method, &route, status, elapsed.as_secs_f64());
    if let Some(ProblemCode(code)) = resp.extensions().get::<ProblemCode>().copied() {
        state.metrics.error(code.entry().name);
        let _enter = span.enter();
        if status >= 500 {
            tracing::error!(status, code = code.as_str(), "request failed");
        } else {
            tracing::info!(status, code = code.as_str(), "request rejected");
        }
    }
    resp
}
