//! `RunRequest`: checked field by field so every problem gets a JSON pointer.

use crate::problem::{ApiError, FieldError};
use plinth_core::Code;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A run to submit. Every field may be left out; `null` counts as left out.
// Why: `parse` checks the body itself, to point at every bad field; the `serde` attributes here
// only shape the OpenAPI schema (unknown fields are refused).
#[derive(Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRequest {
    /// The function to run; may be left out when the component has exactly one.
    #[schema(example = "echo")]
    pub(crate) function: Option<String>,
    /// The run's input, any JSON (`{}` when left out); checked against the function's
    /// `input_schema` when it declares one (see `GET /functions`).
    #[serde(default)]
    #[schema(value_type = Value, example = json!({"hi": 1}))]
    pub(crate) input: Value,
    /// Makes a retried submit safe, like the `Idempotency-Key` header: 1 to 255 printable ASCII characters.
    #[schema(min_length = 1, max_length = 255, pattern = "^[ -~]+$")]
    pub(crate) idempotency_key: Option<String>,
    /// Higher runs are taken first.
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = -1000, maximum = 1000, default = 0)]
    pub(crate) priority: i32,
    /// Seconds to wait before the first attempt (at most 30 days).
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 2592000, default = 0)]
    pub(crate) delay_seconds: f64,
}

const FIELDS: [&str; 5] = ["function", "input", "idempotency_key", "priority", "delay_seconds"];
/// The longest delay accepted: 30 days.
pub(crate) const MAX_DELAY_SECONDS: f64 = 30.0 * 24.0 * 3600.0;
/// The longest idempotency key accepted.
pub(crate) const MAX_KEY_LEN: usize = 255;

fn field(pointer: &str, message: impl Into<String>) -> FieldError {
    FieldError { pointer: pointer.to_string(), message: message.into() }
}

pub(crate) fn check_key(key: &str, pointer: &str, errors: &mut Vec<FieldError>) {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        errors.push(field(pointer, format!("must be 1 to {MAX_KEY_LEN} characters")));
    } else if !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        errors.push(field(pointer, "must be printable ASCII"));
    }
}

pub(crate) fn parse(body: Value) -> Result<RunRequest, ApiError> {
    let Value::Object(mut obj) = body else {
        return Err(ApiError::new(Code::ValidationFailed, "the body must be a JSON object")
            .with_errors(vec![field("", "expected an object")]));
    };
    let mut errors = Vec::new();
    for key in obj.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(field(&format!("/{key}"), format!("unknown field; known fields: {}", FIELDS.join(", "))));
    }
    let function = take_string(&mut obj, "function", &mut errors);
    let idempotency_key = take_string(&mut obj, "idempotency_key", &mut errors);
    if let Some(k) = &idempotency_key {
        check_key(k, "/idempotency_key", &mut errors);
    }
    let priority = match obj.remove("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64().filter(|p| (-1000..=1000).contains(p)) {
            Some(p) => i32::try_from(p).unwrap_or(0),
            None => {
                errors.push(field("/priority", "must be an integer from -1000 to 1000"));
                0
            }
        },
    };
    let delay_seconds = match obj.remove("delay_seconds") {
        None | Some(Value::Null) => 0.0,
        Some(v) => match v.as_f64().filter(|d| (0.0..=MAX_DELAY_SECONDS).contains(d)) {
            Some(d) => d,
            None => {
                errors.push(field("/delay_seconds", format!("must be a number from 0 to {MAX_DELAY_SECONDS}")));
                0.0
            }
        },
    };
    let input = obj.remove("input").unwrap_or_else(|| Value::Object(Map::new()));
    if !errors.is_empty() {
        let detail = errors.iter().map(|e| format!("{}: {}", e.pointer, e.message)).collect::<Vec<_>>().join("; ");
        return Err(ApiError::new(Code::ValidationFailed, detail).with_errors(errors));
    }
    Ok(RunRequest { function, input, idempotency_key, priority, delay_seconds })
}

fn take_string(obj: &mut Map<String, Value>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match obj.remove(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(field(&format!("/{name}"), "must be a string"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_full_request() {
        let r = parse(json!({"function": "f", "input": {"a": 1}, "idempotency_key": "k", "priority": 5, "delay_seconds": 1.5}))
            .expect("valid");
        assert_eq!(r.function.as_deref(), Some("f"));
        assert_eq!(r.priority, 5);
        assert!((r.delay_seconds - 1.5).abs() < f64::EPSILON);
        assert_eq!(parse(json!({})).expect("empty is fine").input, json!({}));
    }

    #[test]
    fn points_at_every_bad_field() {
        let e = parse(json!({"function": 3, "priority": 1.5, "delay_seconds": -1, "extra": true})).expect_err("bad");
        assert_eq!(e.code(), Code::ValidationFailed);
        let body = format!("{e:?}");
        for p in ["/function", "/priority", "/delay_seconds", "/extra"] {
            assert!(body.contains(p), "{p} missing in {body}");
        }
    }

    #[test]
    fn rejects_non_objects_and_bad_keys() {
        assert_eq!(parse(json!([1, 2])).expect_err("array").code(), Code::ValidationFailed);
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(parse(json!({"idempotency_key": long})).is_err());
        assert!(parse(json!({"idempotency_key": ""})).is_err());
        assert!(parse(json!({"idempotency_key": "k".repeat(MAX_KEY_LEN)})).is_ok());
        assert!(parse(json!({"priority": 1001})).is_err());
    }
}
