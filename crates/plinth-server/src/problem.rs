//! Errors as RFC 9457 problem+json, with stable codes and the request's correlation id.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_core::Code;
use plinth_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

tokio::task_local! {
    /// The correlation id of the request being answered.
    pub(crate) static CORRELATION_ID: String;
}

/// The current request's correlation id, if inside one.
pub(crate) fn correlation_id() -> String {
    CORRELATION_ID.try_with(Clone::clone).unwrap_or_default()
}

/// One field-level problem, pointing into the request.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, ToSchema)]
pub struct FieldError {
    /// A JSON pointer, such as `/input/width` (`/query/NAME` for a query parameter,
    /// `/headers/NAME` for a header).
    #[schema(example = "/input/width")]
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
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a code and a detail for the user.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), errors: Vec::new(), retry_after: None, headers: Vec::new() }
    }

    /// What went wrong, for the user.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The problem's HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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

    /// Adds a response header, such as `WWW-Authenticate`.
    #[must_use]
    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The code.
    #[must_use]
    pub const fn code(&self) -> Code {
        self.code
    }
}

/// The content type of every error answer.
pub(crate) const PROBLEM: &str = "application/problem+json";

/// An error answer (RFC 9457 problem details), sent as `application/problem+json`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Problem<'a> {
    /// The error's catalog entry, `/errors/{code}`.
    #[serde(rename = "type")]
    #[schema(example = "/errors/PLINTH_004", pattern = "^/errors/PLINTH_[0-9]{3}$")]
    kind: String,
    /// A short summary of the code, the same for every occurrence.
    title: &'static str,
    /// The HTTP status of the answer.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong with this request.
    detail: &'a str,
    /// The stable error code, `PLINTH_0xx`.
    #[schema(example = "PLINTH_004", pattern = "^PLINTH_[0-9]{3}$")]
    code: &'static str,
    /// The request's correlation id, also in the `X-Correlation-ID` header and the logs.
    correlation_id: String,
    /// Field-level problems, each pointing into the request; left out when there are none.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let entry = self.code.entry();
        let status = StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = Problem {
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
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM));
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
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
            StoreError::QueueFull { .. } => ApiError::new(Code::QueueFull, e.to_string()).retry_after(1),
            StoreError::SingletonBusy { .. } => ApiError::new(Code::SingletonBusy, e.to_string()),
            StoreError::RateLimited { retry_after, .. } => {
                // Why: whole seconds, rounded up, so a client that waits them finds the window over.
                let secs = u64::try_from(retry_after.max(1)).unwrap_or(1).div_ceil(1_000_000);
                ApiError::new(Code::FunctionRateLimited, e.to_string()).retry_after(secs)
            }
        }
    }
}
