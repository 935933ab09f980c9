//! Enqueue (idempotency keys, queue limits) and cancel.

use super::lock_key;
use super::read::get_run;
use super::rows::to_json;
use super::steps::{Cascade, cancel_waiting};
use crate::{CancelOutcome, Enqueued, StoreError, cancelled_error};
use plinth_core::{NewRun, Run, RunError, RunStatus};
use sqlx::{PgConnection, PgPool, Row};

/// A run's trigger as stored: NULL for `api`, the JSON otherwise.
pub(crate) fn trigger_json(trigger: &plinth_core::Trigger) -> Option<String> {
    (*trigger != plinth_core::Trigger::Api).then(|| to_json(trigger))
}

fn missing(id: &str) -> StoreError {
    StoreError::Corrupt(format!("run {id} vanished inside its own transaction"))
}

/// The run holding `key`, answered as a replay (or refused when the request differs).
async fn replay(conn: &mut PgConnection, key: &str, run: &NewRun) -> Result<Option<Enqueued>, StoreError> {
    let Some(row) =
        sqlx::query("SELECT run_id, request_hash FROM run_keys WHERE key = $1").bind(key).fetch_optional(&mut *conn).await?
    else {
        return Ok(None);
    };
    let id: String = row.try_get("run_id")?;
    let hash: Option<String> = row.try_get("request_hash")?;
    if hash != run.request_hash {
        return Err(StoreError::IdempotencyMismatch { run_id: id });
    }
    let existing = get_run(conn, &id, false, false).await?.ok_or_else(|| missing(&id))?;
    Ok(Some(Enqueued::Replayed(existing)))
}

/// Takes the run's idempotency key unless another run holds it; whether it was taken. Why: two
/// identical keyed requests racing both miss the first look-up; the key's primary key lets one
/// take it, the other waits for that transaction, then takes nothing and answers as its replay.
async fn take_key(conn: &mut PgConnection, key: &str, run: &NewRun) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO run_keys (key, run_id, request_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(&run.run_id)
    .bind(&run.request_hash)
    .bind(run.created_at)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Inserts the run (its key, if any, taken already).
async fn insert(conn: impl sqlx::PgExecutor<'_>, run: &NewRun) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO runs (id, function, status, attempt, max_attempts, input, priority, created_at, \
         next_attempt_at, correlation_id, idempotency_key, trigger, trigger_type, event_id, flow_key, \
         debounce_key, singleton_key, start_by, finish_by, cancel_on, batch_key, traceparent, tracestate) VALUES ($1, $2, 'queued', 0, \
         $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
    )
    .bind(&run.run_id)
    .bind(&run.function)
    .bind(i64::from(run.max_attempts))
    .bind(to_json(&run.input))
    .bind(run.priority)
    .bind(run.created_at)
    .bind(run.not_before)
    .bind(&run.correlation_id)
    .bind(&run.idempotency_key)
    .bind(trigger_json(&run.trigger))
    .bind(run.trigger.kind())
    .bind(run.trigger.event_id())
    .bind(&run.flow_key)
    .bind(run.debounce.as_ref().map(|d| d.key.as_str()))
    .bind(run.singleton.as_ref().map(|s| s.key.as_str()))
    .bind(run.expiry.start_by)
    .bind(run.expiry.finish_by)
    .bind(run.expiry.cancel_on)
    .bind(run.batch.as_ref().map(|b| b.key.as_str()))
    .bind(&run.traceparent)
    .bind(&run.tracestate)
    .execute(conn)
    .await?;
    Ok(())
}

/// What one enqueue attempt did: stored (or replayed, or fed) the run, or found an unfinished
/// run of its singleton key to cancel first (mode `cancel`); the caller cancels it through the
/// store's cancel, which announces it, then tries again.
pub(crate) enum Entry {
    Done(Box<Enqueued>),
    CancelFirst(String),
}

pub(crate) async fn enqueue(pool: &PgPool, schema: &str, run: NewRun) -> Result<Entry, StoreError> {
    let mut tx = pool.begin().await?;
    if let Some(key) = &run.idempotency_key
        && let Some(found) = replay(&mut tx, key, &run).await?
    {
        tx.rollback().await?;
        return Ok(Entry::Done(Box::new(found)));
    }
    if let Some(limit) = run.max_queued {
        // Why: enqueues of one function count its queue one at a time, so two nodes cannot
        // both take the last free place; the lock goes with the transaction.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key(&["plinth-queue", schema, &run.function]))
            .execute(&mut *tx)
            .await?;
        let queued: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE status = 'queued' AND function = $1 LIMIT $2) AS waiting",
        )
        .bind(&run.function)
        .bind(i64::from(limit))
        .fetch_one(&mut *tx)
        .await?;
        if queued >= i64::from(limit) {
            tx.rollback().await?;
            return Err(StoreError::QueueFull { function: run.function, limit });
        }
    }
    if let Some(d) = &run.debounce {
        super::rates::lock_keys(&mut tx, "plinth-debounce", schema, &[(run.function.as_str(), d.key.as_str())]).await?;
        if let Some(id) = super::rates::debounce_into(&mut tx, &run).await? {
            let existing = get_run(&mut tx, &id, false, false).await?.ok_or_else(|| missing(&id))?;
            tx.commit().await?;
            return Ok(Entry::Done(Box::new(Enqueued::Debounced(existing))));
        }
    }
    if let Some(s) = &run.singleton {
        super::rates::lock_keys(&mut tx, "plinth-singleton", schema, &[(run.function.as_str(), s.key.as_str())]).await?;
        if let Some(holder) = super::rates::singleton_holder(&mut tx, &run).await? {
            tx.rollback().await?;
            if s.mode == plinth_core::flow::SingletonMode::Cancel {
                return Ok(Entry::CancelFirst(holder));
            }
            return Err(StoreError::SingletonBusy { function: run.function.clone(), key: s.key.clone(), run_id: holder });
        }
    }
    if let Some(rate) = &run.rate {
        let checks = [(run.function.as_str(), rate)];
        let mut book = super::rates::RateBook::lock(&mut tx, &checks).await?;
        if let Err(retry_after) = book.admit(&run.function, rate, run.created_at) {
            tx.rollback().await?;
            return Err(StoreError::RateLimited { function: run.function.clone(), key: rate.key.clone(), retry_after });
        }
        book.save(&mut tx, &super::rates::periods(&checks)).await?;
    }
    super::flow::open_lanes(&mut tx, super::flow::lanes_of(&[&run]), run.created_at).await?;
    if let Some(key) = &run.idempotency_key
        && !take_key(&mut tx, key, &run).await?
    {
        let found = replay(&mut tx, key, &run).await;
        tx.rollback().await?;
        return found?
            .map(|e| Entry::Done(Box::new(e)))
            .ok_or_else(|| StoreError::Unavailable(format!("idempotency key `{key}` conflicted, then its run was gone")));
    }
    insert(&mut *tx, &run).await?;
    tx.commit().await?;
    Ok(Entry::Done(Box::new(Enqueued::Created(run.into_queued()))))
}

/// Cancels a queued run, or marks a running one; the caller announces what it ended or asked to
/// stop (the run itself included) after the commit.
pub(crate) async fn cancel(pool: &PgPool, run_id: &str, now: i64) -> Result<(CancelOutcome, Cascade), StoreError> {
    let mut tx = pool.begin().await?;
    let mut cascade = Cascade::default();
    let outcome = cancel_with(&mut tx, run_id, now, &cancelled_error(), &mut cascade).await?;
    tx.commit().await?;
    Ok((outcome, cascade))
}

/// Cancels a run with `error` inside the caller's transaction, its row locked first: at once
/// when queued or waiting; a running one is asked to stop, and ends with `error` when it does.
/// What else it ended or asked to stop goes to `cascade` (the run itself included).
pub(crate) async fn cancel_with(
    tx: &mut PgConnection,
    run_id: &str,
    now: i64,
    error: &RunError,
    cascade: &mut Cascade,
) -> Result<CancelOutcome, StoreError> {
    let Some(run) = get_run(&mut *tx, run_id, false, true).await? else {
        return Ok(CancelOutcome::NotFound);
    };
    Ok(match run.status {
        RunStatus::Queued | RunStatus::Waiting => {
            cancel_waiting(&mut *tx, run_id, now, cascade, error).await?;
            CancelOutcome::Cancelled(get_run(&mut *tx, run_id, false, false).await?.ok_or_else(|| missing(run_id))?)
        }
        RunStatus::Running => {
            sqlx::query("UPDATE runs SET cancel_requested = TRUE, cancel_error = COALESCE(cancel_error, $2) WHERE id = $1")
                .bind(run_id)
                .bind(to_json(error))
                .execute(&mut *tx)
                .await?;
            cascade.cancels.push(run_id.to_string());
            CancelOutcome::Requested(Run { cancel_requested: true, ..run })
        }
        _ => CancelOutcome::AlreadyTerminal(run),
    })
}
