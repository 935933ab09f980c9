//! The overview's statistics on PostgreSQL: the roll-up of ended runs into `run_minutes`, under
//! the mark's row lock so two nodes that both think they lead never add the same runs twice,
//! and the nodes' beats.

use crate::stats::{FORGET_NODES, KEEP_MINUTES, Tally, span};
use crate::{MinuteStat, NodeBeat, RunStats, StoreError};
use sqlx::PgPool;

type Ended = (String, String, Option<String>, Option<i64>, i64);
/// The columns of `run_minutes`, one array each, for `unnest`.
type Columns = (Vec<String>, Vec<i64>, Vec<String>, Vec<String>, Vec<i32>, Vec<i64>);

/// See [`crate::Store::roll_up`].
pub(crate) async fn roll_up(pool: &PgPool, until: i64) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mark: Option<i64> =
        sqlx::query_scalar("SELECT rolled_until FROM run_minutes_mark WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await?;
    let Some((from, to)) = span(mark, until) else { return Ok(0) };
    // Why: the only predicate is the range of `runs_finished`, and scans are off: with a status
    // filter too, stale statistics once made PostgreSQL walk `runs_by_status` over every ended
    // run (114 ms a pass at 860,000 runs) instead of the few that ended since the last pass.
    sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
    let ended: Vec<Ended> = sqlx::query_as(
        "SELECT function, status, error, started_at, finished_at FROM runs WHERE finished_at > $1 AND finished_at <= $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *tx)
    .await?;
    let mut tally = Tally::default();
    for (function, status, error, started, finished) in ended {
        if matches!(status.as_str(), "succeeded" | "failed" | "cancelled") {
            tally.add(function, status, error.as_deref(), started, finished);
        }
    }
    let minutes = tally.into_minutes();
    let n = minutes.len() as u64;
    let mut cols = Columns::default();
    for m in minutes {
        cols.0.push(m.function);
        cols.1.push(m.minute);
        cols.2.push(m.status);
        cols.3.push(m.code);
        cols.4.push(m.bucket);
        cols.5.push(m.runs);
    }
    sqlx::query(
        "INSERT INTO run_minutes (function, minute, status, code, bucket, runs) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::bigint[]) \
         ON CONFLICT (function, minute, status, code, bucket) DO UPDATE SET runs = run_minutes.runs + excluded.runs",
    )
    .bind(&cols.0)
    .bind(&cols.1)
    .bind(&cols.2)
    .bind(&cols.3)
    .bind(&cols.4)
    .bind(&cols.5)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE run_minutes_mark SET rolled_until = $1 WHERE id = 1").bind(to).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM run_minutes WHERE minute < $1").bind(until - KEEP_MINUTES).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(n)
}

/// Folds every connection's rows of `run_counts` into shard 0, skipping those a transaction
/// holds now (the next pass takes them); how many rows of shard 0 it wrote. Runs on the upkeep leader.
pub(crate) async fn fold_counts(pool: &PgPool) -> Result<u64, StoreError> {
    let folded = sqlx::query(
        "WITH gone AS (DELETE FROM run_counts WHERE (function, status, shard) IN (SELECT function, status, shard \
         FROM run_counts WHERE shard <> 0 FOR UPDATE SKIP LOCKED) RETURNING function, status, runs) \
         INSERT INTO run_counts (function, status, shard, runs) SELECT function, status, 0, SUM(runs) FROM gone \
         GROUP BY function, status ON CONFLICT (function, status, shard) DO UPDATE SET runs = run_counts.runs + excluded.runs",
    )
    .execute(pool)
    .await?;
    Ok(folded.rows_affected())
}

/// The leader's pass: folds the kept counts, then rolls up the ended runs.
pub(crate) async fn fold_and_roll_up(pool: &PgPool, until: i64) -> Result<u64, StoreError> {
    fold_counts(pool).await?;
    roll_up(pool, until).await
}

/// Logs what [`refresh_statistics`] did; a failure is not the roll-up's (autovacuum catches up).
pub(crate) fn refresh_quietly(result: Result<bool, StoreError>) {
    match result {
        Ok(true) => tracing::debug!("the runs table changed a lot: its planner statistics are taken again"),
        Ok(false) => {}
        Err(e) => tracing::debug!(error = %e, "cannot take the runs table's planner statistics now; autovacuum will"),
    }
}

/// Takes the planner's statistics of `runs` again (`ANALYZE`) when a fifth of the table (and
/// more than 1,000 rows) changed since they were last taken, at most every 30 s; whether it did.
/// Autovacuum does the same, but only after a tenth of the table changed and at most once a
/// minute: a table that grew from 100 runs to 1,000,000 in three minutes was planned as if it
/// held 5 rows, and a filtered page read and sorted all of them (513 ms instead of 0.07 ms).
///
/// It takes them sooner (5 s after the last) when the queued runs the planner believes in (the
/// share of `queued` in the statistics times the table's rows) and those kept in `run_counts`
/// differ by more than 1,000 and a factor of two, and as many rows changed: the statistics of a
/// table with no run queued make every index on queued runs look empty, and a keyed claim read
/// its lanes' runs through `runs_due` (1 s a claim over 160 lanes of 20,000 queued runs, against
/// 18 ms) until the next refresh. Rows changed since then bound how often: a gap that stays (a
/// status too rare to be sampled) is not analyzed again until as many rows changed again.
/// `SKIP_LOCKED` and a short lock timeout: a running autovacuum is never waited for or stopped.
pub(crate) async fn refresh_statistics(pool: &PgPool) -> Result<bool, StoreError> {
    let due: Option<bool> = sqlx::query_scalar(
        "WITH t AS (SELECT n_mod_since_analyze AS changed, n_live_tup AS live, \
             COALESCE(GREATEST(last_analyze, last_autoanalyze), 'epoch') AS analyzed \
           FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'runs'), \
         believed AS (SELECT COALESCE((SELECT m.f FROM pg_stats s, \
             unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS m(v, f) \
             WHERE s.schemaname = current_schema() AND s.tablename = 'runs' AND s.attname = 'status' AND m.v = 'queued'), 0) \
           * GREATEST((SELECT c.reltuples FROM pg_class c WHERE c.oid = 'runs'::regclass), 0) AS queued), \
         kept AS (SELECT COALESCE(SUM(runs), 0)::float8 AS queued FROM run_counts WHERE status = 'queued') \
         SELECT (t.changed > 1000 + 0.2 * t.live AND t.analyzed < now() - interval '30 seconds') \
           OR (abs(kept.queued - believed.queued) > 1000 + LEAST(kept.queued, believed.queued) \
             AND t.changed > abs(kept.queued - believed.queued) AND t.analyzed < now() - interval '5 seconds') \
         FROM t, believed, kept",
    )
    .fetch_optional(pool)
    .await?
    .flatten();
    if due != Some(true) {
        return Ok(false);
    }
    // Why: in a transaction, so the lock timeout ends with it, even when the call is given up.
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '100ms'").execute(&mut *tx).await?;
    sqlx::query("ANALYZE (SKIP_LOCKED) runs").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}

/// A read-only transaction whose plans use indexes: counts of open runs (few) among many ended
/// ones must never become a scan of the table because the statistics are stale (measured: an
/// ANALYZE taken while many runs were queued made each count a 250 ms parallel scan of
/// 1,000,000 rows; with this, 0.1 ms).
pub(crate) async fn index_only(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    // Why: one snapshot for every statement, so counts read one after the other agree.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
    Ok(tx)
}

/// See [`crate::Store::run_stats`].
pub(crate) async fn run_stats(pool: &PgPool, since: i64) -> Result<RunStats, StoreError> {
    let mut tx = index_only(pool).await?;
    let open: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT function, status, SUM(runs)::BIGINT FROM run_counts WHERE status IN ('running', 'waiting') \
         GROUP BY function, status HAVING SUM(runs) > 0 ORDER BY function, status",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let rows: Vec<(String, i64, String, String, i32, i64)> =
        sqlx::query_as("SELECT function, minute, status, code, bucket, runs FROM run_minutes WHERE minute >= $1 ORDER BY minute")
            .bind(since)
            .fetch_all(pool)
            .await?;
    let minutes = rows
        .into_iter()
        .map(|(function, minute, status, code, bucket, runs)| MinuteStat { function, minute, status, code, bucket, runs })
        .collect();
    let rolled_until = sqlx::query_scalar("SELECT rolled_until FROM run_minutes_mark WHERE id = 1").fetch_one(pool).await?;
    Ok(RunStats { open, minutes, rolled_until })
}

/// See [`crate::Store::beat`].
pub(crate) async fn beat(pool: &PgPool, n: &NodeBeat) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO nodes (id, host, version, started_at, seen_at, leads) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET host = excluded.host, version = excluded.version, seen_at = excluded.seen_at, \
         leads = excluded.leads",
    )
    .bind(&n.id)
    .bind(&n.host)
    .bind(&n.version)
    .bind(n.started_at)
    .bind(n.seen_at)
    .bind(n.leads)
    .execute(pool)
    .await?;
    sqlx::query("DELETE FROM nodes WHERE seen_at < $1").bind(n.seen_at - FORGET_NODES).execute(pool).await?;
    Ok(())
}

/// See [`crate::Store::nodes`].
pub(crate) async fn nodes(pool: &PgPool) -> Result<Vec<NodeBeat>, StoreError> {
    let rows: Vec<(String, String, String, i64, i64, bool)> =
        sqlx::query_as("SELECT id, host, version, started_at, seen_at, leads FROM nodes ORDER BY started_at, id")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, host, version, started_at, seen_at, leads)| NodeBeat { id, host, version, started_at, seen_at, leads })
        .collect())
}
