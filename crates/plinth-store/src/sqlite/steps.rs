//! Step functions on SQLite: the memo rows, suspending a run, and waking it by its timer, by
//! an event or by its invoked run's end, all inside the writer's transaction.

use super::ops::insert_run;
use super::ops::{Events, OpResult};
use super::read::get_run;
use super::rows::{RUN_COLS, run_from_row, to_json};
use crate::starter::Resumed;
use crate::steps::{FOREVER, cancelled_step, child_result, event_matches, matches_compiled, parse_wait, run_var, wait_text};
use crate::waitkey::{KeyEq, Probe};
use crate::{FinishRequest, StoreError};
use plinth_core::run::StartNow;
use plinth_core::steps::{Step, StepError, StepStatus, Suspension, Wait};
use plinth_core::trigger::Expr;
use plinth_core::{Event, NewRun, Run, RunStatus};
use rusqlite::{Connection, OptionalExtension, Row, params};

const STEP_COLS: &str = "id, seq, op, status, attempts, started_at, finished_at, output, error, wait";

fn json_err(col: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

fn step_from_row(row: &Row<'_>) -> rusqlite::Result<Step> {
    let status: String = row.get(3)?;
    let output: Option<String> = row.get(7)?;
    let error: Option<String> = row.get(8)?;
    let wait: Option<String> = row.get(9)?;
    let started_at: i64 = row.get(5)?;
    let finished_at: Option<i64> = row.get(6)?;
    #[allow(clippy::cast_precision_loss)]
    Ok(Step {
        id: row.get(0)?,
        seq: row.get(1)?,
        op: row.get(2)?,
        status: StepStatus::parse(&status).unwrap_or(StepStatus::Running),
        attempts: row.get(4)?,
        started_at,
        finished_at,
        duration_ms: finished_at.map(|f| (f - started_at).max(0) as f64 / 1000.0),
        output: output.map(|t| serde_json::from_str(&t).map_err(|e| json_err(7, e))).transpose()?,
        error: error.map(|t| serde_json::from_str::<StepError>(&t).map_err(|e| json_err(8, e))).transpose()?,
        truncated: false,
        wait: parse_wait(wait.as_deref()),
    })
}

/// A run's steps in the order they were first reached.
pub(crate) fn load(conn: &Connection, run_id: &str) -> rusqlite::Result<Vec<Step>> {
    let sql = format!("SELECT {STEP_COLS} FROM steps WHERE run_id = ?1 ORDER BY seq");
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_map(params![run_id], step_from_row)?.collect()
}

/// Writes one step (new or changed).
pub(crate) fn upsert(conn: &Connection, run_id: &str, s: &Step) -> rusqlite::Result<()> {
    let waiting = s.status == StepStatus::Waiting;
    let matched = match crate::waitkey::key_of(s) {
        Some(k) => {
            let input: Option<String> = conn
                .prepare_cached("SELECT input FROM runs WHERE id = ?1")?
                .query_row(params![run_id], |r| r.get(0))
                .optional()?;
            Some(crate::waitkey::wait_match(&k, input.as_deref().unwrap_or("null")))
        }
        None => None,
    };
    conn.prepare_cached(
        "INSERT INTO steps (run_id, id, seq, op, status, attempts, started_at, finished_at, output, error, wait, wait_key, wait_match) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (run_id, id) DO UPDATE SET \
         op = excluded.op, status = excluded.status, attempts = excluded.attempts, finished_at = excluded.finished_at, \
         output = excluded.output, error = excluded.error, wait = excluded.wait, wait_key = excluded.wait_key, \
         wait_match = excluded.wait_match",
    )?
    .execute(params![
        run_id,
        s.id,
        s.seq,
        s.op,
        s.status.as_str(),
        s.attempts,
        s.started_at,
        s.finished_at,
        s.output.as_ref().map(to_json),
        s.error.as_ref().map(to_json),
        wait_text(s),
        if waiting { s.wait.as_ref().and_then(Wait::key) } else { None },
        matched,
    ])?;
    Ok(())
}

fn holds(conn: &Connection, run_id: &str, owner: &str, attempt: u32) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT cancel_requested FROM runs WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?3 AND status = 'running'",
    )?
    .query_row(params![run_id, owner, attempt], |r| r.get(0))
    .optional()
}

/// Stores steps of a running attempt; `false` when its lease moved elsewhere.
pub(crate) fn save(conn: &Connection, run_id: &str, owner: &str, attempt: u32, steps: &[Step]) -> OpResult<bool> {
    if holds(conn, run_id, owner, attempt)?.is_none() {
        return Ok((false, Events::default()));
    }
    for s in steps {
        upsert(conn, run_id, s)?;
    }
    Ok((true, Events::default()))
}

/// Records a call that ended at a step boundary (the lease already checked): the step and its
/// wait, the child an `invoke` starts, and the run `waiting` (or `queued` for a step's retry)
/// with the attempt not counted. An event that already arrived ends a wait at once.
pub(crate) fn suspend(conn: &Connection, req: &FinishRequest, s: &Suspension, events: &mut Events) -> Result<(), StoreError> {
    let mut step = s.step.clone();
    if let Some(child) = &s.child {
        insert_run(conn, child)?;
        events.work = true;
    }
    let run = get_run(conn, &req.run_id, false)?.ok_or_else(|| StoreError::Corrupt(format!("run {} vanished", req.run_id)))?;
    if let Some(wait) = step.wait.clone()
        && let Wait::Event { event, since, .. } = &wait
        && let Some(found) = arrived(conn, event, *since, &wait, &run)?
    {
        step = step.succeed(found.as_input(), req.now);
    }
    upsert(conn, &req.run_id, &step)?;
    let due = step.wait.as_ref().and_then(Wait::deadline);
    let (status, waiting_for, next) = match (&step.status, &step.wait) {
        (StepStatus::Waiting, Some(w)) if !matches!(w, Wait::Retry { .. }) => {
            ("waiting", w.waiting_for(&step.id).map(|w| to_json(&w)), due.unwrap_or(FOREVER))
        }
        _ => ("queued", None, due.unwrap_or(req.now).max(req.now)),
    };
    if status == "queued" {
        events.work = true;
    }
    conn.prepare_cached(
        "UPDATE runs SET status = ?1, waiting_for = ?2, next_attempt_at = ?3, attempt = attempt - 1, lease_owner = NULL, \
         lease_expires_at = NULL WHERE id = ?4",
    )?
    .execute(params![status, waiting_for, next, req.run_id])?;
    Ok(())
}

/// The first event named `name` stored at or after `since` that ends `wait` of `run`.
fn arrived(conn: &Connection, name: &str, since: i64, wait: &Wait, run: &Run) -> rusqlite::Result<Option<Event>> {
    let floor = plinth_core::ids::id_floor(since - crate::steps::CLOCK_SLACK);
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, data, ts, received_at FROM events WHERE name = ?1 AND pk >= ?2 AND received_at >= ?3 ORDER BY pk LIMIT 1000",
    )?;
    let candidates = stmt
        .query_map(params![name, floor, since], |r| {
            let data: String = r.get(2)?;
            Ok(Event {
                id: r.get(0)?,
                name: r.get(1)?,
                data: serde_json::from_str(&data).map_err(|e| json_err(2, e))?,
                ts: r.get(3)?,
                received_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let var = run_var(&run.run_id, &run.function, &run.input);
    Ok(candidates.into_iter().find(|e| event_matches(wait, e, &var)))
}

/// Moves a waiting run whose wait ended back to the queue, due now.
fn wake(conn: &Connection, run_id: &str, now: i64, events: &mut Events) -> rusqlite::Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE runs SET status = 'queued', waiting_for = NULL, next_attempt_at = ?1 WHERE id = ?2 AND status = 'waiting'",
        )?
        .execute(params![now, run_id])?;
    if n > 0 {
        events.work = true;
    }
    Ok(())
}

/// Waiting runs whose timer is due go back to the queue (their step is resolved by the next
/// call); answers the next time a waiting run becomes due.
pub(crate) fn wake_due(conn: &Connection, now: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "UPDATE runs INDEXED BY runs_waiting SET status = 'queued', waiting_for = NULL WHERE status = 'waiting' AND next_attempt_at <= ?1",
    )?
    .execute(params![now])?;
    conn.prepare_cached(
        "SELECT MIN(next_attempt_at) FROM runs INDEXED BY runs_waiting WHERE status = 'waiting' AND next_attempt_at < ?1",
    )?
    .query_row(params![FOREVER], |r| r.get(0))
}

/// Moves a waiting run whose wait ended straight to running, leased by `lease`, with its next
/// attempt begun (decision 0036): what a claim would write, without the queue. `None` when the
/// run no longer waits.
fn wake_started(conn: &Connection, run_id: &str, now: i64, lease: &StartNow) -> rusqlite::Result<Option<Run>> {
    let sql = format!(
        "UPDATE runs SET status = 'running', waiting_for = NULL, next_attempt_at = ?1, attempt = attempt + 1, \
         lease_owner = ?3, lease_expires_at = ?4, started_at = ?5 WHERE id = ?2 AND status = 'waiting' RETURNING {RUN_COLS}"
    );
    let Some(run) = conn
        .prepare_cached(&sql)?
        .query_row(params![now, run_id, lease.owner, lease.lease_until, lease.started_at], run_from_row)
        .optional()?
    else {
        return Ok(None);
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO attempts (run_id, attempt, owner, started_at, outcome) VALUES (?1, ?2, ?3, ?4, 'running')",
    )?
    .execute(params![run.run_id, run.attempt, lease.owner, lease.started_at])?;
    Ok(Some(run))
}

/// Ends the waits this stored event matches: each step gets the event; each run is stored
/// started on a slot `resumed` reserves when it has no lane (decision 0036), and queued
/// otherwise. The runs waiting on the event's name are taken one condition at a time
/// (compiled once); a `event.data.A == run.input.B` condition looks up the runs by their
/// value (see [`crate::waitkey`]).
pub(crate) fn match_event(conn: &Connection, event: &Event, events: &mut Events, resumed: &mut Resumed) -> rusqlite::Result<()> {
    let conds = conn
        .prepare_cached(
            "SELECT DISTINCT json_extract(wait, '$.cond') FROM steps \
             WHERE wait_key = ?1 AND status = 'waiting' AND op = 'wait_for_event'",
        )?
        .query_map(params![event.name], |r| r.get::<_, Option<String>>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for cond in conds {
        let key = cond.as_deref().and_then(KeyEq::parse);
        let probe = key.as_ref().map_or(Probe::Any, |k| k.probe(event));
        if probe == Probe::Missing {
            tracing::warn!(event_id = %event.id, cond = cond.as_deref().unwrap_or(""), "the event lacks the field a wait_for_event condition compares; no match");
            continue;
        }
        // Why: the run's status is checked here rather than in SQL, so the plan always starts
        // from the waiting steps' index and reaches each run by its key.
        let base = "SELECT s.run_id, r.function, r.input, s.id, s.wait, r.status, r.flow_key FROM steps s \
                    JOIN runs r ON r.id = s.run_id \
                    WHERE s.wait_key = ?1 AND s.status = 'waiting' AND s.op = 'wait_for_event' \
                    AND json_extract(s.wait, '$.cond') IS ?2";
        let rows: Vec<Candidate> = match probe.text() {
            Some(value) => {
                let sql = format!("{base} AND s.wait_match = ?3");
                let mut rows: Vec<Candidate> = conn
                    .prepare_cached(&sql)?
                    .query_map(params![event.name, cond, value], candidate)?
                    .collect::<rusqlite::Result<_>>()?;
                // Waits stored before `wait_match` existed: CEL decides for each.
                let sql = format!("{base} AND s.wait_match IS NULL");
                rows.extend(
                    conn.prepare_cached(&sql)?
                        .query_map(params![event.name, cond], candidate)?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                );
                rows
            }
            None => {
                conn.prepare_cached(base)?.query_map(params![event.name, cond], candidate)?.collect::<rusqlite::Result<_>>()?
            }
        };
        let compiled = cond.as_deref().map(|c| Expr::compile(c, &["event", "run"]));
        for (run_id, function, input, step_id, wait, status, flow_key) in rows {
            if status != "waiting" {
                continue;
            }
            let Some(wait) = parse_wait(wait.as_deref()) else { continue };
            let input = serde_json::from_str(&input).unwrap_or(serde_json::Value::Null);
            if !matches_compiled(&wait, event, &run_var(&run_id, &function, &input), compiled.as_ref()) {
                continue;
            }
            let Some(step) = load_one(conn, &run_id, &step_id)? else { continue };
            upsert(conn, &run_id, &step.succeed(event.as_input(), event.received_at))?;
            // Why only a run with no lane: a lane's limit is held by the claim (and the
            // throttle's spacing by its state), which a run started here would pass by.
            let lease = if flow_key.is_none() { resumed.reserve(&function, plinth_core::timefmt::now_micros()) } else { None };
            let Some(lease) = lease else {
                wake(conn, &run_id, event.received_at, events)?;
                continue;
            };
            match wake_started(conn, &run_id, event.received_at, &lease)? {
                Some(run) => resumed.stored(run),
                None => resumed.unused(),
            }
        }
    }
    Ok(())
}

/// A waiting step's run: id, function, input, the step's id, its wait, the run's status and
/// its lane.
type Candidate = (String, String, String, String, Option<String>, String, Option<String>);

fn candidate(r: &rusqlite::Row<'_>) -> rusqlite::Result<Candidate> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

fn load_one(conn: &Connection, run_id: &str, step_id: &str) -> rusqlite::Result<Option<Step>> {
    let sql = format!("SELECT {STEP_COLS} FROM steps WHERE run_id = ?1 AND id = ?2");
    conn.prepare_cached(&sql)?.query_row(params![run_id, step_id], step_from_row).optional()
}

/// For runs that just ended: a parent waiting on one of them gets its result and is queued.
pub(crate) fn after_terminal(conn: &Connection, events: &mut Events, now: i64) -> rusqlite::Result<()> {
    let ended = events.terminal.clone();
    let mut stmt =
        conn.prepare_cached("SELECT run_id, id FROM steps WHERE wait_key = ?1 AND status = 'waiting' AND op = 'invoke'")?;
    for child_id in ended {
        let parents = stmt
            .query_map(params![child_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if parents.is_empty() {
            continue;
        }
        let Some(child) = get_run(conn, &child_id, false)? else { continue };
        for (parent, step_id) in parents {
            let Some(step) = load_one(conn, &parent, &step_id)? else { continue };
            upsert(conn, &parent, &child_result(step, &child, now))?;
            wake(conn, &parent, now, events)?;
        }
    }
    Ok(())
}

/// Cancels a waiting run at once: its unfinished steps fail, and the runs it invoked and
/// still waits for are cancelled too (recursively).
pub(crate) fn cancel_waiting(
    conn: &Connection,
    run_id: &str,
    now: i64,
    events: &mut Events,
    error: &plinth_core::RunError,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE runs SET status = 'cancelled', finished_at = ?1, error = ?2, cancel_requested = 1, waiting_for = NULL \
         WHERE id = ?3 AND status IN ('waiting', 'queued')",
    )?
    .execute(params![now, to_json(error), run_id])?;
    events.terminal.push(run_id.to_string());
    let mut children = Vec::new();
    for step in load(conn, run_id)? {
        if let (StepStatus::Waiting | StepStatus::Running | StepStatus::Retrying, Some(Wait::Run { run_id: child, .. })) =
            (step.status, &step.wait)
        {
            children.push(child.clone());
        }
        if !step.status.is_done() {
            upsert(conn, run_id, &cancelled_step(step, now))?;
        }
    }
    for child in children {
        let status: Option<String> =
            conn.prepare_cached("SELECT status FROM runs WHERE id = ?1")?.query_row(params![child], |r| r.get(0)).optional()?;
        match status.as_deref().and_then(RunStatus::parse) {
            Some(RunStatus::Queued | RunStatus::Waiting) => cancel_waiting(conn, &child, now, events, &crate::cancelled_error())?,
            Some(RunStatus::Running) => {
                conn.prepare_cached("UPDATE runs SET cancel_requested = 1 WHERE id = ?1")?.execute(params![child])?;
                events.cancels.push(child);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Stores a run with the steps it starts from (a rerun from a step).
pub(crate) fn enqueue_with(conn: &Connection, run: &NewRun, steps: &[Step]) -> OpResult<Run> {
    insert_run(conn, run)?;
    for s in steps {
        upsert(conn, &run.run_id, s)?;
    }
    let stored = get_run(conn, &run.run_id, false)?.ok_or_else(|| StoreError::Corrupt(format!("run {} vanished", run.run_id)))?;
    Ok((stored, Events { work: true, ..Events::default() }))
}
