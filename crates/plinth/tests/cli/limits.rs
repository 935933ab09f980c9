//! Limits on the real server: a rate limit per peer address, and a function's queue bound.

use crate::harness::{Served, client, component_dir, send};
use serde_json::json;

const COMPONENT: &str = "component: {name: limits, version: '1'}\nfunctions:\n  - name: later\n    handler: {command: {argv: [cat]}}\n    policy: {max_queued: 1}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_rate_gets_429_and_probes_still_pass() {
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://db", "--rate-limit", "1", "--rate-burst", "2"], dir.path());
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(send(c.get(s.url("/functions"))).await.0);
    }
    assert_eq!(statuses, [200, 200, 429]);
    let (code, body) = send(c.get(s.url("/functions"))).await;
    assert_eq!((code, body["code"].as_str()), (429, Some("PLINTH_041")), "{body}");
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(send(c.get(s.url(path))).await.0, 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_and_a_delayed_run_counts_as_queued() {
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://db"], dir.path());
    let c = client();
    let body = json!({"function": "later", "input": {}, "delay_seconds": 60});
    assert_eq!(send(c.post(s.url("/run")).json(&body)).await.0, 202);
    let (code, problem) = send(c.post(s.url("/run")).json(&body)).await;
    assert_eq!((code, problem["code"].as_str()), (429, Some("PLINTH_040")), "{problem}");
}
