//! A node takes no more runs while as many ends as its room wait to be written (`Load::full`):
//! a handler's slot is free as soon as it returns, and before this bound a node whose ends were
//! written slower than its handlers returned claimed run after run, each waiting in memory for
//! its end. On PostgreSQL, where a row lock taken by the test holds the ends' writes for as
//! long as the test needs. Needs `PLINTH_TEST_DATABASE_URL`; without it the tests say they are
//! skipped (and fail under CI).

use crate::harness::{database_url, rust_fn};
use crate::pg_node::PgNode;
use plinth_core::RunStatus;
use plinth_engine::{EngineConfig, HandlerContext, Handlers};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Default)]
struct Signals {
    /// The gate's handler started.
    in_gate: Notify,
    /// The gate's handler may return.
    gate_go: Notify,
    /// Calls of the quick handler.
    quick: AtomicU32,
}

fn handlers(s: Arc<Signals>) -> Handlers {
    let mut h = Handlers::builtin();
    let s1 = s.clone();
    h.register("gate", move |_ctx: HandlerContext, _input: Value| {
        let s = s1.clone();
        async move {
            s.in_gate.notify_one();
            s.gate_go.notified().await;
            Ok(json!("gate"))
        }
    });
    h.register("quick", move |_ctx: HandlerContext, _input: Value| {
        let s = s.clone();
        async move {
            s.quick.fetch_add(1, Ordering::SeqCst);
            Ok(json!("quick"))
        }
    });
    h
}

/// Two worker slots and a room of two: no run waits on the node for a slot
/// (`wait_here_at_most` zero), so the room is the slots.
async fn start(url: String, signals: Arc<Signals>) -> PgNode {
    let policy = "{retries: {max_attempts: 1}}";
    let functions = format!("{}{}", rust_fn("gate", "gate", policy), rust_fn("quick", "quick", policy));
    let config = EngineConfig {
        workers: 2,
        claim_batch: 2,
        lease: Duration::from_secs(10),
        wait_here_at_most: Duration::ZERO,
        ..Default::default()
    };
    PgNode::start(url, &functions, handlers(signals), config).await
}

/// Starts a run of `gate`, then holds its end's write (the test's lock on its row) and lets
/// its handler return: its id and the transaction holding the lock.
async fn gate_held_in_its_end(node: &PgNode, s: &Signals) -> (String, sqlx::Transaction<'static, sqlx::Postgres>) {
    let gate = node.enqueue("gate", json!({})).await;
    tokio::time::timeout(Duration::from_secs(10), s.in_gate.notified()).await.expect("the gate's handler starts");
    let held = node.hold_row(&gate).await;
    s.gate_go.notify_one();
    (gate, held)
}

async fn status(node: &PgNode, id: &str) -> RunStatus {
    node.run(id).await.status
}

async fn ended(node: &PgNode, id: &str) -> RunStatus {
    node.wait_terminal(id).await.status
}

async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_its_room_of_ends_unwritten_claims_nothing_until_they_are_written() {
    let Some(url) = database_url("the end-write engine tests") else { return };
    let s = Arc::new(Signals::default());
    let node = start(url, s.clone()).await;
    let (gate, held) = gate_held_in_its_end(&node, &s).await;
    // The gate's end waits on the lock: one end unwritten, the room is two.
    let first = node.enqueue("quick", json!({})).await;
    until("the first quick run's handler runs beside the unwritten end", 10, || s.quick.load(Ordering::SeqCst) == 1).await;
    // Two ends unwritten now (the gate's and the first quick run's): the room is full.
    let later = [node.enqueue("quick", json!({})).await, node.enqueue("quick", json!({})).await];
    // Why 1.5 s: the dispatcher is woken by each enqueue and polls every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls_while_full = s.quick.load(Ordering::SeqCst);
    let statuses = [status(&node, &later[0]).await, status(&node, &later[1]).await];
    held.rollback().await.expect("release the row");
    let ends =
        [ended(&node, &gate).await, ended(&node, &first).await, ended(&node, &later[0]).await, ended(&node, &later[1]).await];
    let calls = s.quick.load(Ordering::SeqCst);
    node.stop().await;
    assert_eq!(calls_while_full, 1, "runs were claimed and run while the node's room of ends waited to be written");
    assert_eq!(statuses, [RunStatus::Queued, RunStatus::Queued], "the later runs stay in the queue, free for other nodes");
    assert_eq!(ends, [RunStatus::Succeeded; 4], "every run ends once the ends are written");
    assert_eq!(calls, 3, "each quick run ran once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_end_unwritten_leaves_room_for_another_run() {
    let Some(url) = database_url("the end-write engine tests") else { return };
    let s = Arc::new(Signals::default());
    let node = start(url, s.clone()).await;
    let (gate, held) = gate_held_in_its_end(&node, &s).await;
    let quick = node.enqueue("quick", json!({})).await;
    let ran = tokio::time::timeout(Duration::from_secs(5), async {
        while s.quick.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok();
    held.rollback().await.expect("release the row");
    let ends = [ended(&node, &gate).await, ended(&node, &quick).await];
    node.stop().await;
    assert!(ran, "a run waited although only one end of a room of two was unwritten");
    assert_eq!(ends, [RunStatus::Succeeded; 2]);
}
