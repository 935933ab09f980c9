//! What a claim writes to the lanes of a function with a `concurrency` limit on PostgreSQL.

use super::{database_url, fresh, new_run, side_pool};
use crate::{Enqueued, Store};
use plinth_core::NewRun;
use plinth_core::timefmt::now_micros;
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;

/// Each lane of `function`: its served turn, last touch and the row version's `xmin` (a new one
/// after any update), read beside the store.
async fn lanes_of(side: &PgPool, schema: &str, function: &str) -> Vec<(String, i64, i64, String)> {
    let sql = format!("SELECT key, served, touched_at, xmin::text FROM \"{schema}\".flow_keys WHERE function = $1 ORDER BY key");
    sqlx::query_as(&sql).bind(function).fetch_all(side).await.expect("read the lanes")
}

fn claim(limits: &Arc<std::collections::HashMap<String, crate::FlowLimit>>, now: i64) -> crate::ClaimRequest {
    crate::ClaimRequest {
        owner: "node".into(),
        now,
        lease_until: now + 30_000_000,
        wants: vec![("f".to_string(), 10)],
        limit: 10,
        limits: limits.clone(),
    }
}

#[tokio::test]
async fn a_claim_that_finds_every_lane_full_updates_no_lane_and_one_that_takes_a_run_moves_its_lane() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    for key in ["a", "a", "b", "b"] {
        let run = NewRun { flow_key: Some(key.to_string()), ..new_run("f", json!({})) };
        assert!(matches!(store.enqueue(run).await, Ok(Enqueued::Created(_))));
    }
    let limits =
        Arc::new(std::collections::HashMap::from([("f".to_string(), crate::FlowLimit { concurrency: Some(1), throttle: None })]));
    let now = now_micros();
    let first = store.claim(claim(&limits, now)).await.expect("claim");
    assert_eq!(first.runs.len(), 2, "one run of each lane");
    let served = lanes_of(&side, &scratch.schema, "f").await;
    assert_eq!(served.len(), 2);
    assert!(served.iter().all(|(_, s, t, _)| *s >= now && *t == now), "both lanes served: {served:?}");
    // Both lanes full: the claim takes nothing and updates no lane (same row versions).
    let again = store.claim(claim(&limits, now + 1_000)).await.expect("claim");
    assert!(again.runs.is_empty(), "{:?}", again.runs);
    assert_eq!(lanes_of(&side, &scratch.schema, "f").await, served, "no lane updated");
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
    let third = store.claim(claim(&limits, now + 3_000)).await.expect("claim");
    assert_eq!(third.runs.iter().map(|r| r.flow_key.clone()).collect::<Vec<_>>(), vec![ended.flow_key.clone()]);
    let moved = lanes_of(&side, &scratch.schema, "f").await;
    let key = ended.flow_key.clone().unwrap_or_default();
    assert!(moved.iter().any(|(k, s, t, _)| *k == key && *s >= now + 3_000 && *t == now + 3_000), "{moved:?}");
    // Full again: nothing taken, nothing updated.
    assert!(store.claim(claim(&limits, now + 4_000)).await.expect("claim").runs.is_empty());
    assert_eq!(lanes_of(&side, &scratch.schema, "f").await, moved);
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

/// A throttled lane that admits nothing now takes no run and is not updated, yet the claim
/// still says when it may start again.
#[tokio::test]
async fn a_throttled_lane_that_admits_nothing_still_says_when_it_may_start() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    for _ in 0..3 {
        let run = NewRun { flow_key: Some("k".to_string()), ..new_run("f", json!({})) };
        assert!(matches!(store.enqueue(run).await, Ok(Enqueued::Created(_))));
    }
    let throttle = plinth_core::flow::Gcra { interval: 60_000_000, burst: 1, limit: 1 };
    let limits = Arc::new(std::collections::HashMap::from([(
        "f".to_string(),
        crate::FlowLimit { concurrency: None, throttle: Some(throttle) },
    )]));
    let now = now_micros();
    let first = store.claim(claim(&limits, now)).await.expect("claim");
    assert_eq!(first.runs.len(), 1, "the throttle admits one run");
    let after_first = lanes_of(&side, &scratch.schema, "f").await;
    let held = store.claim(claim(&limits, now + 1_000)).await.expect("claim");
    assert!(held.runs.is_empty(), "{:?}", held.runs);
    assert!(held.throttled_until.is_some_and(|t| t > now + 1_000), "{:?}", held.throttled_until);
    assert_eq!(lanes_of(&side, &scratch.schema, "f").await, after_first, "the held lane is not updated");
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}
