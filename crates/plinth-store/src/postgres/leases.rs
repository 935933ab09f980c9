//! Claims, heartbeats and the rescue of lost leases.

use super::rows::{RUN_COLS, run_from_row, to_json};
use crate::{ADOPT_MOST, ClaimRequest, Claimed, Heartbeat, Rescued, StoreError, cancelled_error};
use plinth_core::{Code, Run, RunError, RunStatus};
use sqlx::{PgPool, Row};

/// Leases up to `n` due runs of one function in one statement, and records their attempts.
/// `SKIP LOCKED` lets nodes claiming at once take different runs instead of waiting. The runs
/// picked from the queue's index are then updated through a join on their id, which the
/// claims' connection makes a nested loop (see [`super::dedicated::CLAIM_SETUP`]): each picked
/// run is read by primary key whatever the statistics. Why a join rather than `id =
/// ANY(ARRAY(..))` (the form of decision 0018): on tables partitioned by run id (decision 0026),
/// PostgreSQL prunes partitions for a value the nested loop passes in, but not for an array
/// computed as the statement runs, so the array form read the primary key of every partition
/// and, in a plan made while a partition was empty, scanned that partition whole.
pub(super) fn claim_sql() -> String {
    format!(
        "WITH picked AS ( \
           SELECT id AS pid FROM runs WHERE status = 'queued' AND function = $4 AND next_attempt_at <= $3 \
             ORDER BY priority DESC, next_attempt_at, id LIMIT $5 FOR UPDATE SKIP LOCKED), \
         claimed AS ( \
           UPDATE runs r SET status = 'running', attempt = r.attempt + 1, lease_owner = $1, lease_expires_at = $2, \
             started_at = $3 \
           FROM picked p WHERE r.id = p.pid \
           RETURNING {RUN_COLS}), \
         {} \
         SELECT {RUN_COLS} FROM claimed",
        recorded_attempts("claimed", "$1", "$3")
    )
}

/// As [`claim_sql`], for a function with due waits (sleeps, timed-out waits, retries of a
/// step): the statement leases them straight from `waiting`, together with the function's
/// queued runs and in the queue's order, as if they had been queued first. Why: a wait woken
/// into the queue and then leased was written twice in the claim's transaction, and neither
/// write can be a HOT update (the status is in the indexes' predicates). Measured with 200
/// one-second sleeps falling due together, ten alternating runs each: wake-up lateness p99
/// median 25.6 ms before, 22.7 ms after (decision 0039). The candidates of both kinds are
/// locked (at most twice `$5`); those not leased stay locked until the claim commits, and the
/// claim's last statement ([`WAKE_LEFT_SQL`]) queues the due waits it did not take.
pub(super) fn claim_with_waits_sql() -> String {
    format!(
        "WITH queued AS ( \
           SELECT id, priority, next_attempt_at FROM runs WHERE status = 'queued' AND function = $4 \
             AND next_attempt_at <= $3 ORDER BY priority DESC, next_attempt_at, id LIMIT $5 FOR UPDATE SKIP LOCKED), \
         woken AS ( \
           SELECT id, priority, next_attempt_at FROM runs WHERE status = 'waiting' AND function = $4 \
             AND next_attempt_at <= $3 ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED), \
         picked AS ( \
           SELECT id AS pid FROM (SELECT * FROM queued UNION ALL SELECT * FROM woken) c \
             ORDER BY priority DESC, next_attempt_at, id LIMIT $5), \
         claimed AS ( \
           UPDATE runs r SET status = 'running', attempt = r.attempt + 1, lease_owner = $1, lease_expires_at = $2, \
             started_at = $3, waiting_for = NULL \
           FROM picked p WHERE r.id = p.pid \
           RETURNING {RUN_COLS}), \
         {} \
         SELECT {RUN_COLS} FROM claimed",
        recorded_attempts("claimed", "$1", "$3")
    )
}

/// Queues the due waits of the functions `$2` that the claim did not lease (no free slot for
/// them here), so that they keep their place in the queue for any node.
pub(super) const WAKE_LEFT_SQL: &str = "\
UPDATE runs SET status = 'queued', waiting_for = NULL
WHERE id IN (SELECT id FROM runs WHERE status = 'waiting' AND next_attempt_at <= $1 AND function = ANY($2::text[])
  FOR UPDATE SKIP LOCKED)";

/// The `recorded` step of a statement that leases runs: the attempt each run of `leased` (a
/// step returning `id` and `attempt`) begins, held by `owner` from `at` (SQL expressions); a row
/// left by an earlier lease of the same attempt number is replaced.
pub(super) fn recorded_attempts(leased: &str, owner: &str, at: &str) -> String {
    format!(
        "recorded AS ( \
           INSERT INTO attempts (run_id, attempt, owner, started_at, outcome) \
           SELECT id, attempt, {owner}, {at}, 'running' FROM {leased} \
           ON CONFLICT (run_id, attempt) DO UPDATE SET owner = EXCLUDED.owner, started_at = EXCLUDED.started_at, \
             finished_at = NULL, outcome = 'running', error = NULL, duration_us = NULL)"
    )
}

/// One statement wakes the waits that fell due of the functions this claim does not lease
/// from `waiting` itself (`$4`: those are the wanted ones without flow limits, see
/// [`claim_with_waits_sql`]), and tells which of the wanted functions have a due run (or one
/// just woken), which of `$4` have a due wait, and when the next queued run and the next wait
/// fall due after `$1`. Why: a claim then asks only the functions that can give a run; asking
/// each wanted function in turn cost a statement per function, most of them empty (measured:
/// 3,516 claim statements for 20,000 runs, 4.9 per claim transaction, on a component of nine
/// functions with one busy). The woken runs are not queued in the statement's snapshot, so
/// their functions come from the update itself. Why a scalar subquery in the queue's order
/// rather than `EXISTS`: PostgreSQL drops an `EXISTS` subquery's `ORDER BY`, and then read
/// the due runs of every function through `runs_due` to find one of this function. The same
/// holds for the due waits and `runs_waiting`: read in due order, a function's probe stops at
/// the first due wait instead of reading every run of the function waiting on an event.
pub(super) const DUE_SQL: &str = "\
WITH woke AS (
  UPDATE runs SET status = 'queued', waiting_for = NULL
  WHERE id IN (SELECT id FROM runs WHERE status = 'waiting' AND next_attempt_at <= $1 AND function <> ALL($4::text[])
    FOR UPDATE SKIP LOCKED)
  RETURNING function)
SELECT
  ARRAY(SELECT w.f FROM unnest($2::text[]) WITH ORDINALITY AS w(f, o)
    WHERE w.f IN (SELECT function FROM woke)
      OR (SELECT 1 FROM runs r WHERE r.status = 'queued' AND r.function = w.f AND r.next_attempt_at <= $1
        ORDER BY r.priority DESC, r.next_attempt_at, r.id LIMIT 1) IS NOT NULL
    ORDER BY w.o) AS due,
  ARRAY(SELECT w.f FROM unnest($4::text[]) WITH ORDINALITY AS w(f, o)
    WHERE (SELECT 1 FROM runs r WHERE r.status = 'waiting' AND r.next_attempt_at <= $1 AND r.function = w.f
        ORDER BY r.next_attempt_at LIMIT 1) IS NOT NULL
    ORDER BY w.o) AS waits,
  (SELECT next_attempt_at FROM runs WHERE status = 'waiting' AND next_attempt_at > $1 AND next_attempt_at < $3
    ORDER BY next_attempt_at LIMIT 1) AS next_wake,
  (SELECT next_attempt_at FROM runs WHERE status = 'queued' AND next_attempt_at > $1
    ORDER BY next_attempt_at LIMIT 1) AS next_due";

pub(crate) async fn claim(conn: &mut sqlx::PgConnection, req: &ClaimRequest) -> Result<Claimed, StoreError> {
    let sql = claim_sql();
    let mut tx = sqlx::Connection::begin(conn).await?;
    let wanted: Vec<&str> = req.wants.iter().map(|(f, _)| f.as_str()).collect();
    // Why `ORDER BY .. LIMIT 1`, not `MIN()`: a plan made while the queue was empty kept
    // aggregating every queued entry of the index once it was large (17 ms at 100,000 queued).
    // The next times are after now: a due run not taken here belongs to a function with no
    // free slot, and the attempt that frees one wakes the dispatcher.
    let direct: Vec<&str> =
        req.wants.iter().filter(|(f, n)| *n > 0 && !req.limits.contains_key(f)).map(|(f, _)| f.as_str()).collect();
    let (due, waits, next_wake, next_due): (Vec<String>, Vec<String>, Option<i64>, Option<i64>) =
        sqlx::query_as(DUE_SQL).bind(req.now).bind(&wanted).bind(crate::steps::FOREVER).bind(&direct).fetch_one(&mut *tx).await?;
    let lanes_due = due.iter().any(|f| req.limits.contains_key(f));
    let mut runs = Vec::new();
    let mut throttled_until = None;
    let with_waits = if waits.is_empty() { String::new() } else { claim_with_waits_sql() };
    for (function, n) in req.wants.iter().filter(|(f, _)| due.contains(f) || waits.contains(f)) {
        let remaining = u32::try_from(runs.len()).map_or(0, |taken| req.limit.saturating_sub(taken));
        let n = (*n).min(remaining);
        if n == 0 {
            continue;
        }
        if let Some(rules) = req.limits.get(function) {
            let (taken, until) = super::flow::claim_lanes(&mut tx, req, function, n, rules).await?;
            runs.extend(taken);
            throttled_until = until.map(|t| throttled_until.map_or(t, |u: i64| u.min(t))).or(throttled_until);
            continue;
        }
        let statement = if waits.contains(function) { &with_waits } else { &sql };
        let rows = sqlx::query(statement)
            .bind(&req.owner)
            .bind(req.lease_until)
            .bind(req.now)
            .bind(function)
            .bind(i64::from(n))
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            runs.push(run_from_row(row)?);
        }
    }
    let next_due = match (next_due, next_wake) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if !waits.is_empty() {
        sqlx::query(WAKE_LEFT_SQL).bind(req.now).bind(&waits).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    runs.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.run_id.cmp(&b.run_id)));
    Ok(Claimed { runs, next_due, throttled_until, lanes_due })
}

/// The most runs one heartbeat statement renews. Why: the statement holds the lock of each run
/// it renews until it commits, and an attempt's end waits for that lock. A node holding
/// thousands of runs (those waiting on it for a slot, decision 0028) renewed them all in one
/// statement, which took 0.35 to 1.2 s during a burst of 200,000 event runs, while batches of
/// ends waited up to 0.67 s behind it (session 37). In chunks, an end waits for one chunk.
pub(crate) const HEARTBEAT_CHUNK: usize = 256;

pub(crate) async fn heartbeat(pool: &PgPool, owner: &str, runs: &[(String, u32)], until: i64) -> Result<Heartbeat, StoreError> {
    let mut hb = Heartbeat::default();
    for chunk in runs.chunks(HEARTBEAT_CHUNK) {
        let part = heartbeat_chunk(pool, owner, chunk, until).await?;
        hb.lost.extend(part.lost);
        hb.cancel.extend(part.cancel);
    }
    Ok(hb)
}

async fn heartbeat_chunk(pool: &PgPool, owner: &str, runs: &[(String, u32)], until: i64) -> Result<Heartbeat, StoreError> {
    let ids: Vec<String> = runs.iter().map(|(id, _)| id.clone()).collect();
    let attempts: Vec<i64> = runs.iter().map(|(_, a)| i64::from(*a)).collect();
    // Why: the rows are locked in id order, as a batch of finishes locks them, so a heartbeat
    // and a batch of the same node cannot deadlock.
    let rows = sqlx::query(
        "WITH held AS (SELECT r.id FROM runs r JOIN unnest($2::text[], $3::bigint[]) AS h(id, attempt) \
           ON r.id = h.id AND r.attempt = h.attempt WHERE r.lease_owner = $4 AND r.status = 'running' \
           ORDER BY r.id FOR UPDATE OF r) \
         UPDATE runs SET lease_expires_at = $1 FROM held WHERE runs.id = held.id \
         RETURNING runs.id, runs.cancel_requested",
    )
    .bind(until)
    .bind(&ids)
    .bind(&attempts)
    .bind(owner)
    .fetch_all(pool)
    .await?;
    let mut held = std::collections::HashMap::new();
    for row in &rows {
        held.insert(row.try_get::<String, _>("id")?, row.try_get::<bool, _>("cancel_requested")?);
    }
    let mut hb = Heartbeat::default();
    for (id, _) in runs {
        match held.get(id) {
            None => hb.lost.push(id.clone()),
            Some(false) => {}
            Some(true) => hb.cancel.push(id.clone()),
        }
    }
    Ok(hb)
}

/// The statement of [`adopt`]: `$1` owner, `$2` stale before, `$3` the new lease, `$4` most.
pub(super) fn adopt_sql() -> String {
    format!(
        "WITH stale AS (SELECT id AS sid FROM runs WHERE status = 'running' AND lease_expires_at < $2 AND lease_owner = $1 \
           ORDER BY lease_expires_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
         UPDATE runs r SET lease_expires_at = $3 FROM stale WHERE r.id = stale.sid RETURNING {RUN_COLS}"
    )
}

/// Renews and returns the runs leased to `owner` whose lease ends before `stale_before`
/// ([`crate::Store::adopt`]). Why `SKIP LOCKED`: a run locked now is being ended, renewed or
/// rescued; the next call sees it again if it is still stale. Why in lease order: the rescue's
/// index (`runs_leases`) holds them in that order, so the statement reads only stale leases.
pub(crate) async fn adopt(pool: &PgPool, owner: &str, stale_before: i64, until: i64) -> Result<Vec<Run>, StoreError> {
    let rows =
        sqlx::query(&adopt_sql()).bind(owner).bind(stale_before).bind(until).bind(i64::from(ADOPT_MOST)).fetch_all(pool).await?;
    rows.iter().map(run_from_row).collect()
}

pub(crate) async fn rescue(pool: &PgPool, now: i64) -> Result<Vec<Rescued>, StoreError> {
    let mut tx = pool.begin().await?;
    // Why: SKIP LOCKED leaves alone a run whose worker is finishing or renewing it right now.
    let expired = sqlx::query(
        "SELECT id, function, attempt, max_attempts, COALESCE(lease_owner, '') AS owner, cancel_requested FROM runs \
         WHERE status = 'running' AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut rescued = Vec::with_capacity(expired.len());
    for row in &expired {
        let id: String = row.try_get("id")?;
        let attempt = super::rows::u32_col(row, "attempt")?;
        let max_attempts = super::rows::u32_col(row, "max_attempts")?;
        let owner: String = row.try_get("owner")?;
        let lost =
            RunError::new(Code::LeaseExpired, format!("worker {owner} stopped renewing its lease during attempt {attempt}"));
        let (status, error) = if row.try_get::<bool, _>("cancel_requested")? {
            (RunStatus::Cancelled, cancelled_error())
        } else if attempt >= max_attempts {
            (RunStatus::Failed, lost.clone())
        } else {
            (RunStatus::Queued, lost.clone())
        };
        sqlx::query(
            "UPDATE runs SET status = $1, error = CASE WHEN $1 = 'cancelled' THEN COALESCE(cancel_error, $2) ELSE $2 END, \
             finished_at = $3, next_attempt_at = $4, lease_owner = NULL, lease_expires_at = NULL WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(to_json(&error))
        .bind(status.is_terminal().then_some(now))
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE attempts SET finished_at = $1, outcome = 'lease_expired', error = $2 WHERE run_id = $3 AND attempt = $4",
        )
        .bind(now)
        .bind(to_json(&lost))
        .bind(&id)
        .bind(i64::from(attempt))
        .execute(&mut *tx)
        .await?;
        rescued.push(Rescued { run_id: id, function: row.try_get("function")?, attempt, owner, status });
    }
    tx.commit().await?;
    Ok(rescued)
}
