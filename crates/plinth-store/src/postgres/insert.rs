//! Enqueues that need no look-up, in batches: the runs that arrive while one batch commits go
//! together into the next, as one multi-row `INSERT`, so a busy node pays one statement and one
//! commit for many runs. A run with an idempotency key comes too (decision 0027): the batch
//! takes the keys first, in one statement, and a run whose key is held already is answered
//! [`Stored::KeyHeld`], for the single path in `runs` to replay. Runs with a queue limit, a rate,
//! a debounce or a singleton key take that single path from the start.

use super::dedicated::Dedicated;
use super::rows::to_json;
use crate::StoreError;
use plinth_core::NewRun;
use sqlx::PgConnection;
use std::collections::HashSet;
use tokio::sync::{mpsc, oneshot};

/// The most runs one statement inserts.
const MAX_BATCH: usize = 256;

/// What the batch did with a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The run is stored (with its idempotency key, if it has one).
    Inserted,
    /// Another run holds the run's idempotency key; nothing of this run was stored.
    KeyHeld,
}

/// A run to insert, and where its answer goes.
pub(crate) type Job = (NewRun, oneshot::Sender<Result<Stored, StoreError>>);

/// Inserts runs in one statement, their lanes opened first. An idempotency key is stored on
/// its run only: the key's row in `run_keys` is the caller's to take ([`insert_batch`] does).
pub(crate) async fn insert_many(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<(), StoreError> {
    open_lanes(conn, runs).await?;
    insert_rows(conn, runs).await
}

/// Opens the lanes of the runs that have one.
async fn open_lanes(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<(), StoreError> {
    let lanes = super::flow::lanes_of(runs);
    if lanes.is_empty() {
        return Ok(());
    }
    let now = runs.iter().map(|r| r.created_at).max().unwrap_or_default();
    super::flow::open_lanes(conn, lanes, now).await
}

/// Takes the idempotency keys of the keyed runs; the ids of the runs whose key was free.
/// Why in key order: two batches (or nodes) taking some of the same keys take them in one
/// order, so neither can hold a key the other waits for while it waits for one the other holds.
/// A key twice in one batch goes to its first run; the second finds it held.
async fn take_keys(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<HashSet<String>, StoreError> {
    let mut keyed: Vec<(&str, &NewRun)> = runs.iter().filter_map(|r| r.idempotency_key.as_deref().map(|k| (k, *r))).collect();
    if keyed.is_empty() {
        return Ok(HashSet::new());
    }
    keyed.sort_by(|a, b| a.0.cmp(b.0));
    let taken: Vec<String> = sqlx::query_scalar(
        "INSERT INTO run_keys (key, run_id, request_hash, created_at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS k(key, run_id, request_hash, created_at) \
         ON CONFLICT (key) DO NOTHING RETURNING run_id",
    )
    .bind(keyed.iter().map(|(k, _)| *k).collect::<Vec<&str>>())
    .bind(keyed.iter().map(|(_, r)| r.run_id.as_str()).collect::<Vec<&str>>())
    .bind(keyed.iter().map(|(_, r)| r.request_hash.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(keyed.iter().map(|(_, r)| r.created_at).collect::<Vec<i64>>())
    .fetch_all(conn)
    .await?;
    Ok(taken.into_iter().collect())
}

/// Inserts the runs' rows (their lanes open already) in one statement.
async fn insert_rows(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<(), StoreError> {
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
        .bind(opt(|r| r.tracestate.clone()))
        .bind(opt(|r| r.idempotency_key.clone()));
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
    tracestate, idempotency_key";
const ARRAYS: &str = "$1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], \
    $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[], \
    $17::boolean[], $18::text[], $19::text[], $20::text[], $21::text[]";

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
           FROM unnest({ARRAYS}, $22::text[], $23::bigint[], $24::bigint[]) \
             AS r({COLUMNS}, lease_owner, started_at, lease_expires_at) \
           RETURNING id, attempt, lease_owner, started_at) \
         INSERT INTO attempts (run_id, attempt, owner, started_at, outcome) \
         SELECT id, attempt, lease_owner, started_at, 'running' FROM stored WHERE lease_owner IS NOT NULL"
    )
});

/// Inserts a batch; what became of each run, in order. In one transaction when a run has a lane
/// (its lock must last until the runs are committed) or an idempotency key (a run stored
/// without its key, or a key without its run, would break the key's promise), as a bare
/// statement otherwise. Lanes first, then keys, as the single path takes them.
pub(crate) async fn insert_batch(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<Vec<Stored>, StoreError> {
    if super::flow::lanes_of(runs).is_empty() && runs.iter().all(|r| r.idempotency_key.is_none()) {
        insert_rows(conn, runs).await?;
        return Ok(vec![Stored::Inserted; runs.len()]);
    }
    let mut tx = sqlx::Connection::begin(conn).await?;
    open_lanes(&mut tx, runs).await?;
    let taken = take_keys(&mut tx, runs).await?;
    let stored: Vec<Stored> = runs
        .iter()
        .map(|r| if r.idempotency_key.is_none() || taken.contains(&r.run_id) { Stored::Inserted } else { Stored::KeyHeld })
        .collect();
    let kept: Vec<&NewRun> = runs.iter().zip(&stored).filter(|(_, s)| **s == Stored::Inserted).map(|(r, _)| *r).collect();
    if !kept.is_empty() {
        insert_rows(&mut tx, &kept).await?;
    }
    tx.commit().await?;
    Ok(stored)
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
            Ok(stored) => {
                for ((_, reply), stored) in batch.drain(..).zip(stored) {
                    let _ = reply.send(Ok(stored));
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
                    let one = conn.run(async |c| insert_batch(c, &[&run]).await).await;
                    let _ = reply.send(one.map(|s| s.first().copied().unwrap_or(Stored::KeyHeld)));
                }
            }
        }
    }
}
