//! The load of a function's lanes on PostgreSQL: every lane's exact counts for the keys page,
//! and the bounded counts the held-runs gauges need.

use crate::{LaneLoad, LaneRoom, StoreError};
use plinth_core::NewRun;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::HashMap;

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

/// Each lane `($1[i], $2[i])`: its running runs, counted up to its limit `$3[i]`, and whether a
/// run of it is queued and due at `$4`, in the order of the arrays.
pub(super) const LANE_COUNT: &str = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM runs c WHERE c.function = u.function \
       AND c.flow_key = u.key AND c.status = 'running' LIMIT u.cap) n), \
     EXISTS (SELECT 1 FROM runs q WHERE q.function = u.function AND q.flow_key = u.key AND q.status = 'queued' \
       AND q.next_attempt_at <= $4) \
     FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS u(function, key, cap, ord) ORDER BY u.ord";

/// The lanes of the runs in `runs` that its node wants started, once each, in lock order, with
/// their limits.
fn starting_lanes<'a>(runs: &[&'a NewRun]) -> Vec<(&'a str, &'a str, u32)> {
    let mut lanes: Vec<(&str, &str, u32)> =
        runs.iter().filter_map(|r| r.starts_in_lane().map(|(key, limit)| (r.function.as_str(), key, limit))).collect();
    lanes.sort_unstable();
    lanes.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    lanes
}

/// Opens and locks, in one statement, the lanes of a batch whose every run with a lane is one its
/// node wants started; false when a lane was neither found nor inserted by it (another batch
/// committed it while this one waited), and the caller must roll back and take the long way
/// ([`super::insert`]: `FOR KEY SHARE`, insert, then [`held_back`]). Why the insert goes first (the
/// one-time condition on `ins` runs before the lanes are read and locked): a batch may wait
/// there for another's uncommitted lane, and must hold no `FOR NO KEY UPDATE` lock while it
/// waits, or the two could wait on each other. The lanes it inserts are its own until it commits.
pub(crate) async fn open_and_lock(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<bool, StoreError> {
    let lanes = starting_lanes(runs);
    let functions: Vec<&str> = lanes.iter().map(|l| l.0).collect();
    let keys: Vec<&str> = lanes.iter().map(|l| l.1).collect();
    let now = runs.iter().map(|r| r.created_at).max().unwrap_or_default();
    let (inserted, locked): (i64, i64) = sqlx::query_as(
        "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[]) AS u(function, key)), \
         ins AS (INSERT INTO flow_keys (function, key, served, touched_at) SELECT function, key, 0, $3 FROM u \
           ORDER BY function, key ON CONFLICT (function, key) DO NOTHING RETURNING 1), \
         held AS (SELECT 1 FROM flow_keys k JOIN u ON k.function = u.function AND k.key = u.key \
           WHERE (SELECT COUNT(*) FROM ins) >= 0 ORDER BY k.function, k.key FOR NO KEY UPDATE OF k) \
         SELECT (SELECT COUNT(*) FROM ins), (SELECT COUNT(*) FROM held)",
    )
    .bind(&functions)
    .bind(&keys)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(usize::try_from(inserted + locked).unwrap_or(0) == lanes.len())
}

/// Of a batch whose lanes are open, the runs its node wants started that must be stored queued
/// instead (decision 0034): their lane has `limit` runs executing, counting the batch's own in
/// its order, or a due run waiting in its queue (those come first). The lanes of such runs are
/// locked as a claim locks them (`FOR NO KEY UPDATE`, in one order, waiting rather than
/// skipping), unless `locked` says [`open_and_lock`] did, then counted in a later statement, so
/// the count sees every claim and batch that committed before the lock, and none commits on the
/// lane until this batch does.
pub(crate) async fn held_back(conn: &mut PgConnection, runs: &[&NewRun], locked: bool) -> Result<Vec<bool>, StoreError> {
    let lanes = starting_lanes(runs);
    if lanes.is_empty() {
        return Ok(vec![false; runs.len()]);
    }
    let functions: Vec<&str> = lanes.iter().map(|l| l.0).collect();
    let keys: Vec<&str> = lanes.iter().map(|l| l.1).collect();
    let limits: Vec<i64> = lanes.iter().map(|l| i64::from(l.2)).collect();
    let now = runs.iter().map(|r| r.created_at).max().unwrap_or_default();
    if !locked {
        sqlx::query(
            "SELECT 1 FROM flow_keys k JOIN unnest($1::text[], $2::text[]) AS u(function, key) \
             ON k.function = u.function AND k.key = u.key ORDER BY k.function, k.key FOR NO KEY UPDATE OF k",
        )
        .bind(&functions)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    }
    let rows: Vec<(i64, bool)> =
        sqlx::query_as(LANE_COUNT).bind(&functions).bind(&keys).bind(&limits).bind(now).fetch_all(&mut *conn).await?;
    let mut room: HashMap<(&str, &str), i64> = HashMap::with_capacity(lanes.len());
    for (lane, (running, waiting)) in lanes.iter().zip(rows) {
        room.insert((lane.0, lane.1), if waiting { 0 } else { i64::from(lane.2) - running });
    }
    Ok(runs
        .iter()
        .map(|r| {
            let Some((key, _)) = r.starts_in_lane() else { return false };
            match room.get_mut(&(r.function.as_str(), key)) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    false
                }
                _ => true,
            }
        })
        .collect())
}
