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

/// The held-runs gauges' read of a function's lanes (`$1` function, `$2` cap, `$3` keys, `$4` now):
/// a skip along `runs_lane_queue` from one key with queued runs to the next (PostgreSQL reads a
/// recursive query only as far as its `LIMIT` asks), so a lane without queued runs (idle ones the
/// upkeep has not forgotten yet, or ones with running runs only) costs nothing; then each lane's
/// running and due runs, counted up to the cap.
pub(crate) const LANE_ROOM: &str = "WITH RECURSIVE keys(key) AS ( \
      (SELECT r.flow_key FROM runs r WHERE r.function = $1 AND r.flow_key IS NOT NULL AND r.status = 'queued' \
       ORDER BY r.flow_key LIMIT 1) \
      UNION ALL \
      SELECT (SELECT r.flow_key FROM runs r WHERE r.function = $1 AND r.flow_key IS NOT NULL AND r.status = 'queued' \
              AND r.flow_key > keys.key ORDER BY r.flow_key LIMIT 1) \
      FROM keys WHERE keys.key IS NOT NULL) \
    SELECT k.key, COALESCE((SELECT f.tat FROM flow_keys f WHERE f.function = $1 AND f.key = k.key), 0) AS tat, \
      (SELECT COUNT(*) FROM (SELECT 1 FROM runs r WHERE r.function = $1 AND r.flow_key = k.key \
         AND r.status = 'running' LIMIT $2) s) AS running, \
      (SELECT COUNT(*) FROM (SELECT 1 FROM runs r WHERE r.function = $1 AND r.flow_key = k.key \
         AND r.status = 'queued' AND r.next_attempt_at <= $4 LIMIT $2) s) AS due \
    FROM (SELECT key FROM keys WHERE key IS NOT NULL LIMIT $3) k ORDER BY k.key";

/// The lanes of `function` with queued runs, by key, at most `keys` of them: each one's running
/// runs and runs due at `now`, each counted up to `cap` ([`LANE_ROOM`]). A lane with no queued
/// run is left out: it has no due run for a gauge to count as held.
pub(crate) async fn lane_room(pool: &PgPool, function: &str, cap: u32, keys: u32, now: i64) -> Result<Vec<LaneRoom>, StoreError> {
    let rows = sqlx::query(LANE_ROOM).bind(function).bind(i64::from(cap)).bind(i64::from(keys)).bind(now).fetch_all(pool).await?;
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
