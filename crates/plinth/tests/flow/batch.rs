//! Batches, black-box on SQLite: 12 events of one customer with `batch: {max_size: 5, timeout:
//! 1s, key: event.data.customer}` make three runs (5, 5 and 2 events, in order); the last one
//! says it waits for its batch to fill, then starts after its timeout; another customer's event
//! has a batch of its own.

use crate::harness::{Served, client, send, wait_status};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_key_gather_in_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("component.yaml");
    std::fs::write(
        &config,
        "component: {name: shop, version: 0.1.0, owner: tests}\n\
         functions:\n\
         \x20 - name: digest\n\
         \x20   handler: {rust: echo}\n\
         \x20   policy: {batch: {max_size: 5, timeout: 1s, key: event.data.customer}}\n\
         \x20   triggers: [{event: shop/order.paid}]\n",
    )
    .expect("component.yaml");
    let served = Served::start(&config, &["--log-level", "warn,plinth::serve=info"], dir.path());
    let c = client();
    let events: Vec<_> = (0..12).map(|seq| json!({"name": "shop/order.paid", "data": {"customer": "c-1", "seq": seq}})).collect();
    let (code, sent) = send(c.post(served.url("/events")).json(&events)).await;
    assert_eq!(code, 202, "{sent}");
    let mut runs: Vec<String> = Vec::new();
    for ids in sent["run_ids"].as_array().expect("run_ids") {
        let id = ids[0].as_str().expect("each event joined a batch").to_string();
        if !runs.contains(&id) {
            runs.push(id);
        }
    }
    assert_eq!(runs.len(), 3, "12 events, batches of 5: {sent}");
    let (_, other) =
        send(c.post(served.url("/events")).json(&json!({"name": "shop/order.paid", "data": {"customer": "c-2"}}))).await;
    let other = other["run_ids"][0][0].as_str().expect("c-2's batch").to_string();
    assert!(!runs.contains(&other), "another key, another batch");
    let (_, waiting) = send(c.get(served.url(&format!("/runs/{}", runs[2])))).await;
    if waiting["status"] == "queued" {
        assert_eq!(waiting["held_by"]["rule"], "batch", "{waiting}");
    }
    let mut seen = Vec::new();
    for (id, size) in runs.iter().zip([5, 5, 2]) {
        let run = wait_status(&c, &served, id, "succeeded").await;
        let batch = run["output"]["events"].as_array().expect("input.events").clone();
        assert_eq!(batch.len(), size, "{run}");
        seen.extend(batch.iter().map(|e| e["data"]["seq"].as_i64().expect("seq")));
    }
    assert_eq!(seen, (0..12).collect::<Vec<_>>(), "every event once, in order");
    wait_status(&c, &served, &other, "succeeded").await;
    served.kill9();
}
