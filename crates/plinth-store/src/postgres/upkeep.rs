//! Logs, pruning and the health probe.

use crate::{LogLine, StoreError};
use sqlx::PgPool;

pub(crate) async fn append_logs(pool: &PgPool, run_id: &str, attempt: u32, lines: &[LogLine]) -> Result<(), StoreError> {
    if lines.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = lines.iter().map(|l| i64::from(l.seq)).collect();
    let stamps: Vec<i64> = lines.iter().map(|l| l.ts).collect();
    // Why: PostgreSQL text cannot hold NUL, which a handler may write to stderr.
    let texts: Vec<String> = lines.iter().map(|l| l.line.replace('\0', "\u{fffd}")).collect();
    // Why: only lines of a run that exists are kept, so pruning the run prunes all its lines;
    // a line sent again (same attempt and seq) is kept once, the first one.
    sqlx::query(
        "INSERT INTO run_logs (run_id, attempt, seq, ts, line) \
         SELECT $1, $2, l.seq, l.ts, l.line FROM unnest($3::bigint[], $4::bigint[], $5::text[]) AS l(seq, ts, line) \
         WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1) ON CONFLICT DO NOTHING",
    )
    .bind(run_id)
    .bind(i64::from(attempt))
    .bind(&seqs)
    .bind(&stamps)
    .bind(&texts)
    .execute(pool)
    .await?;
    Ok(())
}

/// How long a pruning statement may wait for a row lock another transaction holds, and how long
/// it may run at all: past either it fails, and the pruner tries again at its next pass.
const PRUNE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '500ms'";
const PRUNE_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = '10s'";

/// Forgets the idempotency keys of runs created before `keys_before`, then deletes up to `batch`
/// runs finished before `before` with their logs, attempts and steps. Each part takes its rows
/// `SKIP LOCKED` in a short transaction of its own, with a lock and a statement timeout, so the
/// pruner never holds the hot path's rows for long nor waits behind them.
pub(crate) async fn prune(pool: &PgPool, before: i64, keys_before: i64, batch: u32) -> Result<u64, StoreError> {
    // Why: keys are forgotten a batch at a time too: one statement over every old key would lock
    // them all in one long transaction, and a retried `POST /run` with such a key would wait.
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query(PRUNE_LOCK_TIMEOUT).execute(&mut *tx).await?;
        sqlx::query(PRUNE_STATEMENT_TIMEOUT).execute(&mut *tx).await?;
        let forgotten = sqlx::query(
            "UPDATE runs SET idempotency_key = NULL, request_hash = NULL WHERE id IN (SELECT id FROM runs \
               WHERE idempotency_key IS NOT NULL AND created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
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
    let mut tx = pool.begin().await?;
    sqlx::query(PRUNE_LOCK_TIMEOUT).execute(&mut *tx).await?;
    sqlx::query(PRUNE_STATEMENT_TIMEOUT).execute(&mut *tx).await?;
    // Why: one statement picks the batch once, so the logs and attempts deleted are exactly
    // those of the runs deleted, even while other nodes finish runs.
    let deleted = sqlx::query(
        "WITH doomed AS (SELECT id FROM runs WHERE finished_at < $1 AND idempotency_key IS NULL \
           ORDER BY finished_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
         logs AS (DELETE FROM run_logs WHERE run_id IN (SELECT id FROM doomed)), \
         tries AS (DELETE FROM attempts WHERE run_id IN (SELECT id FROM doomed)), \
         steps AS (DELETE FROM steps WHERE run_id IN (SELECT id FROM doomed)) \
         DELETE FROM runs WHERE id IN (SELECT id FROM doomed)",
    )
    .bind(before)
    .bind(i64::from(batch))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// Writes one row: fails when the database cannot take a write (down, read-only, disk full).
pub(crate) async fn probe(pool: &PgPool, now: i64) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO health_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at")
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}
