//! Stores a submitted run, started on this node at once when one of its slots is free and no
//! run waits in the queue (decision 0019): the run is written leased to this node with its
//! first attempt begun, which spares the store a claim and the run a trip through the queue.

use crate::AppState;
use plinth_core::{NewRun, RunStatus};
use plinth_store::{Enqueued, StoreError};

/// Stores `new`; started on this node when it may be. What the store answered.
pub(super) async fn store_run(state: &AppState, mut new: NewRun, now: i64) -> Result<Enqueued, StoreError> {
    let reserved = state
        .starter
        .as_ref()
        .filter(|_| new.may_start_at_once(now))
        .and_then(|starter| starter.reserve(&new.function, now).map(|lease| (starter.clone(), lease)));
    let Some((starter, lease)) = reserved else {
        let enqueued = state.store.enqueue(new).await?;
        if matches!(enqueued, Enqueued::Created(_) | Enqueued::Debounced(_)) {
            state.wake.notify_one();
        }
        return Ok(enqueued);
    };
    new.start = Some(lease);
    let store = state.store.clone();
    let wake = state.wake.clone();
    // Why a task of its own: a client that hangs up drops this request's future; the run may
    // be on disk, leased to this node, by then, and its attempt must start all the same.
    let task = tokio::spawn(async move {
        let enqueued = store.enqueue(new).await;
        match &enqueued {
            Ok(Enqueued::Created(run)) if run.status == RunStatus::Running => starter.start(run.clone()),
            Ok(_) => {
                starter.release();
                wake.notify_one();
            }
            Err(_) => starter.release(),
        }
        enqueued
    });
    task.await.unwrap_or_else(|e| Err(StoreError::Unavailable(format!("the enqueue stopped: {e}"))))
}

/// The store's answer for `created` as `POST /run` reports it: a run started at once is still
/// reported `queued`, as the contract fixes the 202 (its first attempt may already be running,
/// as any run's may be by the time the client reads it).
pub(super) fn as_accepted(mut run: plinth_core::Run) -> plinth_core::Run {
    if run.status == RunStatus::Running && run.attempt == 1 {
        run.status = RunStatus::Queued;
    }
    run
}
