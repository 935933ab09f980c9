//! `POST /runs/bulk`: cancel, or rerun, every run matching the runs list's filter, at most
//! [`CAP`]. The first post shows how many runs it would change and asks to confirm; only the
//! confirming post acts (so the count is seen before anything changes, with or without
//! JavaScript). Cancel takes the runs that have not ended, rerun those that have.

use super::filters::{Parsed, parse};
use super::{Chrome, html};
use crate::Ui;
use crate::access::Session;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use plinth_store::ListFilter;

/// The most runs one bulk action changes.
pub(crate) const CAP: usize = 1000;
/// The most runs looked at to find them (so a filter matching millions stays cheap).
const SCAN: usize = 20_000;

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    chrome: Chrome,
    /// `cancel` or `rerun`.
    action: String,
    /// How many runs it applies to (at most `CAP` + 1).
    count: usize,
    over_cap: bool,
    cap: usize,
    /// The filter and the action as hidden fields, for the confirming form.
    hidden: Vec<(String, String)>,
    back: String,
    /// After acting: how many changed, and what failed.
    done: Option<usize>,
    failures: Vec<String>,
}

/// `POST {base}/runs/bulk`.
pub(crate) async fn bulk(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    found: Option<Extension<plinth_server::Correlation>>,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    let correlation = super::actions::correlation(found);
    let field = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    if let Some(r) = super::actions::refused(&ui, &session, &field("csrf")) {
        return r;
    }
    let action = field("action");
    if action != "cancel" && action != "rerun" {
        return ui.error(StatusCode::BAD_REQUEST, "No such action", format!("\u{201c}{action}\u{201d} is not cancel or rerun."));
    }
    let confirmed = field("confirm") == "yes";
    let Parsed { filters, filter, problems, .. } = parse(&ui, params);
    if !problems.is_empty() {
        return ui.error(StatusCode::BAD_REQUEST, "The filter is not valid", problems.join(" "));
    }
    let ids = match matching(&ui, filter, action == "cancel").await {
        Ok(ids) => ids,
        Err(page) => return page,
    };
    let back = format!("{}/runs?{}", ui.base, filters.query());
    let mut hidden: Vec<(String, String)> = filters.pairs().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    hidden.push(("action".into(), action.clone()));
    let over_cap = ids.len() > CAP;
    let mut page = BulkPage {
        chrome: ui.chrome(&session),
        action,
        count: ids.len(),
        over_cap,
        cap: CAP,
        hidden,
        back,
        done: None,
        failures: Vec::new(),
    };
    if over_cap {
        tracing::info!(reason = "bulk_over_cap", "bulk action refused");
        return html(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    if !confirmed {
        return html(StatusCode::OK, &page);
    }
    let mut done = 0;
    for id in &ids {
        let result = if page.action == "cancel" {
            plinth_server::cancel_run(&ui.app, id).await.map(|_| ())
        } else {
            plinth_server::rerun_run(&ui.app, id, None, &correlation).await.map(|_| ())
        };
        match result {
            Ok(()) => done += 1,
            Err(e) => page.failures.push(format!("{id}: {}", e.detail())),
        }
    }
    tracing::info!(action = %page.action, changed = done, failed = page.failures.len(), "bulk action done");
    page.done = Some(done);
    html(StatusCode::OK, &page)
}

/// The ids of up to `CAP` + 1 runs matching `filter` that the action applies to: the runs that
/// have not ended (`open`) or those that have.
async fn matching(ui: &Ui, mut filter: ListFilter, open: bool) -> Result<Vec<String>, Response> {
    let mut ids = Vec::new();
    let mut seen = 0;
    filter.limit = 500;
    loop {
        let page = ui.app.store.list(filter.clone()).await.map_err(|e| ui.store_error(&e))?;
        seen += page.runs.len();
        ids.extend(page.runs.iter().filter(|r| r.status.is_terminal() != open).map(|r| r.run_id.clone()));
        match page.next_cursor {
            Some(next) if ids.len() <= CAP && seen < SCAN => filter.before_id = Some(next),
            _ => break,
        }
    }
    ids.truncate(CAP + 1);
    Ok(ids)
}
