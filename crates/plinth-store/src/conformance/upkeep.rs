//! Pruning, logs, queue depth and the health check.

use super::{SEC, claim_one, enqueue, enqueue_at, finish, get, new_run};
use crate::{CancelOutcome, Enqueued, LogEntry, LogLine, Store};
use plinth_core::ids::new_run_id;
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, Finish, NewRun, RunError};
use serde_json::json;

fn line(seq: u32, ts: i64, text: &str) -> LogLine {
    LogLine { seq, ts, line: text.to_string() }
}

pub(super) async fn cancel_at(store: &dyn Store, id: &str, now: i64) {
    let outcome = store.cancel(id, now).await.expect("cancel");
    assert!(matches!(outcome, CancelOutcome::Cancelled(_)), "cancel of queued run {id}: {outcome:?}");
}

async fn exists(store: &dyn Store, id: &str) -> bool {
    store.get(id, false).await.expect("get").is_some()
}

/// Prune deletes runs finished before the cutoff, with their logs, a batch at a time.
pub async fn prune_deletes_only_old_finished_runs(store: &dyn Store) {
    let t0 = now_micros();
    let mut old = Vec::new();
    for i in 1..=3 {
        let id = enqueue_at(store, "old", t0).await.run_id;
        cancel_at(store, &id, t0 + i * SEC).await;
        old.push(id);
    }
    let edge = enqueue_at(store, "old", t0).await.run_id;
    cancel_at(store, &edge, t0 + 10 * SEC).await;
    let recent = enqueue_at(store, "keep", t0).await.run_id;
    claim_one(store, "w1", "keep", t0).await;
    assert!(finish(store, &recent, "w1", 1, Finish::Succeeded(json!("done")), t0 + 20 * SEC).await);
    let queued = enqueue(store, NewRun { not_before: t0 + 3600 * SEC, ..new_run("wait", t0) }).await.run_id;
    let running = enqueue_at(store, "busy", t0).await.run_id;
    claim_one(store, "w1", "busy", t0).await;
    let retried = enqueue_at(store, "flaky", t0).await.run_id;
    claim_one(store, "w1", "flaky", t0).await;
    let err = RunError::new(Code::HandlerFailed, "later");
    assert!(finish(store, &retried, "w1", 1, Finish::Retry(err, t0 + 3600 * SEC), t0 + SEC).await);
    for id in [&old[0], &recent] {
        store.append_logs(id, 1, vec![line(0, t0, "kept until pruned")]).await.expect("append logs");
    }

    let cutoff = t0 + 10 * SEC;
    assert_eq!(store.prune(cutoff, t0, 0).await.expect("prune"), 0, "a batch of 0 deletes nothing");
    assert_eq!(store.prune(t0 + SEC, t0, 100).await.expect("prune"), 0, "nothing finished before t0 + 1s");
    assert_eq!(store.prune(cutoff, t0, 2).await.expect("prune"), 2, "the first batch takes 2 of the 3 old runs");
    let mut left = 0;
    for id in &old {
        left += usize::from(exists(store, id).await);
    }
    assert_eq!(left, 1, "one old run is left for the next batch");
    assert_eq!(store.prune(cutoff, t0, 2).await.expect("prune"), 1, "the second batch takes the last old run");
    assert_eq!(store.prune(cutoff, t0, 2).await.expect("prune"), 0, "then nothing is left before the cutoff");
    for id in &old {
        assert!(!exists(store, id).await, "old run {id} must be pruned");
        assert_eq!(store.logs(id).await.expect("logs"), None, "a pruned run has no logs");
    }
    assert!(exists(store, &edge).await, "a run finished exactly at the cutoff is kept");
    assert_eq!(store.logs(&recent).await.expect("logs").map(|l| l.len()), Some(1), "a kept run keeps its logs");

    assert_eq!(store.prune(t0 + 7200 * SEC, t0, 100).await.expect("prune"), 2, "later, the two other finished runs go");
    for id in [&queued, &running, &retried] {
        assert!(exists(store, id).await, "unfinished run {id} is never pruned");
    }
    assert!(!exists(store, &recent).await && !exists(store, &edge).await);
}

/// An idempotency key gives back its run within its window; after it, the key is free again,
/// and a finished run is kept past its retention while its key is still remembered.
pub async fn idempotency_keys_expire_after_their_window(store: &dyn Store) {
    let t0 = now_micros();
    let keyed = |key: &str, hash: &str, at: i64| NewRun {
        idempotency_key: Some(key.to_string()),
        request_hash: Some(hash.to_string()),
        ..new_run("echo", at)
    };
    let old = enqueue(store, keyed("k-old", "h-1", t0)).await;
    let young = enqueue(store, keyed("k-young", "h-1", t0 + 100 * SEC)).await;
    cancel_at(store, &old.run_id, t0 + SEC).await;
    cancel_at(store, &young.run_id, t0 + 101 * SEC).await;

    // Retention has passed for both, but only the old key's window.
    assert_eq!(store.prune(t0 + 200 * SEC, t0 + 50 * SEC, 100).await.expect("prune"), 1, "only the run whose key expired goes");
    assert!(!exists(store, &old.run_id).await, "the old run is pruned once its key is forgotten");
    assert!(exists(store, &young.run_id).await, "a run whose key is remembered is kept past its retention");
    match store.enqueue(keyed("k-young", "h-1", t0 + 150 * SEC)).await {
        Ok(Enqueued::Replayed(run)) => assert_eq!(run.run_id, young.run_id, "a live key still replays"),
        other => panic!("the young key must replay, got {other:?}"),
    }
    let reused = enqueue(store, keyed("k-old", "h-2", t0 + 150 * SEC)).await;
    assert_ne!(reused.run_id, old.run_id, "an expired key makes a new run, even with another request");

    assert_eq!(store.prune(t0 + 200 * SEC, t0 + 120 * SEC, 100).await.expect("prune"), 1, "later the young key expires too");
    assert!(!exists(store, &young.run_id).await);
    let again = enqueue(store, keyed("k-young", "h-3", t0 + 300 * SEC)).await;
    assert_ne!(again.run_id, young.run_id);
}

/// Log lines come back by attempt then sequence, whatever order they were written in.
pub async fn logs_read_back_in_order(store: &dyn Store) {
    let t0 = now_micros();
    let run = enqueue_at(store, "echo", t0).await.run_id;
    let other = enqueue_at(store, "echo", t0).await.run_id;
    assert_eq!(store.logs(&run).await.expect("logs"), Some(Vec::new()), "a run without lines has an empty log");

    store.append_logs(&run, 2, vec![line(1, t0 + 4, "second of 2"), line(0, t0 + 3, "first of 2")]).await.expect("append");
    store
        .append_logs(&run, 1, vec![line(0, t0, "first"), line(1, t0 + 1, ""), line(2, t0 + 2, "ünïcode ✓ \"quoted\"")])
        .await
        .expect("append");
    store.append_logs(&run, 1, vec![]).await.expect("append nothing");
    store.append_logs(&other, 1, vec![line(0, t0, "other run")]).await.expect("append");
    store.append_logs(&run, 1, vec![line(0, t0 + 9, "sent again")]).await.expect("a re-sent line is not an error");

    let entry = |attempt, seq, ts, text: &str| LogEntry { attempt, line: line(seq, ts, text) };
    let expected = vec![
        entry(1, 0, t0, "first"),
        entry(1, 1, t0 + 1, ""),
        entry(1, 2, t0 + 2, "ünïcode ✓ \"quoted\""),
        entry(2, 0, t0 + 3, "first of 2"),
        entry(2, 1, t0 + 4, "second of 2"),
    ];
    assert_eq!(store.logs(&run).await.expect("logs"), Some(expected), "by attempt then seq, a re-sent line stored once");
    assert_eq!(store.logs(&other).await.expect("logs"), Some(vec![entry(1, 0, t0, "other run")]), "logs are per run");

    for id in [new_run_id(), String::new()] {
        assert_eq!(store.logs(&id).await.expect("logs"), None, "logs of unknown run {id:?}");
    }
    let ghost = new_run_id();
    let _ = store.append_logs(&ghost, 1, vec![line(0, t0, "orphan")]).await;
    assert_eq!(store.logs(&ghost).await.expect("logs"), None, "lines of an unknown run do not make it exist");
    let long = "y".repeat(64 * 1024);
    store.append_logs(&other, 2, vec![line(0, t0, &long)]).await.expect("append a long line");
    let read = store.logs(&other).await.expect("logs").expect("the run exists");
    assert_eq!(read.last().map(|e| e.line.line.len()), Some(long.len()), "a long line is kept whole");
}

async fn depth(store: &dyn Store, function: &str) -> i64 {
    let all = store.queue_depth().await.expect("queue depth");
    let mut names: Vec<&String> = all.iter().map(|(f, _)| f).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all.len(), "one entry per function: {all:?}");
    assert!(all.iter().all(|(_, n)| *n >= 0), "no negative depth: {all:?}");
    all.iter().find(|(f, _)| f == function).map_or(0, |(_, n)| *n)
}

/// Queue depth counts the queued runs of each function, due or not.
pub async fn queue_depth_counts_queued_runs(store: &dyn Store) {
    let t0 = now_micros();
    let empty = store.queue_depth().await.expect("queue depth");
    assert!(empty.iter().all(|(_, n)| *n == 0), "an empty store has no queue: {empty:?}");
    for _ in 0..3 {
        enqueue_at(store, "echo", t0).await;
    }
    enqueue(store, NewRun { not_before: t0 + 3600 * SEC, ..new_run("echo", t0) }).await;
    let resize = enqueue_at(store, "resize", t0).await.run_id;
    assert_eq!((depth(store, "echo").await, depth(store, "resize").await, depth(store, "nope").await), (4, 1, 0));

    let running = claim_one(store, "w1", "echo", t0).await;
    assert_eq!(depth(store, "echo").await, 3, "a claimed run leaves the queue");
    cancel_at(store, &resize, t0).await;
    assert_eq!(depth(store, "resize").await, 0, "a cancelled run leaves the queue");
    let retry = Finish::Retry(RunError::new(Code::HandlerFailed, "again"), t0 + SEC);
    assert!(finish(store, &running.run_id, "w1", 1, retry, t0).await);
    assert_eq!(depth(store, "echo").await, 4, "a retried run is queued again");
    assert_eq!(get(store, &running.run_id).await.attempt, 1);
}

/// The health check writes and answers.
pub async fn check_answers(store: &dyn Store) {
    let took = store.check().await.expect("check of a fresh store");
    assert!(took.as_secs() < 60, "a check takes its time but not forever: {took:?}");
    assert!(!store.backend().is_empty(), "the backend has a name");
    enqueue_at(store, "echo", now_micros()).await;
    store.check().await.expect("check after a write");
    store.check().await.expect("checks can repeat");
    assert_eq!(
        store.list(crate::ListFilter { limit: 10, ..Default::default() }).await.expect("list").runs.len(),
        1,
        "a check adds no run"
    );
}

/// A function's queue takes runs up to its `max_queued`, then refuses; room comes back as runs
/// are claimed; a replay is answered even when the queue is full; other functions are apart.
pub async fn enqueue_refuses_beyond_max_queued(store: &dyn Store) {
    let t0 = now_micros();
    let capped = |function: &str| NewRun { max_queued: Some(2), ..new_run(function, t0) };
    let first =
        enqueue(store, NewRun { idempotency_key: Some("k".into()), request_hash: Some("h".into()), ..capped("busy") }).await;
    enqueue(store, capped("busy")).await;
    match store.enqueue(capped("busy")).await {
        Err(crate::StoreError::QueueFull { function, limit }) => assert_eq!((function.as_str(), limit), ("busy", 2)),
        other => panic!("a third queued run must be refused, got {other:?}"),
    }
    let replay = NewRun { idempotency_key: Some("k".into()), request_hash: Some("h".into()), ..capped("busy") };
    assert!(
        matches!(store.enqueue(replay).await, Ok(Enqueued::Replayed(r)) if r.run_id == first.run_id),
        "a replay needs no room"
    );
    enqueue(store, capped("quiet")).await;
    enqueue(store, new_run("busy", t0)).await;
    claim_one(store, "w1", "busy", t0).await;
    claim_one(store, "w1", "busy", t0).await;
    enqueue(store, capped("busy")).await;
    let page = store.list(crate::ListFilter { function: Some("busy".into()), limit: 100, ..Default::default() }).await;
    assert_eq!(page.expect("list").runs.len(), 4, "two claimed, the uncapped one and the one after the claims");
}
