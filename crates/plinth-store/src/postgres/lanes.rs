//! The load of a function's lanes on PostgreSQL: every lane's exact counts for the keys page,
//! and the bounded counts the held-runs gauges need.

use crate::{LaneLoad, LaneRoom, StoreError};
use sqlx::{PgPool, Row};

fn count(row: &sqlx::postgres::PgRow, col: &str) -> Result<u64, StoreError> {
    Ok(u64::try_from(row.try_get::<i64, _>(col)?).unwrap_or(0))
}

/// The lanes of `function` with open work, the most queued first.
pub(crate) async fn lanes(pool: &PgPool, function: &str, limit: u32, offset: u64) -> Result<Vec<LaneLoad>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.flow_key, COUNT(*) FILTER (WHERE r.status = 'queued') AS queued, \
           COUNT(*) FILTER (WHERE r.status = 'running') AS running, COUNT(*) FILTER (WHERE r.status = 'waiting') AS waiting, \
           MIN(r.created_at) FILTER (WHERE r.status = 'queued') AS oldest \
         FROM runs r \
         WHERE r.function = $1 AND r.flow_key IS NOT NULL AND r.status IN ('queued', 'running', 'waiting') \
         GROUP BY r.flow_key ORDER BY queued DESC, running DESC, r.flow_key LIMIT $2 OFFSET $3",
    )
    .bind(function)
    .bind(i64::from(limit))
    .bind(i64::try_from(offset).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(LaneLoad {
                key: row.try_get("flow_key")?,
                queued: count(row, "queued")?,
                running: count(row, "running")?,
                waiting: count(row, "waiting")?,
                oldest_queued_at: row.try_get("oldest")?,
            })
        })
        .collect()
}

/// The lanes of `function` known to have open work, by key, at most `keys` of them: each one's
/// running runs and runs due at `now`, each counted up to `cap` (a probe of `runs_lane_open` and
/// one of `runs_lane_queue`, so the cost does not grow with what a lane holds).
pub(crate) async fn lane_room(pool: &PgPool, function: &str, cap: u32, keys: u32, now: i64) -> Result<Vec<LaneRoom>, StoreError> {
    let rows = sqlx::query(
        "SELECT k.key, k.tat, \
           (SELECT COUNT(*) FROM (SELECT 1 FROM runs r WHERE r.function = $1 AND r.flow_key = k.key \
              AND r.status = 'running' LIMIT $2) s) AS running, \
           (SELECT COUNT(*) FROM (SELECT 1 FROM runs r WHERE r.function = $1 AND r.flow_key = k.key \
              AND r.status = 'queued' AND r.next_attempt_at <= $4 LIMIT $2) s) AS due \
         FROM flow_keys k WHERE k.function = $1 ORDER BY k.key LIMIT $3",
    )
    .bind(function)
    .bind(i64::from(cap))
    .bind(i64::from(keys))
    .bind(now)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(LaneRoom {
                key: row.try_get("key")?,
                tat: row.try_get("tat")?,
                running: count(row, "running")?,
                due: count(row, "due")?,
            })
        })
        .collect()
}
