//! The load of a function's lanes on SQLite: every lane's exact counts for the keys page, and
//! the bounded counts the held-runs gauges need.

use crate::{LaneLoad, LaneRoom};
use rusqlite::{Connection, params};

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The lanes of `function` with open work, the most queued first.
pub(crate) fn lanes(conn: &Connection, function: &str, limit: u32, offset: u64) -> rusqlite::Result<Vec<LaneLoad>> {
    conn.prepare_cached(
        "SELECT flow_key, SUM(status = 'queued') AS queued, SUM(status = 'running') AS running, \
           SUM(status = 'waiting') AS waiting, MIN(CASE WHEN status = 'queued' THEN created_at END) AS oldest \
         FROM runs INDEXED BY runs_lane_open WHERE function = ?1 AND flow_key IS NOT NULL \
           AND status IN ('queued', 'running', 'waiting') \
         GROUP BY flow_key ORDER BY queued DESC, running DESC, flow_key LIMIT ?2 OFFSET ?3",
    )?
    .query_map(params![function, limit, i64::try_from(offset).unwrap_or(i64::MAX)], |r| {
        Ok(LaneLoad {
            key: r.get(0)?,
            queued: count(r.get(1)?),
            running: count(r.get(2)?),
            waiting: count(r.get(3)?),
            oldest_queued_at: r.get(4)?,
        })
    })?
    .collect()
}

/// The held-runs gauges' read of a function's lanes (`?1` function, `?2` cap, `?3` keys, `?4` now):
/// a skip along `runs_lane_queue` from one key with queued runs to the next, so a lane without
/// queued runs (idle ones the upkeep has not forgotten yet, or ones with running runs only) costs
/// nothing; then each lane's running and due runs, counted up to the cap.
pub(crate) const LANE_ROOM: &str = "WITH RECURSIVE keys(key) AS ( \
      SELECT (SELECT flow_key FROM runs INDEXED BY runs_lane_queue \
              WHERE function = ?1 AND flow_key IS NOT NULL AND status = 'queued' ORDER BY flow_key LIMIT 1) \
      UNION ALL \
      SELECT (SELECT flow_key FROM runs INDEXED BY runs_lane_queue \
              WHERE function = ?1 AND flow_key IS NOT NULL AND status = 'queued' AND flow_key > keys.key \
              ORDER BY flow_key LIMIT 1) \
      FROM keys WHERE keys.key IS NOT NULL LIMIT ?3) \
    SELECT k.key, COALESCE((SELECT tat FROM flow_keys f WHERE f.function = ?1 AND f.key = k.key), 0), \
      (SELECT COUNT(*) FROM (SELECT 1 FROM runs INDEXED BY runs_lane_open \
         WHERE function = ?1 AND flow_key = k.key AND flow_key IS NOT NULL \
           AND status IN ('queued', 'running', 'waiting') AND status = 'running' LIMIT ?2)), \
      (SELECT COUNT(*) FROM (SELECT 1 FROM runs INDEXED BY runs_lane_queue \
         WHERE function = ?1 AND flow_key = k.key AND flow_key IS NOT NULL AND status = 'queued' \
           AND next_attempt_at <= ?4 LIMIT ?2)) \
    FROM keys k WHERE k.key IS NOT NULL ORDER BY k.key";

/// The lanes of `function` with queued runs, by key, at most `keys` of them: each one's running
/// runs and runs due at `now`, each counted up to `cap` ([`LANE_ROOM`]). A lane with no queued
/// run is left out: it has no due run for a gauge to count as held.
pub(crate) fn lane_room(conn: &Connection, function: &str, cap: u32, keys: u32, now: i64) -> rusqlite::Result<Vec<LaneRoom>> {
    conn.prepare_cached(LANE_ROOM)?
        .query_map(params![function, cap, keys, now], |r| {
            Ok(LaneRoom { key: r.get(0)?, tat: r.get(1)?, running: count(r.get(2)?), due: count(r.get(3)?) })
        })?
        .collect()
}

/// Whether a run of `key` of `function` may start as it is stored (decision 0034): fewer than
/// `limit` of the lane's runs execute, and no due run waits in the lane's queue (those come
/// first). Every write runs on the writer thread, so the answer holds until the run is stored.
pub(crate) fn has_room(conn: &Connection, function: &str, key: &str, limit: u32, now: i64) -> rusqlite::Result<bool> {
    let running: u32 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT 1 FROM runs INDEXED BY runs_lane_open WHERE function = ?1 AND flow_key = ?2 \
             AND status = 'running' AND status IN ('queued', 'running', 'waiting') LIMIT ?3)",
        )?
        .query_row(params![function, key, limit], |r| r.get(0))?;
    if running >= limit {
        return Ok(false);
    }
    let waiting: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM runs INDEXED BY runs_lane_queue WHERE function = ?1 AND flow_key = ?2 \
             AND status = 'queued' AND next_attempt_at <= ?3)",
        )?
        .query_row(params![function, key, now], |r| r.get(0))?;
    Ok(!waiting)
}

/// Whether any lane of `function` has a run queued and due at `now`. Why through `runs_queue`:
/// it reads the function's own queued runs only (the first is due, but for delayed runs ahead
/// of it), where `runs_due` would read the due runs of every function.
pub(crate) fn any_due(conn: &Connection, function: &str, now: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM runs INDEXED BY runs_queue WHERE status = 'queued' AND function = ?1 \
         AND next_attempt_at <= ?2)",
    )?
    .query_row(params![function, now], |r| r.get(0))
}
