//! The writes, each run by the writer thread inside its group-commit transaction.

use super::read::get_run;
use super::rows::{RUN_COLS, run_from_row, to_json};
use crate::{CancelOutcome, ClaimRequest, Claimed, Enqueued, FinishRequest, LogLine, StoreError, cancelled_error};
use plinth_core::{NewRun, Run, RunError, RunStatus};
use rusqlite::{Connection, OptionalExtension, params};

/// What a committed write announces.
#[derive(Default)]
pub(crate) struct Events {
    pub(crate) terminal: Vec<String>,
    pub(crate) cancels: Vec<String>,
    /// Runs became due (a wait ended, a child or a rerun was stored): wake the dispatcher.
    pub(crate) work: bool,
}

impl Events {
    /// Adds what `other` announces.
    pub(crate) fn absorb(&mut self, other: Events) {
        self.terminal.extend(other.terminal);
        self.cancels.extend(other.cancels);
        self.work |= other.work;
    }
}

pub(crate) type OpResult<T> = Result<(T, Events), StoreError>;

pub(crate) fn none<T>(v: T) -> OpResult<T> {
    Ok((v, Events::default()))
}

fn missing(id: &str) -> StoreError {
    StoreError::Corrupt(format!("run {id} vanished inside its own transaction"))
}

pub(crate) fn enqueue(conn: &Connection, mut run: NewRun) -> OpResult<Enqueued> {
    if !run.may_start_at_once(run.created_at) {
        run.start = None;
    }
    if let Some(key) = &run.idempotency_key {
        let found: Option<(String, Option<String>)> = conn
            .prepare_cached("SELECT id, request_hash FROM runs WHERE idempotency_key = ?1")?
            .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((id, hash)) = found {
            if hash != run.request_hash {
                return Err(StoreError::IdempotencyMismatch { run_id: id });
            }
            let existing = get_run(conn, &id, false)?.ok_or_else(|| missing(&id))?;
            return none(Enqueued::Replayed(existing));
        }
    }
    if let Some(id) = super::flow::debounce_into(conn, &run)? {
        let existing = get_run(conn, &id, false)?.ok_or_else(|| missing(&id))?;
        return none(Enqueued::Debounced(existing));
    }
    if let Some(limit) = run.max_queued
        && queue_full(conn, &run.function, limit)?
    {
        return Err(StoreError::QueueFull { function: run.function, limit });
    }
    let mut events = Events::default();
    if let Some(s) = &run.singleton
        && let Some(holder) = super::flow::singleton_holder(conn, &run)?
    {
        if s.mode == plinth_core::flow::SingletonMode::Skip {
            return Err(StoreError::SingletonBusy { function: run.function, key: s.key.clone(), run_id: holder });
        }
        events.absorb(cancel(conn, &holder, run.created_at)?.1);
    }
    if let Some(rate) = &run.rate
        && let Err(retry_after) = super::flow::admit_rate(conn, &run.function, rate, run.created_at)?
    {
        return Err(StoreError::RateLimited { function: run.function, key: rate.key.clone(), retry_after });
    }
    if let Some((key, limit)) = run.starts_in_lane()
        && !super::lanes::has_room(conn, &run.function, key, limit, run.created_at)?
    {
        run.start = None;
    }
    insert_run(conn, &run)?;
    Ok((Enqueued::Created(run.into_stored()), events))
}

/// Inserts a run with what started it: queued, or running with its first attempt recorded
/// when it starts at once ([`NewRun::start`]).
pub(crate) fn insert_run(conn: &Connection, run: &NewRun) -> rusqlite::Result<()> {
    let trigger = (run.trigger != plinth_core::Trigger::Api).then(|| to_json(&run.trigger));
    let start = run.start.as_ref();
    conn.prepare_cached(
        "INSERT INTO runs (id, function, status, attempt, max_attempts, input, priority, created_at, \
         next_attempt_at, correlation_id, idempotency_key, request_hash, trigger, trigger_type, event_id, flow_key, \
         debounce_key, singleton_key, start_by, finish_by, cancel_on, batch_key, traceparent, tracestate, lease_owner, \
         started_at, lease_expires_at) VALUES (?1, ?2, CASE WHEN ?23 IS NULL THEN 'queued' ELSE 'running' END, \
         CASE WHEN ?23 IS NULL THEN 0 ELSE 1 END, \
         ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    )?
    .execute(params![
        run.run_id,
        run.function,
        run.max_attempts,
        to_json(&run.input),
        run.priority,
        run.created_at,
        run.not_before,
        run.correlation_id,
        run.idempotency_key,
        run.request_hash,
        trigger,
        run.trigger.kind(),
        run.trigger.event_id(),
        run.flow_key,
        run.debounce.as_ref().map(|d| d.key.as_str()),
        run.singleton.as_ref().map(|s| s.key.as_str()),
        run.expiry.start_by,
        run.expiry.finish_by,
        run.expiry.cancel_on,
        run.batch.as_ref().map(|b| b.key.as_str()),
        run.traceparent,
        run.tracestate,
        start.map(|s| s.owner.as_str()),
        start.map(|s| s.started_at),
        start.map(|s| s.lease_until),
    ])?;
    if let Some(s) = start {
        conn.prepare_cached(
            "INSERT INTO attempts (run_id, attempt, owner, started_at, outcome) VALUES (?1, 1, ?2, ?3, 'running')",
        )?
        .execute(params![run.run_id, s.owner, s.started_at])?;
    }
    if let Some(key) = &run.flow_key {
        super::flow::open_lane(conn, &run.function, key, run.created_at)?;
    }
    Ok(())
}

/// Whether `function` already has `limit` queued runs (counting at most `limit` index entries).
pub(crate) fn queue_full(conn: &Connection, function: &str, limit: u32) -> rusqlite::Result<bool> {
    // Why: counts at most `limit` entries of the queue index, never the whole queue.
    let queued: u32 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT 1 FROM runs INDEXED BY runs_queue WHERE status = 'queued' AND function = ?1 LIMIT ?2)",
        )?
        .query_row(params![function, limit], |r| r.get(0))?;
    Ok(queued >= limit)
}

pub(crate) fn claim(conn: &Connection, req: &ClaimRequest) -> OpResult<Claimed> {
    let next_wake = super::steps::wake_due(conn, req.now)?;
    let sql = format!(
        "UPDATE runs SET status = 'running', attempt = attempt + 1, lease_owner = ?1, lease_expires_at = ?2, \
         started_at = ?3 WHERE id IN (SELECT id FROM runs WHERE status = 'queued' AND function = ?4 \
         AND next_attempt_at <= ?3 ORDER BY priority DESC, next_attempt_at, id LIMIT ?5) RETURNING {RUN_COLS}"
    );
    let mut runs = Vec::new();
    let mut throttled_until = None;
    let mut lanes_due = false;
    for (function, n) in &req.wants {
        // Why before the room is counted: a limited function this claim has no slot left for
        // still says whether its lanes hold due runs.
        if !lanes_due && req.limits.contains_key(function) {
            lanes_due = super::lanes::any_due(conn, function, req.now)?;
        }
        let remaining = u32::try_from(runs.len()).map_or(0, |taken| req.limit.saturating_sub(taken));
        let n = (*n).min(remaining);
        if n == 0 {
            continue;
        }
        if let Some(rules) = req.limits.get(function) {
            let (taken, until) = super::flow::claim_lanes(conn, req, function, n, rules)?;
            runs.extend(taken);
            throttled_until = until.map(|t| throttled_until.map_or(t, |u: i64| u.min(t))).or(throttled_until);
            continue;
        }
        let mut stmt = conn.prepare_cached(&sql)?;
        let claimed = stmt
            .query_map(params![req.owner, req.lease_until, req.now, function, n], run_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        runs.extend(claimed);
    }
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO attempts (run_id, attempt, owner, started_at, outcome) VALUES (?1, ?2, ?3, ?4, 'running')",
    )?;
    for run in &runs {
        insert.execute(params![run.run_id, run.attempt, req.owner, req.now])?;
    }
    runs.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.run_id.cmp(&b.run_id)));
    let next_due: Option<i64> =
        // Why: without INDEXED BY the planner walks every queued run through `runs_by_status`.
        conn.prepare_cached("SELECT MIN(next_attempt_at) FROM runs INDEXED BY runs_due WHERE status = 'queued'")?
            .query_row([], |r| r.get(0))?;
    let next_due = match (next_due, next_wake) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    none(Claimed { runs, next_due, throttled_until, lanes_due })
}

pub(crate) fn finish(conn: &Connection, req: FinishRequest) -> OpResult<bool> {
    let held: Option<i64> = conn
        .prepare_cached(
            "SELECT cancel_requested FROM runs WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?3 AND status = 'running'",
        )?
        .query_row(params![req.run_id, req.owner, req.attempt], |r| r.get(0))
        .optional()?;
    let Some(cancel_requested) = held else {
        return none(false);
    };
    let mut events = Events::default();
    if let (plinth_core::Finish::Suspended(s), 0) = (&req.finish, cancel_requested) {
        super::steps::suspend(conn, &req, s, &mut events)?;
        end_attempt(conn, &req, None)?;
        return Ok((true, events));
    }
    let attempt_error = crate::transition::attempt_error(&req);
    let t = crate::transition::transition(&req, cancel_requested != 0);
    let terminal = t.status.is_terminal();
    conn.prepare_cached(
        "UPDATE runs SET status = ?1, output = ?2, \
         error = CASE WHEN ?1 = 'cancelled' AND cancel_error IS NOT NULL THEN cancel_error ELSE COALESCE(?3, error) END, \
         finished_at = ?4, \
         next_attempt_at = COALESCE(?5, next_attempt_at), attempt = ?6, lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = ?7",
    )?
    .execute(params![
        t.status.as_str(),
        t.output,
        t.error.as_ref().map(to_json),
        terminal.then_some(req.now),
        t.next_attempt_at,
        t.attempt,
        req.run_id,
    ])?;
    end_attempt(conn, &req, attempt_error.as_ref())?;
    if terminal {
        events.terminal.push(req.run_id);
    }
    Ok((true, events))
}

fn end_attempt(conn: &Connection, req: &FinishRequest, error: Option<&RunError>) -> rusqlite::Result<()> {
    let duration_us = i64::try_from(req.duration.as_micros()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "UPDATE attempts SET finished_at = ?1, outcome = ?2, error = ?3, duration_us = ?4 WHERE run_id = ?5 AND attempt = ?6",
    )?
    .execute(params![req.now, req.finish.outcome(), error.map(to_json), duration_us, req.run_id, req.attempt])?;
    Ok(())
}

pub(crate) fn append_logs(conn: &Connection, run_id: &str, attempt: u32, lines: &[LogLine]) -> OpResult<()> {
    // Why: only lines of a run that exists are kept, so pruning the run prunes all its lines.
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO run_logs (run_id, attempt, seq, ts, line) \
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)",
    )?;
    for l in lines {
        stmt.execute(params![run_id, attempt, l.seq, l.ts, l.line])?;
    }
    none(())
}

pub(crate) fn cancel(conn: &Connection, run_id: &str, now: i64) -> OpResult<CancelOutcome> {
    let mut events = Events::default();
    let outcome = cancel_with(conn, run_id, now, &cancelled_error(), &mut events)?;
    Ok((outcome, events))
}

/// Cancels a run with `error`: at once when queued or waiting; a running one is asked to stop,
/// and ends with `error` when it does.
pub(crate) fn cancel_with(
    conn: &Connection,
    run_id: &str,
    now: i64,
    error: &RunError,
    events: &mut Events,
) -> Result<CancelOutcome, StoreError> {
    let Some(run) = get_run(conn, run_id, false)? else {
        return Ok(CancelOutcome::NotFound);
    };
    Ok(match run.status {
        RunStatus::Queued => {
            conn.prepare_cached(
                "UPDATE runs SET status = 'cancelled', finished_at = ?1, error = ?2, cancel_requested = 1 WHERE id = ?3",
            )?
            .execute(params![now, to_json(error), run_id])?;
            events.terminal.push(run_id.to_string());
            CancelOutcome::Cancelled(get_run(conn, run_id, false)?.ok_or_else(|| missing(run_id))?)
        }
        RunStatus::Running => {
            conn.prepare_cached("UPDATE runs SET cancel_requested = 1, cancel_error = COALESCE(cancel_error, ?2) WHERE id = ?1")?
                .execute(params![run_id, to_json(error)])?;
            events.cancels.push(run_id.to_string());
            CancelOutcome::Requested(Run { cancel_requested: true, ..run })
        }
        RunStatus::Waiting => {
            super::steps::cancel_waiting(conn, run_id, now, events, error)?;
            CancelOutcome::Cancelled(get_run(conn, run_id, false)?.ok_or_else(|| missing(run_id))?)
        }
        _ => CancelOutcome::AlreadyTerminal(run),
    })
}

pub(crate) fn prune(conn: &Connection, before: i64, keys_before: i64, batch: u32) -> OpResult<u64> {
    conn.prepare_cached(
        "UPDATE runs INDEXED BY runs_keys_by_age SET idempotency_key = NULL, request_hash = NULL \
         WHERE idempotency_key IS NOT NULL AND created_at < ?1",
    )?
    .execute(params![keys_before])?;
    let doomed = "SELECT id FROM runs WHERE finished_at < ?1 AND idempotency_key IS NULL ORDER BY finished_at, id LIMIT ?2";
    conn.execute(&format!("DELETE FROM run_logs WHERE run_id IN ({doomed})"), params![before, batch])?;
    conn.execute(&format!("DELETE FROM attempts WHERE run_id IN ({doomed})"), params![before, batch])?;
    conn.execute(&format!("DELETE FROM steps WHERE run_id IN ({doomed})"), params![before, batch])?;
    let n = conn.execute(&format!("DELETE FROM runs WHERE id IN ({doomed})"), params![before, batch])?;
    none(n as u64)
}

/// Bytes the health probe writes and clears: a few pages the database must be able to find.
const PROBE_ROOM: i64 = 64 * 1024;

/// Writes a row with room to spare, then clears the room: fails when the file cannot grow.
pub(crate) fn probe(conn: &Connection, now: i64) -> OpResult<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO health_probe (id, at, room) VALUES (1, ?1, zeroblob(?2))")?
        .execute(params![now, PROBE_ROOM])?;
    conn.prepare_cached("UPDATE health_probe SET room = NULL WHERE id = 1")?.execute([])?;
    none(())
}
