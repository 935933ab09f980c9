//! `/events`: events newest first (by name, a page at a time); `/events/{id}`: one event, its
//! data, the runs it started and, for each function it did not start, why.

use super::filters::encode;
use super::{Chrome, html};
use crate::Ui;
use crate::access::Session;
use crate::view::{ago, pretty, when};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use plinth_core::timefmt::now_micros;
use plinth_store::EventFilter;

struct EventRow {
    id: String,
    name: String,
    received: String,
    age: String,
    runs: usize,
    skipped: usize,
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    chrome: Chrome,
    name: String,
    problems: Vec<String>,
    rows: Vec<EventRow>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    chrome: Chrome,
    id: String,
    name: String,
    ts: String,
    received: String,
    data: String,
    data_cut: bool,
    runs: Vec<String>,
    skipped: Vec<(String, String)>,
}

/// `GET {base}/events`.
pub(crate) async fn list(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut filter = EventFilter { limit: 50, ..EventFilter::default() };
    let mut name = String::new();
    let mut problems = Vec::new();
    for (k, v) in params {
        let v = v.trim().to_string();
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "name" => {
                filter.name = Some(v.clone());
                name = v;
            }
            "cursor" => filter.cursor = Some(v),
            other => problems.push(format!("The filter \u{201c}{other}\u{201d} is not known; events filter by name.")),
        }
    }
    if !problems.is_empty() {
        return html(
            StatusCode::BAD_REQUEST,
            &EventsPage { chrome: ui.chrome(&session), name, problems, rows: Vec::new(), next: None },
        );
    }
    let page = match ui.app.store.events(filter).await {
        Ok(p) => p,
        Err(e) => return ui.store_error(&e),
    };
    let now = now_micros();
    let rows = page
        .events
        .iter()
        .map(|s| EventRow {
            id: s.event.id.clone(),
            name: s.event.name.clone(),
            received: when(s.event.received_at),
            age: ago(s.event.received_at, now),
            runs: s.run_ids.len(),
            skipped: s.skipped.len(),
        })
        .collect();
    let by_name = if name.is_empty() { String::new() } else { format!("name={}&", encode(&name)) };
    let next = page.next_cursor.map(|c| format!("{}/events?{by_name}cursor={}", ui.base, encode(&c)));
    html(StatusCode::OK, &EventsPage { chrome: ui.chrome(&session), name, problems, rows, next })
}

/// `GET {base}/events/{id}`.
pub(crate) async fn detail(State(ui): State<Ui>, Extension(session): Extension<Session>, Path(id): Path<String>) -> Response {
    let stored = match ui.app.store.event(&id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return ui.error(
                StatusCode::NOT_FOUND,
                "No such event",
                format!("No event has the id \u{201c}{id}\u{201d}. Events are kept for a while, then pruned."),
            );
        }
        Err(e) => return ui.store_error(&e),
    };
    let (data, data_cut) = pretty(&stored.event.data);
    let page = EventPage {
        chrome: ui.chrome(&session),
        id: stored.event.id,
        name: stored.event.name,
        ts: when(stored.event.ts),
        received: when(stored.event.received_at),
        data,
        data_cut,
        runs: stored.run_ids,
        skipped: stored.skipped.into_iter().map(|s| (s.function, s.reason)).collect(),
    };
    html(StatusCode::OK, &page)
}
