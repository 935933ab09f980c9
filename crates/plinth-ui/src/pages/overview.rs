//! `/`: the overview: every function with its queue, its open runs and its last hour (ended
//! runs by status and per minute, p50/p99 durations, failures by code), the schedules with their
//! next ticks, the nodes, and the latest runs.

use super::runs::RunRow;
use super::summary::{self, Hour, NodeRow};
use super::{Chrome, html};
use crate::Ui;
use crate::access::Session;
use crate::view::{ago, when};
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use plinth_core::timefmt::now_micros;
use plinth_store::ListFilter;

struct FunctionRow {
    name: String,
    handler: String,
    triggers: usize,
    queued: i64,
    /// The due runs, or "1000 or more" where the count stopped.
    due: String,
    oldest_due: String,
    hour: Hour,
}

struct ScheduleRow {
    function: String,
    pattern: String,
    zone: String,
    next: String,
    last: String,
    last_run: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    chrome: Chrome,
    backend: &'static str,
    functions: Vec<FunctionRow>,
    schedules: Vec<ScheduleRow>,
    rows: Vec<RunRow>,
    nodes: Vec<NodeRow>,
    /// Up to when ended runs are counted, in words.
    rolled: String,
    chart_h: i64,
}

/// `GET {base}`.
pub(crate) async fn page(State(ui): State<Ui>, Extension(session): Extension<Session>) -> Response {
    let now = now_micros();
    let store = &ui.app.store;
    let since = now - summary::MINUTES * 60_000_000;
    let (stats, ticks, recent) = match (
        store.queue_stats(now, plinth_store::AHEAD_COUNTED).await,
        store.schedules().await,
        store.list(ListFilter { limit: 20, ..ListFilter::default() }).await,
    ) {
        (Ok(s), Ok(t), Ok(r)) => (s, t, r.runs),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return ui.store_error(&e),
    };
    let (ended, nodes) = match (store.run_stats(since).await, store.nodes().await) {
        (Ok(s), Ok(n)) => (s, n),
        (Err(e), _) | (_, Err(e)) => return ui.store_error(&e),
    };
    let mut hours = summary::hours(&ended, now);
    let component = ui.app.component.get();
    let functions = component
        .file
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let q = stats.iter().find(|q| q.function == f.name);
            let t = component.triggers.get(i);
            FunctionRow {
                name: f.name.clone(),
                handler: super::functions::handler(f.handler.get()),
                triggers: t.map_or(0, |t| t.events.len() + t.schedules.len()),
                queued: q.map_or(0, |q| q.queued),
                due: q.map_or_else(|| "0".to_string(), due),
                oldest_due: q.and_then(|q| q.oldest_due_at).map(|t| ago(t, now)).unwrap_or_default(),
                hour: hours.remove(&f.name).unwrap_or_default(),
            }
        })
        .collect();
    let mut schedules = Vec::new();
    for (f, t) in component.file.functions.iter().zip(&component.triggers) {
        let last = ticks.iter().find(|s| s.function == f.name);
        for s in &t.schedules {
            schedules.push(ScheduleRow {
                function: f.name.clone(),
                pattern: s.pattern().to_string(),
                zone: s.zone().to_string(),
                next: s.next_after(now).map(when).unwrap_or_else(|| "never".to_string()),
                last: last.map(|l| when(l.last_tick)).unwrap_or_default(),
                last_run: last.map(|l| l.last_run_id.clone()).unwrap_or_default(),
            });
        }
    }
    let page = Overview {
        chrome: ui.chrome(&session),
        backend: store.backend(),
        functions,
        schedules,
        rows: recent.iter().map(|r| RunRow::of(r, now)).collect(),
        nodes: summary::nodes(nodes, now),
        rolled: ended.rolled_until.map(when).unwrap_or_else(|| "not yet".to_string()),
        chart_h: summary::CHART_H,
    };
    html(StatusCode::OK, &page)
}

/// The due runs of a queue, saying where the count stopped.
fn due(q: &plinth_store::QueueStats) -> String {
    if q.split_is_exact() { q.due.to_string() } else { format!("{} or more", q.due) }
}

#[cfg(test)]
mod tests {
    use plinth_store::QueueStats;

    #[test]
    fn the_due_runs_say_where_their_count_stopped() {
        let bound = i64::try_from(plinth_store::AHEAD_COUNTED).expect("fits");
        assert_eq!(super::due(&QueueStats::split("f".into(), 7, bound, 3, None, None)), "3");
        let deep = QueueStats::split("f".into(), 5 * bound, bound, bound, Some(bound), None);
        assert_eq!(super::due(&deep), format!("{bound} or more"));
    }
}
