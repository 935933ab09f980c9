//! When runs start: per-function concurrency, the node's worker slots, delayed runs.

use crate::harness::{Harness, config, rust_fn};
use plinth_core::RunStatus;
use plinth_core::timefmt::now_micros;
use plinth_engine::{EngineConfig, HandlerContext, Handlers};
use plinth_store::CancelOutcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Counts attempts inside a handler, and the most at once.
#[derive(Default)]
struct Overlap {
    now: AtomicU32,
    max: AtomicU32,
}

impl Overlap {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn max(&self) -> u32 {
        self.max.load(Ordering::SeqCst)
    }
}

/// Registers `name` as a handler that takes 100 ms inside both gauges.
fn register_tracked(hs: &mut Handlers, name: &str, mine: &Arc<Overlap>, all: &Arc<Overlap>) {
    let (mine, all) = (mine.clone(), all.clone());
    hs.register(name, move |_ctx: HandlerContext, input: Value| {
        let (mine, all) = (mine.clone(), all.clone());
        async move {
            mine.enter();
            all.enter();
            tokio::time::sleep(Duration::from_millis(100)).await;
            all.leave();
            mine.leave();
            Ok(input)
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_concurrency_and_node_workers_are_respected() {
    let functions = [rust_fn("solo", "solo", "{concurrency: 1}"), rust_fn("wide", "wide", "")].concat();
    let (solo, wide, all) = (Arc::new(Overlap::default()), Arc::new(Overlap::default()), Arc::new(Overlap::default()));
    let (s, w, a) = (solo.clone(), wide.clone(), all.clone());
    let mut h = Harness::new(&functions);
    // Enqueue everything before the engine starts, so its first claim sees all of it.
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(h.enqueue("solo", json!({"i": i})).await);
    }
    for i in 0..6 {
        ids.push(h.enqueue("wide", json!({"i": i})).await);
    }
    h.start(
        move |hs| {
            register_tracked(hs, "solo", &s, &a);
            register_tracked(hs, "wide", &w, &a);
        },
        EngineConfig { workers: 2, ..config() },
    );
    for id in &ids {
        let run = h.wait_terminal(id).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    }
    assert_eq!(solo.max(), 1, "two `solo` runs (concurrency 1) ran at once");
    assert!(all.max() <= 2, "{} attempts ran at once on 2 workers", all.max());
    assert_eq!(all.max(), 2, "the two worker slots were never both used");
    assert!(wide.max() >= 1);
    assert!(h.idle().await, "an attempt stayed in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_run_starts_at_its_time_not_before() {
    let h = Harness::started(&rust_fn("later", "echo", ""), |_| {}, config());
    let due = now_micros() + 400_000;
    let id = h.enqueue_at("later", json!({"late": true}), due).await;

    tokio::time::sleep(Duration::from_millis(100)).await;
    let early = h.get(&id).await;
    assert_eq!(early.status, RunStatus::Queued, "{early:#?}");
    assert_eq!(early.attempt, 0);
    assert_eq!(early.next_attempt_at, Some(due));

    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"late": true})));
    let started = run.started_at.expect("started_at");
    assert!(started >= due, "started {}us before its time", due - started);
    assert!(started - due < 2_000_000, "started {}us after its time", started - due);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_run_cancelled_while_queued_never_runs() {
    let h = Harness::started(&rust_fn("later", "echo", ""), |_| {}, config());
    let id = h.enqueue_at("later", json!({}), now_micros() + 300_000).await;
    match h.store.cancel(&id, now_micros()).await.expect("cancel") {
        CancelOutcome::Cancelled(run) => assert_eq!(run.status, RunStatus::Cancelled),
        other => panic!("expected the queued run cancelled at once, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let run = h.get(&id).await;
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert_eq!(run.attempt, 0, "a cancelled queued run is never attempted");
    assert_eq!(run.attempts.as_deref().map(<[_]>::len), Some(0));
}
