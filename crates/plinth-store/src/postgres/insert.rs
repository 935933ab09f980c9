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
    sqlx::query(
        "INSERT INTO runs (id, function, status, attempt, max_attempts, input, priority, created_at, next_attempt_at, \
         correlation_id, trigger, trigger_type, event_id, flow_key, debounce_key, singleton_key, start_by, finish_by, \
         cancel_on, batch_key, traceparent, tracestate) \
         SELECT id, function, 'queued', 0, max_attempts, input, priority, created_at, next_attempt_at, correlation_id, \
           trigger, trigger_type, event_id, flow_key, debounce_key, singleton_key, start_by, finish_by, cancel_on, batch_key, \
           traceparent, tracestate \
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], \
           $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[], \
           $17::boolean[], $18::text[], $19::text[], $20::text[]) \
           AS r(id, function, max_attempts, input, priority, created_at, next_attempt_at, correlation_id, trigger, \
           trigger_type, event_id, flow_key, debounce_key, singleton_key, start_by, finish_by, cancel_on, batch_key, traceparent, tracestate)",
    )
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
    .bind(opt(|r| r.tracestate.clone()))
    .execute(conn)
    .await?;
    Ok(())
}

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
