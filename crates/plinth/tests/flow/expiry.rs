//! Timeouts and `cancel_on`, black-box on SQLite: a run held behind a concurrency limit is
//! cancelled when `timeouts.start` passes (PLINTH_046), a running one when `timeouts.finish`
//! passes (PLINTH_047); an event cancels the run its `cancel_on` rule matches (PLINTH_048, with
//! the event's id) and leaves the others running.

use crate::harness::{Served, client, send, wait_status};
use serde_json::json;

const COMPONENT: &str = "component: {name: shop, version: 0.1.0, owner: tests}\n\
functions:\n\
\x20 - name: slow\n\
\x20   handler: {rust: sleep}\n\
\x20   policy: {concurrency: 1, timeouts: {start: 1s, finish: 3s}}\n\
\x20 - name: ship\n\
\x20   handler: {rust: sleep}\n\
\x20   policy:\n\
\x20     cancel_on: [{event: shop/order.cancelled, if: 'event.data.order == run.input.order', timeout: 1h}]\n";

fn serve(dir: &std::path::Path) -> Served {
    let config = dir.join("component.yaml");
    std::fs::write(&config, COMPONENT).expect("component.yaml");
    Served::start(&config, &["--log-level", "warn,plinth::serve=info"], dir)
}

async fn submit(c: &reqwest::Client, s: &Served, body: serde_json::Value) -> String {
    let (code, answer) = send(c.post(s.url("/run")).json(&body)).await;
    assert_eq!(code, 202, "{answer}");
    answer["run_id"].as_str().expect("run_id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_cancel_a_run_that_waits_or_runs_too_long() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = serve(dir.path());
    let c = client();
    let long = submit(&c, &served, json!({"function": "slow", "input": {"ms": 60_000}})).await;
    wait_status(&c, &served, &long, "running").await;
    let held = submit(&c, &served, json!({"function": "slow", "input": {"ms": 10}})).await;
    let never = wait_status(&c, &served, &held, "cancelled").await;
    assert_eq!(never["error"]["code"], "PLINTH_046", "{never}");
    assert!(never["started_at"].is_null(), "it never started: {never}");
    let stopped = wait_status(&c, &served, &long, "cancelled").await;
    assert_eq!(stopped["error"]["code"], "PLINTH_047", "{stopped}");
    let (code, entry) = send(c.get(served.url("/errors/PLINTH_047"))).await;
    assert_eq!(code, 200, "{entry}");
    served.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_cancels_the_run_its_rule_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = serve(dir.path());
    let c = client();
    let target = submit(&c, &served, json!({"function": "ship", "input": {"order": "o-1", "ms": 60_000}})).await;
    let other = submit(&c, &served, json!({"function": "ship", "input": {"order": "o-2", "ms": 60_000}})).await;
    let queued =
        submit(&c, &served, json!({"function": "ship", "input": {"order": "o-1", "ms": 10}, "delay_seconds": 3600})).await;
    wait_status(&c, &served, &target, "running").await;
    // Why: the delay keeps this run queued until the event comes, whatever the machine's speed.
    let (_, waiting) = send(c.get(served.url(&format!("/runs/{queued}")))).await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    let event = json!({"name": "shop/order.cancelled", "data": {"order": "o-1"}});
    let (code, sent) = send(c.post(served.url("/events")).json(&event)).await;
    assert_eq!(code, 202, "{sent}");
    let event_id = sent["event_ids"][0].as_str().expect("event id").to_string();
    for id in [&target, &queued] {
        let run = wait_status(&c, &served, id, "cancelled").await;
        assert_eq!(run["error"]["code"], "PLINTH_048", "{run}");
        assert_eq!(run["error"]["event_id"], event_id.as_str(), "{run}");
    }
    let (_, still) = send(c.get(served.url(&format!("/runs/{other}")))).await;
    assert_ne!(still["status"], "cancelled", "another order's run goes on: {still}");
    let bad = json!({"name": "shop/order.cancelled", "data": {"nothing": true}});
    let (code, _) = send(c.post(served.url("/events")).json(&bad)).await;
    assert_eq!(code, 202, "an event whose `if` fails is stored");
    let (_, still) = send(c.get(served.url(&format!("/runs/{other}")))).await;
    assert_ne!(still["status"], "cancelled", "an `if` that fails cancels nothing: {still}");
    served.kill9();
}
