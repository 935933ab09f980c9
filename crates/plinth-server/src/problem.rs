//! Errors as RFC 9457 problem+json, with stable codes and the request's correlation id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_core::Code;
use plinth_store::StoreError;
use serde::Serialize;

tokio::task_local! {
    /// The correlation id of the request being answered.
    pub(crate) static CORRELATION_ID: String;
}

/// The current request's correlation id, if inside one.
pub(crate) fn correlation_id() -> String {
    CORRELATION_ID.try_with(Clone::clone).unwrap_or_default()
}

/// One field-level problem, pointing into the request.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// A JSON pointer, such as `/input/width`.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

/// The code of an error response, left on it for the metrics layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProblemCode(pub(crate) Code);

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    code: Code,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and a detail for the user.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), errors: Vec::new(), retry_after: None }
    }

    /// Adds field-level errors.
    #[must_use]
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// Adds a `Retry-After` header.
    #[must_use]
    pub const fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The code.
    #[must_use]
    pub const fn code(&self) -> Code {
        self.code
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: &'static str,
    correlation_id: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let entry = self.code.entry();
        let status = StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = Body {
            kind: format!("/errors/{}", entry.code),
            title: entry.title,
            status: status.as_u16(),
            detail: &self.detail,
            code: entry.code,
            correlation_id: correlation_id(),
            errors: &self.errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (status, json).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp.extensions_mut().insert(ProblemCode(self.code));
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Schema(_) => {
                ApiError::new(Code::ConnectionFailed, format!("the run store cannot be used now: {e}")).retry_after(5)
            }
            StoreError::IdempotencyMismatch { run_id } => ApiError::new(
                Code::IdempotencyKeyMismatch,
                format!("this idempotency key was used for run {run_id} with a different request"),
            ),
            StoreError::Corrupt(_) => ApiError::new(Code::Internal, "stored data could not be read back"),
        }
    }
}
