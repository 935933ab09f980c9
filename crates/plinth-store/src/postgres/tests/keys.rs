//! Idempotency keys in `run_keys` (migration 0018): keys taken before it still replay, forgetting
//! a key leaves its run's row alone, and a key taken again by a new run lets the old one go.

use super::{Scratch, database_url, new_run, side_pool};
use crate::postgres::PostgresStore;
use crate::postgres::migrate::{MIGRATIONS, migrate};
use crate::{CancelOutcome, Enqueued, Store, StoreError};
use plinth_core::NewRun;
use plinth_core::timefmt::now_micros;
use serde_json::json;
use sqlx::{Connection, Executor, PgPool};

const SEC: i64 = 1_000_000;

fn keyed(key: &str, hash: &str) -> NewRun {
    NewRun { idempotency_key: Some(key.into()), request_hash: Some(hash.into()), ..new_run("keyed", json!(1)) }
}

async fn created(store: &dyn Store, run: NewRun) -> String {
    match store.enqueue(run).await.expect("enqueue") {
        Enqueued::Created(run) => run.run_id,
        other => panic!("a new run is created, got {other:?}"),
    }
}

async fn cancelled_at(store: &dyn Store, id: &str, at: i64) {
    assert!(matches!(store.cancel(id, at).await.expect("cancel"), CancelOutcome::Cancelled(_)));
}

/// The run's row version: a new one after any update of the row.
async fn version(side: &PgPool, schema: &str, id: &str) -> Option<String> {
    let sql = format!("SELECT xmin::text FROM \"{schema}\".runs WHERE id = $1");
    sqlx::query_scalar(&sql).bind(id).fetch_optional(side).await.expect("read the run's version")
}

async fn holder(side: &PgPool, schema: &str, key: &str) -> Option<String> {
    let sql = format!("SELECT run_id FROM \"{schema}\".run_keys WHERE key = $1");
    sqlx::query_scalar(&sql).bind(key).fetch_optional(side).await.expect("read the key")
}

#[tokio::test]
async fn a_key_taken_before_the_migration_still_replays_and_refuses_another_request() {
    let Some(url) = database_url() else { return };
    let mut scratch = Scratch::new(&url);
    let side = side_pool(&url).await;
    let before = &MIGRATIONS[..17];
    assert_eq!(before.last().map(|m| m.0), Some(17), "the schema as it was before run_keys");
    migrate(&side, &scratch.schema, before).await.expect("migrate to 17");
    let at = now_micros();
    // Why: the runs' counting trigger names its table without a schema, as the store's
    // connections set the search path.
    let mut tx = side.begin().await.expect("a side transaction");
    sqlx::query(&format!("SET LOCAL search_path TO \"{}\"", scratch.schema)).execute(&mut *tx).await.expect("path");
    let insert = "INSERT INTO runs (id, function, status, max_attempts, input, created_at, next_attempt_at, correlation_id, \
         idempotency_key, request_hash) VALUES ('01OLDRUN', 'keyed', 'queued', 1, '1', $1, $1, 'c', 'order-1', 'h-1')";
    sqlx::query(insert).bind(at).execute(&mut *tx).await.expect("a keyed run of the old schema");
    tx.commit().await.expect("commit");

    let store = PostgresStore::connect(&url, &scratch.schema).await.expect("the store migrates the rest");
    assert_eq!(holder(&side, &scratch.schema, "order-1").await.as_deref(), Some("01OLDRUN"), "the key moved over");
    match store.enqueue(keyed("order-1", "h-1")).await.expect("enqueue") {
        Enqueued::Replayed(run) => {
            assert_eq!(run.run_id, "01OLDRUN");
            assert_eq!(run.idempotency_key.as_deref(), Some("order-1"), "the run still shows its key");
        }
        other => panic!("the old key replays its run, got {other:?}"),
    }
    match store.enqueue(keyed("order-1", "h-2")).await {
        Err(StoreError::IdempotencyMismatch { run_id }) => assert_eq!(run_id, "01OLDRUN"),
        other => panic!("another request with the old key is refused, got {other:?}"),
    }
    let fresh = created(&store, keyed("order-2", "h-1")).await;
    assert_eq!(holder(&side, &scratch.schema, "order-2").await, Some(fresh), "a new key goes to run_keys");
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn forgetting_a_key_leaves_its_run_untouched_and_lets_it_be_pruned() {
    let Some(url) = database_url() else { return };
    let mut scratch = Scratch::new(&url);
    let store = PostgresStore::connect(&url, &scratch.schema).await.expect("a fresh store");
    let side = side_pool(&url).await;
    let t0 = now_micros();
    let id = created(&store, keyed("order-9", "h")).await;
    cancelled_at(&store, &id, t0 + SEC).await;
    let row = version(&side, &scratch.schema, &id).await;

    assert_eq!(store.prune(t0 + 10 * SEC, t0, 100).await.expect("prune"), 0, "a run holding its key is kept past retention");
    assert_eq!(holder(&side, &scratch.schema, "order-9").await, Some(id.clone()), "the key is within its window");

    assert_eq!(store.prune(t0, t0 + 10 * SEC, 100).await.expect("prune"), 0, "retention has not passed");
    assert_eq!(holder(&side, &scratch.schema, "order-9").await, None, "the key past its window is forgotten");
    assert_eq!(version(&side, &scratch.schema, &id).await, row, "forgetting the key did not write the run");
    let run = store.get(&id, false).await.expect("get").expect("the run is kept");
    assert_eq!(run.idempotency_key.as_deref(), Some("order-9"), "the run still shows the key it was made with");

    assert_eq!(store.prune(t0 + 10 * SEC, t0 + 10 * SEC, 100).await.expect("prune"), 1, "then retention takes it");
    assert_eq!(version(&side, &scratch.schema, &id).await, None);
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_key_taken_again_keeps_the_new_run_and_lets_the_old_one_go() {
    let Some(url) = database_url() else { return };
    let mut scratch = Scratch::new(&url);
    let store = PostgresStore::connect(&url, &scratch.schema).await.expect("a fresh store");
    let side = side_pool(&url).await;
    let t0 = now_micros();
    let old = created(&store, keyed("order-5", "h-1")).await;
    cancelled_at(&store, &old, t0 + SEC).await;
    assert_eq!(store.prune(t0, t0 + 10 * SEC, 100).await.expect("prune"), 0, "the key is forgotten, nothing is old");

    let new = created(&store, keyed("order-5", "h-2")).await;
    assert_ne!(new, old, "a forgotten key makes a new run, even with another request");
    cancelled_at(&store, &new, t0 + 2 * SEC).await;
    assert_eq!(holder(&side, &scratch.schema, "order-5").await, Some(new.clone()), "the key is the new run's");

    // Both runs show the same key; only the new one holds it.
    assert_eq!(store.prune(t0 + 10 * SEC, t0, 100).await.expect("prune"), 1, "the old run goes, the new keeps its key");
    assert!(store.get(&old, false).await.expect("get").is_none());
    assert!(store.get(&new, false).await.expect("get").is_some(), "a run holding its key is kept");
    match store.enqueue(keyed("order-5", "h-2")).await.expect("enqueue") {
        Enqueued::Replayed(run) => assert_eq!(run.run_id, new),
        other => panic!("the key replays the new run, got {other:?}"),
    }
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

/// Every (node type, index) reading `run_keys` in a plan.
fn reads_of_keys(plan: &serde_json::Value, out: &mut Vec<(String, String)>) {
    let text = |k: &str| plan.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
    if text("Relation Name") == "run_keys" {
        out.push((text("Node Type"), text("Index Name")));
    }
    for child in plan.get("Plans").and_then(serde_json::Value::as_array).into_iter().flatten() {
        reads_of_keys(child, out);
    }
}

#[tokio::test]
async fn a_pruning_batch_looks_each_key_up_by_its_primary_key_among_many() {
    let Some(url) = database_url() else { return };
    let mut scratch = Scratch::new(&url);
    let store = PostgresStore::connect(&url, &scratch.schema).await.expect("a fresh store");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("a side connection");
    conn.execute(format!("SET search_path TO \"{}\"", scratch.schema).as_str()).await.expect("path");
    // 60,000 finished runs, a third with a key, half of those keys still held.
    let fill = "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, \
         finished_at, correlation_id, idempotency_key) SELECT lpad(g::text, 26, '0'), 'f', 'succeeded', 1, 1, '{}', g, g, g + 5, \
         'c', CASE WHEN g % 3 = 0 THEN 'key-' || g END FROM generate_series(1, 60000) g; \
       INSERT INTO run_keys SELECT 'key-' || g, lpad(g::text, 26, '0'), 'h', g FROM generate_series(1, 60000) g WHERE g % 6 = 0; \
       ANALYZE runs; ANALYZE run_keys";
    conn.execute(fill).await.expect("fill");
    conn.execute(format!("PREPARE batch(bigint, bigint, bigint, text) AS {}", crate::postgres::upkeep::PRUNE_SQL).as_str())
        .await
        .expect("prepare the batch");
    let plan: serde_json::Value = sqlx::query_scalar("EXPLAIN (FORMAT JSON) EXECUTE batch(50000, 1000, 0, '')")
        .fetch_one(&mut conn)
        .await
        .expect("explain");
    let mut reads = Vec::new();
    reads_of_keys(&plan[0]["Plan"], &mut reads);
    assert!(!reads.is_empty(), "the batch reads the keys: {plan}");
    for (node, index) in &reads {
        assert!(node.starts_with("Index") && index == "run_keys_pkey", "each key by its primary key, not {node} {index}: {plan}");
    }
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}
