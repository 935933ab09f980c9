//! Pruning and the health probe.

use crate::StoreError;
use sqlx::PgPool;

/// How long a pruning statement may wait for a row lock another transaction holds, and how long
/// it may run at all: past either it fails, and the pruner tries again at its next pass.
const PRUNE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '500ms'";
const PRUNE_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = '10s'";

/// One batch of a pass: up to $2 runs finished before $1, after ($3, $4) in finishing order.
/// Why: one statement picks the batch once, so the logs and attempts deleted are exactly those
/// of the runs deleted, even while other nodes finish runs. A run whose key is still held is
/// kept; its key is looked up by its primary key, and only for the runs that show one (a
/// `NOT EXISTS` there was planned as a hash of every key, read whole for each batch: 0026).
pub(crate) const PRUNE_SQL: &str = "WITH doomed AS (SELECT id, finished_at FROM runs r \
       WHERE finished_at < $1 AND (finished_at, id) > ($3, $4) \
       AND (r.idempotency_key IS NULL OR (SELECT k.run_id FROM run_keys k WHERE k.key = r.idempotency_key) IS DISTINCT FROM r.id) \
       ORDER BY finished_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
     logs AS (DELETE FROM run_logs WHERE run_id IN (SELECT id FROM doomed)), \
     tries AS (DELETE FROM attempts WHERE run_id IN (SELECT id FROM doomed)), \
     steps AS (DELETE FROM steps WHERE run_id IN (SELECT id FROM doomed)), \
     gone AS (DELETE FROM runs WHERE id IN (SELECT id FROM doomed) RETURNING id) \
     SELECT (SELECT COUNT(*) FROM gone), d.finished_at, d.id FROM doomed d ORDER BY d.finished_at DESC, d.id DESC LIMIT 1";

/// Forgets the idempotency keys taken before `keys_before`, then deletes up to `batch` runs
/// finished before `before` that hold no key, with their logs, attempts and steps. Each part
/// takes its rows `SKIP LOCKED` in a short transaction of its own, with a lock and a statement
/// timeout, so the pruner never holds the hot path's rows for long nor waits behind them.
pub(crate) async fn prune(pool: &PgPool, before: i64, keys_before: i64, batch: u32, from: &PruneFrom) -> Result<u64, StoreError> {
    // Why: keys are forgotten a batch at a time too: one statement over every old key would lock
    // them all in one long transaction, and a retried `POST /run` with such a key would wait.
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query(PRUNE_LOCK_TIMEOUT).execute(&mut *tx).await?;
        sqlx::query(PRUNE_STATEMENT_TIMEOUT).execute(&mut *tx).await?;
        let forgotten = sqlx::query(
            "DELETE FROM run_keys WHERE key IN (SELECT key FROM run_keys WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(keys_before)
        .bind(i64::from(batch.max(1)))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if forgotten < u64::from(batch.max(1)) {
            break;
        }
    }
    let after = from.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let (after_at, after_id) = after.unwrap_or((i64::MIN, String::new()));
    let mut tx = pool.begin().await?;
    sqlx::query(PRUNE_LOCK_TIMEOUT).execute(&mut *tx).await?;
    sqlx::query(PRUNE_STATEMENT_TIMEOUT).execute(&mut *tx).await?;
    let last: Option<(i64, i64, String)> = sqlx::query_as(PRUNE_SQL)
        .bind(before)
        .bind(i64::from(batch))
        .bind(after_at)
        .bind(&after_id)
        .fetch_optional(&mut *tx)
        .await
        .inspect_err(|_| forget(from))?;
    tx.commit().await.inspect_err(|_| forget(from))?;
    let deleted = last.as_ref().map_or(0, |(n, _, _)| u64::try_from(*n).unwrap_or(0));
    // Why: a full batch leaves more to delete, and the next one starts after it; a short one
    // ends the pass, and the next pass starts from the oldest run again, to take the runs this
    // one skipped (held by another transaction, or keeping a key).
    *from.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
        last.filter(|_| deleted >= u64::from(batch)).map(|(_, at, id)| (at, id));
    Ok(deleted)
}

/// Where the next batch of a pruning pass starts: after the run (finished at, id) the last one
/// deleted up to. Why: the runs a pass deleted stay in `runs_finished` until vacuum removes
/// them, and a batch that started from the oldest run walked all of them first: near the end of
/// a pass of 1,000,000, 38 ms before its first row (`auto_explain`, decision 0022).
pub(crate) type PruneFrom = std::sync::Mutex<Option<(i64, String)>>;

fn forget(from: &PruneFrom) {
    *from.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
}

/// Writes one row: fails when the database cannot take a write (down, read-only, disk full).
pub(crate) async fn probe(pool: &PgPool, now: i64) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO health_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at")
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}
