//! Enqueues without an idempotency key or a queue limit, in batches: the runs that arrive
//! while one batch commits go together into the next, as one multi-row `INSERT`, so a busy
//! node pays one statement and one commit for many runs. Keyed and limited enqueues need a
//! look-up first and take the single path in `runs`.

use super::dedicated::Dedicated;
use super::rows::to_json;
use crate::StoreError;
use plinth_core::NewRun;
use sqlx::PgConnection;
use tokio::sync::{mpsc, oneshot};

/// The most runs one statement inserts.
const MAX_BATCH: usize = 256;

/// A run to insert, and where its answer goes.
pub(crate) type Job = (NewRun, oneshot::Sender<Result<(), StoreError>>);

/// Inserts runs without idempotency keys in one statement.
pub(crate) async fn insert_many(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<(), StoreError> {
    let lanes = super::flow::lanes_of(runs);
    if !lanes.is_empty() {
        let now = runs.iter().map(|r| r.created_at).max().unwrap_or_default();
        super::flow::open_lanes(conn, lanes, now).await?;
    }
    let col = |f: fn(&NewRun) -> String| runs.iter().map(|r| f(r)).collect::<Vec<String>>();
    let opt = |f: fn(&NewRun) -> Option<String>| runs.iter().map(|r| f(r)).collect::<Vec<Option<String>>>();
    let num = |f: fn(&NewRun) -> i64| runs.iter().map(|r| f(r)).collect::<Vec<i64>>();
    let started = runs.iter().any(|r| r.start.is_some());
    let sql = if started { STARTED_SQL.as_str() } else { QUEUED_SQL.as_str() };
    let mut query = sqlx::query(sql)
        .bind(col(|r| r.run_id.clone()))
        .bind(col(|r| r.function.clone()))
        .bind(num(|r| i64::from(r.max_attempts)))
        .bind(col(|r| to_json(&r.input)))
        .bind(num(|r| i64::from(r.priority)))
        .bind(num(|r| r.created_at))
        .bind(num(|r| r.not_before))
        .bind(col(|r| r.correlation_id.clone()))
        .bind(opt(|r| super::runs::trigger_json(&r.trigger)))
        .bind(col(|r| r.trigger.kind().to_string()))
        .bind(opt(|r| r.trigger.event_id().map(str::to_string)))
        .bind(opt(|r| r.flow_key.clone()))
        .bind(opt(|r| r.debounce.as_ref().map(|d| d.key.clone())))
        .bind(opt(|r| r.singleton.as_ref().map(|s| s.key.clone())))
        .bind(runs.iter().map(|r| r.expiry.start_by).collect::<Vec<Option<i64>>>())
        .bind(runs.iter().map(|r| r.expiry.finish_by).collect::<Vec<Option<i64>>>())
        .bind(runs.iter().map(|r| r.expiry.cancel_on).collect::<Vec<bool>>())
        .bind(opt(|r| r.batch.as_ref().map(|b| b.key.clone())))
        .bind(opt(|r| r.traceparent.clone()))
        .bind(opt(|r| r.tracestate.clone()));
    if started {
        query = query
            .bind(opt(|r| r.start.as_ref().map(|s| s.owner.clone())))
            .bind(runs.iter().map(|r| r.start.as_ref().map(|s| s.started_at)).collect::<Vec<Option<i64>>>())
            .bind(runs.iter().map(|r| r.start.as_ref().map(|s| s.lease_until)).collect::<Vec<Option<i64>>>());
    }
    query.execute(conn).await?;
    Ok(())
}

/// The columns the batch takes from its arrays, and their types.
const COLUMNS: &str = "id, function, max_attempts, input, priority, created_at, next_attempt_at, correlation_id, trigger, \
    trigger_type, event_id, flow_key, debounce_key, singleton_key, start_by, finish_by, cancel_on, batch_key, traceparent, \
    tracestate";
const ARRAYS: &str = "$1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], \
    $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[], \
    $17::boolean[], $18::text[], $19::text[], $20::text[]";

/// A batch of queued runs.
static QUEUED_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("INSERT INTO runs ({COLUMNS}, status, attempt) SELECT {COLUMNS}, 'queued', 0 FROM unnest({ARRAYS}) AS r({COLUMNS})")
});

/// A batch where some runs start at once: those are stored running, leased to the node that
/// starts them, and their first attempts are recorded in the same statement, as a claim would.
static STARTED_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH stored AS ( \
           INSERT INTO runs ({COLUMNS}, status, attempt, lease_owner, started_at, lease_expires_at) \
           SELECT {COLUMNS}, CASE WHEN lease_owner IS NULL THEN 'queued' ELSE 'running' END, \
             CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END, lease_owner, started_at, lease_expires_at \
           FROM unnest({ARRAYS}, $21::text[], $22::bigint[], $23::bigint[]) \
             AS r({COLUMNS}, lease_owner, started_at, lease_expires_at) \
           RETURNING id, attempt, lease_owner, started_at) \
         INSERT INTO attempts (run_id, attempt, owner, started_at, outcome) \
         SELECT id, attempt, lease_owner, started_at, 'running' FROM stored WHERE lease_owner IS NOT NULL"
    )
});

/// Inserts a batch in one transaction when a run has a lane (its lock must last until the
/// runs are committed), as a bare statement otherwise.
async fn insert_batch(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<(), StoreError> {
    if super::flow::lanes_of(runs).is_empty() {
        return insert_many(conn, runs).await;
    }
    let mut tx = sqlx::Connection::begin(conn).await?;
    insert_many(&mut tx, runs).await?;
    tx.commit().await?;
    Ok(())
}

/// Takes the runs waiting, inserts them together and answers each; runs until every sender is
/// gone. When a batch fails (a duplicate run id, say), its runs are inserted one by one, so one
/// bad run cannot fail the others.
pub(crate) async fn batch_loop(mut conn: Dedicated, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Why: a caller that gave up (its call timed out) was told the run was not taken; it
        // must not be inserted behind its back.
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let runs: Vec<&NewRun> = batch.iter().map(|j| &j.0).collect();
        let result = conn.run(async |c| insert_batch(c, &runs).await).await;
        match result {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 || conn.unreachable() => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for (run, reply) in batch.drain(..) {
                    if reply.is_closed() {
                        continue;
                    }
                    let _ = reply.send(conn.run(async |c| insert_batch(c, &[&run]).await).await);
                }
            }
        }
    }
}
