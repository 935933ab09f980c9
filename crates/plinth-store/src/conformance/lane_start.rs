//! Runs of a `concurrency` lane started as they are stored (decision 0034): started while the
//! lane has room and no due run waits in it, stored queued otherwise, and the lane's limit
//! holds whichever way its runs start.

use super::{LEASE, SEC, enqueue, finish, get, new_run};
use crate::{ClaimRequest, Claimed, FlowLimit, Store};
use plinth_core::run::StartNow;
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, NewRun, RunStatus};
use serde_json::json;
use std::collections::HashMap;

/// A run of `function` in lane `key` (limit `limit`) that node `owner` wants started at `at`.
fn starting(function: &str, key: &str, limit: u32, owner: &str, at: i64) -> NewRun {
    NewRun {
        flow_key: Some(key.to_string()),
        lane_limit: Some(limit),
        start: Some(StartNow { owner: owner.into(), started_at: at, lease_until: at + LEASE }),
        ..new_run(function, at)
    }
}

/// Claims up to 10 runs of `function`, whose lanes hold at most `limit` running runs each.
async fn claim_lane(store: &dyn Store, now: i64, function: &str, limit: u32) -> Claimed {
    let req = ClaimRequest {
        owner: "w2".into(),
        now,
        lease_until: now + LEASE,
        wants: vec![(function.to_string(), 10)],
        limit: u32::MAX,
        limits: std::sync::Arc::new(HashMap::from([(
            function.to_string(),
            FlowLimit { concurrency: Some(limit), throttle: None },
        )])),
    };
    store.claim(req).await.expect("claim")
}

/// A lane's runs start as they are stored up to its limit; the next is stored queued, with no
/// attempt, and so is a run sent while a due run waits in the lane: it does not overtake it.
/// Another lane of the same function starts on its own.
pub async fn a_lane_starts_its_runs_as_they_are_stored_up_to_its_limit(store: &dyn Store) {
    let t0 = now_micros();
    let first = enqueue(store, starting("lim", "a", 2, "w1", t0)).await;
    let second = enqueue(store, starting("lim", "a", 2, "w1", t0 + 1)).await;
    assert_eq!((first.status, first.attempt), (RunStatus::Running, 1), "room in the lane: {first:?}");
    assert_eq!(second.status, RunStatus::Running, "the limit is 2: {second:?}");
    let third = enqueue(store, starting("lim", "a", 2, "w1", t0 + 2)).await;
    assert_eq!((third.status, third.attempt), (RunStatus::Queued, 0), "the lane is full: {third:?}");
    let stored = store.get(&third.run_id, true).await.expect("get").expect("stored");
    assert_eq!((stored.status, stored.attempts.map(|a| a.len())), (RunStatus::Queued, Some(0)), "stored queued, no attempt");
    let other = enqueue(store, starting("lim", "b", 2, "w1", t0 + 3)).await;
    assert_eq!(other.status, RunStatus::Running, "another lane has room of its own: {other:?}");

    assert!(finish(store, &first.run_id, "w1", 1, Finish::Succeeded(json!(1)), t0 + SEC).await);
    let fourth = enqueue(store, starting("lim", "a", 2, "w1", t0 + SEC + 1)).await;
    assert_eq!(fourth.status, RunStatus::Queued, "the lane has room, but its queued run comes first: {fourth:?}");
    let claimed = claim_lane(store, t0 + 2 * SEC, "lim", 2).await;
    let ids: Vec<&str> = claimed.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, vec![third.run_id.as_str()], "the claim takes the lane's oldest run, up to its room");
    assert_eq!(get(store, &fourth.run_id).await.status, RunStatus::Queued, "the lane is full again");
}

/// What does not hold a run back: a queued run of its lane that is not due yet, a due run of
/// another lane or another function. What does: a lane without its limit (a throttle's lane is
/// the claim's to decide), and runs of its lane still running on any node.
pub async fn a_lane_start_looks_only_at_its_own_lane(store: &dyn Store) {
    let t0 = now_micros();
    let later = NewRun { not_before: t0 + 60 * SEC, flow_key: Some("a".into()), ..new_run("lim", t0) };
    assert_eq!(enqueue(store, later).await.status, RunStatus::Queued);
    let elsewhere = NewRun { flow_key: Some("b".into()), ..new_run("lim", t0) };
    assert_eq!(enqueue(store, elsewhere).await.status, RunStatus::Queued);
    let other_function = NewRun { flow_key: Some("a".into()), ..new_run("other", t0) };
    assert_eq!(enqueue(store, other_function).await.status, RunStatus::Queued);
    let run = enqueue(store, starting("lim", "a", 1, "w1", t0 + 1)).await;
    assert_eq!(run.status, RunStatus::Running, "nothing due waits in lane `a` of `lim`: {run:?}");
    let next = enqueue(store, starting("lim", "a", 1, "w9", t0 + 2)).await;
    assert_eq!(next.status, RunStatus::Queued, "the lane's one run runs on another node: {next:?}");

    let unlimited = NewRun { lane_limit: None, ..starting("thr", "a", 1, "w1", t0) };
    let unlimited = enqueue(store, unlimited).await;
    assert_eq!((unlimited.status, unlimited.attempt), (RunStatus::Queued, 0), "a lane without its limit: {unlimited:?}");
}

/// Runs of one full lane sent at the same moment, from two nodes: exactly the limit of them
/// start, whether the store writes them one by one or in one batch.
pub async fn runs_sent_together_start_no_more_than_the_limit(store: &dyn Store) {
    let t0 = now_micros();
    let send = |i: i64| store.enqueue(starting("lim", "a", 2, if i % 2 == 0 { "w1" } else { "w2" }, t0 + i));
    let (a, b, c, d, e, f) = tokio::join!(send(0), send(1), send(2), send(3), send(4), send(5));
    let answers = [a, b, c, d, e, f];
    let statuses: Vec<RunStatus> = answers
        .into_iter()
        .map(|a| match a.expect("stored") {
            crate::Enqueued::Created(run) => run.status,
            other => panic!("a new run is created, got {other:?}"),
        })
        .collect();
    let running = statuses.iter().filter(|s| **s == RunStatus::Running).count();
    assert_eq!(running, 2, "the limit is 2: {statuses:?}");
    let stored = store.queue_depth().await.expect("depth");
    assert_eq!(stored, vec![("lim".to_string(), 4)], "the others are queued");
}

/// A claim says whether a function with flow limits had due runs when it began (the dispatcher
/// then lets the end of such a run wake it): not for an empty queue, a run not due yet or due
/// runs of a function without limits; yes for a due run its full lane holds back, and still
/// for the claim that takes the last of them.
pub async fn a_claim_says_whether_lanes_held_due_runs(store: &dyn Store) {
    let t0 = now_micros();
    assert!(!claim_lane(store, t0, "lim", 1).await.lanes_due, "nothing queued");
    let later = NewRun { not_before: t0 + 60 * SEC, flow_key: Some("a".into()), ..new_run("lim", t0) };
    enqueue(store, later).await;
    enqueue(store, new_run("free", t0)).await;
    assert!(!claim_lane(store, t0 + 1, "lim", 1).await.lanes_due, "a run not due yet");
    let unlimited = super::claim(store, "w3", t0 + 1, &[("free", 1)]).await;
    assert!(unlimited.runs.len() == 1 && !unlimited.lanes_due, "a due run without limits: {unlimited:?}");
    let running = enqueue(store, starting("lim", "a", 1, "w1", t0 + 2)).await;
    assert_eq!(running.status, RunStatus::Running);
    let held = enqueue(store, starting("lim", "a", 1, "w1", t0 + 3)).await;
    assert_eq!(held.status, RunStatus::Queued);
    let other = enqueue(store, new_run("free", t0 + 4)).await;
    let req = ClaimRequest {
        owner: "w4".into(),
        now: t0 + SEC,
        lease_until: t0 + SEC + LEASE,
        wants: vec![("free".to_string(), 1), ("lim".to_string(), 1)],
        limit: 1,
        limits: std::sync::Arc::new(HashMap::from([("lim".to_string(), FlowLimit { concurrency: Some(1), throttle: None })])),
    };
    let no_room = store.claim(req).await.expect("claim");
    assert_eq!(no_room.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), vec![other.run_id.as_str()]);
    assert!(no_room.lanes_due, "no slot left for `lim`, but its lane holds a due run back: {no_room:?}");
    let full = claim_lane(store, t0 + SEC, "lim", 1).await;
    assert!(full.lanes_due && full.runs.is_empty(), "a due run its full lane holds back: {full:?}");
    assert!(finish(store, &running.run_id, "w1", 1, Finish::Succeeded(json!(1)), t0 + SEC).await);
    let last = claim_lane(store, t0 + 2 * SEC, "lim", 1).await;
    assert_eq!(last.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), vec![held.run_id.as_str()]);
    assert!(last.lanes_due, "it began with a due run");
    assert!(!claim_lane(store, t0 + 3 * SEC, "lim", 1).await.lanes_due, "none left due");
}
