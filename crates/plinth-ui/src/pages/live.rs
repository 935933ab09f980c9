//! `/runs/{id}/live`: Server-Sent Events while a run moves, so its page follows it without a
//! reload: an event `run` with `status/attempt/steps/log lines` whenever one of them changes (a
//! handler's new log lines are stored within half a second, so the page tails the running
//! attempt's log), the last one when the run ends (then the stream closes).

use crate::Ui;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use plinth_core::Run;
use std::convert::Infallible;
use std::time::Duration;

/// How often a run that has not ended is read again (an end wakes the stream at once).
const RECHECK: Duration = Duration::from_secs(1);

/// What the page shows of a run's progress; a change means the page is out of date.
pub(crate) fn mark(run: &Run, steps: usize, logs: usize) -> String {
    format!("{}/{}/{steps}/{logs}", run.status.as_str(), run.attempt)
}

/// `GET {base}/runs/{id}/live`.
pub(crate) async fn live(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    if !plinth_core::ids::is_run_id(&id) || !matches!(ui.app.store.get(&id, false).await, Ok(Some(_))) {
        return ui.error(StatusCode::NOT_FOUND, "No such run", format!("No run has the id \u{201c}{id}\u{201d}."));
    }
    let events = stream::unfold(Some((ui, id, String::new())), |state| async move {
        let (ui, id, last) = state?;
        loop {
            let notifier = ui.app.store.notifier();
            // Why: the waiter is registered before the read, so an end in between is not missed.
            let ended = notifier.wait_terminal(&id);
            let Some(run) = ui.app.store.get(&id, false).await.ok().flatten() else {
                // Why: a waiter left behind would keep this node asking the others for their ends.
                drop(ended);
                notifier.forget_closed(&id);
                return None;
            };
            let steps = ui.app.store.steps(&id).await.ok().flatten().map_or(0, |s| s.len());
            let logs = ui.app.store.logs(&id).await.ok().flatten().map_or(0, |l| l.len());
            let now = mark(&run, steps, logs);
            if now != last {
                notifier.forget_closed(&id);
                let event = Event::default().event("run").data(now.clone());
                let next = (!run.status.is_terminal()).then_some((ui, id, now));
                return Some((Ok::<_, Infallible>(event), next));
            }
            let _ = tokio::time::timeout(RECHECK, ended).await;
            notifier.forget_closed(&id);
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}
