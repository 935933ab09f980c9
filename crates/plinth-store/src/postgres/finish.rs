//! Recording attempts' ends, in batches: the ends that arrive while a batch commits go
//! together into the next transaction, so a busy node pays one commit for many runs.

use super::rows::to_json;
use super::timed;
use crate::{FinishRequest, StoreError, cancelled_error};
use plinth_core::{Finish, RunError, RunStatus};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};

/// The most ends one transaction records.
const MAX_BATCH: usize = 64;

/// An end to record, and where its answer goes: the run's new status, or `None` when the
/// lease was no longer this owner's.
pub(crate) type Job = (FinishRequest, oneshot::Sender<Result<Option<RunStatus>, StoreError>>);

struct Transition {
    status: RunStatus,
    output: Option<String>,
    error: Option<RunError>,
    next_attempt_at: Option<i64>,
    attempt: u32,
}

fn transition(req: &FinishRequest, cancel_requested: bool) -> Transition {
    let ends = |status, output, error, next_attempt_at, attempt| Transition { status, output, error, next_attempt_at, attempt };
    match req.finish.clone() {
        Finish::Succeeded(out) => ends(RunStatus::Succeeded, Some(to_json(&out)), None, None, req.attempt),
        Finish::Retry(..) | Finish::Released if cancel_requested => {
            ends(RunStatus::Cancelled, None, Some(cancelled_error()), None, req.attempt)
        }
        Finish::Retry(error, at) => ends(RunStatus::Queued, None, Some(error), Some(at), req.attempt),
        Finish::Failed(error) => ends(RunStatus::Failed, None, Some(error), None, req.attempt),
        Finish::Cancelled(error) => ends(RunStatus::Cancelled, None, Some(error), None, req.attempt),
        Finish::Released => ends(RunStatus::Queued, None, None, Some(req.now), req.attempt.saturating_sub(1)),
    }
}

/// Records an attempt's end inside the caller's transaction; the run's new status, or `None`
/// when this owner no longer held the lease.
async fn finish_in(tx: &mut PgConnection, req: &FinishRequest) -> Result<Option<RunStatus>, StoreError> {
    let held: Option<bool> = sqlx::query_scalar(
        "SELECT cancel_requested FROM runs WHERE id = $1 AND lease_owner = $2 AND attempt = $3 AND status = 'running' \
         FOR UPDATE",
    )
    .bind(&req.run_id)
    .bind(&req.owner)
    .bind(i64::from(req.attempt))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(cancel_requested) = held else {
        return Ok(None);
    };
    let t = transition(req, cancel_requested);
    let attempt_error = match &req.finish {
        Finish::Retry(e, _) | Finish::Failed(e) | Finish::Cancelled(e) => Some(e.clone()),
        Finish::Succeeded(_) | Finish::Released => None,
    };
    let status = t.status;
    let terminal = status.is_terminal();
    sqlx::query(
        "UPDATE runs SET status = $1, output = $2, error = COALESCE($3, error), finished_at = $4, \
         next_attempt_at = COALESCE($5, next_attempt_at), attempt = $6, lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $7",
    )
    .bind(t.status.as_str())
    .bind(t.output)
    .bind(t.error.as_ref().map(to_json))
    .bind(terminal.then_some(req.now))
    .bind(t.next_attempt_at)
    .bind(i64::from(t.attempt))
    .bind(&req.run_id)
    .execute(&mut *tx)
    .await?;
    let duration_us = i64::try_from(req.duration.as_micros()).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE attempts SET finished_at = $1, outcome = $2, error = $3, duration_us = $4 WHERE run_id = $5 AND attempt = $6",
    )
    .bind(req.now)
    .bind(req.finish.outcome())
    .bind(attempt_error.as_ref().map(to_json))
    .bind(duration_us)
    .bind(&req.run_id)
    .bind(i64::from(req.attempt))
    .execute(&mut *tx)
    .await?;
    Ok(Some(status))
}

/// Records `reqs` in one transaction, locking their runs in id order.
async fn finish_many(pool: &PgPool, reqs: &[&FinishRequest]) -> Result<Vec<Option<RunStatus>>, StoreError> {
    let mut order: Vec<usize> = (0..reqs.len()).collect();
    order.sort_by(|a, b| reqs[*a].run_id.cmp(&reqs[*b].run_id));
    let mut tx = pool.begin().await?;
    let mut out = vec![None; reqs.len()];
    for i in order {
        out[i] = finish_in(&mut tx, reqs[i]).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// Takes the ends waiting, records them together, and answers each; runs until every sender
/// is gone. When a batch fails, its ends are recorded one by one, so one bad end cannot fail
/// the others.
pub(crate) async fn batch_loop(pool: PgPool, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let reqs: Vec<&FinishRequest> = batch.iter().map(|j| &j.0).collect();
        match timed(finish_many(&pool, &reqs)).await {
            Ok(statuses) => {
                for ((_, reply), status) in batch.drain(..).zip(statuses) {
                    let _ = reply.send(Ok(status));
                }
            }
            Err(e) if batch.len() == 1 => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for (req, reply) in batch.drain(..) {
                    let _ = reply.send(timed(finish_many(&pool, &[&req])).await.map(|mut s| s.remove(0)));
                }
            }
        }
    }
}
