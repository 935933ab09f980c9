//! Heartbeats, the adoption of runs a node did not know it held, and the rescue of lost
//! leases.

use super::ops::{Events, OpResult, none};
use super::rows::{RUN_COLS, run_from_row, to_json};
use crate::{ADOPT_MOST, Heartbeat, Rescued, cancelled_error};
use plinth_core::{Code, Run, RunError, RunStatus};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn heartbeat(conn: &Connection, owner: &str, runs: &[(String, u32)], until: i64) -> OpResult<Heartbeat> {
    let mut stmt = conn.prepare_cached(
        "UPDATE runs SET lease_expires_at = ?1 WHERE id = ?2 AND lease_owner = ?3 AND attempt = ?4 \
         AND status = 'running' RETURNING cancel_requested",
    )?;
    let mut hb = Heartbeat::default();
    for (id, attempt) in runs {
        match stmt.query_row(params![until, id, owner, attempt], |r| r.get::<_, i64>(0)).optional()? {
            None => hb.lost.push(id.clone()),
            Some(0) => {}
            Some(_) => hb.cancel.push(id.clone()),
        }
    }
    none(hb)
}

/// Renews and returns the runs leased to `owner` whose lease ends before `stale_before`
/// ([`crate::Store::adopt`]).
pub(crate) fn adopt(conn: &Connection, owner: &str, stale_before: i64, until: i64) -> OpResult<Vec<Run>> {
    let sql = format!(
        "UPDATE runs SET lease_expires_at = ?3 WHERE id IN (SELECT id FROM runs INDEXED BY runs_leases \
           WHERE status = 'running' AND lease_expires_at < ?2 AND lease_owner = ?1 ORDER BY lease_expires_at LIMIT ?4) \
         RETURNING {RUN_COLS}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let runs = stmt.query_map(params![owner, stale_before, until, ADOPT_MOST], run_from_row)?.collect::<Result<Vec<_>, _>>()?;
    none(runs)
}

pub(crate) fn rescue(conn: &Connection, now: i64) -> OpResult<Vec<Rescued>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, function, attempt, max_attempts, COALESCE(lease_owner, ''), cancel_requested FROM runs \
         INDEXED BY runs_leases WHERE status = 'running' AND lease_expires_at < ?1 ORDER BY lease_expires_at LIMIT 1000",
    )?;
    let expired = stmt
        .query_map(params![now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut update = conn.prepare_cached(
        "UPDATE runs SET status = ?1, error = CASE WHEN ?1 = 'cancelled' THEN COALESCE(cancel_error, ?2) ELSE ?2 END, \
         finished_at = ?3, next_attempt_at = ?4, lease_owner = NULL, \
         lease_expires_at = NULL WHERE id = ?5",
    )?;
    let mut attempt_update = conn.prepare_cached(
        "UPDATE attempts SET finished_at = ?1, outcome = 'lease_expired', error = ?2 WHERE run_id = ?3 AND attempt = ?4",
    )?;
    let mut rescued = Vec::with_capacity(expired.len());
    let mut events = Events::default();
    for (id, function, attempt, max_attempts, owner, cancel_requested) in expired {
        let lost =
            RunError::new(Code::LeaseExpired, format!("worker {owner} stopped renewing its lease during attempt {attempt}"));
        let (status, error) = if cancel_requested != 0 {
            (RunStatus::Cancelled, cancelled_error())
        } else if attempt >= max_attempts {
            (RunStatus::Failed, lost.clone())
        } else {
            (RunStatus::Queued, lost.clone())
        };
        let terminal = status.is_terminal();
        update.execute(params![status.as_str(), to_json(&error), terminal.then_some(now), now, id])?;
        attempt_update.execute(params![now, to_json(&lost), id, attempt])?;
        if terminal {
            events.terminal.push(id.clone());
        }
        rescued.push(Rescued { run_id: id, function, attempt, owner, status });
    }
    Ok((rescued, events))
}
