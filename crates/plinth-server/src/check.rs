//! A check in front of the routes that either answers at once or lets the request through,
//! as a plain `tower` layer rather than `axum::middleware::from_fn`.
//!
//! Why: `from_fn` boxes the inner service and the middleware's future for every request. For
//! a check that needs no `.await` of its own (header bounds, access control, the rate limit)
//! that is two allocations and a copy of a future of 1 to 2.5 KB per layer and request
//! (decision 0023's profile); here the answer is either a ready response or the inner
//! service's own future, with nothing boxed.

use axum::extract::Request;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};
use std::convert::Infallible;
use std::task::{Context, Poll};

/// The layer: `check` returns `Some(response)` to answer the request itself, `None` to pass
/// it (possibly changed, e.g. with the authenticated principal added) to the routes.
#[derive(Clone)]
pub(crate) struct Check<F> {
    check: F,
}

impl<F> Check<F>
where
    F: Fn(&mut Request) -> Option<Response> + Clone,
{
    pub(crate) fn new(check: F) -> Self {
        Self { check }
    }
}

impl<S, F: Clone> tower::Layer<S> for Check<F> {
    type Service = Checked<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Checked { inner, check: self.check.clone() }
    }
}

/// The service [`Check`] wraps around the routes.
#[derive(Clone)]
pub(crate) struct Checked<S, F> {
    inner: S,
    check: F,
}

impl<S, F> tower::Service<Request> for Checked<S, F>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    F: Fn(&mut Request) -> Option<Response>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match (self.check)(&mut req) {
            Some(answer) => Either::Left(ready(Ok(answer))),
            None => Either::Right(self.inner.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Check;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use tower::ServiceExt;

    /// Refuses requests without `x-ok`, and tags the ones it lets through.
    fn gate(req: &mut Request) -> Option<Response> {
        if req.headers().contains_key("x-ok") {
            req.extensions_mut().insert("tagged");
            return None;
        }
        Some((StatusCode::FORBIDDEN, "refused by the check").into_response())
    }

    async fn seen(req: Request) -> String {
        format!("tag={}", req.extensions().get::<&str>().copied().unwrap_or("none"))
    }

    fn app() -> axum::Router {
        axum::Router::new().route("/", get(seen)).layer(Check::new(gate))
    }

    async fn call(req: Request<Body>) -> (StatusCode, String) {
        let resp = app().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_request_the_check_passes_reaches_the_route_with_what_the_check_added() {
        let req = Request::builder().uri("/").header("x-ok", "1").body(Body::empty()).unwrap_or_default();
        assert_eq!(call(req).await, (StatusCode::OK, "tag=tagged".into()));
    }

    #[tokio::test]
    async fn a_request_the_check_refuses_is_answered_by_it_and_never_reaches_the_route() {
        let req = Request::builder().uri("/").body(Body::empty()).unwrap_or_default();
        assert_eq!(call(req).await, (StatusCode::FORBIDDEN, "refused by the check".into()));
    }

    #[tokio::test]
    async fn an_unknown_path_passed_by_the_check_still_gets_the_routers_404() {
        let req = Request::builder().uri("/nowhere").header("x-ok", "1").body(Body::empty()).unwrap_or_default();
        assert_eq!(call(req).await.0, StatusCode::NOT_FOUND);
    }
}
