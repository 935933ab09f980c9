//! `/runs`: runs newest first, filtered by the query (function, status, trigger type, time
//! range, correlation id, event id), a page at a time; `?id=` jumps to a run.

use super::filters::{Filters, Parsed, STATUSES, encode, parse};
use super::{Chrome, html};
use crate::Ui;
use crate::access::Session;
use crate::view::{ago, between, when};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use plinth_core::timefmt::now_micros;
use plinth_core::{Run, RunStatus, Trigger};

/// Runs a page shows.
const PAGE: u32 = 50;

/// One run as a row of a table.
pub(crate) struct RunRow {
    pub(crate) id: String,
    pub(crate) function: String,
    pub(crate) status: &'static str,
    pub(crate) trigger: &'static str,
    pub(crate) created: String,
    pub(crate) age: String,
    pub(crate) took: String,
}

impl RunRow {
    pub(crate) fn of(run: &Run, now: i64) -> Self {
        let took = match (run.started_at, run.finished_at) {
            (Some(s), Some(f)) => between(s, f),
            (Some(s), None) if run.status == RunStatus::Running => format!("{} so far", between(s, now)),
            _ => String::new(),
        };
        Self {
            id: run.run_id.clone(),
            function: run.function.clone(),
            status: run.status.as_str(),
            trigger: run.trigger.kind(),
            created: when(run.created_at),
            age: ago(run.created_at, now),
            took,
        }
    }
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    chrome: Chrome,
    filters: Filters,
    functions: Vec<String>,
    statuses: [&'static str; 6],
    triggers: [&'static str; 5],
    problems: Vec<String>,
    rows: Vec<RunRow>,
    next: Option<String>,
    /// The filter as hidden fields, for the bulk action's form.
    hidden: Vec<(&'static str, String)>,
}

/// `GET {base}/runs`.
pub(crate) async fn page(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let Parsed { filters: f, mut filter, problems, jump } = parse(&ui, params);
    if let Some(id) = jump {
        return Redirect::to(&format!("{}/runs/{}", ui.base, encode(&id))).into_response();
    }
    filter.limit = PAGE;
    let functions = ui.app.component.get().file.functions.iter().map(|f| f.name.clone()).collect();
    let chrome = ui.chrome(&session);
    if !problems.is_empty() {
        let page = RunsPage {
            chrome,
            filters: f,
            functions,
            statuses: STATUSES,
            triggers: Trigger::TYPES,
            problems,
            rows: Vec::new(),
            next: None,
            hidden: Vec::new(),
        };
        return html(StatusCode::BAD_REQUEST, &page);
    }
    let listed = match ui.app.store.list(filter).await {
        Ok(p) => p,
        Err(e) => return ui.store_error(&e),
    };
    let now = now_micros();
    let rows = listed.runs.iter().map(|r| RunRow::of(r, now)).collect();
    let next = listed.next_cursor.map(|c| format!("{}/runs?{}cursor={}", ui.base, f.query(), encode(&c)));
    let hidden = f.pairs();
    let page =
        RunsPage { chrome, filters: f, functions, statuses: STATUSES, triggers: Trigger::TYPES, problems, rows, next, hidden };
    html(StatusCode::OK, &page)
}
