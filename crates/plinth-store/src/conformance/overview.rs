//! The overview's statistics: the roll-up of ended runs and the nodes' beats.

use super::upkeep::cancel_at;
use super::{SEC, claim_one, enqueue_at, finish};
use crate::{NodeBeat, RunStats, Store, quantile};
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, Finish, RunError};
use serde_json::json;

/// Runs of `function` that ended with `status`, over the minutes in `stats`.
fn ended(stats: &RunStats, function: &str, status: &str) -> i64 {
    stats.minutes.iter().filter(|m| m.function == function && m.status == status).map(|m| m.runs).sum()
}

/// The start of the minute `t` falls in.
fn minute_of(t: i64) -> i64 {
    t - t.rem_euclid(60 * SEC)
}

/// The roll-up adds each ended run once, with its code and duration; running and waiting runs
/// are counted live.
pub async fn roll_up_counts_ended_runs_once(store: &dyn Store) {
    let t0 = minute_of(now_micros()) + SEC;
    let ok = enqueue_at(store, "f", t0).await.run_id;
    claim_one(store, "w1", "f", t0).await;
    assert!(finish(store, &ok, "w1", 1, Finish::Succeeded(json!(1)), t0 + 2 * SEC).await);
    let bad = enqueue_at(store, "f", t0).await.run_id;
    claim_one(store, "w1", "f", t0).await;
    let err = RunError::new(Code::HandlerFailed, "boom");
    assert!(finish(store, &bad, "w1", 1, Finish::Failed(err), t0 + 3 * SEC).await);
    let dropped = enqueue_at(store, "f", t0).await.run_id;
    cancel_at(store, &dropped, t0 + 4 * SEC).await;
    enqueue_at(store, "g", t0).await;
    claim_one(store, "w1", "g", t0).await;

    let rows = store.roll_up(t0 + 10 * SEC).await.expect("roll up");
    assert!(rows >= 3, "three ended runs make at least three minute rows, got {rows}");
    let stats = store.run_stats(t0 - 60 * SEC).await.expect("stats");
    assert_eq!(stats.rolled_until, Some(t0 + 10 * SEC));
    assert_eq!((ended(&stats, "f", "succeeded"), ended(&stats, "f", "failed"), ended(&stats, "f", "cancelled")), (1, 1, 1));
    assert_eq!(ended(&stats, "g", "succeeded"), 0, "a running run has not ended");
    assert!(stats.open.contains(&("g".to_string(), "running".to_string(), 1)), "{:?}", stats.open);
    let failed = stats.minutes.iter().find(|m| m.status == "failed").expect("the failure");
    assert_eq!((failed.code.as_str(), failed.minute), (Code::HandlerFailed.as_str(), minute_of(t0 + 3 * SEC)));
    let cancelled = stats.minutes.iter().find(|m| m.status == "cancelled").expect("the cancel");
    assert_eq!(cancelled.bucket, -1, "a run that never started has no duration");
    let ok_buckets: Vec<(i32, i64)> =
        stats.minutes.iter().filter(|m| m.status == "succeeded").map(|m| (m.bucket, m.runs)).collect();
    let p50 = quantile(&ok_buckets, 0.5).expect("a duration");
    assert!((p50 - 2e6).abs() < 2e5, "the success took 2 s, the buckets say {p50} µs");

    assert_eq!(store.roll_up(t0 + 10 * SEC).await.expect("again"), 0, "a second pass to the same time adds nothing");
    assert_eq!(store.roll_up(t0).await.expect("back"), 0, "a pass to an earlier time adds nothing");
    let again = store.run_stats(t0 - 60 * SEC).await.expect("stats");
    assert_eq!(ended(&again, "f", "succeeded"), 1, "no run is counted twice");

    let late = enqueue_at(store, "f", t0).await.run_id;
    claim_one(store, "w1", "f", t0).await;
    assert!(finish(store, &late, "w1", 1, Finish::Succeeded(json!(2)), t0 + 12 * SEC).await);
    store.roll_up(t0 + 20 * SEC).await.expect("roll up");
    let after = store.run_stats(t0 - 60 * SEC).await.expect("stats");
    assert_eq!(ended(&after, "f", "succeeded"), 2, "the next pass adds what ended since");
    assert!(store.run_stats(t0 + 3600 * SEC).await.expect("stats").minutes.is_empty(), "no minute after the last");
}

/// The first roll-up looks back an hour, not further; minutes older than a day are forgotten.
pub async fn roll_up_looks_back_an_hour_and_forgets_old_minutes(store: &dyn Store) {
    let t0 = minute_of(now_micros()) + SEC;
    assert_eq!(store.run_stats(0).await.expect("stats"), RunStats::default(), "a new store has no statistics");
    let old = enqueue_at(store, "f", t0).await.run_id;
    cancel_at(store, &old, t0 + SEC).await;
    let hour = 3600 * SEC;
    store.roll_up(t0 + 2 * hour).await.expect("roll up");
    assert_eq!(ended(&store.run_stats(0).await.expect("stats"), "f", "cancelled"), 0, "a run two hours old is not added");

    let recent = enqueue_at(store, "f", t0 + 2 * hour).await.run_id;
    cancel_at(store, &recent, t0 + 2 * hour + SEC).await;
    store.roll_up(t0 + 2 * hour + 10 * SEC).await.expect("roll up");
    assert_eq!(ended(&store.run_stats(0).await.expect("stats"), "f", "cancelled"), 1);
    store.roll_up(t0 + 27 * hour).await.expect("a day later");
    let stats = store.run_stats(0).await.expect("stats");
    assert!(stats.minutes.is_empty(), "minutes older than a day are forgotten: {:?}", stats.minutes);
    assert_eq!(stats.rolled_until, Some(t0 + 27 * hour));
}

fn node(id: &str, started_at: i64, seen_at: i64, leads: bool) -> NodeBeat {
    NodeBeat { id: id.into(), host: "h".into(), version: "0.1.0".into(), started_at, seen_at, leads }
}

/// Each node's beat replaces its last one; nodes silent for an hour are forgotten.
pub async fn nodes_beat_and_are_forgotten(store: &dyn Store) {
    let t0 = now_micros();
    assert!(store.nodes().await.expect("nodes").is_empty(), "no node has beaten yet");
    store.beat(node("b", t0 + SEC, t0 + SEC, false)).await.expect("beat");
    store.beat(node("a", t0, t0 + SEC, true)).await.expect("beat");
    store.beat(node("a", t0, t0 + 5 * SEC, false)).await.expect("beat again");
    let nodes = store.nodes().await.expect("nodes");
    assert_eq!(nodes, vec![node("a", t0, t0 + 5 * SEC, false), node("b", t0 + SEC, t0 + SEC, false)], "oldest first, once each");
    store.beat(node("b", t0 + SEC, t0 + 3606 * SEC, true)).await.expect("an hour later");
    let nodes = store.nodes().await.expect("nodes");
    assert_eq!(nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["b"], "a node silent for an hour is forgotten");
    assert!(nodes[0].leads);
}
