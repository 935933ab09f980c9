//! Saving the steps of running attempts (checkpoints), in batches: the checkpoints that arrive
//! while a batch commits go together into the next statement, as the ends do (batches.rs).
//!
//! Why: a step function writes once per step, and each write on its own took a pooled
//! connection, a transaction and four round trips. With 64 workers, three-step workflows
//! completed 1,052 per second on PostgreSQL against 7,627 on SQLite (`plinth bench
//! --step-runs 2000`, same machine and day); the pool's 16 connections spent their time in
//! these small transactions.

use super::batches::Batched;
use super::rows::to_json;
use crate::StoreError;
use crate::steps::wait_text;
use plinth_core::steps::{Step, StepStatus};
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;
use tokio::sync::{mpsc, oneshot};

/// The steps one attempt saves, fenced by its lease.
#[derive(Debug)]
pub(crate) struct Save {
    pub(crate) run_id: String,
    pub(crate) owner: String,
    pub(crate) attempt: u32,
    pub(crate) steps: Vec<Step>,
}

/// A checkpoint to save, and where its answer goes: whether the attempt still held its lease
/// (and so the steps were saved).
pub(crate) type Job = super::batches::Job<Save>;

/// Whether a checkpoint may go into a batch: its steps are distinct and none waits. Why: a
/// waiting step's row carries the key it waits on, read from the run's input
/// (`steps::upsert`); one statement cannot write a row twice.
pub(crate) fn batchable(steps: &[Step]) -> bool {
    let mut ids = HashSet::with_capacity(steps.len());
    steps.iter().all(|s| s.status != StepStatus::Waiting && ids.insert(s.id.as_str()))
}

/// Saves a checkpoint: in the next batch when it may go in one, else in a transaction of its
/// own. Whether the attempt still held the run.
pub(crate) async fn save(batches: &mpsc::Sender<Job>, pool: &PgPool, save: Save) -> Result<bool, StoreError> {
    if !batchable(&save.steps) {
        return super::steps::save(pool, &save.run_id, &save.owner, save.attempt, &save.steps).await;
    }
    let gone = || StoreError::Unavailable("the store is shutting down".into());
    let (tx, rx) = oneshot::channel();
    batches.send((save, tx)).await.map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

/// One statement saves every checkpoint of the batch: it locks the runs still held by the
/// attempt saving (in id order, as the ends and heartbeats lock them, each by its id) and
/// upserts the steps of those runs only. The runs it locked are returned. The status is a
/// sub-select for the reason given at [`super::finish::FINISH_SQL`].
pub(super) const SAVE_SQL: &str = "\
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(id, owner, attempt) ORDER BY id COLLATE \"C\"),
held AS (
  SELECT i.id FROM input i CROSS JOIN LATERAL (
    SELECT r.id FROM runs r
    WHERE r.id = i.id AND r.lease_owner = i.owner AND r.attempt = i.attempt AND r.status = (SELECT 'running'::text)
    FOR UPDATE) h),
saved AS (
  INSERT INTO steps (run_id, id, seq, op, status, attempts, started_at, finished_at, output, error, wait, wait_key, wait_match)
  SELECT s.run_id, s.id, s.seq, s.op, s.status, s.attempts, s.started_at, s.finished_at, s.output, s.error, s.wait, NULL, NULL
  FROM unnest($4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[],
    $12::text[], $13::text[], $14::text[])
    AS s(run_id, id, seq, op, status, attempts, started_at, finished_at, output, error, wait)
  WHERE s.run_id IN (SELECT id FROM held)
  ON CONFLICT (run_id, id) DO UPDATE SET
    op = EXCLUDED.op, status = EXCLUDED.status, attempts = EXCLUDED.attempts, finished_at = EXCLUDED.finished_at,
    output = EXCLUDED.output, error = EXCLUDED.error, wait = EXCLUDED.wait, wait_key = NULL, wait_match = NULL)
SELECT id FROM held";

/// The batch's steps as columns, one row per step.
#[derive(Default)]
struct Columns {
    run_id: Vec<String>,
    id: Vec<String>,
    seq: Vec<i64>,
    op: Vec<String>,
    status: Vec<String>,
    attempts: Vec<i64>,
    started_at: Vec<i64>,
    finished_at: Vec<Option<i64>>,
    output: Vec<Option<String>>,
    error: Vec<Option<String>>,
    wait: Vec<Option<String>>,
}

impl Columns {
    fn of(saves: &[&Save]) -> Self {
        let mut c = Self::default();
        for save in saves {
            for s in &save.steps {
                c.run_id.push(save.run_id.clone());
                c.id.push(s.id.clone());
                c.seq.push(i64::from(s.seq));
                c.op.push(s.op.clone());
                c.status.push(s.status.as_str().to_string());
                c.attempts.push(i64::from(s.attempts));
                c.started_at.push(s.started_at);
                c.finished_at.push(s.finished_at);
                c.output.push(s.output.as_ref().map(to_json));
                c.error.push(s.error.as_ref().map(to_json));
                c.wait.push(wait_text(s));
            }
        }
        c
    }
}

/// Saves `saves` (distinct runs, each [`batchable`]) in one statement; for each, whether its
/// attempt still held the run.
async fn save_many(conn: &mut PgConnection, saves: &[&Save]) -> Result<Vec<bool>, StoreError> {
    let c = Columns::of(saves);
    let ids: Vec<&str> = saves.iter().map(|s| s.run_id.as_str()).collect();
    let owners: Vec<&str> = saves.iter().map(|s| s.owner.as_str()).collect();
    let attempts: Vec<i64> = saves.iter().map(|s| i64::from(s.attempt)).collect();
    let held: Vec<String> = sqlx::query_scalar(SAVE_SQL)
        .bind(&ids)
        .bind(&owners)
        .bind(&attempts)
        .bind(&c.run_id)
        .bind(&c.id)
        .bind(&c.seq)
        .bind(&c.op)
        .bind(&c.status)
        .bind(&c.attempts)
        .bind(&c.started_at)
        .bind(&c.finished_at)
        .bind(&c.output)
        .bind(&c.error)
        .bind(&c.wait)
        .fetch_all(&mut *conn)
        .await?;
    let held: HashSet<String> = held.into_iter().collect();
    Ok(saves.iter().map(|s| held.contains(&s.run_id)).collect())
}

impl Batched for Save {
    type Answer = bool;
    const WHAT: &'static str = "checkpoints";
    // Why 256: with the sessions' slots free while they write (decision 0040), more than the
    // node's 64 workers may wait for a checkpoint at once; a batch of 64 then left the rest for
    // the next flush. Three-step workflows per second, alternating builds: 2,726 and 3,413 with
    // 256, 2,287 and 2,480 with 64 (session 40).
    const MAX_BATCH: usize = 256;

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn write_many<'a>(
        conn: &'a mut PgConnection,
        batch: &'a [&'a Self],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send + 'a {
        save_many(conn, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::batchable;
    use plinth_core::steps::{Step, StepStatus};

    fn step(id: &str, status: StepStatus) -> Step {
        Step {
            id: id.into(),
            seq: 0,
            op: "step".into(),
            status,
            attempts: 1,
            started_at: 1,
            finished_at: Some(2),
            duration_ms: None,
            output: None,
            error: None,
            truncated: false,
            wait: None,
        }
    }

    #[test]
    fn finished_distinct_steps_go_in_a_batch() {
        assert!(batchable(&[step("a", StepStatus::Succeeded), step("b", StepStatus::Failed)]));
        assert!(batchable(&[]));
    }

    #[test]
    fn a_waiting_step_or_a_step_twice_is_saved_on_its_own() {
        assert!(!batchable(&[step("a", StepStatus::Succeeded), step("w", StepStatus::Waiting)]));
        assert!(!batchable(&[step("a", StepStatus::Succeeded), step("a", StepStatus::Succeeded)]));
    }
}
