//! What a claim writes to the lanes of a function with a `concurrency` limit.

use super::{fresh, new_run};
use crate::{Enqueued, Store};
use plinth_core::NewRun;
use plinth_core::timefmt::now_micros;
use rusqlite::Connection;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// The served turn and last touch of each lane of `function`, read beside the store.
fn lanes_of(path: &Path, function: &str) -> Vec<(String, i64, i64)> {
    let conn = Connection::open(path).expect("open beside the store");
    conn.prepare("SELECT key, served, touched_at FROM flow_keys WHERE function = ?1 ORDER BY key")
        .expect("prepare")
        .query_map([function], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn a_claim_that_finds_every_lane_full_writes_nothing_and_one_that_takes_a_run_moves_its_lane() {
    let (dir, store) = fresh();
    let path = dir.path().join("plinth.db");
    for key in ["a", "a", "b", "b"] {
        let run = NewRun { flow_key: Some(key.to_string()), ..new_run("f", json!({})) };
        assert!(matches!(store.enqueue(run).await, Ok(Enqueued::Created(_))));
    }
    let limits =
        Arc::new(std::collections::HashMap::from([("f".to_string(), crate::FlowLimit { concurrency: Some(1), throttle: None })]));
    let claim = |now: i64| crate::ClaimRequest {
        owner: "node".into(),
        now,
        lease_until: now + 30_000_000,
        wants: vec![("f".to_string(), 10)],
        limit: 10,
        limits: limits.clone(),
    };
    let now = now_micros();
    let first = store.claim(claim(now)).await.expect("claim");
    assert_eq!(first.runs.len(), 2, "one run of each lane");
    let served = lanes_of(&path, "f");
    assert_eq!(served.len(), 2);
    assert!(served.iter().all(|(_, s, t)| *s >= now && *t == now), "both lanes served: {served:?}");
    // Both lanes full: the claim takes nothing and writes nothing.
    let again = store.claim(claim(now + 1_000)).await.expect("claim");
    assert!(again.runs.is_empty(), "{:?}", again.runs);
    assert_eq!(lanes_of(&path, "f"), served, "no lane moved");
    // A lane with room again: its run is taken and the lane moves.
    let ended = &first.runs[0];
    let end = crate::FinishRequest {
        run_id: ended.run_id.clone(),
        owner: "node".into(),
        attempt: ended.attempt,
        finish: plinth_core::Finish::Succeeded(json!(null)),
        now: now + 2_000,
        duration: std::time::Duration::from_millis(1),
    };
    assert_eq!(store.finish(end).await.ok(), Some(true));
    let third = store.claim(claim(now + 3_000)).await.expect("claim");
    assert_eq!(third.runs.iter().map(|r| r.flow_key.clone()).collect::<Vec<_>>(), vec![ended.flow_key.clone()]);
    let moved = lanes_of(&path, "f");
    let key = ended.flow_key.clone().unwrap_or_default();
    assert!(moved.iter().any(|(k, s, t)| *k == key && *s >= now + 3_000 && *t == now + 3_000), "{moved:?}");
    // Full again: nothing taken, nothing moved.
    assert!(store.claim(claim(now + 4_000)).await.expect("claim").runs.is_empty());
    assert_eq!(lanes_of(&path, "f"), moved);
}
