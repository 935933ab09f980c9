//! Plinth's HTTP API: the component contract (`/health`, `/ready`, `POST /run`, `/runs`...)
//! answered from the run store. It never executes a run; it wakes the engine after an enqueue,
//! or hands the engine a run it stored leased to this node (decision 0019).

pub mod apps;
pub mod auth;
mod body;
mod check;
pub mod limits;
mod middleware;
mod openapi;
pub mod problem;
mod routes;

pub use auth::{Auth, Denied};
pub use limits::RateLimit;
pub use openapi::openapi_document;
pub use problem::ApiError;
pub use routes::Correlation;
pub use routes::events::send_events;
pub use routes::flow::held_by;
pub use routes::runs::cancel_run;
pub use routes::start::start_run;
pub use routes::steps::rerun_run;

use axum::Router;
use axum::routing::{get, post};
use plinth_core::component::Live;
use plinth_core::metrics::Metrics;
use plinth_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::Notify;

/// Whether the node takes traffic.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

impl Readiness {
    /// Starting: not ready yet.
    pub fn starting(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
    /// Ready for traffic.
    pub fn ready(&self) {
        self.0.store(1, Ordering::SeqCst);
    }
    /// Shutting down: `/ready` answers 503 at once.
    pub fn draining(&self) {
        self.0.store(2, Ordering::SeqCst);
    }
    /// `None` when ready, else the reason.
    #[must_use]
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        match self.0.load(Ordering::SeqCst) {
            1 => None,
            2 => Some("draining"),
            _ => Some("starting"),
        }
    }
}

/// Everything a request handler needs.
pub struct AppState {
    /// The run store.
    pub store: Arc<dyn Store>,
    /// The component served.
    pub component: Arc<Live>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Wakes the dispatcher after an enqueue.
    pub wake: Arc<Notify>,
    /// Starts submitted runs on this node as they are stored (decision 0019); `None` queues
    /// every run for the dispatchers to claim.
    pub starter: Option<Arc<dyn plinth_store::Starter>>,
    /// Readiness.
    pub readiness: Arc<Readiness>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Access control; `None` leaves every route open.
    pub auth: Option<Arc<Auth>>,
    /// Requests per client; `None` is no limit.
    pub rate_limit: Option<Arc<RateLimit>>,
    /// How long an event id deduplicates.
    pub event_dedup_window: std::time::Duration,
    /// The tokens of the command attempts running on this node, accepted for `POST /events`.
    pub run_tokens: Option<Arc<plinth_core::tokens::RunTokens>>,
    /// The NATS bridge's health, when one is configured.
    pub nats: Option<Arc<plinth_core::health::DependencyHealth>>,
    /// The key `POST /e/{event_key}` takes (`inngest.event_key_env`); `None` takes any key
    /// without `auth:` and none with it.
    pub inngest_event_key: Option<String>,
    /// The Inngest apps registered with this node (`POST /fn/register`).
    pub inngest: Arc<apps::InngestApps>,
}

/// The router for the whole contract.
pub fn router(state: Arc<AppState>) -> Router {
    compose(state, None)
}

/// The router for the whole contract with `extra` (the dashboard) nested at `path`: it gets the
/// request log, metrics, header bounds and the rate limit, but answers for its own access.
pub fn router_with(state: Arc<AppState>, path: &str, extra: Router) -> Router {
    compose(state, Some((path, extra)))
}

fn compose(state: Arc<AppState>, extra: Option<(&str, Router)>) -> Router {
    let limit = state.body_limit;
    let api = Router::new()
        .route("/health", get(routes::meta::health))
        .route("/ready", get(routes::meta::ready))
        .route("/functions", get(routes::meta::functions))
        .route("/functions/{name}/keys", get(routes::flow::keys))
        .route("/metrics", get(routes::meta::metrics))
        .route("/errors", get(routes::meta::error_list))
        .route("/errors/{code}", get(routes::meta::error_entry))
        .route("/run", post(routes::runs::submit))
        .route("/runs", get(routes::runs::list))
        .route("/runs/{id}", get(routes::runs::show))
        .route("/runs/{id}/cancel", post(routes::runs::cancel))
        .route("/runs/{id}/logs", get(routes::runs::logs))
        .route("/runs/{id}/steps", get(routes::steps::steps))
        .route("/runs/{id}/rerun", post(routes::steps::rerun))
        .route("/events", post(routes::events::send).get(routes::events::list))
        .route("/events/{id}", get(routes::events::show))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(routes::meta::not_found)
        .method_not_allowed_fallback(routes::meta::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        // Why: layers run outside in, so the order is observe, header bounds, auth (which names
        // the principal), then the rate limit (which counts per principal).
        .layer(rate_limited(&state))
        .layer({
            let state = state.clone();
            check::Check::new(move |req: &mut axum::extract::Request| auth::enforce(&state, req))
        });
    // Why: Inngest's SDKs send their event key in the path and no other credential, so this
    // route sits outside the API's authentication (it checks its key itself) but inside the
    // body and rate limits.
    let inngest = Router::new()
        .route("/e/{event_key}", post(routes::inngest::events))
        .route("/fn/register", post(routes::inngest::register::register))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(rate_limited(&state));
    let api = api.merge(inngest);
    let app = match extra {
        Some((path, extra)) => {
            api.nest_service(path, extra.layer(axum::extract::DefaultBodyLimit::max(limit)).layer(rate_limited(&state)))
        }
        None => api,
    };
    app.layer(check::Check::new(limits::header_guard)).layer(middleware::Observe(state.clone())).with_state(state)
}

/// The rate limit per client, as a check in front of `state`'s routes.
fn rate_limited(
    state: &Arc<AppState>,
) -> check::Check<impl Fn(&mut axum::extract::Request) -> Option<axum::response::Response> + Clone + Send + Sync + 'static> {
    let state = state.clone();
    check::Check::new(move |req: &mut axum::extract::Request| limits::rate_limit(&state, req))
}

#[cfg(test)]
mod tests;
