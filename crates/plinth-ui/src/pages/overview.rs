//! `/`: the overview: every function with its queue, the schedules with their next ticks, and
//! the latest runs.

use super::runs::RunRow;
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
    due: i64,
    oldest_due: String,
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
}

/// `GET {base}`.
pub(crate) async fn page(State(ui): State<Ui>, Extension(session): Extension<Session>) -> Response {
    let now = now_micros();
    let store = &ui.app.store;
    let (stats, ticks, recent) = match (
        store.queue_stats(now).await,
        store.schedules().await,
        store.list(ListFilter { limit: 20, ..ListFilter::default() }).await,
    ) {
        (Ok(s), Ok(t), Ok(r)) => (s, t, r.runs),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return ui.store_error(&e),
    };
    let component = &ui.app.component;
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
                due: q.map_or(0, |q| q.queued - q.not_due),
                oldest_due: q.and_then(|q| q.oldest_due_at).map(|t| ago(t, now)).unwrap_or_default(),
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
    };
    html(StatusCode::OK, &page)
}
