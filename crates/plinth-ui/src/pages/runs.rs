//! `/runs`: runs newest first, filtered by the query (function, status, trigger type, time
//! range, correlation id, event id), a page at a time; `?id=` jumps to a run.

use super::{Chrome, html};
use crate::Ui;
use crate::access::Session;
use crate::view::{ago, between, when};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use plinth_core::timefmt::{now_micros, parse_rfc3339};
use plinth_core::{Run, RunStatus, Trigger};
use plinth_store::ListFilter;

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

/// The filters as the form shows them (what was asked, even when it was not valid).
#[derive(Default)]
pub(crate) struct Filters {
    pub(crate) function: String,
    pub(crate) status: String,
    pub(crate) trigger: String,
    pub(crate) correlation_id: String,
    pub(crate) event_id: String,
    pub(crate) from: String,
    pub(crate) to: String,
    /// An input field's path and the value it must equal.
    pub(crate) field: String,
    pub(crate) equals: String,
}

impl Filters {
    /// The query string of these filters (for the next page's link).
    fn query(&self) -> String {
        let pairs = [
            ("function", &self.function),
            ("status", &self.status),
            ("trigger", &self.trigger),
            ("correlation_id", &self.correlation_id),
            ("event_id", &self.event_id),
            ("from", &self.from),
            ("to", &self.to),
            ("field", &self.field),
            ("equals", &self.equals),
        ];
        pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}&", encode(v))).collect()
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
}

/// `GET {base}/runs`.
pub(crate) async fn page(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut f = Filters::default();
    let mut filter = ListFilter { limit: PAGE, ..ListFilter::default() };
    let mut problems = Vec::new();
    for (k, v) in params {
        let v = v.trim().to_string();
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "id" => return jump(&ui, &v),
            "function" => {
                if ui.app.component.function(&v).is_none() {
                    problems.push(format!("No function is named \u{201c}{v}\u{201d}."));
                }
                filter.function = Some(v.clone());
                f.function = v;
            }
            "status" => {
                match RunStatus::parse(&v) {
                    Some(s) => filter.status = Some(s),
                    None => problems.push(format!("\u{201c}{v}\u{201d} is not a status; use one of {}.", STATUSES.join(", "))),
                }
                f.status = v;
            }
            "trigger" => {
                if Trigger::TYPES.contains(&v.as_str()) {
                    filter.trigger = Some(v.clone());
                } else {
                    problems
                        .push(format!("\u{201c}{v}\u{201d} is not a trigger type; use one of {}.", Trigger::TYPES.join(", ")));
                }
                f.trigger = v;
            }
            "correlation_id" => {
                filter.correlation_id = Some(v.clone());
                f.correlation_id = v;
            }
            "event_id" => {
                filter.event_id = Some(v.clone());
                f.event_id = v;
            }
            "from" | "to" => {
                match instant(&v) {
                    Ok(t) if k == "from" => filter.created_after = Some(t),
                    Ok(t) => filter.created_before = Some(t),
                    Err(()) => {
                        problems.push(format!("\u{201c}{v}\u{201d} is not a time; use 2026-12-03T10:00 (UTC) or RFC 3339."))
                    }
                }
                if k == "from" { f.from = v } else { f.to = v }
            }
            "cursor" => filter.before_id = Some(v),
            "field" => f.field = v,
            "equals" => f.equals = v,
            other if other.starts_with("input.") => {
                f.field = other.to_string();
                f.equals = v;
            }
            other => problems.push(format!("The filter \u{201c}{other}\u{201d} is not known.")),
        }
    }
    if !f.field.is_empty() {
        match plinth_store::InputEq::parse(&f.field, &f.equals) {
            Ok(eq) => filter.input_eq = Some(eq),
            Err(why) => problems.push(why),
        }
    } else if !f.equals.is_empty() {
        problems.push("Name the input field the value is for (e.g. customer).".to_string());
    }
    let functions = ui.app.component.file.functions.iter().map(|f| f.name.clone()).collect();
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
    let page = RunsPage { chrome, filters: f, functions, statuses: STATUSES, triggers: Trigger::TYPES, problems, rows, next };
    html(StatusCode::OK, &page)
}

const STATUSES: [&str; 6] = {
    let mut all = [""; 6];
    let mut i = 0;
    while i < 6 {
        all[i] = RunStatus::ALL[i].as_str();
        i += 1;
    }
    all
};

/// `?id=` goes to the run's page (a 404 page there when there is no such run).
fn jump(ui: &Ui, id: &str) -> Response {
    Redirect::to(&format!("{}/runs/{}", ui.base, encode(id))).into_response()
}

/// A time from the form: `datetime-local` (`2026-12-03T10:00`, read as UTC) or RFC 3339.
fn instant(text: &str) -> Result<i64, ()> {
    let full = match text.len() {
        16 => format!("{text}:00Z"),
        19 => format!("{text}Z"),
        _ => text.to_string(),
    };
    parse_rfc3339(&full).map_err(|_| ())
}

/// Percent-encodes a query or path value.
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_the_form_read_as_utc() {
        assert_eq!(instant("1970-01-01T00:01"), Ok(60_000_000));
        assert_eq!(instant("1970-01-01T00:00:02"), Ok(2_000_000));
        assert_eq!(instant("1970-01-01T00:00:00+01:00"), Ok(-3_600_000_000));
        assert_eq!(instant("yesterday"), Err(()));
        assert_eq!(instant(""), Err(()));
    }

    #[test]
    fn values_are_encoded_for_urls() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode("01KB-x_y.z~"), "01KB-x_y.z~");
    }
}
