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

/// The deepest nesting of arrays and objects a request body may have.
pub(crate) const MAX_DEPTH: usize = 64;

/// Whether the JSON text nests arrays or objects deeper than `max` (brackets inside strings
/// do not count). A scan before parsing, so a deep body costs no recursion.
pub(crate) fn deeper_than(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The body as JSON: 415 for another content type, 413 over the limit, 400 when malformed or
/// nested deeper than [`MAX_DEPTH`].
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
    if deeper_than(&bytes, MAX_DEPTH) {
        return Err(ApiError::new(Code::JsonTooDeep, format!("the body nests arrays or objects deeper than {MAX_DEPTH} levels")));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(Code::MalformedJson, format!("the body is not valid JSON (line {}, column {}): {e}", e.line(), e.column()))
    })
}

#[cfg(test)]
mod tests {
    use super::deeper_than;

    #[test]
    fn depth_counts_arrays_and_objects() {
        assert!(!deeper_than(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(deeper_than(br#"{"a":[1,{"b":[2]}]}"#, 3));
        let at_limit = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(!deeper_than(at_limit.as_bytes(), 64));
        assert!(deeper_than(format!("[{at_limit}]").as_bytes(), 64));
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        assert!(!deeper_than(br#"{"s":"[[[[[[[[[[{{{{{{"}"#, 2));
        assert!(!deeper_than(br#"{"s":"quote \" then [[[[[["}"#, 2), "an escaped quote does not end the string");
        assert!(!deeper_than(br#"{"s":"backslash \\"}"#, 1));
    }

    #[test]
    fn unbalanced_text_never_underflows() {
        assert!(!deeper_than(b"]]]]}}}}", 1));
        assert!(!deeper_than(b"", 0));
        assert!(deeper_than(b"[", 0));
    }
}
