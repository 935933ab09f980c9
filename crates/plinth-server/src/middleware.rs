//! Per-request plumbing: the correlation id, a span, metrics and a log line for errors.
//!
//! A `tower` layer with a future of its own rather than `axum::middleware::from_fn`, which
//! boxes the inner service and this future on every request (decision 0024).

use crate::AppState;
use crate::problem::{CORRELATION_ID, ProblemCode};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tokio::task::futures::TaskLocalFuture;
use tracing::Instrument;
use tracing::instrument::Instrumented;

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

/// The layer that observes every request.
#[derive(Clone)]
pub(crate) struct Observe(pub(crate) Arc<AppState>);

impl<S> tower::Layer<S> for Observe {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed { inner, state: self.0.clone() }
    }
}

/// The routes, observed.
#[derive(Clone)]
pub(crate) struct Observed<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> tower::Service<Request> for Observed<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let correlation_id = correlation_from(&req);
        // Why clones of the method and the matched path: a standard method is a tag and the
        // path an `Arc`, so neither allocates, where a `String` of each did on every request.
        let method = req.method().clone();
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
        req.extensions_mut().insert(crate::routes::Correlation(correlation_id.clone()));
        let span = tracing::info_span!(
            "request",
            method = %method,
            route = %route,
            correlation_id = %correlation_id,
            otel.name = %format_args!("{method} {route}"),
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
        let inner = CORRELATION_ID.scope(correlation_id.clone(), self.inner.call(req)).instrument(span.clone());
        let seen = Seen { state: self.state.clone(), started, method, matched, correlation_id, span };
        Answer { inner, seen: Some(seen) }
    }
}

pin_project_lite::pin_project! {
    /// The routes' answer, recorded when it is ready.
    pub(crate) struct Answer<F> {
        #[pin]
        inner: Instrumented<TaskLocalFuture<String, F>>,
        seen: Option<Seen>,
    }
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(resp) = ready!(this.inner.poll(cx));
        Poll::Ready(Ok(match this.seen.take() {
            Some(seen) => seen.record(resp),
            None => resp,
        }))
    }
}

/// What the request log keeps of a request until its answer.
struct Seen {
    state: Arc<AppState>,
    started: Instant,
    method: Method,
    matched: Option<MatchedPath>,
    correlation_id: String,
    span: tracing::Span,
}

impl Seen {
    /// Adds the correlation id to the answer, and records it in the span, metrics and log.
    fn record(self, mut resp: Response) -> Response {
        let Self { state, started, method, matched, correlation_id, span } = self;
        if let Ok(v) = HeaderValue::from_str(&correlation_id) {
            resp.headers_mut().insert(X_CORRELATION_ID.clone(), v);
        }
        let status = resp.status().as_u16();
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
        state.metrics.observe_request(method.as_str(), route, status, started.elapsed().as_secs_f64());
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
}
