//! `/health`, `/ready`, `/functions`, `/metrics`, `/errors`, and the fallbacks.

use super::bodies::{
    CheckStatus, DatabaseCheck, DependencyCheck, ErrorList, FunctionInfo, Functions, Health, HealthChecks, HealthStatus, Ready,
    ReadyStatus, ScheduleInfo, sorted,
};
use crate::AppState;
use crate::problem::{ApiError, PROBLEM, Problem};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_core::Code;
use plinth_core::error::CatalogEntry;
use plinth_core::timefmt::rfc3339;
use std::sync::Arc;
use std::time::Duration;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks the store with a write probe; `(ok, check)`.
async fn database_check(state: &AppState) -> (bool, DatabaseCheck) {
    let backend = state.store.backend();
    let failing = |error: String| DatabaseCheck {
        status: CheckStatus::Failing,
        backend,
        latency_ms: None,
        error: Some(error),
        code: Some(Code::ConnectionFailed.as_str()),
    };
    match tokio::time::timeout(CHECK_TIMEOUT, state.store.check()).await {
        Ok(Ok(latency)) => (
            true,
            DatabaseCheck {
                status: CheckStatus::Ok,
                backend,
                latency_ms: Some(latency.as_secs_f64() * 1000.0),
                error: None,
                code: None,
            },
        ),
        Ok(Err(e)) => (false, failing(e.to_string())),
        Err(_) => (false, failing(format!("no answer within {}s", CHECK_TIMEOUT.as_secs()))),
    }
}

/// The listed Inngest apps: failing while one has not registered its functions.
fn inngest_check(state: &AppState) -> Option<DependencyCheck> {
    let listed = state.inngest.listed();
    if listed.is_empty() {
        return None;
    }
    let problems: Vec<String> = listed
        .iter()
        .filter_map(|(url, s)| match s {
            crate::apps::SyncState::Synced => None,
            crate::apps::SyncState::Pending => Some(format!("{url}: not synced yet")),
            crate::apps::SyncState::Failed(why) => Some(format!("{url}: {why}")),
        })
        .collect();
    Some(if problems.is_empty() {
        DependencyCheck { status: CheckStatus::Ok, error: None }
    } else {
        DependencyCheck { status: CheckStatus::Failing, error: Some(problems.join("; ")) }
    })
}

/// Liveness, with a check of each dependency.
#[utoipa::path(get, path = "/health", operation_id = "get_health", tag = "probes",
    responses(
        (status = 200, description = "Healthy, or degraded: the database answers; an optional dependency (the NATS \
            bridge, an Inngest app not synced) may fail, which makes the status `degraded`.", body = Health),
        (status = 503, description = "Unhealthy: a critical dependency (the database) fails.", body = Health),
    ))]
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    let (ok, database) = database_check(&state).await;
    let component = state.component.get();
    let id = &component.file.component;
    let nats = state.nats.as_ref().map(|dep| match dep.state() {
        Ok(()) => DependencyCheck { status: CheckStatus::Ok, error: None },
        Err(why) => DependencyCheck { status: CheckStatus::Failing, error: Some(why) },
    });
    let inngest = inngest_check(&state);
    let degraded = [&nats, &inngest].iter().any(|c| c.as_ref().is_some_and(|c| matches!(c.status, CheckStatus::Failing)));
    let status = match (ok, degraded) {
        (false, _) => HealthStatus::Unhealthy,
        (true, true) => HealthStatus::Degraded,
        (true, false) => HealthStatus::Healthy,
    };
    let body = sorted(&Health {
        status,
        component: &id.name,
        version: &id.version,
        plinth_version: plinth_core::VERSION,
        checks: HealthChecks { database, nats, inngest },
    });
    if !ok || degraded {
        tracing::warn!(checks = %body["checks"], "health check failing");
    }
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Readiness: whether this node takes traffic.
#[utoipa::path(get, path = "/ready", operation_id = "get_ready", tag = "probes",
    responses(
        (status = 200, description = "Ready for traffic.", body = Ready),
        (status = 503, description = "Not ready: starting, draining, or the database fails.", body = Ready,
            headers(("Retry-After" = u32, description = "Seconds to wait before asking again."))),
    ))]
pub(crate) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let reason = match state.readiness.not_ready_reason() {
        Some(r) => Some(r),
        None if !database_check(&state).await.0 => Some("database"),
        None => None,
    };
    match reason {
        None => Json(sorted(&Ready { status: ReadyStatus::Ready, reason: None })).into_response(),
        Some(reason) => {
            let body = sorted(&Ready { status: ReadyStatus::NotReady, reason: Some(reason) });
            let mut resp = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            resp
        }
    }
}

/// The component and its functions: name, handler kind, input schema, policy.
#[utoipa::path(get, path = "/functions", operation_id = "list_functions", tag = "component",
    responses((status = 200, description = "The component and its functions.", body = Functions)))]
pub(crate) async fn functions(State(state): State<Arc<AppState>>) -> Response {
    let component = state.component.get();
    let file = &component.file;
    let fired = match state.store.schedules().await {
        Ok(states) => states,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the schedules' last ticks for /functions");
            Vec::new()
        }
    };
    let now = plinth_core::timefmt::now_micros();
    let functions = file
        .functions
        .iter()
        .zip(&component.triggers)
        .map(|(f, compiled)| FunctionInfo {
            name: &f.name,
            description: f.description.as_deref(),
            handler: f.handler.kind(),
            input_schema: f.input_schema.as_ref(),
            policy: &f.policy,
            triggers: &f.triggers,
            schedule: (!compiled.schedules.is_empty()).then(|| {
                let last = fired.iter().find(|s| s.function == f.name);
                let after = last.map_or(now, |l| l.last_tick.max(now));
                ScheduleInfo {
                    next_at: compiled.next_tick(after).map(rfc3339),
                    last_at: last.map(|l| rfc3339(l.last_tick)),
                    last_run_id: last.map(|l| l.last_run_id.clone()),
                }
            }),
        })
        .collect();
    Json(sorted(&Functions { component: &file.component, functions })).into_response()
}

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", operation_id = "get_metrics", tag = "probes",
    responses((status = 200, description = "Every metric, prefixed `plinth_` by default.", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    super::flow::queue_metrics(&state).await;
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    resp
}

/// The whole error catalog.
#[utoipa::path(get, path = "/errors", operation_id = "list_errors", tag = "errors",
    responses((status = 200, description = "Every error code.", body = ErrorList)))]
pub(crate) async fn error_list() -> Response {
    Json(sorted(&ErrorList { errors: Code::ALL.iter().map(|c| c.entry()).collect() })).into_response()
}

/// One entry of the error catalog: what a code means and what to do about it.
#[utoipa::path(get, path = "/errors/{code}", operation_id = "get_error", tag = "errors",
    params(("code" = String, Path, description = "An error code such as `PLINTH_004`.", example = "PLINTH_004")),
    responses(
        (status = 200, description = "The catalog entry.", body = CatalogEntry),
        (status = 404, description = "Not a code of the catalog (`PLINTH_016`).",
            body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn error_entry(path: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let Path(code) =
        path.map_err(|_| ApiError::new(Code::UnknownErrorCode, "this code is not valid UTF-8, so not in the error catalog"))?;
    let c = Code::parse(&code)
        .ok_or_else(|| ApiError::new(Code::UnknownErrorCode, format!("`{code}` is not in the error catalog; see GET /errors")))?;
    Ok(Json(c.entry()).into_response())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(Code::RouteNotFound, "no endpoint has this path")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "this path does not accept this method")
}
