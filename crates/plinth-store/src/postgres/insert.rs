//! Enqueues that need no look-up, in batches: the runs that arrive while one batch commits go
//! together into the next, as one multi-row `INSERT`, so a busy node pays one statement and one
//! commit for many runs. A run with an idempotency key comes too (decision 0027): the batch's
//! statement takes the keys first, then stores the runs whose key was free; a run whose key is
//! held already is answered [`Stored::KeyHeld`], for the single path in `runs` to replay. Runs
//! with a queue limit, a rate, a debounce or a singleton key take that single path from the
//! start.

use super::batches::Batched;
use super::rows::to_json;
use crate::StoreError;
use plinth_core::NewRun;
use sqlx::{PgConnection, Row};
use std::collections::HashSet;

/// The most runs one statement inserts.
const MAX_BATCH: usize = 256;

/// What the batch did with a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The run is stored (with its idempotency key, if it has one).
    Inserted,
    /// Another run holds the run's idempotency key; nothing of this run was stored.
    KeyHeld,
    /// The run is stored queued, not started as its node wanted: its lane had no room
    /// (decision 0034).
    Queued,
}

/// A run to insert, and where its answer goes.
pub(crate) type Job = super::batches::Job<NewRun>;

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

/// Inserts the runs' rows (their lanes open already) in one statement.
async fn insert_rows(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<(), StoreError> {
    let started = runs.iter().any(|r| r.start.is_some());
    let sql = if started { STARTED_SQL.as_str() } else { QUEUED_SQL.as_str() };
    bind_rows(sqlx::query(sql), runs, false).execute(conn).await?;
    Ok(())
}

/// Takes the keys of the keyed runs and inserts the runs whose key was free, with the runs
/// without a key, in one statement (atomic on its own); the ids of the runs stored.
/// Why the runs go in key order: the statement takes the keys in the order it reads them, and
/// two batches (or nodes) taking some of the same keys must take them in one order, so neither
/// can hold a key the other waits for while it waits for one the other holds. A key twice in
/// one batch goes to its first run; the second finds it held.
async fn insert_keyed_rows(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<HashSet<String>, StoreError> {
    let mut runs = runs.to_vec();
    runs.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    let started = runs.iter().any(|r| r.start.is_some());
    let sql = if started { KEYED_STARTED_SQL.as_str() } else { KEYED_QUEUED_SQL.as_str() };
    let rows = bind_rows(sqlx::query(sql), &runs, true).fetch_all(conn).await?;
    Ok(rows.iter().map(|row| row.try_get::<String, _>(0)).collect::<Result<_, _>>()?)
}

/// Binds the batch's arrays: its columns, the request hashes of a keyed batch, then (when a run
/// starts at once) the leases.
fn bind_rows<'q>(query: PgQuery<'q>, runs: &[&NewRun], keyed: bool) -> PgQuery<'q> {
    let col = |f: fn(&NewRun) -> String| runs.iter().map(|r| f(r)).collect::<Vec<String>>();
    let opt = |f: fn(&NewRun) -> Option<String>| runs.iter().map(|r| f(r)).collect::<Vec<Option<String>>>();
    let num = |f: fn(&NewRun) -> i64| runs.iter().map(|r| f(r)).collect::<Vec<i64>>();
    let query = query
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
    let query = if keyed { query.bind(opt(|r| r.request_hash.clone())) } else { query };
    if !runs.iter().any(|r| r.start.is_some()) {
        return query;
    }
    query
        .bind(opt(|r| r.start.as_ref().map(|s| s.owner.clone())))
        .bind(runs.iter().map(|r| r.start.as_ref().map(|s| s.started_at)).collect::<Vec<Option<i64>>>())
        .bind(runs.iter().map(|r| r.start.as_ref().map(|s| s.lease_until)).collect::<Vec<Option<i64>>>())
}

/// A statement with its binds.
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

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
           FROM unnest({ARRAYS}, {LEASES}) \
             AS r({COLUMNS}, lease_owner, started_at, lease_expires_at) \
           RETURNING id, attempt, lease_owner, started_at) \
         INSERT INTO attempts (run_id, attempt, owner, started_at, outcome) \
         SELECT id, attempt, lease_owner, started_at, 'running' FROM stored WHERE lease_owner IS NOT NULL"
    )
});

/// Where the batch's lease arrays go: after the columns, and after the request hashes in a
/// keyed batch.
const LEASES: &str = "$22::text[], $23::bigint[], $24::bigint[]";
const KEYED_LEASES: &str = "$23::text[], $24::bigint[], $25::bigint[]";

/// A batch holding keyed runs, queued: the keys are taken first, in the order the runs come
/// (key order), and only the runs without a key or with a key taken are stored.
static KEYED_QUEUED_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| keyed_sql(false));

/// The same, where some runs start at once (as [`STARTED_SQL`]).
static KEYED_STARTED_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| keyed_sql(true));

fn keyed_sql(started: bool) -> String {
    let (leases, lease_cols, status, attempt) = if started {
        (
            format!(", {KEYED_LEASES}"),
            ", lease_owner, started_at, lease_expires_at",
            "CASE WHEN lease_owner IS NULL THEN 'queued' ELSE 'running' END",
            "CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END",
        )
    } else {
        (String::new(), "", "'queued'", "0")
    };
    let begun = if started {
        ", begun AS (INSERT INTO attempts (run_id, attempt, owner, started_at, outcome) \
           SELECT id, attempt, lease_owner, started_at, 'running' FROM stored WHERE lease_owner IS NOT NULL)"
    } else {
        ""
    };
    format!(
        "WITH input AS MATERIALIZED ( \
           SELECT * FROM unnest({ARRAYS}, $22::text[]{leases}) AS r({COLUMNS}, request_hash{lease_cols})), \
         taken AS ( \
           INSERT INTO run_keys (key, run_id, request_hash, created_at) \
           SELECT idempotency_key, id, request_hash, created_at FROM input WHERE idempotency_key IS NOT NULL \
           ON CONFLICT (key) DO NOTHING RETURNING run_id), \
         stored AS ( \
           INSERT INTO runs ({COLUMNS}, status, attempt{lease_cols}) \
           SELECT {COLUMNS}, {status}, {attempt}{lease_cols} FROM input \
           WHERE idempotency_key IS NULL OR id IN (SELECT run_id FROM taken) \
           RETURNING id, attempt, lease_owner, started_at){begun} \
         SELECT id FROM stored"
    )
}

/// Inserts a batch; what became of each run, in order. A run with a lane has its lane opened
/// first, in the same transaction (its lock must last until the runs are committed); lanes
/// first, then keys, as the single path takes them. Otherwise the batch is one statement.
pub(crate) async fn insert_batch(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<Vec<Stored>, StoreError> {
    if super::flow::lanes_of(runs).is_empty() {
        return store_rows(conn, runs).await;
    }
    // Why: when every run with a lane is one to start, its lanes are opened and locked in one
    // statement (two round trips fewer); when another batch created one of them meanwhile, the
    // transaction starts over the long way.
    let every_one_starts = runs.iter().all(|r| r.flow_key.is_none() || r.starts_in_lane().is_some());
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let locked = every_one_starts && super::lanes::open_and_lock(&mut tx, runs).await?;
    if every_one_starts && !locked {
        tx.rollback().await?;
        tx = sqlx::Connection::begin(&mut *conn).await?;
    }
    if !locked {
        open_lanes(&mut tx, runs).await?;
    }
    let held = super::lanes::held_back(&mut tx, runs, locked).await?;
    // Why copies of the held runs only: they are stored without their lease, the others as sent.
    let copies: Vec<Option<NewRun>> =
        runs.iter().zip(&held).map(|(r, held)| held.then(|| NewRun { start: None, ..(*r).clone() })).collect();
    let view: Vec<&NewRun> = runs.iter().zip(&copies).map(|(r, copy)| copy.as_ref().unwrap_or(*r)).collect();
    let stored = store_rows(&mut tx, &view).await?;
    tx.commit().await?;
    Ok(stored.into_iter().zip(held).map(|(s, held)| if held && s == Stored::Inserted { Stored::Queued } else { s }).collect())
}

/// Stores the batch's rows (their lanes open already) in one statement; what became of each.
async fn store_rows(conn: &mut PgConnection, runs: &[&NewRun]) -> Result<Vec<Stored>, StoreError> {
    if runs.iter().all(|r| r.idempotency_key.is_none()) {
        insert_rows(conn, runs).await?;
        return Ok(vec![Stored::Inserted; runs.len()]);
    }
    let kept = insert_keyed_rows(conn, runs).await?;
    Ok(runs
        .iter()
        .map(|r| if r.idempotency_key.is_none() || kept.contains(&r.run_id) { Stored::Inserted } else { Stored::KeyHeld })
        .collect())
}

/// When a batch fails (a duplicate run id, say), its runs are inserted one by one, so one bad
/// run cannot fail the others (`batches::batch_loop`).
impl Batched for NewRun {
    type Answer = Stored;
    const WHAT: &'static str = "inserts";
    const MAX_BATCH: usize = MAX_BATCH;

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn write_many<'a>(
        conn: &'a mut PgConnection,
        batch: &'a [&'a Self],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send + 'a {
        insert_batch(conn, batch)
    }
}
