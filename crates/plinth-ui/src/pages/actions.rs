//! What the dashboard does to runs: cancel one, rerun one (from the start or from a step).
//! Each needs `runs:write` (with `auth:`), its form's token and a same-origin request.

use super::login::Token;
use crate::Ui;
use crate::access::{self, Session};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use plinth_server::Correlation;
use serde::Deserialize;

/// The rerun form.
#[derive(Deserialize)]
pub(crate) struct RerunForm {
    #[serde(default)]
    csrf: String,
    /// Empty: from the start.
    #[serde(default)]
    from_step: String,
}

/// Refuses an action the caller may not take, or whose form lacks the token.
pub(crate) fn refused(ui: &Ui, session: &Session, token: &str) -> Option<Response> {
    if !session.can_write {
        tracing::info!(reason = "dashboard_read_only", "action refused");
        return Some(ui.error(StatusCode::FORBIDDEN, "Not allowed", "Acting on runs needs runs:write.".to_string()));
    }
    if !access::token_matches(session, token) {
        tracing::info!(reason = "dashboard_csrf", "action refused");
        return Some(ui.error(
            StatusCode::FORBIDDEN,
            "Refused",
            "The form's token is missing or stale; reload the page and try again.".to_string(),
        ));
    }
    None
}

fn failed(ui: &Ui, e: &plinth_server::ApiError) -> Response {
    ui.error(e.status(), "The action failed", format!("{} ({})", e.detail(), e.code().as_str()))
}

/// The request's correlation id (the server's middleware puts it in every request), so what an
/// action starts is found by the id the browser's request carried; a new one without it.
pub(crate) fn correlation(found: Option<Extension<Correlation>>) -> String {
    found.map_or_else(plinth_core::ids::new_correlation_id, |Extension(Correlation(c))| c)
}

/// A form's JSON field, `{}` when left empty.
fn json_field(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_str(if text.trim().is_empty() { "{}" } else { text })
}

/// The page that says a form's field is not JSON, and that nothing was `done`.
fn not_json(ui: &Ui, what: &str, done: &str, e: &serde_json::Error) -> Response {
    ui.error(StatusCode::BAD_REQUEST, &format!("The {what} is not JSON"), format!("{e}. Go back and fix it; nothing was {done}."))
}

/// `POST {base}/runs/{id}/cancel`.
pub(crate) async fn cancel(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Token>,
) -> Response {
    if let Some(r) = refused(&ui, &session, &form.csrf) {
        return r;
    }
    match plinth_server::cancel_run(&ui.app, &id).await {
        Ok(_) => Redirect::to(&format!("{}/runs/{id}", ui.base)).into_response(),
        Err(e) => failed(&ui, &e),
    }
}

/// `POST {base}/runs/{id}/rerun`.
pub(crate) async fn rerun(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    found: Option<Extension<Correlation>>,
    Form(form): Form<RerunForm>,
) -> Response {
    if let Some(r) = refused(&ui, &session, &form.csrf) {
        return r;
    }
    let from = Some(form.from_step.trim()).filter(|s| !s.is_empty());
    match plinth_server::rerun_run(&ui.app, &id, from, &correlation(found)).await {
        Ok(run) => Redirect::to(&format!("{}/runs/{}", ui.base, run.run_id)).into_response(),
        Err(e) => failed(&ui, &e),
    }
}

/// The start-a-run form.
#[derive(Deserialize)]
pub(crate) struct StartForm {
    #[serde(default)]
    csrf: String,
    /// The input, as JSON.
    #[serde(default)]
    input: String,
}

/// `POST {base}/functions/{name}/run`: starts a run with the form's input, checked against the
/// function's schema, and opens its page.
pub(crate) async fn start(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    found: Option<Extension<Correlation>>,
    Form(form): Form<StartForm>,
) -> Response {
    if let Some(r) = refused(&ui, &session, &form.csrf) {
        return r;
    }
    let input = match json_field(&form.input) {
        Ok(v) => v,
        Err(e) => return not_json(&ui, "input", "started", &e),
    };
    match plinth_server::start_run(&ui.app, &name, input, &correlation(found)).await {
        Ok(run) => Redirect::to(&format!("{}/runs/{}", ui.base, run.run_id)).into_response(),
        Err(e) => failed(&ui, &e),
    }
}

/// The send-an-event form.
#[derive(Deserialize)]
pub(crate) struct EventForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// The data, as JSON.
    #[serde(default)]
    data: String,
}

/// `POST {base}/events`: sends an event as `POST /events` does and opens its page (with the
/// runs it started).
pub(crate) async fn send_event(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    found: Option<Extension<Correlation>>,
    Form(form): Form<EventForm>,
) -> Response {
    if let Some(r) = refused(&ui, &session, &form.csrf) {
        return r;
    }
    let data = match json_field(&form.data) {
        Ok(v) => v,
        Err(e) => return not_json(&ui, "data", "sent", &e),
    };
    let event = serde_json::json!({"name": form.name.trim(), "data": data});
    match plinth_server::send_events(&ui.app, event, &correlation(found), &plinth_core::trace::Carried::default()).await {
        Ok(ingested) => match ingested.first() {
            Some(i) => Redirect::to(&format!("{}/events/{}", ui.base, super::filters::encode(&i.event_id))).into_response(),
            None => Redirect::to(&format!("{}/events", ui.base)).into_response(),
        },
        Err(e) => failed(&ui, &e),
    }
}
