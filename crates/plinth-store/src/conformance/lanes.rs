//! What a claim writes to the lanes of a limited function, checked the same way on both
//! backends: each backend's own test reads its lanes table beside the store and hands the
//! reader to these cases.

use crate::{ClaimRequest, Enqueued, FinishRequest, FlowLimit, Store};
use plinth_core::flow::Gcra;
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, NewRun};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// One lane of `f` as read beside the store: its key, served turn, last touch, and the row's
/// version where the backend shows one (PostgreSQL's `xmin`, new after any update; empty on
/// SQLite, where a claim's only update changes the served turn).
pub(crate) type LaneRow = (String, i64, i64, String);

fn claim(rules: FlowLimit, now: i64) -> ClaimRequest {
    ClaimRequest {
        owner: "node".into(),
        now,
        lease_until: now + 30_000_000,
        wants: vec![("f".to_string(), 10)],
        limit: 10,
        limits: Arc::new(HashMap::from([("f".to_string(), rules)])),
    }
}

async fn enqueue(store: &dyn Store, keys: &[&str]) {
    for key in keys {
        let run = NewRun { flow_key: Some((*key).to_string()), ..super::new_run("f", now_micros()) };
        assert!(matches!(store.enqueue(run).await, Ok(Enqueued::Created(_))));
    }
}

/// Two lanes with `concurrency: 1`: the first claim takes a run of each and moves both; a claim
/// with both full takes nothing and writes no lane; after one run ends, the next claim takes
/// that lane's run and moves that lane; full again, nothing moves.
pub(crate) async fn a_claim_that_finds_every_lane_full_moves_no_lane(store: &dyn Store, lanes: impl AsyncFn() -> Vec<LaneRow>) {
    enqueue(store, &["a", "a", "b", "b"]).await;
    let rules = FlowLimit { concurrency: Some(1), throttle: None };
    let now = now_micros();
    let first = store.claim(claim(rules, now)).await.expect("claim");
    assert_eq!(first.runs.len(), 2, "one run of each lane");
    let served = lanes().await;
    assert_eq!(served.len(), 2);
    assert!(served.iter().all(|(_, s, t, _)| *s >= now && *t == now), "both lanes served: {served:?}");
    let again = store.claim(claim(rules, now + 1_000)).await.expect("claim");
    assert!(again.runs.is_empty(), "{:?}", again.runs);
    assert_eq!(lanes().await, served, "both lanes full: no lane written");
    let ended = &first.runs[0];
    let end = FinishRequest {
        run_id: ended.run_id.clone(),
        owner: "node".into(),
        attempt: ended.attempt,
        finish: Finish::Succeeded(json!(null)),
        now: now + 2_000,
        duration: std::time::Duration::from_millis(1),
    };
    assert_eq!(store.finish(end).await.ok(), Some(true));
    let third = store.claim(claim(rules, now + 3_000)).await.expect("claim");
    assert_eq!(third.runs.iter().map(|r| r.flow_key.clone()).collect::<Vec<_>>(), vec![ended.flow_key.clone()]);
    let moved = lanes().await;
    let key = ended.flow_key.clone().unwrap_or_default();
    assert!(moved.iter().any(|(k, s, t, _)| *k == key && *s >= now + 3_000 && *t == now + 3_000), "{moved:?}");
    assert!(store.claim(claim(rules, now + 4_000)).await.expect("claim").runs.is_empty());
    assert_eq!(lanes().await, moved, "full again: nothing moved");
}

/// A throttled lane that admits nothing now takes no run and is not written, yet the claim
/// still says when it may start again.
pub(crate) async fn a_throttled_lane_that_admits_nothing_still_says_when(
    store: &dyn Store,
    lanes: impl AsyncFn() -> Vec<LaneRow>,
) {
    enqueue(store, &["k", "k", "k"]).await;
    let rules = FlowLimit { concurrency: None, throttle: Some(Gcra { interval: 60_000_000, burst: 1, limit: 1 }) };
    let now = now_micros();
    let first = store.claim(claim(rules, now)).await.expect("claim");
    assert_eq!(first.runs.len(), 1, "the throttle admits one run");
    let after_first = lanes().await;
    let held = store.claim(claim(rules, now + 1_000)).await.expect("claim");
    assert!(held.runs.is_empty(), "{:?}", held.runs);
    assert!(held.throttled_until.is_some_and(|t| t > now + 1_000), "{:?}", held.throttled_until);
    assert_eq!(lanes().await, after_first, "the held lane is not written");
}
