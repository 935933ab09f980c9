//! Timeouts and `cancel_on` on PostgreSQL: the sweep that cancels runs past their deadlines
//! (rows taken with `SKIP LOCKED`, so a run being claimed or finished is left for the next
//! sweep), and the runs an event's `cancel_on` rules cancel, in the event's own transaction.

use super::PostgresStore;
use super::runs::cancel_with;
use super::steps::Cascade;
use crate::expiry::{Expired, SWEEP, finish_error, reaches, start_error};
use crate::{CancelOutcome, StoreError};
use plinth_core::flow::CancelMatch;
use plinth_core::{Event, RunError};
use sqlx::{PgConnection, PgPool};

const LATE_START: &str = "SELECT id, start_by FROM runs \
    WHERE start_by IS NOT NULL AND status = 'queued' AND started_at IS NULL AND start_by <= $1 \
    ORDER BY start_by LIMIT $2 FOR UPDATE SKIP LOCKED";

const LATE_FINISH: &str = "SELECT id, finish_by FROM runs \
    WHERE finish_by IS NOT NULL AND NOT cancel_requested AND status IN ('queued', 'running', 'waiting') \
    AND finish_by <= $1 ORDER BY finish_by LIMIT $2 FOR UPDATE SKIP LOCKED";

/// Cancels the runs past a deadline, at most [`SWEEP`] of each kind, in one transaction.
pub(crate) async fn expire(pool: &PgPool, now: i64) -> Result<(Vec<Expired>, Cascade), StoreError> {
    let mut tx = pool.begin().await?;
    let mut cascade = Cascade::default();
    let mut out = Vec::new();
    for (sql, error) in [(LATE_START, start_error as fn(i64) -> RunError), (LATE_FINISH, finish_error)] {
        let late: Vec<(String, i64)> = sqlx::query_as(sql).bind(now).bind(i64::from(SWEEP)).fetch_all(&mut *tx).await?;
        for (id, at) in late {
            let error = error(at);
            let (run, stopping) = match cancel_with(&mut tx, &id, now, &error, &mut cascade).await? {
                CancelOutcome::Cancelled(run) => (run, false),
                CancelOutcome::Requested(run) => (run, true),
                CancelOutcome::AlreadyTerminal(_) | CancelOutcome::NotFound => continue,
            };
            out.push(Expired { run_id: run.run_id, function: run.function, error, stopping });
        }
    }
    tx.commit().await?;
    Ok((out, cascade))
}

/// Cancels the unfinished runs `event`'s rules reach: created in `[since, event]`, not in
/// `exclude` (the runs this event and the later ones of its call start), matching the `if`.
pub(crate) async fn cancel_matching(
    tx: &mut PgConnection,
    event: &Event,
    rules: &[CancelMatch],
    exclude: &[String],
    cascade: &mut Cascade,
) -> Result<(), StoreError> {
    let mut done: Vec<String> = Vec::new();
    for rule in rules {
        // Why: rows are locked in id order, so two events cancelling the same runs cannot
        // deadlock, and a run a worker holds is waited for, then seen in its new state.
        let found: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, input FROM runs WHERE function = $1 AND cancel_on AND status IN ('queued', 'running', 'waiting') \
             AND created_at >= $2 AND created_at <= $3 AND NOT (id = ANY($4)) ORDER BY id FOR UPDATE",
        )
        .bind(&rule.function)
        .bind(rule.since)
        .bind(event.received_at)
        .bind(exclude)
        .fetch_all(&mut *tx)
        .await?;
        for (id, input) in found {
            let input = serde_json::from_str(&input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if done.contains(&id) || !reaches(rule, event, &id, &input) {
                continue;
            }
            cancel_with(&mut *tx, &id, event.received_at, &rule.error(event), cascade).await?;
            done.push(id);
        }
    }
    Ok(())
}

impl PostgresStore {
    /// Tells this node and the others what a cancel inside a transaction did, once committed.
    pub(super) async fn announce(&self, cascade: &Cascade) {
        for id in &cascade.cancels {
            self.notifier.cancel(id);
            self.events.cancel(id);
        }
        if !cascade.terminal.is_empty() {
            self.notifier.ended_here(cascade.terminal.iter().map(String::as_str));
            self.events.terminal(cascade.terminal.iter().map(String::as_str));
            self.children_ended(&cascade.terminal).await;
        }
    }
}
