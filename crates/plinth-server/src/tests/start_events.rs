//! `POST /events` starting the events' runs on this node as they are stored (decision 0035),
//! through a starter that records what it was asked.

use super::start_now::{Recorder, with_starter_on};
use super::*;
use plinth_core::RunStatus;
use std::sync::atomic::Ordering;

const SHOP: &str = r#"
component: {name: shop, version: '1'}
functions:
  - name: receipt
    handler: {rust: noop}
    triggers: [{event: shop/order.paid}]
  - name: laned
    handler: {rust: noop}
    triggers: [{event: shop/order.paid}]
    policy: {concurrency: 2}
  - name: ship
    handler: {rust: noop}
    triggers: [{event: shop/order.placed}]
    policy:
      cancel_on: [{event: shop/order.cancelled}]
"#;

fn shop(grant: bool) -> (Harness, Arc<Recorder>) {
    with_starter_on(harness_with(SHOP), grant)
}

/// The ids of the runs `answer` says each event started, flattened.
fn run_ids(answer: &Value) -> Vec<String> {
    let lists = answer["run_ids"].as_array().expect("run_ids");
    lists.iter().flat_map(|l| l.as_array().expect("list").iter().map(|id| id.as_str().expect("id").to_string())).collect()
}

async fn shown(h: &Harness, id: &str) -> (String, String, u64) {
    let r = h.get(&format!("/runs/{id}")).await;
    let text = |k: &str| r.json[k].as_str().unwrap_or_default().to_string();
    (text("function"), text("status"), r.json["attempt"].as_u64().expect("attempt"))
}

#[tokio::test]
async fn an_events_run_without_a_lane_is_stored_started_and_a_laned_one_is_queued() {
    let (h, rec) = shop(true);
    let r = h.post_json("/events", r#"{"name":"shop/order.paid","data":{"order":1},"id":"o-1"}"#).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let mut runs = Vec::new();
    for id in run_ids(&r.json) {
        runs.push((shown(&h, &id).await, id));
    }
    runs.sort();
    assert_eq!(
        runs.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        vec![("laned".into(), "queued".into(), 0), ("receipt".into(), "running".into(), 1)],
        "the laned run is the claim's to decide"
    );
    let started = rec.started.lock().expect("lock").clone();
    assert_eq!(
        started.iter().map(|s| (s.run_id.as_str(), s.function.as_str(), s.status, s.attempt)).collect::<Vec<_>>(),
        vec![(runs[1].1.as_str(), "receipt", RunStatus::Running, 1)],
        "the receipt's run was handed to the engine as stored"
    );
    assert_eq!((rec.asked.load(Ordering::SeqCst), rec.released.load(Ordering::SeqCst)), (1, 0));
}

#[tokio::test]
async fn a_duplicate_event_gives_its_slot_back_and_starts_nothing() {
    let (h, rec) = shop(true);
    let body = r#"{"name":"shop/order.paid","data":{"order":1},"id":"o-1"}"#;
    let first = h.post_json("/events", body).await;
    let again = h.post_json("/events", body).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.json);
    assert_eq!(run_ids(&again.json), run_ids(&first.json), "the repeat answers the first event's runs");
    assert_eq!(rec.asked.load(Ordering::SeqCst), 2, "each call asked for a slot before it knew");
    assert_eq!(rec.released.load(Ordering::SeqCst), 1, "the repeat gave its slot back");
    assert_eq!(rec.started.lock().expect("lock").len(), 1, "only the first event's run started");
}

#[tokio::test]
async fn a_node_without_a_free_slot_queues_the_events_runs_and_stops_asking() {
    let (h, rec) = shop(false);
    let r = h
        .post_json("/events", r#"[{"name":"shop/order.paid","data":{"order":1}},{"name":"shop/order.paid","data":{"order":2}}]"#)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(rec.asked.load(Ordering::SeqCst), 1, "the first refusal sends every later run of the call to the queue");
    assert!(rec.started.lock().expect("lock").is_empty());
    let ids = run_ids(&r.json);
    assert_eq!(ids.len(), 4);
    for id in ids {
        let (_, status, attempt) = shown(&h, &id).await;
        assert_eq!((status.as_str(), attempt), ("queued", 0));
    }
}

#[tokio::test]
async fn a_call_that_cancels_runs_queues_all_its_runs() {
    let (h, rec) = shop(true);
    let placed = h.post_json("/events", r#"{"name":"shop/order.placed","data":{"order":1}}"#).await;
    let ship = run_ids(&placed.json);
    assert_eq!(rec.started.lock().expect("lock").len(), 1, "a lone `order.placed` starts its run");
    let r = h
        .post_json(
            "/events",
            r#"[{"name":"shop/order.placed","data":{"order":2}},{"name":"shop/order.cancelled","data":{"order":2}}]"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(rec.asked.load(Ordering::SeqCst), 1, "no slot asked for in a call with a `cancel_on` rule");
    let second = run_ids(&r.json);
    assert_eq!(second.len(), 1);
    let (_, status, attempt) = shown(&h, &second[0]).await;
    assert_eq!((status.as_str(), attempt), ("cancelled", 0), "the later event cancelled it in the same write");
    // The run started as stored by the first call is running here: its cancel is requested, for
    // the engine running it to stop it, as for any running run.
    let first = h.get(&format!("/runs/{}", ship[0])).await;
    assert_eq!((first.json["status"].as_str(), first.json["cancel_requested"].as_bool()), (Some("running"), Some(true)));
}
