//! The pruner beside the hot path on PostgreSQL: rows another transaction holds are skipped or
//! given up on within the lock timeout, and pruned at a later pass once they are free.

use super::{database_url, fresh, new_run, side_pool};
use crate::{CancelOutcome, Enqueued, LogLine, Store};
use plinth_core::NewRun;
use plinth_core::timefmt::now_micros;
use serde_json::json;
use sqlx::{Executor, PgPool};

const SEC: i64 = 1_000_000;

async fn created(store: &dyn Store, run: NewRun) -> String {
    let Enqueued::Created(run) = store.enqueue(run).await.expect("enqueue") else { panic!("a new run is created") };
    run.run_id
}

/// A run of `function` cancelled (so finished) at `at`.
async fn finished_at(store: &dyn Store, function: &str, at: i64) -> String {
    let id = created(store, new_run(function, json!(null))).await;
    let outcome = store.cancel(&id, at).await.expect("cancel");
    assert!(matches!(outcome, CancelOutcome::Cancelled(_)), "{outcome:?}");
    id
}

async fn exists(store: &dyn Store, id: &str) -> bool {
    store.get(id, false).await.expect("get").is_some()
}

async fn key_of(side: &PgPool, schema: &str, id: &str) -> Option<String> {
    sqlx::query_scalar(&format!("SELECT key FROM \"{schema}\".run_keys WHERE run_id = $1"))
        .bind(id)
        .fetch_optional(side)
        .await
        .expect("read the run's key")
}

/// Rows another transaction holds `FOR UPDATE` (a run to delete, a run whose key is to be
/// forgotten) are skipped without waiting; the rest is pruned, and they are at the next pass.
#[tokio::test]
async fn rows_held_by_another_transaction_are_skipped_then_pruned_later() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    let t0 = now_micros();
    let old: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(finished_at(&store, "old", t0 - 10 * SEC).await);
        }
        ids
    };
    let keyed = NewRun { idempotency_key: Some("order-7".into()), ..new_run("keyed", json!(1)) };
    let keyed = created(&store, keyed).await;

    let mut holder = side.begin().await.expect("a side transaction");
    let hold = format!("SELECT id FROM \"{}\".runs WHERE id = $1 FOR UPDATE", scratch.schema);
    sqlx::query(&hold).bind(&old[0]).execute(&mut *holder).await.expect("hold an old run");
    let hold = format!("SELECT key FROM \"{}\".run_keys WHERE run_id = $1 FOR UPDATE", scratch.schema);
    sqlx::query(&hold).bind(&keyed).execute(&mut *holder).await.expect("hold the queued run's key");

    let pruned = store.prune(t0, t0 + SEC, 100).await.expect("a prune beside held rows succeeds");
    assert_eq!(pruned, 2, "the two free old runs go, the held one is skipped");
    assert!(exists(&store, &old[0]).await, "the held run is kept for now");
    assert_eq!(key_of(&side, &scratch.schema, &keyed).await.as_deref(), Some("order-7"), "a held key is kept for now");

    holder.rollback().await.expect("release the rows");
    assert_eq!(store.prune(t0, t0 + SEC, 100).await.expect("prune"), 1, "the next pass takes the run it skipped");
    assert!(!exists(&store, &old[0]).await);
    assert_eq!(key_of(&side, &scratch.schema, &keyed).await, None, "and forgets the key it skipped");
    assert!(exists(&store, &keyed).await, "a queued run is never pruned, only its old key forgotten");
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

/// A pass goes on where its last full batch stopped, not from the oldest run, so it never
/// walks again what it deleted; a run older than that spot, which the pass went by, is taken by
/// the next pass, which starts from the oldest run again after a short batch.
#[tokio::test]
async fn a_pass_goes_on_after_its_last_batch_and_the_next_pass_starts_from_the_oldest() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let t0 = now_micros();
    let mut old = Vec::new();
    for i in 0..5 {
        old.push(finished_at(&store, "old", t0 - (20 - i) * SEC).await);
    }
    assert_eq!(store.prune(t0, 0, 2).await.expect("first batch"), 2, "a full batch: the two oldest");
    assert!(!exists(&store, &old[0]).await && !exists(&store, &old[1]).await);
    let older = finished_at(&store, "old", t0 - 30 * SEC).await;
    assert_eq!(store.prune(t0, 0, 2).await.expect("second batch"), 2, "the next two after the first batch");
    assert!(exists(&store, &older).await, "the pass went on after its last batch, past the older run");
    assert_eq!(store.prune(t0, 0, 2).await.expect("third batch"), 1, "the last one: a short batch ends the pass");
    assert!(exists(&store, &older).await);
    assert_eq!(store.prune(t0, 0, 2).await.expect("the next pass"), 1, "the next pass starts from the oldest again");
    assert!(!exists(&store, &older).await, "nothing is left behind");
    assert_eq!(store.prune(t0, 0, 2).await.expect("an empty pass"), 0, "nothing old is left");
    for id in &old {
        assert!(!exists(&store, id).await, "{id} was pruned");
    }
    store.close().await;
    scratch.drop_now().await;
}

/// Bad bounds are not an error: a batch of none deletes none (and ends the pass), and a
/// retention that reaches no run deletes nothing.
#[tokio::test]
async fn a_prune_that_reaches_no_run_deletes_nothing() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let t0 = now_micros();
    let id = finished_at(&store, "old", t0 - 10 * SEC).await;
    assert_eq!(store.prune(t0 - 60 * SEC, 0, 100).await.expect("too old a bound"), 0);
    assert_eq!(store.prune(t0, 0, 0).await.expect("a batch of none"), 0);
    assert!(exists(&store, &id).await);
    assert_eq!(store.prune(t0, 0, 100).await.expect("prune"), 1);
    store.close().await;
    scratch.drop_now().await;
}

/// A prune that must wait for a row lock (a log line of a doomed run held by another
/// transaction) gives up with an error at its lock timeout instead of waiting with it; nothing
/// of the batch is deleted, and the next pass, once the row is free, deletes it all.
#[tokio::test]
async fn a_prune_stuck_behind_a_lock_gives_up_and_the_next_pass_succeeds() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    let t0 = now_micros();
    let id = finished_at(&store, "old", t0 - 10 * SEC).await;
    let line = LogLine { seq: 0, ts: t0, line: "kept until pruned".into() };
    store.append_logs(&id, 1, vec![line]).await.expect("append logs");

    let mut holder = side.begin().await.expect("a side transaction");
    let hold = format!("SELECT 1 FROM \"{}\".run_logs WHERE run_id = $1 FOR UPDATE", scratch.schema);
    sqlx::query(&hold).bind(&id).execute(&mut *holder).await.expect("hold the log line");

    let err = store.prune(t0, 0, 100).await.expect_err("a prune behind a held row gives up");
    assert!(err.to_string().contains("lock timeout"), "the error says why: {err}");
    assert!(exists(&store, &id).await, "the batch rolled back whole: the run is still there");
    assert_eq!(store.logs(&id).await.expect("logs").map(|l| l.len()), Some(1), "with its log line");

    holder.rollback().await.expect("release the row");
    assert_eq!(store.prune(t0, 0, 100).await.expect("the next pass"), 1);
    assert!(!exists(&store, &id).await);
    assert_eq!(store.logs(&id).await.expect("logs"), None, "its log line went with it");
    // Why: the timeouts were the prune's transaction's own; no pooled connection keeps them.
    for _ in 0..3 {
        let mut conn = store.pool.acquire().await.expect("a pooled connection");
        let timeout: String = sqlx::query_scalar("SHOW lock_timeout").fetch_one(&mut *conn).await.expect("show");
        assert_eq!(timeout, "0", "a pooled connection has no lock timeout left over");
        conn.execute("SELECT 1").await.expect("still usable");
    }
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}
