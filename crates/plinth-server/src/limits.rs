//! Request limits that protect the node: a rate limit per client, and bounds on headers.
//! (Body size and JSON depth are checked where the body is read, in `body.rs`.)

use crate::problem::ApiError;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use plinth_core::Code;
use std::net::SocketAddr;
use std::num::NonZeroU32;

/// The most headers a request may carry.
pub const MAX_HEADERS: usize = 64;
/// The most bytes of header names and values together.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Paths never rate limited: probes and scrapes must get through a flood.
pub(crate) const UNLIMITED: [&str; 3] = ["/health", "/ready", "/metrics"];

/// A token bucket per client: the authenticated principal's name when there is one, else the
/// peer address.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").field("clients", &self.limiter.len()).finish()
    }
}

impl RateLimit {
    /// `per_second` requests a second per client on average, `burst` at once.
    #[must_use]
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// `Ok` when `client` may go on, else the seconds to wait (at least 1).
    pub(crate) fn check(&self, client: String) -> Result<(), u64> {
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets clients whose buckets are full again, so the table does not grow forever.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Clients with a bucket in memory.
    #[must_use]
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }
}

/// Who a request counts against.
pub(crate) fn client_key(req: &Request) -> String {
    if let Some(p) = req.extensions().get::<crate::auth::Principal>() {
        return format!("principal:{}", p.name);
    }
    req.extensions().get::<ConnectInfo<SocketAddr>>().map_or_else(|| "peer:unknown".to_string(), |c| format!("peer:{}", c.0.ip()))
}

/// Answers 429 with `Retry-After` when the client is over its rate (the check of
/// [`crate::check::Check`]: `None` lets the request through).
pub(crate) fn rate_limit(state: &crate::AppState, req: &Request) -> Option<Response> {
    let limit = state.rate_limit.as_ref()?;
    if UNLIMITED.contains(&req.uri().path()) {
        return None;
    }
    let wait = limit.check(client_key(req)).err()?;
    Some(
        ApiError::new(Code::RateLimited, format!("too many requests from this client; retry in {wait}s"))
            .retry_after(wait)
            .into_response(),
    )
}

/// Answers 431 when a request carries too many or too large headers.
pub(crate) fn header_guard(req: &mut Request) -> Option<Response> {
    let headers = req.headers();
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        let detail = format!(
            "{} headers of {bytes} bytes; the limits are {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes",
            headers.len()
        );
        return Some(ApiError::new(Code::HeadersTooLarge, detail).into_response());
    }
    None
}
