//! The overview's upkeep: the node says it is alive and leads; ended runs are rolled up.

use crate::harness::{Harness, WAIT, config, rust_fn};
use plinth_core::RunStatus;
use plinth_core::timefmt::now_micros;
use plinth_engine::{HandlerContext, HandlerError};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_beats_and_ended_runs_are_rolled_up() {
    let functions = format!("{}{}", rust_fn("ok", "echo", ""), rust_fn("bad", "boom", "{retries: {max_attempts: 1}}"));
    let h = Harness::started(
        &functions,
        |hs| {
            hs.register("boom", |_: HandlerContext, _: Value| async { Err(HandlerError::fatal("no")) });
        },
        config(),
    );
    let since = now_micros() - 60_000_000;
    let ok = h.enqueue("ok", json!({"a": 1})).await;
    let bad = h.enqueue("bad", json!({})).await;
    assert_eq!(h.wait_terminal(&ok).await.status, RunStatus::Succeeded);
    assert_eq!(h.wait_terminal(&bad).await.status, RunStatus::Failed);
    let deadline = Instant::now() + WAIT;
    let stats = loop {
        let stats = h.store.run_stats(since).await.expect("stats");
        if stats.minutes.len() >= 2 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let count = |f: &str, s: &str| stats.minutes.iter().filter(|m| m.function == f && m.status == s).map(|m| m.runs).sum::<i64>();
    assert_eq!((count("ok", "succeeded"), count("bad", "failed")), (1, 1), "{stats:?}");
    let failed = stats.minutes.iter().find(|m| m.status == "failed").expect("the failure");
    assert_eq!(failed.code, h.get(&bad).await.error.expect("its error").code.as_str(), "the failure keeps its code");
    let nodes = h.store.nodes().await.expect("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert!(nodes[0].leads && nodes[0].seen_at >= since && !nodes[0].host.is_empty(), "{nodes:?}");
    assert_eq!(nodes[0].version, env!("CARGO_PKG_VERSION"));
}
