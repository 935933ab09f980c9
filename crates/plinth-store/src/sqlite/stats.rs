//! The overview's statistics on SQLite: the roll-up of ended runs into `run_minutes` (on the
//! writer thread, so the mark and the minutes it adds change together) and the nodes' beats.

use super::ops::{OpResult, none};
use crate::stats::{FORGET_NODES, KEEP_MINUTES, Tally, span};
use crate::{MinuteStat, NodeBeat, RunStats};
use rusqlite::{Connection, params};

/// See [`crate::Store::roll_up`].
pub(crate) fn roll_up(conn: &Connection, until: i64) -> OpResult<u64> {
    let mark: Option<i64> = conn.query_row("SELECT rolled_until FROM run_minutes_mark WHERE id = 1", [], |r| r.get(0))?;
    let Some((from, to)) = span(mark, until) else { return none(0) };
    let mut tally = Tally::default();
    let rows = conn
        .prepare_cached(
            "SELECT function, status, error, started_at, finished_at FROM runs INDEXED BY runs_finished \
             WHERE finished_at > ?1 AND finished_at <= ?2 AND status IN ('succeeded', 'failed', 'cancelled')",
        )?
        .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<String>>(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<rusqlite::Result<Vec<(String, String, Option<String>, Option<i64>, i64)>>>()?;
    for (function, status, error, started, finished) in rows {
        tally.add(function, status, error.as_deref(), started, finished);
    }
    let minutes = tally.into_minutes();
    let mut add = conn.prepare_cached(
        "INSERT INTO run_minutes (function, minute, status, code, bucket, runs) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (function, minute, status, code, bucket) DO UPDATE SET runs = runs + excluded.runs",
    )?;
    for m in &minutes {
        add.execute(params![m.function, m.minute, m.status, m.code, m.bucket, m.runs])?;
    }
    conn.prepare_cached("UPDATE run_minutes_mark SET rolled_until = ?1 WHERE id = 1")?.execute(params![to])?;
    conn.prepare_cached("DELETE FROM run_minutes WHERE minute < ?1")?.execute(params![until - KEEP_MINUTES])?;
    none(minutes.len() as u64)
}

/// See [`crate::Store::run_stats`].
pub(crate) fn run_stats(conn: &Connection, since: i64) -> rusqlite::Result<RunStats> {
    let open = conn
        .prepare_cached(
            "SELECT function, 'running', COUNT(*) FROM runs INDEXED BY runs_by_status WHERE status = 'running' \
             GROUP BY function UNION ALL SELECT function, status, runs FROM run_counts WHERE status = 'waiting' AND runs > 0 \
             ORDER BY 1, 2",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let minutes = conn
        .prepare_cached(
            "SELECT function, minute, status, code, bucket, runs FROM run_minutes INDEXED BY run_minutes_by_minute \
             WHERE minute >= ?1 ORDER BY minute",
        )?
        .query_map(params![since], |r| {
            Ok(MinuteStat {
                function: r.get(0)?,
                minute: r.get(1)?,
                status: r.get(2)?,
                code: r.get(3)?,
                bucket: r.get(4)?,
                runs: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let rolled_until = conn.query_row("SELECT rolled_until FROM run_minutes_mark WHERE id = 1", [], |r| r.get(0))?;
    Ok(RunStats { open, minutes, rolled_until })
}

/// See [`crate::Store::beat`].
pub(crate) fn beat(conn: &Connection, n: &NodeBeat) -> OpResult<()> {
    conn.prepare_cached(
        "INSERT INTO nodes (id, host, version, started_at, seen_at, leads) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (id) DO UPDATE SET host = excluded.host, version = excluded.version, seen_at = excluded.seen_at, \
         leads = excluded.leads",
    )?
    .execute(params![n.id, n.host, n.version, n.started_at, n.seen_at, n.leads])?;
    conn.prepare_cached("DELETE FROM nodes WHERE seen_at < ?1")?.execute(params![n.seen_at - FORGET_NODES])?;
    none(())
}

/// See [`crate::Store::nodes`].
pub(crate) fn nodes(conn: &Connection) -> rusqlite::Result<Vec<NodeBeat>> {
    conn.prepare_cached("SELECT id, host, version, started_at, seen_at, leads FROM nodes ORDER BY started_at, id")?
        .query_map([], |r| {
            Ok(NodeBeat {
                id: r.get(0)?,
                host: r.get(1)?,
                version: r.get(2)?,
                started_at: r.get(3)?,
                seen_at: r.get(4)?,
                leads: r.get(5)?,
            })
        })?
        .collect()
}
