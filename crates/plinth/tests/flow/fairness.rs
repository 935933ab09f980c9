//! Round-robin between keys, black-box on SQLite: one tenant has 5,000 runs queued (each takes
//! 200 ms, four workers), another tenant sends one run. Served first-in first-out it would wait
//! about four minutes; served round-robin it starts at the next free worker.
//!
//! Why 200 ms: the four workers drain the backlog while it is being sent. At 50 ms a run they ended
//! about a thousand runs during the 19 s a debug build on a slow CI machine took to accept 5,000,
//! leaving fewer queued than the test needs; at 200 ms they end about 20 a second.

use crate::harness::{Served, client, send, submit, wait_status};
use plinth_core::timefmt::parse_rfc3339;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const BACKLOG: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_run_of_another_key_overtakes_a_backlog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("component.yaml");
    std::fs::write(
        &config,
        "component: {name: fair, version: 0.1.0, owner: tests}\n\
         functions:\n\
         \x20 - name: work\n\
         \x20   handler: {command: {argv: [sh, -c, 'sleep 0.2; cat']}}\n\
         \x20   policy: {concurrency: {limit: 100, key: input.tenant}}\n",
    )
    .expect("component.yaml");
    let served = Served::start(&config, &["--workers", "4", "--log-level", "warn,plinth::serve=info"], dir.path());
    let c = client();
    let url = served.url("/run");
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, url, next) = (c.clone(), url.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < BACKLOG {
                let (code, body) = send(c.post(&url).json(&json!({"function": "work", "input": {"tenant": "big"}}))).await;
                assert_eq!(code, 202, "{body}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("a submitter");
    }
    let (_, page) = send(c.get(served.url("/functions/work/keys"))).await;
    let big_queued = page["keys"][0]["queued"].as_u64().unwrap_or(0);
    assert!(big_queued > 4_000, "the backlog is queued behind four workers: {page}");

    let id = submit(&c, &served, "work", json!({"tenant": "small"})).await;
    let run = wait_status(&c, &served, &id, "succeeded").await;
    let created = parse_rfc3339(run["created_at"].as_str().expect("created_at")).expect("a time");
    let started = parse_rfc3339(run["started_at"].as_str().expect("started_at")).expect("a time");
    #[allow(clippy::cast_precision_loss)]
    let waited_ms = (started - created) as f64 / 1000.0;
    eprintln!("fairness: with {big_queued} runs of one key queued, another key's run started after {waited_ms:.1} ms");
    // Why: first-in first-out, the run would wait for the backlog, about 250 s (5,000 × 200 ms over
    // 4 workers); the bound is far below that and far above a noisy machine's pauses.
    assert!(waited_ms < 2_000.0, "the single run waited {waited_ms:.1} ms behind the backlog");
    let (_, page) = send(c.get(served.url("/functions/work/keys"))).await;
    let still = page["keys"][0]["queued"].as_u64().unwrap_or(0);
    assert!(still > 3_000, "the backlog was still there when the run went through: {page}");
    served.kill9();
}
