//! The contract's endpoints.

pub(crate) mod bodies;
mod enqueue;
pub(crate) mod events;
pub(crate) mod flow;
pub(crate) mod inngest;
pub(crate) mod meta;
pub(crate) mod request;
pub(crate) mod runs;
pub(crate) mod start;
pub(crate) mod steps;

/// The trace a run accepted by this request continues: the current span's when OpenTelemetry
/// records it (so the run's attempts are its children), else the client's valid
/// `traceparent`, else none; with the `tracestate` that came with it.
pub(crate) fn request_trace(headers: &axum::http::HeaderMap) -> plinth_core::trace::Carried {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let current = tracing::Span::current();
    match plinth_core::trace::traceparent_of(&current) {
        Some(parent) => plinth_core::trace::Carried { parent: Some(parent), state: plinth_core::trace::tracestate_of(&current) },
        None => plinth_core::trace::Carried::from_headers(header("traceparent"), header("tracestate")),
    }
}

/// The request's correlation id, put in the request by the middleware.
#[derive(Clone, Debug)]
pub struct Correlation(pub String);

use crate::problem::{ApiError, FieldError};
use plinth_core::Code;

/// A 400 `PLINTH_014` for the query parameter `name`.
pub(crate) fn query_error(detail: impl Into<String>, name: &str) -> ApiError {
    let detail = detail.into();
    ApiError::new(Code::InvalidQuery, detail.clone())
        .with_errors(vec![FieldError { pointer: format!("/query/{name}"), message: detail }])
}

/// A page's `limit`: a whole number from 1 to 500.
pub(crate) fn page_limit(v: &str) -> Result<u32, ApiError> {
    v.parse::<u32>()
        .ok()
        .filter(|l| (1..=500).contains(l))
        .ok_or_else(|| query_error("limit must be a whole number from 1 to 500", "limit"))
}

/// A page's `cursor`: the `next_cursor` (a ULID) of an earlier page.
pub(crate) fn page_cursor(v: String) -> Result<String, ApiError> {
    if plinth_core::ids::is_run_id(&v) {
        Ok(v)
    } else {
        Err(query_error("cursor must be a `next_cursor` value from an earlier page", "cursor"))
    }
}
