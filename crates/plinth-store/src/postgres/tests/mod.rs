//! The conformance suite against PostgreSQL, each case in a scratch schema of its own, and what
//! only PostgreSQL has: schema names, migrations under a lock, an unreachable server, races
//! between connections.
//!
//! They need `PLINTH_TEST_DATABASE_URL` (e.g. postgres://postgres@127.0.0.1:5432/postgres).
//! Without it they say loudly that they are skipped and pass, except under CI, where they fail.

mod adopt_plans;
mod batched_keys;
mod checkpoints;
mod claim_plans;
mod claim_waits;
mod copies;
mod event_ids;
mod keys;
mod lanes;
mod logs;
mod nodes;
mod page_plans;
mod partition_plans;
mod partitioned;
mod plans;
mod pool_plans;
mod prune;
mod status_pages;

use super::migrate::{MIGRATIONS, migrate};
use super::{CONNECT_TIMEOUT, PostgresStore, valid_schema_name};
use crate::{Enqueued, ListFilter, Store, StoreError};
use plinth_core::NewRun;
use plinth_core::ids::new_run_id;
use plinth_core::timefmt::now_micros;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::sync::Arc;
use std::time::{Duration, Instant};

const URL_VAR: &str = "PLINTH_TEST_DATABASE_URL";

/// The test database, or `None` (after a loud warning) when the tests are to be skipped.
pub(super) fn database_url() -> Option<String> {
    if let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{URL_VAR} must be set under CI: the PostgreSQL store tests cannot be skipped there");
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        let warning = format!(
            "\n!!!!! PostgreSQL store tests SKIPPED: {URL_VAR} is not set \
             (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres) !!!!!\n"
        );
        eprintln!("{warning}");
        // Why: the test harness hides what passing tests print; this goes straight to stderr.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
    });
    None
}

/// A scratch schema. `drop_now` drops it with everything in it; a guard dropped without it
/// (a failed case) drops the schema on a thread of its own.
pub(super) struct Scratch {
    url: String,
    pub(super) schema: String,
    dropped: bool,
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), String> {
    let mut conn = PgConnection::connect(url).await.map_err(|e| e.to_string())?;
    // Why: after a panic a connection of the case may still hold a lock; give up, do not hang.
    let sql = format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    conn.execute(sql.as_str()).await.map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())
}

impl Scratch {
    pub(super) fn new(url: &str) -> Self {
        Self { url: url.to_string(), schema: format!("plinth_test_{}", new_run_id().to_lowercase()), dropped: false }
    }

    pub(super) async fn drop_now(&mut self) {
        drop_schema(&self.url, &self.schema).await.expect("the scratch schema is dropped");
        self.dropped = true;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Why: drop cannot await, and it may run while a failed case unwinds inside a runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(drop_schema(&url, &schema))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop scratch schema {}: {dropped:?}", self.schema);
        }
    }
}

/// A store on a fresh scratch schema, or `None` when the tests are skipped.
pub(super) async fn fresh() -> Option<(Scratch, PostgresStore)> {
    let url = database_url()?;
    let scratch = Scratch::new(&url);
    let store = PostgresStore::connect(&url, &scratch.schema).await.expect("a fresh store connects");
    Some((scratch, store))
}

/// A plain pool on the test database, for looking behind the store's back.
pub(super) async fn side_pool(url: &str) -> PgPool {
    PgPoolOptions::new().max_connections(2).connect(url).await.expect("a side connection")
}

/// A run of `function` with `input`, due now.
pub(super) fn new_run(function: &str, input: serde_json::Value) -> NewRun {
    NewRun { input, ..crate::conformance::new_run(function, now_micros()) }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod conformance_suite {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((mut scratch, store)) = super::fresh().await else { return };
                    crate::conformance::$name(&store).await;
                    store.close().await;
                    scratch.drop_now().await;
                }
            )*
        }
    };
}

crate::conformance::with_every_case!(conformance);

async fn applied(pool: &PgPool, schema: &str) -> Vec<(i64, String, i64)> {
    let sql = format!("SELECT version, checksum, applied_at FROM \"{schema}\".plinth_migrations ORDER BY version");
    sqlx::query_as(&sql).fetch_all(pool).await.expect("the migrations table")
}

#[tokio::test]
async fn migrations_apply_once_and_reconnecting_keeps_runs() {
    let Some((mut scratch, store)) = fresh().await else { return };
    assert_eq!((store.backend(), store.schema()), ("postgres", scratch.schema.as_str()));
    let run = new_run("echo", json!({ "kept": true }));
    assert!(matches!(store.enqueue(run.clone()).await, Ok(Enqueued::Created(_))));
    store.close().await;
    let side = side_pool(&scratch.url).await;
    let first = applied(&side, &scratch.schema).await;
    assert_eq!(first.len(), MIGRATIONS.len(), "every migration applied once: {first:?}");

    let store = PostgresStore::connect(&scratch.url, &scratch.schema).await.expect("reconnect");
    assert_eq!(applied(&side, &scratch.schema).await, first, "reconnecting re-applies nothing");
    let back = store.get(&run.run_id, false).await.expect("get").expect("the run survived");
    assert_eq!(back.input, json!({ "kept": true }));
    assert_eq!(migrate(&side, &scratch.schema, MIGRATIONS).await.expect("migrate"), 0, "an up-to-date schema needs nothing");
    store.close().await;
    side.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn migrations_apply_in_order_and_refuse_edits_or_newer_schemas() {
    let Some(url) = database_url() else { return };
    let mut scratch = Scratch::new(&url);
    let (pool, s) = (side_pool(&url).await, scratch.schema.as_str());
    let one = (1, "one", "CREATE TABLE a (x INTEGER);");
    let two = (2, "two", "CREATE TABLE b (y INTEGER);");
    assert_eq!(migrate(&pool, s, &[one]).await.expect("first"), 1);
    assert_eq!(migrate(&pool, s, &[one]).await.expect("again"), 0, "nothing to apply twice");
    assert_eq!(migrate(&pool, s, &[one, two]).await.expect("a new one"), 1, "only the new migration is applied");
    let edited = (1, "one", "CREATE TABLE a (x INTEGER, z TEXT);");
    let three = (3, "three", "CREATE TABLE c (z INTEGER);");
    match migrate(&pool, s, &[edited, two, three]).await {
        Err(StoreError::Schema(msg)) => assert!(msg.contains("migration 1") && msg.contains("changed"), "{msg}"),
        other => panic!("an edited applied migration must be refused, got {other:?}"),
    }
    match migrate(&pool, s, &[one]).await {
        Err(StoreError::Schema(msg)) => assert!(msg.contains("version 2") && msg.contains("newer"), "{msg}"),
        other => panic!("a schema newer than the migrations must be refused, got {other:?}"),
    }
    let broken = (3, "broken", "CREATE TABLE c (z INTEGER); THIS IS NOT SQL;");
    assert!(matches!(migrate(&pool, s, &[one, two, broken]).await, Err(StoreError::Unavailable(_))), "bad SQL fails");
    let c: Option<String> =
        sqlx::query_scalar("SELECT to_regclass($1)::text").bind(format!("\"{s}\".c")).fetch_one(&pool).await.expect("c");
    assert_eq!(c, None, "a failed migration is rolled back whole");
    assert_eq!(applied(&pool, s).await.len(), 2);
    pool.close().await;
    scratch.drop_now().await;
    let mut ahead = Scratch::new(&url);
    let pool = side_pool(&url).await;
    let mut newer = MIGRATIONS.to_vec();
    newer.push((MIGRATIONS.len() as i64 + 1, "future", "CREATE TABLE future (x INTEGER);"));
    migrate(&pool, &ahead.schema, &newer).await.expect("a newer binary migrated it");
    let err = PostgresStore::connect(&url, &ahead.schema).await.expect_err("the schema is newer than this store");
    assert!(matches!(&err, StoreError::Schema(m) if m.contains("newer")), "{err:?}");
    pool.close().await;
    ahead.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_connecting_at_once_to_a_fresh_schema_all_succeed() {
    let Some(url) = database_url() else { return };
    let mut scratch = Scratch::new(&url);
    let mut nodes = Vec::new();
    for _ in 0..4 {
        let (url, schema) = (url.clone(), scratch.schema.clone());
        nodes.push(tokio::spawn(async move { PostgresStore::connect(&url, &schema).await }));
    }
    let mut stores = Vec::new();
    for node in nodes {
        stores.push(node.await.expect("the connect task ran").expect("every node connects; the lock serializes migrations"));
    }
    let side = side_pool(&url).await;
    assert_eq!(applied(&side, &scratch.schema).await.len(), MIGRATIONS.len(), "applied once, not once per node");
    for store in &stores {
        store.check().await.expect("every node can write");
        store.close().await;
    }
    side.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_quickly() {
    let started = Instant::now();
    // Why: port 1 on loopback refuses connections; no database is needed for this test.
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres", "plinth").await.expect_err("nothing listens");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(3), "gave up after {:?}", started.elapsed());
    let err = PostgresStore::connect("mysql://nobody:secret@host/db", "plinth").await.expect_err("not PostgreSQL");
    assert!(matches!(&err, StoreError::Unavailable(m) if !m.contains("secret")), "{err:?}");
}

#[tokio::test]
async fn invalid_schema_names_are_refused() {
    for bad in ["", "Plinth", "1plinth", "plinth-db", "pg_catalog", "a\"b", "plinth; DROP TABLE x", &"x".repeat(64), "é"] {
        assert!(!valid_schema_name(bad), "{bad:?}");
        // Why: refused before any connection, so an unreachable URL still answers Schema.
        let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres", bad).await.expect_err(bad);
        assert!(matches!(&err, StoreError::Schema(m) if m.contains("schema name")), "{bad:?}: {err:?}");
    }
    for good in ["plinth", "_p", "plinth_2", &"x".repeat(63)] {
        assert!(valid_schema_name(good), "{good:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_enqueues_keep_keys_and_limits() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let store = Arc::new(store);
    let key = NewRun { idempotency_key: Some("same".into()), request_hash: Some("h".into()), ..new_run("echo", json!(1)) };
    let capped = NewRun { max_queued: Some(5), ..new_run("capped", json!(2)) };
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let template = if i % 2 == 0 { key.clone() } else { capped.clone() };
        tasks.push(tokio::spawn(async move { store.enqueue(NewRun { run_id: new_run_id(), ..template }).await }));
    }
    let (mut created, mut replayed, mut full) = (Vec::new(), Vec::new(), 0);
    for task in tasks {
        match task.await.expect("the enqueue task ran") {
            Ok(Enqueued::Created(run)) => created.push(run),
            Ok(Enqueued::Replayed(run)) => replayed.push(run.run_id),
            Err(StoreError::QueueFull { .. }) => full += 1,
            Ok(Enqueued::Debounced(run)) => panic!("no function here is debounced, yet {} was fed", run.run_id),
            Err(e) => panic!("no other error under a race: {e}"),
        }
    }
    let keyed: Vec<_> = created.iter().filter(|r| r.function == "echo").collect();
    assert_eq!(keyed.len(), 1, "twenty identical keyed requests make one run: {keyed:?}");
    assert!(replayed.len() == 19 && replayed.iter().all(|id| *id == keyed[0].run_id), "the others replay it: {replayed:?}");
    assert_eq!((created.len() - 1, full), (5, 15), "a queue of 5 takes exactly 5 of 20 racing enqueues");
    let page = store.list(ListFilter { limit: 100, ..ListFilter::default() }).await.expect("list");
    assert_eq!(page.runs.len(), 6);
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_wait_stored_before_wait_match_existed_still_wakes() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let (old, new) = crate::conformance::waits_before_their_match_value(&store).await;
    let pool = side_pool(&scratch.url).await;
    let sql = format!("UPDATE \"{}\".steps SET wait_match = NULL WHERE run_id = $1", scratch.schema);
    let forgot = sqlx::query(&sql).bind(&old).execute(&pool).await.expect("forget it").rows_affected();
    assert_eq!(forgot, 1);
    pool.close().await;
    crate::conformance::a_wait_stored_before_its_match_value_wakes(&store, &old, &new).await;
    store.close().await;
    scratch.drop_now().await;
}

/// When the upkeep last took the planner's statistics of `runs`, from behind the store's back.
async fn last_analyze(side: &PgPool, schema: &str) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT (EXTRACT(EPOCH FROM last_analyze) * 1000000)::BIGINT FROM pg_stat_user_tables \
         WHERE schemaname = $1 AND relname = 'runs'",
    )
    .bind(schema)
    .fetch_optional(side)
    .await
    .expect("read the table's statistics")
    .flatten()
}

/// The upkeep takes the statistics of a table that changed a lot, not of one that changed
/// little, and not twice within 30 s.
#[tokio::test]
async fn the_upkeep_takes_statistics_again_when_runs_changed_a_lot() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    // Why: only the upkeep may take them here, or the test would race autovacuum.
    let off = format!("ALTER TABLE \"{}\".runs SET (autovacuum_enabled = false)", scratch.schema);
    sqlx::query(&off).execute(&side).await.expect("autovacuum off for this table");
    for i in 0..10 {
        store.enqueue(new_run("echo", json!(i))).await.expect("enqueue");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.roll_up(now_micros()).await.expect("roll up");
    assert_eq!(last_analyze(&side, &scratch.schema).await, None, "ten new runs are not worth it");
    for i in 0..1500 {
        store.enqueue(new_run("echo", json!(i))).await.expect("enqueue");
    }
    // Why: a backend reports what it changed to the statistics at most once a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        store.roll_up(now_micros()).await.expect("roll up");
        if let Some(at) = last_analyze(&side, &scratch.schema).await {
            break at;
        }
        assert!(Instant::now() < deadline, "1,510 new runs in an empty table were never analyzed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for i in 0..1500 {
        store.enqueue(new_run("echo", json!(i))).await.expect("enqueue");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.roll_up(now_micros()).await.expect("roll up");
    assert_eq!(last_analyze(&side, &scratch.schema).await, Some(first), "not again within 30 s");
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

/// Statistics taken while no run was queued make every index on queued runs look empty: when
/// the queued runs kept in `run_counts` are far more than the statistics believe, the upkeep
/// takes them again without waiting 30 s or for a fifth of the table to change; and not again
/// once they agree.
#[tokio::test]
async fn the_upkeep_takes_statistics_again_when_the_queue_is_far_from_what_they_believe() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    let schema = &scratch.schema;
    let off = format!("ALTER TABLE \"{schema}\".runs SET (autovacuum_enabled = false)");
    sqlx::query(&off).execute(&side).await.expect("autovacuum off for this table");
    // Why: the counting triggers name their table without a schema, as the store's sessions do.
    let ended = format!(
        "SET search_path TO \"{schema}\"; \
         INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, \
           finished_at) \
         SELECT lpad(g::text, 26, '0'), 'old', 'succeeded', 1, 1, 'null', g, g, 'c', g FROM generate_series(1, 20000) g; \
         ANALYZE runs; RESET search_path"
    );
    sqlx::raw_sql(&ended).execute(&side).await.expect("ended runs, analyzed with nothing queued");
    let analyzed = last_analyze(&side, schema).await.expect("analyzed");
    // 2,500 queued runs: an eighth of the table, under the fifth that the general rule waits for.
    for i in 0..2500 {
        store.enqueue(new_run("echo", json!(i))).await.expect("enqueue");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let again = loop {
        store.roll_up(now_micros()).await.expect("roll up");
        match last_analyze(&side, schema).await {
            Some(at) if at > analyzed => break at,
            _ => {}
        }
        assert!(Instant::now() < deadline, "2,500 queued runs the statistics believed none of were never analyzed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    tokio::time::sleep(Duration::from_millis(5500)).await;
    store.roll_up(now_micros()).await.expect("roll up");
    assert_eq!(last_analyze(&side, schema).await, Some(again), "the statistics agree with the queue now: not again");
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}
