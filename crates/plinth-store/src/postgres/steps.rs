//! Step functions on PostgreSQL: the memo rows, suspending a run, and waking it by its timer
//! (inside the claim), by an event (inside the ingest) or by its invoked run's end (right
//! after the end commits, and swept by the upkeep leader should a node die in between).

use super::insert::insert_many;
use super::read::get_run;
use super::rows::{RUN_COLS, to_json, u32_col};
use crate::steps::{FOREVER, cancelled_step, child_result, event_matches, parse_wait, run_var, wait_text};
use crate::{FinishRequest, StoreError, cancelled_error};
use plinth_core::steps::{Step, StepError, StepStatus, Suspension, Wait};
use plinth_core::{Event, NewRun, Run, RunStatus};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

pub(super) const STEP_COLS: &str = "id, seq, op, status, attempts, started_at, finished_at, output, error, wait";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("a step row: {e}"))
}

fn step_from_row(row: &PgRow) -> Result<Step, StoreError> {
    let status: String = row.try_get("status")?;
    let output: Option<String> = row.try_get("output")?;
    let error: Option<String> = row.try_get("error")?;
    let wait: Option<String> = row.try_get("wait")?;
    let started_at: i64 = row.try_get("started_at")?;
    let finished_at: Option<i64> = row.try_get("finished_at")?;
    #[allow(clippy::cast_precision_loss)]
    Ok(Step {
        id: row.try_get("id")?,
        seq: u32_col(row, "seq")?,
        op: row.try_get("op")?,
        status: StepStatus::parse(&status).unwrap_or(StepStatus::Running),
        attempts: u32_col(row, "attempts")?,
        started_at,
        finished_at,
        duration_ms: finished_at.map(|f| (f - started_at).max(0) as f64 / 1000.0),
        output: output.map(|t| serde_json::from_str(&t).map_err(corrupt)).transpose()?,
        error: error.map(|t| serde_json::from_str::<StepError>(&t).map_err(corrupt)).transpose()?,
        truncated: false,
        wait: parse_wait(wait.as_deref()),
    })
}

async fn load_all(conn: &mut PgConnection, run_id: &str) -> Result<Vec<Step>, StoreError> {
    let sql = format!("SELECT {STEP_COLS} FROM steps WHERE run_id = $1 ORDER BY seq");
    sqlx::query(&sql).bind(run_id).fetch_all(&mut *conn).await?.iter().map(step_from_row).collect()
}

pub(super) async fn load_one(conn: &mut PgConnection, run_id: &str, step_id: &str) -> Result<Option<Step>, StoreError> {
    let sql = format!("SELECT {STEP_COLS} FROM steps WHERE run_id = $1 AND id = $2 FOR UPDATE");
    sqlx::query(&sql).bind(run_id).bind(step_id).fetch_optional(&mut *conn).await?.as_ref().map(step_from_row).transpose()
}

/// A run's steps in order; `None` when the run does not exist.
pub(crate) async fn load(pool: &PgPool, run_id: &str) -> Result<Option<Vec<Step>>, StoreError> {
    let mut conn = pool.acquire().await?;
    if get_run(&mut conn, run_id, false, false).await?.is_none() {
        return Ok(None);
    }
    load_all(&mut conn, run_id).await.map(Some)
}

pub(super) async fn upsert(conn: &mut PgConnection, run_id: &str, s: &Step) -> Result<(), StoreError> {
    let key = if s.status == StepStatus::Waiting { s.wait.as_ref().and_then(Wait::key) } else { None };
    let matched = match crate::waitkey::key_of(s) {
        Some(k) => {
            let input: Option<String> =
                sqlx::query_scalar("SELECT input FROM runs WHERE id = $1").bind(run_id).fetch_optional(&mut *conn).await?;
            Some(crate::waitkey::wait_match(&k, input.as_deref().unwrap_or("null")))
        }
        None => None,
    };
    sqlx::query(
        "INSERT INTO steps (run_id, id, seq, op, status, attempts, started_at, finished_at, output, error, wait, wait_key, wait_match) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (run_id, id) DO UPDATE SET \
         op = EXCLUDED.op, status = EXCLUDED.status, attempts = EXCLUDED.attempts, finished_at = EXCLUDED.finished_at, \
         output = EXCLUDED.output, error = EXCLUDED.error, wait = EXCLUDED.wait, wait_key = EXCLUDED.wait_key, \
         wait_match = EXCLUDED.wait_match",
    )
    .bind(run_id)
    .bind(&s.id)
    .bind(i64::from(s.seq))
    .bind(&s.op)
    .bind(s.status.as_str())
    .bind(i64::from(s.attempts))
    .bind(s.started_at)
    .bind(s.finished_at)
    .bind(s.output.as_ref().map(to_json))
    .bind(s.error.as_ref().map(to_json))
    .bind(wait_text(s))
    .bind(key)
    .bind(matched)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The lease check of a write by a running attempt, by the run's id whatever the statistics (the
/// status is a sub-select for the reason given at [`super::finish::FINISH_SQL`]).
pub(super) const HOLDS_SQL: &str = "SELECT cancel_requested FROM runs \
     WHERE id = $1 AND lease_owner = $2 AND attempt = $3 AND status = (SELECT 'running'::text) FOR UPDATE";

/// The lease check of a write by a running attempt; locks the run. `Some(cancel_requested)`.
async fn holds(conn: &mut PgConnection, run_id: &str, owner: &str, attempt: u32) -> Result<Option<bool>, StoreError> {
    Ok(sqlx::query_scalar(HOLDS_SQL).bind(run_id).bind(owner).bind(i64::from(attempt)).fetch_optional(&mut *conn).await?)
}

/// Stores steps of a running attempt; `false` when its lease moved elsewhere.
pub(crate) async fn save(pool: &PgPool, run_id: &str, owner: &str, attempt: u32, steps: &[Step]) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    if holds(&mut tx, run_id, owner, attempt).await?.is_none() {
        tx.rollback().await?;
        return Ok(false);
    }
    for s in steps {
        upsert(&mut tx, run_id, s).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Records a call that ended at a step boundary: the run's new status, or `None` when the
/// lease was no longer the caller's. A cancel asked meanwhile cancels the run instead.
pub(crate) async fn suspend(pool: &PgPool, req: &FinishRequest, s: &Suspension) -> Result<Option<RunStatus>, StoreError> {
    let mut tx = pool.begin().await?;
    let Some(cancel) = holds(&mut tx, &req.run_id, &req.owner, req.attempt).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let duration_us = i64::try_from(req.duration.as_micros()).unwrap_or(i64::MAX);
    let status = if cancel {
        sqlx::query(
            "UPDATE runs SET status = 'cancelled', finished_at = $1, error = $2, lease_owner = NULL, lease_expires_at = NULL WHERE id = $3",
        )
        .bind(req.now)
        .bind(to_json(&cancelled_error()))
        .bind(&req.run_id)
        .execute(&mut *tx)
        .await?;
        RunStatus::Cancelled
    } else {
        let mut step = s.step.clone();
        if let Some(child) = &s.child {
            insert_many(&mut tx, &[child]).await?;
        }
        let run = get_run(&mut tx, &req.run_id, false, false).await?.ok_or_else(|| corrupt("the run vanished"))?;
        if let Some(wait) = step.wait.clone()
            && let Wait::Event { event, since, .. } = &wait
            && let Some(found) = arrived(&mut tx, event, *since, &wait, &run).await?
        {
            step = step.succeed(found.as_input(), req.now);
        }
        upsert(&mut tx, &req.run_id, &step).await?;
        let due = step.wait.as_ref().and_then(Wait::deadline);
        let (status, waiting_for, next) = match (&step.status, &step.wait) {
            (StepStatus::Waiting, Some(w)) if !matches!(w, Wait::Retry { .. }) => {
                (RunStatus::Waiting, w.waiting_for(&step.id).map(|w| to_json(&w)), due.unwrap_or(FOREVER))
            }
            _ => (RunStatus::Queued, None, due.unwrap_or(req.now).max(req.now)),
        };
        sqlx::query(
            "UPDATE runs SET status = $1, waiting_for = $2, next_attempt_at = $3, attempt = attempt - 1, lease_owner = NULL, \
             lease_expires_at = NULL WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(waiting_for)
        .bind(next)
        .bind(&req.run_id)
        .execute(&mut *tx)
        .await?;
        status
    };
    sqlx::query("UPDATE attempts SET finished_at = $1, outcome = $2, duration_us = $3 WHERE run_id = $4 AND attempt = $5")
        .bind(req.now)
        .bind(if cancel { "cancelled" } else { "suspended" })
        .bind(duration_us)
        .bind(&req.run_id)
        .bind(i64::from(req.attempt))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(status))
}

fn event_from_row(row: &PgRow) -> Result<Event, StoreError> {
    let data: String = row.try_get("data")?;
    Ok(Event {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        data: serde_json::from_str(&data).map_err(corrupt)?,
        ts: row.try_get("ts")?,
        received_at: row.try_get("received_at")?,
    })
}

async fn arrived(conn: &mut PgConnection, name: &str, since: i64, wait: &Wait, run: &Run) -> Result<Option<Event>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, name, data, ts, received_at FROM events WHERE name = $1 AND pk >= $2 AND received_at >= $3 ORDER BY pk LIMIT 1000",
    )
    .bind(name)
    .bind(plinth_core::ids::id_floor(since - crate::steps::CLOCK_SLACK))
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let var = run_var(&run.run_id, &run.function, &run.input);
    for row in &rows {
        let e = event_from_row(row)?;
        if event_matches(wait, &e, &var) {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

pub(super) async fn wake(conn: &mut PgConnection, run_id: &str, now: i64) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE runs SET status = 'queued', waiting_for = NULL, next_attempt_at = $1 WHERE id = $2 AND status = 'waiting'",
    )
    .bind(now)
    .bind(run_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Moves a waiting run whose wait ended straight to running, leased by `lease`, with its next
/// attempt begun (decision 0036): what a claim would write, without the queue. `None` when the
/// run no longer waits.
pub(super) async fn wake_started(
    conn: &mut PgConnection,
    run_id: &str,
    now: i64,
    lease: &plinth_core::run::StartNow,
) -> Result<Option<Run>, StoreError> {
    let sql = format!(
        "WITH started AS ( \
           UPDATE runs SET status = 'running', waiting_for = NULL, next_attempt_at = $1, attempt = attempt + 1, \
             lease_owner = $3, lease_expires_at = $4, started_at = $5 \
           WHERE id = $2 AND status = 'waiting' RETURNING {RUN_COLS}), \
         {} \
         SELECT {RUN_COLS} FROM started",
        super::leases::recorded_attempts("started", "$3", "$5")
    );
    let row = sqlx::query(&sql)
        .bind(now)
        .bind(run_id)
        .bind(&lease.owner)
        .bind(lease.lease_until)
        .bind(lease.started_at)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(super::rows::run_from_row).transpose()
}

/// Parents waiting on these ended runs get their results and are queued; whether any was.
pub(crate) async fn after_terminal(pool: &PgPool, ended: &[String], now: i64) -> Result<bool, StoreError> {
    const WAITING: &str =
        "SELECT run_id, id, wait_key FROM steps WHERE wait_key = ANY($1) AND status = 'waiting' AND op = 'invoke'";
    // Why: almost every run that ends has no parent waiting on it. One statement outside a
    // transaction says so, where BEGIN, the look-up and COMMIT cost three round trips per
    // ended run (measured: 20,014 look-ups for 20,000 runs, all finding nothing). Nothing is
    // lost by looking first: a parent's waiting step is committed with the child it invokes
    // (`suspend`), so it is visible before that child can run, let alone end.
    if sqlx::query(WAITING).bind(ended).fetch_optional(pool).await?.is_none() {
        return Ok(false);
    }
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(WAITING).bind(ended).fetch_all(&mut *tx).await?;
    let mut woke = false;
    for row in &rows {
        let (parent, step_id, child_id): (String, String, String) =
            (row.try_get("run_id")?, row.try_get("id")?, row.try_get("wait_key")?);
        let Some(child) = get_run(&mut tx, &child_id, false, false).await? else { continue };
        let Some(step) = load_one(&mut tx, &parent, &step_id).await? else { continue };
        if child.status.is_terminal() && step.status == StepStatus::Waiting && wake(&mut tx, &parent, now).await? {
            upsert(&mut tx, &parent, &child_result(step, &child, now)).await?;
            woke = true;
        }
    }
    tx.commit().await?;
    Ok(woke)
}

/// The upkeep's sweep: invoked runs that ended while no node could wake their parent.
pub(crate) async fn sweep_children(pool: &PgPool, now: i64) -> Result<bool, StoreError> {
    let ended: Vec<String> = sqlx::query_scalar(
        "SELECT c.id FROM steps s JOIN runs c ON c.id = s.wait_key WHERE s.status = 'waiting' AND s.op = 'invoke' \
         AND c.status IN ('succeeded', 'failed', 'cancelled') LIMIT 1000",
    )
    .fetch_all(pool)
    .await?;
    if ended.is_empty() {
        return Ok(false);
    }
    after_terminal(pool, &ended, now).await
}

/// What cancelling a waiting run also ended: runs now cancelled, and running runs asked to stop.
#[derive(Debug, Default)]
pub(crate) struct Cascade {
    pub(crate) terminal: Vec<String>,
    pub(crate) cancels: Vec<String>,
}

/// Cancels a waiting (or queued) run at once, fails its unfinished steps, and cancels the runs
/// it invoked and still waits for.
pub(crate) async fn cancel_waiting(
    conn: &mut PgConnection,
    run_id: &str,
    now: i64,
    out: &mut Cascade,
    error: &plinth_core::RunError,
) -> Result<(), StoreError> {
    let mut todo = vec![run_id.to_string()];
    while let Some(id) = todo.pop() {
        // Why: the runs it invoked end as cancelled by request, not with the parent's reason.
        let error = if id == run_id { error.clone() } else { cancelled_error() };
        sqlx::query(
            "UPDATE runs SET status = 'cancelled', finished_at = $1, error = $2, cancel_requested = TRUE, waiting_for = NULL \
             WHERE id = $3 AND status IN ('waiting', 'queued')",
        )
        .bind(now)
        .bind(to_json(&error))
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        out.terminal.push(id.clone());
        for step in load_all(conn, &id).await? {
            if let (false, Some(Wait::Run { run_id: child, .. })) = (step.status.is_done(), &step.wait) {
                match get_run(conn, child, false, true).await?.map(|r| r.status) {
                    Some(RunStatus::Queued | RunStatus::Waiting) => todo.push(child.clone()),
                    Some(RunStatus::Running) => {
                        sqlx::query("UPDATE runs SET cancel_requested = TRUE WHERE id = $1")
                            .bind(child)
                            .execute(&mut *conn)
                            .await?;
                        out.cancels.push(child.clone());
                    }
                    _ => {}
                }
            }
            if !step.status.is_done() {
                upsert(conn, &id, &cancelled_step(step, now)).await?;
            }
        }
    }
    Ok(())
}

/// Stores a run with the steps it starts from (a rerun from a step).
pub(crate) async fn enqueue_with(pool: &PgPool, run: &NewRun, steps: &[Step]) -> Result<Run, StoreError> {
    let mut tx = pool.begin().await?;
    insert_many(&mut tx, &[run]).await?;
    for s in steps {
        upsert(&mut tx, &run.run_id, s).await?;
    }
    let stored = get_run(&mut tx, &run.run_id, false, false).await?.ok_or_else(|| corrupt("the run vanished"))?;
    tx.commit().await?;
    Ok(stored)
}
