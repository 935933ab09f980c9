//! Flow control as the API shows it: why a queued run waits (`held_by`), and the keys of a
//! function with work (`GET /functions/{name}/keys`).

use super::query_error;
use crate::AppState;
use crate::problem::{ApiError, PROBLEM, Problem};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use plinth_core::flow::HeldBy;
use plinth_core::timefmt::{now_micros, rfc3339};
use plinth_core::{Code, Run, RunStatus};
use serde::Serialize;
use std::sync::Arc;

/// Why `run` is not running, when it is queued and something holds it: a start time not yet
/// come (a debounce, a batch filling, a delay or a retry's backoff), its key at its concurrency limit with the runs ahead of
/// it taking the places, or its key's throttle (with the time it may start). A store that
/// cannot answer leaves it out (logged).
pub async fn held_by(state: &AppState, run: &Run) -> Option<HeldBy> {
    if run.status != RunStatus::Queued {
        return None;
    }
    let now = now_micros();
    if let Some(due) = run.next_attempt_at.filter(|due| *due > now) {
        let component = state.component.get();
        let policy = component.function(&run.function).map(|(_, f)| &f.policy);
        let debounced = policy.is_some_and(|p| p.debounce.is_some());
        let batched = policy.is_some_and(|p| p.batch.is_some()) && run.input.get("events").is_some();
        let rule = match run.attempt {
            0 if debounced => "debounce",
            0 if batched => "batch",
            0 => "delay",
            _ => "retry",
        };
        return Some(HeldBy { rule: rule.into(), until: Some(rfc3339(due)), ..blank() });
    }
    let component = state.component.get();
    let (_, function) = component.function(&run.function)?;
    let rules = plinth_store::FlowLimit::of(&function.policy)?;
    let key = run.flow_key.as_deref()?;
    let lane = match state.store.lane(&run.function, key, &run.run_id).await {
        Ok(lane) => lane,
        Err(e) => {
            tracing::warn!(run_id = %run.run_id, error = %e, "cannot read the run's lane for held_by");
            return None;
        }
    };
    // Why: with room left in the lane but as many runs ahead as there is room, those runs take
    // the places first: the limit still holds this one.
    if let Some(limit) = rules.concurrency {
        let room = u64::from(limit.saturating_sub(lane.running));
        if lane.ahead >= room {
            return Some(HeldBy {
                rule: "concurrency".into(),
                key: Some(key.to_string()),
                limit: Some(limit),
                running: Some(lane.running),
                ahead: Some(lane.ahead),
                ..blank()
            });
        }
    }
    let g = rules.throttle?;
    // Why: the runs ahead start first, one interval apart once the burst is spent.
    let ahead = i64::try_from(lane.ahead).unwrap_or(i64::MAX);
    let start = g.next_start(lane.tat).saturating_add(g.interval.saturating_mul(ahead));
    (start > now).then(|| HeldBy {
        rule: "throttle".into(),
        key: Some(key.to_string()),
        limit: Some(g.limit),
        ahead: Some(lane.ahead),
        until: Some(rfc3339(start)),
        ..blank()
    })
}

fn blank() -> HeldBy {
    HeldBy { rule: String::new(), key: None, limit: None, running: None, ahead: None, until: None }
}

/// One key with open work.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct KeyLoad {
    /// The key's value (`""`: the function's shared limit, or runs whose key fell back).
    key: String,
    /// Queued runs.
    queued: u64,
    /// Running runs.
    running: u64,
    /// Runs waiting in a step (sleep, event, invoked run).
    waiting: u64,
    /// When its oldest queued run was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    oldest_queued_at: Option<String>,
    /// How long its oldest queued run has waited, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_queued_age_seconds: Option<f64>,
}

/// `GET /functions/{name}/keys`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct KeyPage {
    /// The function.
    function: String,
    /// Its `concurrency` limit per key, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    /// Its flow key expression (the `concurrency` key, or the `throttle` key), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The keys with queued, running or waiting runs, the most queued first.
    keys: Vec<KeyLoad>,
    /// The cursor of the next page, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The keys of a function with work, the busiest first.
///
/// Per key of the function's `concurrency` rule: its queued, running and waiting runs and the
/// age of its oldest queued run. A function without a limit has no keys.
#[utoipa::path(get, path = "/functions/{name}/keys", operation_id = "list_function_keys", tag = "component",
    params(
        ("name" = String, Path, description = "The function."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Keys per page, 50 by default."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,9}$", description = "The `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of keys.", body = KeyPage),
        (status = 400, description = "A bad or unknown query parameter (`PLINTH_014`).",
            body = Problem, content_type = PROBLEM),
        (status = 404, description = "No function has this name (`PLINTH_005`).",
            body = Problem, content_type = PROBLEM),
        (status = 503, description = "The run store cannot be used now (`PLINTH_002`).",
            body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn keys(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<KeyPage>, ApiError> {
    let Path(name) = path.map_err(|e| query_error(e.body_text(), "name"))?;
    let Query(params) = query.map_err(|e| query_error(e.body_text(), "query"))?;
    let (mut limit, mut offset) = (50_u32, 0_u64);
    for (k, v) in params {
        match k.as_str() {
            "limit" => limit = super::page_limit(&v)?,
            "cursor" => {
                offset = v
                    .parse::<u64>()
                    .ok()
                    .filter(|o| *o < 1_000_000_000)
                    .ok_or_else(|| query_error("cursor must be a `next_cursor` value from an earlier page", "cursor"))?;
            }
            other => return Err(query_error(format!("unknown query parameter `{other}`; known: limit, cursor"), other)),
        }
    }
    let component = state.component.get();
    let Some((_, function)) = component.function(&name) else {
        return Err(ApiError::new(Code::FunctionNotFound, format!("no function is named `{name}`; see GET /functions")));
    };
    let concurrency = function.policy.concurrency.as_ref();
    // Why: one more than asked tells whether another page follows.
    let mut lanes = state.store.lanes(&name, limit + 1, offset).await?;
    let more = lanes.len() > limit as usize;
    lanes.truncate(limit as usize);
    let now = now_micros();
    let keys = lanes
        .into_iter()
        .map(|l| KeyLoad {
            oldest_queued_at: l.oldest_queued_at.map(rfc3339),
            #[allow(clippy::cast_precision_loss)]
            oldest_queued_age_seconds: l.oldest_queued_at.map(|at| (now - at).max(0) as f64 / 1e6),
            key: l.key,
            queued: l.queued,
            running: l.running,
            waiting: l.waiting,
        })
        .collect();
    Ok(Json(KeyPage {
        function: name,
        limit: concurrency.map(plinth_core::flow::Concurrency::limit),
        key: concurrency
            .and_then(|c| c.key.as_ref())
            .or_else(|| function.policy.throttle.as_ref().and_then(|t| t.key.as_ref()))
            .map(|k| k.source().to_string()),
        keys,
        next_cursor: more.then(|| (offset + u64::from(limit)).to_string()),
    }))
}

/// The most keys of one function the metrics look at (the first by key): past them, the due runs
/// of the keys not looked at count as held by concurrency.
const METRIC_KEYS: u32 = 10_000;

/// Sets the queue gauges of every function: depth, the longest wait of a due run, and the runs
/// held per rule (`scheduled`: a delay or a backoff; `concurrency`; `throttle`), the last two
/// from each key's state as the claim sees it. A store that cannot answer leaves them as they
/// were (logged at debug: a scrape must not fail for it).
pub(crate) async fn queue_metrics(state: &AppState) {
    let now = now_micros();
    let stats = match state.store.queue_stats(now, plinth_store::AHEAD_COUNTED).await {
        Ok(stats) => stats,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the queues for /metrics");
            return;
        }
    };
    for f in &state.component.get().file.functions {
        let q = stats.iter().find(|q| q.function == f.name);
        state.metrics.set_queue_depth(&f.name, q.map_or(0, |q| q.queued));
        #[allow(clippy::cast_precision_loss)]
        let oldest = q.and_then(|q| q.oldest_due_at).map_or(0.0, |at| (now - at).max(0) as f64 / 1e6);
        state.metrics.set_queue_oldest(&f.name, oldest);
        state.metrics.set_held(&f.name, "scheduled", q.map_or(0, |q| q.not_due));
        let Some(rules) = plinth_store::FlowLimit::of(&f.policy) else { continue };
        let due = q.map_or(0, |q| u64::try_from(q.due).unwrap_or(0));
        let (by_concurrency, by_throttle) = match state.store.lane_room(&f.name, rules.cap(), METRIC_KEYS, now).await {
            Ok(lanes) => held(&rules, due, &lanes, now),
            Err(e) => {
                tracing::debug!(function = %f.name, error = %e, "cannot read the keys for /metrics");
                continue;
            }
        };
        state.metrics.set_held(&f.name, "concurrency", i64::try_from(by_concurrency).unwrap_or(i64::MAX));
        state.metrics.set_held(&f.name, "throttle", i64::try_from(by_throttle).unwrap_or(i64::MAX));
    }
}

/// Of a function's `due` runs, those its concurrency limit holds (beyond each lane's free places)
/// and those its throttle holds (beyond what each lane's throttle admits now), as
/// `(concurrency, throttle)`. Each lane's counts need only reach [`plinth_store::FlowLimit::cap`]:
/// a lane lets at most that many start, and the rest of its due runs are held either way.
pub(crate) fn held(rules: &plinth_store::FlowLimit, due: u64, lanes: &[plinth_store::LaneRoom], now: i64) -> (u64, u64) {
    let (mut room, mut admitted) = (0_u64, 0_u64);
    for lane in lanes {
        let free = rules.concurrency.map_or(lane.due, |limit| u64::from(limit).saturating_sub(lane.running).min(lane.due));
        let starts =
            rules.throttle.map_or(free, |g| u64::from(g.admit(lane.tat, now, u32::try_from(free).unwrap_or(u32::MAX)).0));
        room += free;
        admitted += starts.min(free);
    }
    // Why: without a concurrency limit every due run has room (a lane's `due` was only counted
    // up to the throttle's burst); without a throttle every run with room starts.
    let room = if rules.concurrency.is_some() { room.min(due) } else { due };
    let admitted = if rules.throttle.is_some() { admitted.min(room) } else { room };
    (due - room, room - admitted)
}
