//! Debounce, black-box on SQLite: 100 events for one user within 2 s, with
//! `debounce: {period: 1s, key: event.data.user}`, make exactly one run, with the last event's
//! input; another user's event makes a run of its own.

use crate::harness::{Served, client, send, wait_status};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_events_of_one_key_make_one_run_with_the_last_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("component.yaml");
    std::fs::write(
        &config,
        "component: {name: typing, version: 0.1.0, owner: tests}\n\
         functions:\n\
         \x20 - name: save_draft\n\
         \x20   handler: {rust: echo}\n\
         \x20   policy: {debounce: {period: 1s, max_wait: 30s, key: event.data.user}}\n\
         \x20   triggers: [{event: app/user.typed}]\n",
    )
    .expect("component.yaml");
    let served = Served::start(&config, &["--log-level", "warn,plinth::serve=info"], dir.path());
    let c = client();
    let mut fed = Vec::new();
    for seq in 0..100 {
        let event = json!({"name": "app/user.typed", "data": {"user": "u-1", "seq": seq}});
        let (code, body) = send(c.post(served.url("/events")).json(&event)).await;
        assert_eq!(code, 202, "{body}");
        fed.push(body["run_ids"][0][0].as_str().expect("the run the event fed").to_string());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, other) = send(c.post(served.url("/events")).json(&json!({"name": "app/user.typed", "data": {"user": "u-2"}}))).await;
    let other = other["run_ids"][0][0].as_str().expect("u-2's run").to_string();
    assert!(fed.iter().all(|id| *id == fed[0]), "every event of u-1 fed one run");
    assert_ne!(other, fed[0]);
    let run = wait_status(&c, &served, &fed[0], "succeeded").await;
    assert_eq!(run["output"]["data"]["seq"], 99, "the run had the last event's input: {run}");
    let (_, page) = send(c.get(served.url("/runs?function=save_draft&limit=500"))).await;
    let runs = page["runs"].as_array().map_or(0, Vec::len);
    assert_eq!(runs, 2, "one run for u-1, one for u-2: {page}");
    served.kill9();
}
