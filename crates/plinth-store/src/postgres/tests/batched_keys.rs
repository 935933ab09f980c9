//! Keyed runs in the insert loop's batches (decision 0027): a key sent many times at once makes
//! one run, nodes taking the same keys in opposite orders do not deadlock, and a batch that
//! fails takes none of its keys with it.

use super::{Scratch, database_url, fresh, new_run, side_pool};
use crate::postgres::PostgresStore;
use crate::{Enqueued, Store, StoreError};
use plinth_core::NewRun;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

fn keyed(key: &str, hash: &str) -> NewRun {
    NewRun { idempotency_key: Some(key.into()), request_hash: Some(hash.into()), ..new_run("keyed", json!(1)) }
}

/// Sends every run at once; the answers in the same order.
async fn all_at_once(store: &Arc<PostgresStore>, runs: Vec<NewRun>) -> Vec<Result<Enqueued, StoreError>> {
    let calls = runs.into_iter().map(|run| {
        let store = store.clone();
        tokio::spawn(async move { store.enqueue(run).await })
    });
    let mut answers = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        answers.push(call.await.expect("the enqueue task"));
    }
    answers
}

/// The run each key names in `run_keys`, and the key each stored run shows.
async fn keys_and_runs(url: &str, schema: &str) -> (HashMap<String, String>, HashMap<String, Option<String>>) {
    let side = side_pool(url).await;
    let keys: Vec<(String, String)> =
        sqlx::query_as(&format!("SELECT key, run_id FROM \"{schema}\".run_keys")).fetch_all(&side).await.expect("the keys");
    let runs: Vec<(String, Option<String>)> =
        sqlx::query_as(&format!("SELECT id, idempotency_key FROM \"{schema}\".runs")).fetch_all(&side).await.expect("runs");
    side.close().await;
    (keys.into_iter().collect(), runs.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sent_many_times_at_once_makes_one_run() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let store = Arc::new(store);
    let mut runs: Vec<NewRun> = (0..60).map(|i| keyed(&format!("k-{i}"), "h")).collect();
    runs.extend((0..8).map(|_| keyed("k-twice", "h")));
    runs.extend((0..4).map(|_| keyed("k-mixed", "h")));
    runs.push(keyed("k-mixed", "other request"));
    runs.push(new_run("keyed", json!("no key")));
    let answers = all_at_once(&store, runs.clone()).await;

    let mut created: HashMap<String, String> = HashMap::new();
    let mut replayed: Vec<(String, String)> = Vec::new();
    let mut refused = 0;
    for (run, answer) in runs.iter().zip(answers) {
        let key = run.idempotency_key.clone().unwrap_or_else(|| "none".into());
        match answer {
            Ok(Enqueued::Created(r)) => {
                assert_eq!(r.run_id, run.run_id);
                assert!(created.insert(key.clone(), r.run_id).is_none(), "two runs made for {key}");
            }
            Ok(Enqueued::Replayed(r)) => replayed.push((key, r.run_id)),
            Err(StoreError::IdempotencyMismatch { .. }) => refused += 1,
            other => panic!("{key}: a new run, a replay or a refusal, got {other:?}"),
        }
    }
    assert_eq!(created.len(), 63, "one run per key, and the unkeyed one");
    for (key, id) in &replayed {
        assert_eq!(Some(id), created.get(key), "a replay of {key} answers its one run");
    }
    // Why either way: the odd request is refused if it came after the key was taken, and made
    // the run (then its 4 twins are refused) if it came first.
    assert!(refused == 1 || refused == 4, "the other request or its twins are refused: {refused}");
    assert_eq!(replayed.len() + refused, runs.len() - 63, "every other answer a replay or a refusal");

    let (keys, stored) = keys_and_runs(&scratch.url, &scratch.schema).await;
    assert_eq!(keys.len(), 62, "one key row per key");
    assert_eq!(stored.len(), 63, "nothing stored for a replay or a refusal");
    for (key, id) in &keys {
        assert_eq!(created.get(key), Some(id), "the key names its run");
        assert_eq!(stored.get(id), Some(&Some(key.clone())), "the run shows its key");
    }
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_taking_the_same_keys_in_opposite_orders_do_not_deadlock() {
    let Some(url) = database_url() else { return };
    let mut scratch = Scratch::new(&url);
    let a = Arc::new(PostgresStore::connect(&url, &scratch.schema).await.expect("node a"));
    let b = Arc::new(PostgresStore::connect(&url, &scratch.schema).await.expect("node b"));
    for round in 0..5 {
        let forward: Vec<NewRun> = (0..120).map(|i| keyed(&format!("r{round}-{i:03}"), "h")).collect();
        let backward: Vec<NewRun> = (0..120).rev().map(|i| keyed(&format!("r{round}-{i:03}"), "h")).collect();
        let (on_a, on_b) = tokio::join!(all_at_once(&a, forward), all_at_once(&b, backward));
        let mut made = HashSet::new();
        for answer in on_a.into_iter().chain(on_b) {
            match answer {
                Ok(Enqueued::Created(r)) => assert!(made.insert(r.run_id)),
                Ok(Enqueued::Replayed(_)) => {}
                other => panic!("round {round}: a new run or a replay, never an error (a deadlock), got {other:?}"),
            }
        }
        assert_eq!(made.len(), 120, "round {round}: one run per key across both nodes");
    }
    let (keys, stored) = keys_and_runs(&url, &scratch.schema).await;
    assert_eq!((keys.len(), stored.len()), (600, 600));
    a.close().await;
    b.close().await;
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_takes_none_of_its_keys_and_its_good_runs_are_stored() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let store = Arc::new(store);
    let first = keyed("first", "h");
    assert!(matches!(store.enqueue(first.clone()).await, Ok(Enqueued::Created(_))));
    // Why: a run id already stored fails the whole batch statement; its runs are then stored
    // one by one, and the duplicate alone is refused.
    let dup = NewRun { run_id: first.run_id.clone(), ..keyed("dup-of-id", "h") };
    let mut runs: Vec<NewRun> = (0..30).map(|i| keyed(&format!("good-{i}"), "h")).collect();
    runs.insert(15, dup);
    let answers = all_at_once(&store, runs.clone()).await;
    for (run, answer) in runs.iter().zip(&answers) {
        let key = run.idempotency_key.as_deref().unwrap_or_default();
        if key == "dup-of-id" {
            assert!(answer.is_err(), "the duplicate id is refused: {answer:?}");
        } else {
            assert!(matches!(answer, Ok(Enqueued::Created(r)) if r.run_id == run.run_id), "{key}: {answer:?}");
        }
    }
    let (keys, stored) = keys_and_runs(&scratch.url, &scratch.schema).await;
    assert!(!keys.contains_key("dup-of-id"), "the refused run's key is not held");
    assert_eq!((keys.len(), stored.len()), (31, 31));
    let again = keyed("dup-of-id", "h");
    assert!(matches!(store.enqueue(again).await, Ok(Enqueued::Created(_))), "its key is free for a new run");
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_takes_its_keys_in_key_order_so_it_cannot_deadlock() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&scratch.url).await;
    let path = format!("SET LOCAL search_path TO \"{}\"", scratch.schema);
    let take = "INSERT INTO run_keys (key, run_id, request_hash, created_at) VALUES ($1, $2, 'h', 0)";
    // Another node's transaction holds `k-m`, uncommitted.
    let mut other = side.begin().await.expect("the other node's transaction");
    sqlx::query(&path).execute(&mut *other).await.expect("path");
    sqlx::query(take).bind("k-m").bind("01OTHER").execute(&mut *other).await.expect("k-m taken");

    let runs = [keyed("k-z", "h"), keyed("k-m", "h"), keyed("k-a", "h")];
    let mut conn = store.pool.acquire().await.expect("a connection");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.expect("pid");
    let batch = tokio::spawn(async move {
        let runs: Vec<&NewRun> = runs.iter().collect();
        crate::postgres::insert::insert_batch(&mut conn, &runs).await
    });
    let waits = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'";
    let mut waited = 0;
    while sqlx::query_scalar::<_, i64>(waits).bind(pid).fetch_one(&side).await.expect("activity") == 0 {
        assert!(waited < 500, "the batch never came to wait for k-m");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 1;
    }
    // Why this shows the order: the batch waits on `k-m`; had it taken `k-z` first (the order
    // it was sent in), this insert would wait on the batch while the batch waits on it.
    sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *other).await.expect("timeout");
    let second = sqlx::query(take).bind("k-z").bind("01OTHER2").execute(&mut *other).await;
    assert!(second.is_ok(), "k-z was still free while the batch waited on k-m: {second:?}");
    other.commit().await.expect("the other node commits");
    let stored = batch.await.expect("the batch task").expect("the batch commits");
    use crate::postgres::insert::Stored::{Inserted, KeyHeld};
    assert_eq!(stored, vec![KeyHeld, KeyHeld, Inserted], "only k-a was free");
    let (keys, runs) = keys_and_runs(&scratch.url, &scratch.schema).await;
    assert_eq!(keys.get("k-z").map(String::as_str), Some("01OTHER2"));
    assert_eq!(runs.len(), 1, "the runs whose keys were held stored nothing: {runs:?}");
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_keyed_run_in_a_lane_opens_its_lane_and_replays() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let in_lane = |hash: &str| NewRun { flow_key: Some("tenant-1".into()), ..keyed("lane-order", hash) };
    let first = match store.enqueue(in_lane("h")).await.expect("enqueue") {
        Enqueued::Created(run) => run,
        other => panic!("a new run, got {other:?}"),
    };
    assert_eq!(first.flow_key.as_deref(), Some("tenant-1"));
    match store.enqueue(in_lane("h")).await.expect("the replay") {
        Enqueued::Replayed(run) => assert_eq!(run.run_id, first.run_id),
        other => panic!("the same request replays, got {other:?}"),
    }
    assert!(matches!(store.enqueue(in_lane("other")).await, Err(StoreError::IdempotencyMismatch { .. })));
    let side = side_pool(&scratch.url).await;
    let lanes: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{}\".flow_keys WHERE key = 'tenant-1'", scratch.schema))
        .fetch_one(&side)
        .await
        .expect("the lanes");
    assert_eq!(lanes, 1, "the run's lane was opened with it");
    side.close().await;
    let (keys, runs) = keys_and_runs(&scratch.url, &scratch.schema).await;
    assert_eq!((keys.len(), runs.len()), (1, 1));
    store.close().await;
    scratch.drop_now().await;
}
