//! `/runs/{id}`: one run: its state in words, input and output, error with its catalog entry,
//! attempts, steps on a timeline, logs per attempt, trigger and parent; and `/runs/{id}/output`,
//! the whole output as a download when the page shows it cut.

use super::{Chrome, html};
use crate::Ui;
use crate::access::Session;
use crate::view::{between, duration_ms, held_by, pretty, short, waiting_for, when};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_core::steps::{Step, Wait};
use plinth_core::timefmt::now_micros;
use plinth_core::{Run, Trigger};
use plinth_store::LogEntry;

/// Log lines a page shows (the newest are kept).
const LOG_LINES: usize = 2000;

struct AttemptRow {
    n: u32,
    started: String,
    took: String,
    outcome: String,
    error: String,
}

struct StepRow {
    id: String,
    op: String,
    status: &'static str,
    attempts: u32,
    started: String,
    took: String,
    /// Where its bar starts and how wide it is, in % of the run's span.
    left: String,
    width: String,
    result: String,
    child: Option<String>,
}

struct LogRow {
    attempt: u32,
    at: String,
    line: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    chrome: Chrome,
    run_id: String,
    /// Whether it ended (rerun is offered) or not (cancel is, and the page follows it live).
    terminal: bool,
    /// What the page shows of its progress (see `live::mark`).
    mark: String,
    function: String,
    status: &'static str,
    attempt: String,
    created: String,
    started: String,
    finished: String,
    took: String,
    correlation_id: String,
    priority: i32,
    trigger: &'static str,
    /// The trigger's detail and, when it is a run or an event, its page.
    trigger_detail: String,
    trigger_link: Option<String>,
    flow_key: Option<String>,
    state: Option<String>,
    error: Option<(String, String)>,
    input: String,
    input_cut: bool,
    output: Option<String>,
    output_cut: bool,
    attempts: Vec<AttemptRow>,
    steps: Vec<StepRow>,
    logs: Vec<LogRow>,
    logs_cut: bool,
}

/// `GET {base}/runs/{id}`.
pub(crate) async fn page(State(ui): State<Ui>, Extension(session): Extension<Session>, Path(id): Path<String>) -> Response {
    let Some(mut run) = (match read(&ui, &id).await {
        Ok(run) => run,
        Err(page) => return page,
    }) else {
        return missing(&ui, &id);
    };
    run.held_by = plinth_server::held_by(&ui.app, &run).await;
    let (steps, logs) = match steps_and_logs(&ui, &id).await {
        Ok(both) => both,
        Err(page) => return page,
    };
    let now = now_micros();
    let span = span(&run, &steps, now);
    let (input, input_cut) = pretty(&run.input);
    let (output, output_cut) = run.output.as_ref().map_or((None, false), |o| {
        let (text, cut) = pretty(o);
        (Some(text), cut)
    });
    let (trigger_detail, trigger_link) = trigger(&ui, &run.trigger);
    let state = run.held_by.as_ref().map(held_by).or_else(|| run.waiting_for.as_ref().map(waiting_for));
    let logs_cut = logs.len() > LOG_LINES;
    let mark = super::live::mark(&run, steps.len(), logs.len());
    let logs = logs[logs.len().saturating_sub(LOG_LINES)..]
        .iter()
        .map(|l| LogRow { attempt: l.attempt, at: when(l.line.ts), line: l.line.line.clone() })
        .collect();
    let page = RunPage {
        chrome: ui.chrome(&session),
        function: run.function.clone(),
        terminal: run.status.is_terminal(),
        mark,
        status: run.status.as_str(),
        attempt: format!("{} of {}", run.attempt, run.max_attempts),
        created: when(run.created_at),
        started: run.started_at.map(when).unwrap_or_default(),
        finished: run.finished_at.map(when).unwrap_or_default(),
        took: match (run.started_at, run.finished_at) {
            (Some(s), Some(f)) => between(s, f),
            _ => String::new(),
        },
        correlation_id: run.correlation_id.clone(),
        priority: run.priority,
        trigger: run.trigger.kind(),
        trigger_detail,
        trigger_link,
        flow_key: run.flow_key.clone(),
        state,
        error: run.error.as_ref().map(|e| (e.code.clone(), e.message.clone())),
        input,
        input_cut,
        output,
        output_cut,
        attempts: run.attempts.iter().flatten().map(attempt_row).collect(),
        steps: steps.iter().map(|s| step_row(&ui, s, span, now)).collect(),
        logs,
        logs_cut,
        run_id: run.run_id,
    };
    html(StatusCode::OK, &page)
}

/// `GET {base}/runs/{id}/output`: the whole output, as a JSON download.
pub(crate) async fn output(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let run = match read(&ui, &id).await {
        Ok(Some(run)) => run,
        Ok(None) => return missing(&ui, &id),
        Err(page) => return page,
    };
    let Some(output) = run.output else {
        return ui.error(StatusCode::NOT_FOUND, "No output", format!("Run {id} has no output (it is {}).", run.status.as_str()));
    };
    let mut response = axum::Json(output).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}-output.json\"", run.run_id)) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

async fn read(ui: &Ui, id: &str) -> Result<Option<Run>, Response> {
    if !plinth_core::ids::is_run_id(id) {
        return Ok(None);
    }
    ui.app.store.get(id, true).await.map_err(|e| ui.store_error(&e))
}

async fn steps_and_logs(ui: &Ui, id: &str) -> Result<(Vec<Step>, Vec<LogEntry>), Response> {
    let store = &ui.app.store;
    let steps = store.steps(id).await.map_err(|e| ui.store_error(&e))?.unwrap_or_default();
    let logs = store.logs(id).await.map_err(|e| ui.store_error(&e))?.unwrap_or_default();
    Ok((steps, logs))
}

fn missing(ui: &Ui, id: &str) -> Response {
    ui.error(
        StatusCode::NOT_FOUND,
        "No such run",
        format!("No run has the id \u{201c}{id}\u{201d}. It may have been pruned, or the id is mistyped."),
    )
}

fn trigger(ui: &Ui, t: &Trigger) -> (String, Option<String>) {
    match t {
        Trigger::Api => ("POST /run".to_string(), None),
        Trigger::Event { event_id } => (format!("event {event_id}"), Some(format!("{}/events/{event_id}", ui.base))),
        Trigger::Cron { scheduled_at } => (format!("schedule tick {scheduled_at}"), None),
        Trigger::Invoke { parent_run_id } => {
            (format!("invoked by run {parent_run_id}"), Some(format!("{}/runs/{parent_run_id}", ui.base)))
        }
        Trigger::Rerun { of } => (format!("rerun of run {of}"), Some(format!("{}/runs/{of}", ui.base))),
    }
}

fn attempt_row(a: &plinth_core::run::Attempt) -> AttemptRow {
    AttemptRow {
        n: a.attempt,
        started: when(a.started_at),
        took: a.duration_ms.map(duration_ms).unwrap_or_default(),
        outcome: a.outcome.clone(),
        error: a.error.as_ref().map(|e| format!("{} {}", e.code, e.message)).unwrap_or_default(),
    }
}

/// The run's span on the timeline: from its first step (or start) to now or its end.
fn span(run: &Run, steps: &[Step], now: i64) -> (i64, i64) {
    let from = steps.iter().map(|s| s.started_at).chain(run.started_at).min().unwrap_or(run.created_at);
    let to = run.finished_at.unwrap_or(now).max(from + 1);
    (from, to)
}

fn step_row(ui: &Ui, s: &Step, (from, to): (i64, i64), now: i64) -> StepRow {
    #[allow(clippy::cast_precision_loss)]
    let pct = |t: i64| ((t - from).clamp(0, to - from) as f64) * 100.0 / ((to - from) as f64);
    let end = s.finished_at.unwrap_or(now);
    let result = match (&s.error, &s.output) {
        (Some(e), _) => format!("error: {}", e.message),
        (None, Some(o)) => short(o, 80),
        (None, None) => String::new(),
    };
    let child = match &s.wait {
        Some(Wait::Run { run_id, .. }) => Some(format!("{}/runs/{run_id}", ui.base)),
        _ => None,
    };
    StepRow {
        id: s.id.clone(),
        op: s.op.clone(),
        status: s.status.as_str(),
        attempts: s.attempts,
        started: when(s.started_at),
        took: s.duration_ms.map(duration_ms).unwrap_or_else(|| format!("{} so far", between(s.started_at, now))),
        left: format!("{:.2}", pct(s.started_at)),
        width: format!("{:.2}", (pct(end) - pct(s.started_at)).max(0.3)),
        result,
        child,
    }
}
