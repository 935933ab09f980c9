//! Reading a JSON request body: content type, size limit, syntax.

use crate::problem::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use plinth_core::Code;
use serde_json::Value;

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")))
}

/// The body as JSON: 415 for another content type, 413 over the limit, 400 when malformed.
pub(crate) fn json_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Value, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(Code::PayloadTooLarge, format!("the body is larger than the limit of {limit} bytes"))
        } else {
            ApiError::new(Code::MalformedJson, format!("the body could not be read: {r}"))
        }
    })?;
    if !is_json(headers) {
        return Err(ApiError::new(Code::UnsupportedMediaType, "send the body as JSON with `Content-Type: application/json`"));
    }
    if bytes.len() > limit {
        return Err(ApiError::new(Code::PayloadTooLarge, format!("the body is larger than the limit of {limit} bytes")));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(Code::MalformedJson, format!("the body is not valid JSON (line {}, column {}): {e}", e.line(), e.column()))
    })
}
