//! Runs started the moment they are stored (decision 0019): stored leased, their first attempt
//! recorded, held by the same fences as a claimed run; ignored where the store must decide.

use super::{LEASE, SEC, claim, enqueue, finish, get, new_run};
use crate::{Enqueued, Heartbeat, Store, StoreError};
use plinth_core::run::StartNow;
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, NewRun, RunStatus};
use serde_json::json;

fn started(function: &str, owner: &str, at: i64) -> NewRun {
    NewRun { start: Some(StartNow { owner: owner.into(), started_at: at, lease_until: at + LEASE }), ..new_run(function, at) }
}

/// A run started at once is stored running, leased to its node with its first attempt begun;
/// no claim takes it, and only its owner's heartbeat and end count.
pub async fn a_run_started_at_once_is_stored_leased(store: &dyn Store) {
    let t0 = now_micros();
    let run = enqueue(store, started("echo", "w1", t0)).await;
    assert_eq!((run.status, run.attempt, run.started_at), (RunStatus::Running, 1, Some(t0)), "the answer: {run:?}");
    let stored = store.get(&run.run_id, true).await.expect("get").expect("stored");
    assert_eq!(
        (stored.status, stored.attempt, stored.started_at, stored.next_attempt_at),
        (RunStatus::Running, 1, Some(t0), None)
    );
    let attempts = stored.attempts.expect("attempts asked for");
    assert_eq!(attempts.len(), 1, "its first attempt is recorded: {attempts:?}");
    assert_eq!((attempts[0].attempt, attempts[0].outcome.as_str(), attempts[0].started_at), (1, "running", t0));
    let depth = store.queue_depth().await.expect("depth");
    assert!(depth.iter().all(|(_, n)| *n == 0), "it never entered the queue: {depth:?}");

    let other = claim(store, "w2", t0 + SEC, &[("echo", 5)]).await;
    assert!(other.runs.is_empty(), "no claim takes a started run: {other:?}");
    let hb = store.heartbeat("w2", vec![(run.run_id.clone(), 1)], t0 + 2 * LEASE).await.expect("heartbeat");
    assert_eq!(hb.lost, vec![run.run_id.clone()], "another node does not hold it");
    let hb = store.heartbeat("w1", vec![(run.run_id.clone(), 1)], t0 + 2 * LEASE).await.expect("heartbeat");
    assert_eq!(hb, Heartbeat::default(), "its node holds the lease");

    assert!(!finish(store, &run.run_id, "w2", 1, Finish::Succeeded(json!("x")), t0 + SEC).await, "a stranger's end");
    assert!(finish(store, &run.run_id, "w1", 1, Finish::Succeeded(json!("ok")), t0 + SEC).await, "its owner's end");
    let done = get(store, &run.run_id).await;
    assert_eq!((done.status, done.output), (RunStatus::Succeeded, Some(json!("ok"))));
}

/// A started run whose node is gone (its lease ran out) is taken back like any claimed run,
/// the lost attempt counted, and claimed again.
pub async fn a_started_run_whose_node_died_is_rescued(store: &dyn Store) {
    let t0 = now_micros();
    let run = enqueue(store, started("echo", "w1", t0)).await;
    assert!(store.rescue(t0 + LEASE - 1).await.expect("rescue").is_empty(), "the lease still holds");
    let rescued = store.rescue(t0 + LEASE + 1).await.expect("rescue");
    assert_eq!(
        rescued.iter().map(|r| (r.run_id.as_str(), r.status)).collect::<Vec<_>>(),
        vec![(run.run_id.as_str(), RunStatus::Queued)]
    );
    let again = claim(store, "w2", t0 + LEASE + 2 * SEC, &[("echo", 5)]).await;
    assert_eq!(again.runs.iter().map(|r| (r.run_id.as_str(), r.attempt)).collect::<Vec<_>>(), vec![(run.run_id.as_str(), 2)]);
    assert!(
        !finish(store, &run.run_id, "w1", 1, Finish::Succeeded(json!(1)), t0 + LEASE + 3 * SEC).await,
        "the old node is fenced"
    );
}

/// A lease on a run the store must decide about first, or one not due yet, is ignored: the run
/// is queued as without it. A duplicate id is refused and starts nothing.
pub async fn a_start_is_ignored_where_the_queue_decides(store: &dyn Store) {
    let t0 = now_micros();
    let capped = NewRun { max_queued: Some(100), ..started("echo", "w1", t0) };
    let capped = enqueue(store, capped).await;
    assert_eq!((capped.status, capped.attempt), (RunStatus::Queued, 0), "a run with a queue limit is queued: {capped:?}");
    let later = NewRun { not_before: t0 + 60 * SEC, ..started("echo", "w1", t0) };
    let later = enqueue(store, later).await;
    assert_eq!((later.status, later.next_attempt_at), (RunStatus::Queued, Some(t0 + 60 * SEC)), "a delayed run is queued");
    assert_eq!(get(store, &later.run_id).await.status, RunStatus::Queued, "and stored so");

    let first = enqueue(store, started("echo", "w1", t0)).await;
    let dup = NewRun { run_id: first.run_id.clone(), ..started("echo", "w9", t0 + SEC) };
    let refused = store.enqueue(dup).await;
    assert!(refused.is_err(), "a duplicate id is refused: {refused:?}");
    let kept = store.get(&first.run_id, true).await.expect("get").expect("kept");
    assert_eq!(kept.attempts.map(|a| a.len()), Some(1), "the refused duplicate recorded no attempt");
    let hb = store.heartbeat("w9", vec![(first.run_id.clone(), 1)], t0 + 2 * LEASE).await.expect("heartbeat");
    assert_eq!(hb.lost, vec![first.run_id.clone()], "the duplicate's node holds nothing");
}

/// A keyed run starts at once like any other (decision 0027); its replay, sent with a lease of
/// its own, starts nothing: the first run is answered as it stands, with its one attempt, and a
/// different request under the key is refused without storing anything.
pub async fn a_keyed_run_starts_at_once_and_its_replay_starts_nothing(store: &dyn Store) {
    let t0 = now_micros();
    let keyed = |owner: &str, hash: &str, at: i64| NewRun {
        idempotency_key: Some("order-7".into()),
        request_hash: Some(hash.into()),
        ..started("echo", owner, at)
    };
    let first = enqueue(store, keyed("w1", "h", t0)).await;
    assert_eq!((first.status, first.attempt), (RunStatus::Running, 1), "a keyed run starts at once: {first:?}");
    assert_eq!(first.idempotency_key.as_deref(), Some("order-7"));
    match store.enqueue(keyed("w2", "h", t0 + SEC)).await.expect("the replay") {
        Enqueued::Replayed(run) => assert_eq!((run.run_id.as_str(), run.status), (first.run_id.as_str(), RunStatus::Running)),
        other => panic!("the same request replays the first run, got {other:?}"),
    }
    match store.enqueue(keyed("w2", "other", t0 + SEC)).await {
        Err(StoreError::IdempotencyMismatch { run_id }) => assert_eq!(run_id, first.run_id),
        other => panic!("a different request under the key is refused, got {other:?}"),
    }
    let stored = store.get(&first.run_id, true).await.expect("get").expect("stored");
    assert_eq!(stored.attempts.map(|a| a.len()), Some(1), "the replays recorded no attempt");
    let hb = store.heartbeat("w2", vec![(first.run_id.clone(), 1)], t0 + 2 * LEASE).await.expect("heartbeat");
    assert_eq!(hb.lost, vec![first.run_id.clone()], "the replays' node holds nothing");
    let depth = store.queue_depth().await.expect("depth");
    assert!(depth.iter().all(|(_, n)| *n == 0), "nothing entered the queue: {depth:?}");
}
