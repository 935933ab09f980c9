//! Recording attempts' ends, in batches: the ends that arrive while a batch commits go
//! together into the next statement, so a busy node pays one statement and one commit for
//! many runs.

use super::batches::Batched;
use super::rows::to_json;
use crate::transition::{attempt_error, transition};
use crate::{FinishRequest, StoreError};
use plinth_core::RunStatus;
use sqlx::PgConnection;

/// A recorded end: the run's new status, and whether another run invoked it (only such a
/// run can have a parent waiting on its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) status: RunStatus,
    pub(crate) invoked: bool,
}

/// An end to record, and where its answer goes: what was recorded, or `None` when the lease
/// was no longer this owner's.
pub(crate) type Job = super::batches::Job<FinishRequest>;

/// Both ways an end can go, as columns: the run's new state when no cancel was asked (`n_`)
/// and when one was (`c_`), chosen in SQL by the locked row's `cancel_requested`.
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    owner: Vec<String>,
    attempt: Vec<i64>,
    status: [Vec<String>; 2],
    output: [Vec<Option<String>>; 2],
    error: [Vec<Option<String>>; 2],
    next: [Vec<Option<i64>>; 2],
    new_attempt: [Vec<i64>; 2],
    now: Vec<i64>,
    outcome: Vec<String>,
    attempt_error: Vec<Option<String>>,
    duration_us: Vec<i64>,
}

impl Columns {
    fn of(reqs: &[&FinishRequest]) -> Self {
        let mut c = Self::default();
        for req in reqs {
            c.id.push(req.run_id.clone());
            c.owner.push(req.owner.clone());
            c.attempt.push(i64::from(req.attempt));
            for (k, cancel) in [false, true].into_iter().enumerate() {
                let t = transition(req, cancel);
                c.status[k].push(t.status.as_str().to_string());
                c.output[k].push(t.output);
                c.error[k].push(t.error.as_ref().map(to_json));
                c.next[k].push(t.next_attempt_at);
                c.new_attempt[k].push(i64::from(t.attempt));
            }
            c.now.push(req.now);
            c.outcome.push(req.finish.outcome().to_string());
            c.attempt_error.push(attempt_error(req).as_ref().map(to_json));
            c.duration_us.push(i64::try_from(req.duration.as_micros()).unwrap_or(i64::MAX));
        }
        c
    }
}

/// One statement records every end of the batch: it locks the runs still held by their
/// owner (in id order, as heartbeats lock them), moves each to its new state, and closes its
/// attempt. Runs no longer held are left alone. Why each run is locked in a subquery of its
/// own: so the plan reads it by its id, whatever the statistics say; joined to the input, the
/// generic plan read every running run of the table (and hashed them) for each batch. Why the
/// status is a sub-select: compared with a constant, it lets the planner read `runs_leases` (a
/// partial index of the running runs) instead, which statistics taken while few runs ran make
/// look empty: each end then walked every running run (3,937 each, 0.3 to 1 s a batch of 64,
/// with the 4,000 runs of 1,000 keyed lanes running); a value the planner cannot see when it
/// plans proves no partial index's predicate, so the primary key is the only way left. Why the
/// lock carries the input's columns: the connection forbids hash joins ([`ENDS_SETUP`]), and
/// joining the input to the locked runs again would then be a loop of the batch over itself.
///
/// [`ENDS_SETUP`]: super::dedicated::ENDS_SETUP
pub(super) const FINISH_SQL: &str = "\
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::text[], $16::text[],
    $17::bigint[])
  AS i(id, owner, attempt, n_status, c_status, n_output, c_output, n_error, c_error, n_next, c_next, n_attempt, c_attempt,
    now, outcome, attempt_error, duration_us) ORDER BY id COLLATE \"C\"),
held AS (
  SELECT i.*, h.cancel FROM input i CROSS JOIN LATERAL (
    SELECT r.cancel_requested AS cancel FROM runs r
    WHERE r.id = i.id AND r.lease_owner = i.owner AND r.attempt = i.attempt AND r.status = (SELECT 'running'::text)
    FOR UPDATE) h),
decided AS (
  SELECT i.id, i.attempt, i.now, i.outcome, i.attempt_error, i.duration_us,
    CASE WHEN i.cancel THEN i.c_status ELSE i.n_status END AS status,
    CASE WHEN i.cancel THEN i.c_output ELSE i.n_output END AS output,
    CASE WHEN i.cancel THEN i.c_error ELSE i.n_error END AS error,
    CASE WHEN i.cancel THEN i.c_next ELSE i.n_next END AS next,
    CASE WHEN i.cancel THEN i.c_attempt ELSE i.n_attempt END AS new_attempt
  FROM held i),
ended AS (
  UPDATE runs r SET status = d.status, output = d.output,
    error = CASE WHEN d.status = 'cancelled' AND r.cancel_error IS NOT NULL THEN r.cancel_error
      ELSE COALESCE(d.error, r.error) END,
    finished_at = CASE WHEN d.status IN ('succeeded', 'failed', 'cancelled') THEN d.now END,
    next_attempt_at = COALESCE(d.next, r.next_attempt_at), attempt = d.new_attempt, lease_owner = NULL,
    lease_expires_at = NULL
  FROM decided d WHERE r.id = d.id
  RETURNING r.id, r.status, r.trigger_type),
closed AS (
  UPDATE attempts a SET finished_at = d.now, outcome = d.outcome, error = d.attempt_error, duration_us = d.duration_us
  FROM decided d WHERE a.run_id = d.id AND a.attempt = d.attempt)
SELECT id, status, trigger_type = 'invoke' FROM ended";

/// Records `reqs` (distinct runs) in one statement; what was recorded for each run, or `None`
/// when its owner no longer held the lease.
async fn finish_many(conn: &mut PgConnection, reqs: &[&FinishRequest]) -> Result<Vec<Option<Recorded>>, StoreError> {
    let c = Columns::of(reqs);
    let rows: Vec<(String, String, bool)> = sqlx::query_as(FINISH_SQL)
        .bind(&c.id)
        .bind(&c.owner)
        .bind(&c.attempt)
        .bind(&c.status[0])
        .bind(&c.status[1])
        .bind(&c.output[0])
        .bind(&c.output[1])
        .bind(&c.error[0])
        .bind(&c.error[1])
        .bind(&c.next[0])
        .bind(&c.next[1])
        .bind(&c.new_attempt[0])
        .bind(&c.new_attempt[1])
        .bind(&c.now)
        .bind(&c.outcome)
        .bind(&c.attempt_error)
        .bind(&c.duration_us)
        .fetch_all(&mut *conn)
        .await?;
    let mut ended = std::collections::HashMap::with_capacity(rows.len());
    for (id, status, invoked) in rows {
        let status = RunStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("run {id} has status `{status}`")))?;
        ended.insert(id, Recorded { status, invoked });
    }
    Ok(reqs.iter().map(|r| ended.get(&r.run_id).copied()).collect())
}

impl Batched for FinishRequest {
    type Answer = Option<Recorded>;
    const WHAT: &'static str = "ends";
    const MAX_BATCH: usize = 64;

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn write_many<'a>(
        conn: &'a mut PgConnection,
        batch: &'a [&'a Self],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send + 'a {
        finish_many(conn, batch)
    }
}
