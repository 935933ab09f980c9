//! Timeouts and `cancel_on` on SQLite: the sweep that cancels runs past their deadlines, and
//! the runs an event's `cancel_on` rules cancel, in the event's own transaction.

use super::ops::{Events, OpResult, cancel_with};
use crate::expiry::{Expired, SWEEP, finish_error, reaches, start_error};
use crate::{CancelOutcome, StoreError};
use plinth_core::flow::CancelMatch;
use plinth_core::{Event, RunError};
use rusqlite::{Connection, params};

/// Cancels the runs past a deadline, at most [`SWEEP`] of each kind.
pub(crate) fn expire(conn: &Connection, now: i64) -> OpResult<Vec<Expired>> {
    let mut events = Events::default();
    let mut out = Vec::new();
    let late_start: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT id, start_by FROM runs INDEXED BY runs_start_by \
             WHERE start_by IS NOT NULL AND status = 'queued' AND started_at IS NULL AND start_by <= ?1 ORDER BY start_by LIMIT ?2",
        )?
        .query_map(params![now, SWEEP], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, at) in late_start {
        end(conn, &id, now, start_error(at), &mut events, &mut out)?;
    }
    let late_finish: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT id, finish_by FROM runs INDEXED BY runs_finish_by \
             WHERE finish_by IS NOT NULL AND cancel_requested = 0 AND status IN ('queued', 'running', 'waiting') \
             AND finish_by <= ?1 ORDER BY finish_by LIMIT ?2",
        )?
        .query_map(params![now, SWEEP], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, at) in late_finish {
        end(conn, &id, now, finish_error(at), &mut events, &mut out)?;
    }
    Ok((out, events))
}

fn end(
    conn: &Connection,
    id: &str,
    now: i64,
    error: RunError,
    events: &mut Events,
    out: &mut Vec<Expired>,
) -> Result<(), StoreError> {
    let (run, stopping) = match cancel_with(conn, id, now, &error, events)? {
        CancelOutcome::Cancelled(run) => (run, false),
        CancelOutcome::Requested(run) => (run, true),
        CancelOutcome::AlreadyTerminal(_) | CancelOutcome::NotFound => return Ok(()),
    };
    out.push(Expired { run_id: run.run_id, function: run.function, error, stopping });
    Ok(())
}

/// Cancels the unfinished runs `event`'s rules reach: created in `[since, event)` (runs the
/// event itself starts are stored after this), and matching the rule's `if`.
pub(crate) fn cancel_matching(
    conn: &Connection,
    event: &Event,
    rules: &[CancelMatch],
    events: &mut Events,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, input FROM runs INDEXED BY runs_cancel_on WHERE function = ?1 AND cancel_on = 1 \
         AND status IN ('queued', 'running', 'waiting') AND created_at >= ?2 AND created_at <= ?3 ORDER BY created_at",
    )?;
    let mut cancelled = Vec::new();
    for rule in rules {
        let found: Vec<(String, String)> = stmt
            .query_map(params![rule.function, rule.since, event.received_at], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (id, input) in found {
            let input = serde_json::from_str(&input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if cancelled.contains(&id) || !reaches(rule, event, &id, &input) {
                continue;
            }
            if let CancelOutcome::Cancelled(_) | CancelOutcome::Requested(_) =
                cancel_with(conn, &id, event.received_at, &rule.error(event), events)?
            {
                cancelled.push(id);
            }
        }
    }
    Ok(cancelled)
}
