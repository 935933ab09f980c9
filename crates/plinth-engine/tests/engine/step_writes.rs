//! A step function's session gives up its worker slot while a step is written (decision 0040):
//! another run starts on that slot meanwhile, the session waits for a slot again before the
//! code after the step, and a cancel reaches it while it waits. On PostgreSQL, where a row lock
//! taken by the test holds the step's write for as long as the test needs. Needs
//! `PLINTH_TEST_DATABASE_URL`; without it the tests say they are skipped (and fail under CI).

use crate::harness::{database_url, rust_fn};
use crate::pg_node::PgNode;
use plinth_core::RunStatus;
use plinth_core::timefmt::now_micros;
use plinth_engine::{EngineConfig, HandlerContext, Handlers};
use plinth_store::CancelOutcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// What the handlers tell the test, and what the test tells them.
#[derive(Default)]
struct Signals {
    /// The step function is inside its first step.
    in_first: Notify,
    /// The first step may return.
    first_go: Notify,
    /// The other function's handler started.
    other_started: Notify,
    other_ran: AtomicBool,
    /// The other function's handler may return (when it is told to wait).
    other_go: Notify,
}

fn handlers(s: Arc<Signals>) -> Handlers {
    let mut h = Handlers::builtin();
    let s1 = s.clone();
    h.register("two", move |ctx: HandlerContext, _input: Value| {
        let s = s1.clone();
        async move {
            let a: u32 = ctx
                .step("a", async {
                    s.in_first.notify_one();
                    s.first_go.notified().await;
                    Ok(1)
                })
                .await?;
            let seen: bool = ctx.step("b", async { Ok(s.other_ran.load(Ordering::SeqCst)) }).await?;
            Ok(json!([a, seen]))
        }
    });
    h.register("other", move |_ctx: HandlerContext, input: Value| {
        let s = s.clone();
        async move {
            s.other_ran.store(true, Ordering::SeqCst);
            s.other_started.notify_one();
            if input["hold"] == true {
                s.other_go.notified().await;
            }
            Ok(json!("other"))
        }
    });
    h
}

/// A node of one worker slot on a scratch schema, the step function `two` and the plain `other`.
async fn start(url: String, signals: Arc<Signals>) -> PgNode {
    let functions = format!(
        "{}    steps: true\n{}",
        rust_fn("two", "two", "{retries: {max_attempts: 1}}"),
        rust_fn("other", "other", "{retries: {max_attempts: 1}}")
    );
    // Why one slot: a run other than the session's can start only on the slot the session
    // gave up.
    let config = EngineConfig { workers: 1, claim_batch: 1, lease: Duration::from_secs(5), ..Default::default() };
    PgNode::start(url, &functions, handlers(signals), config).await
}

/// Starts a run of `two`, holds its first step's write (the test's lock on its row) and
/// enqueues a run of `other` with `input`: their ids, and the transaction holding the lock.
async fn two_held_in_its_first_write(
    node: &PgNode,
    s: &Signals,
    input: Value,
) -> (String, String, sqlx::Transaction<'static, sqlx::Postgres>) {
    let two = node.enqueue("two", json!({})).await;
    assert!(within("the step function reaches its first step", &s.in_first, 10).await);
    let held = node.hold_row(&two).await;
    let other = node.enqueue("other", input).await;
    (two, other, held)
}

async fn within(what: &str, n: &Notify, secs: u64) -> bool {
    let got = tokio::time::timeout(Duration::from_secs(secs), n.notified()).await.is_ok();
    if !got {
        eprintln!("not within {secs} s: {what}");
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_run_starts_on_the_slot_while_a_step_is_written() {
    let Some(url) = database_url("the step-write engine tests") else { return };
    let s = Arc::new(Signals::default());
    let node = start(url, s.clone()).await;
    let (two, other, held) = two_held_in_its_first_write(&node, &s, json!({})).await;
    // Why a second: the other run may not start while the step function holds the only slot,
    // and a second is long for it to start once the slot is free.
    let early = tokio::time::timeout(Duration::from_secs(1), s.other_started.notified()).await.is_ok();
    assert!(!early, "the other run started while the step function's code ran on the only slot");
    s.first_go.notify_one();
    let during = within("the other run starts while the first step is written", &s.other_started, 3).await;
    held.rollback().await.expect("release the row");
    let run = node.wait_terminal(&two).await;
    let done = node.wait_terminal(&other).await;
    node.stop().await;
    assert!(during, "the other run did not start while the step was written: the slot was held through the write");
    assert_eq!(
        (run.status, run.output),
        (RunStatus::Succeeded, Some(json!([1, true]))),
        "the code after the step ran after the other run"
    );
    assert_eq!(done.status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_waiting_for_its_slot_again_is_cancelled_and_the_slot_goes_on() {
    let Some(url) = database_url("the step-write engine tests") else { return };
    let s = Arc::new(Signals::default());
    let node = start(url, s.clone()).await;
    let (two, other, held) = two_held_in_its_first_write(&node, &s, json!({"hold": true})).await;
    s.first_go.notify_one();
    assert!(within("the other run starts while the first step is written", &s.other_started, 3).await);
    // The step is written now; the session waits for the slot the other run holds.
    held.rollback().await.expect("release the row");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.store.steps(&two).await.expect("steps").expect("run").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the first step was never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match node.store.cancel(&two, now_micros()).await.expect("cancel") {
        CancelOutcome::Requested(r) => assert!(r.cancel_requested),
        other => panic!("expected a cancel request for the running step function, got {other:?}"),
    }
    let run = node.wait_terminal(&two).await;
    assert_eq!(run.status, RunStatus::Cancelled, "cancelled while it waited for a slot: {run:?}");
    let stored: Vec<String> = node.store.steps(&two).await.expect("steps").expect("run").into_iter().map(|st| st.id).collect();
    assert_eq!(stored, ["a"], "the code after the first step never ran");
    s.other_go.notify_one();
    assert_eq!(node.wait_terminal(&other).await.status, RunStatus::Succeeded);
    // The slot was not lost on the way: a new run of the other function still runs.
    let again = node.enqueue("other", json!({})).await;
    let again = node.wait_terminal(&again).await;
    node.stop().await;
    assert_eq!(again.status, RunStatus::Succeeded, "the node's only slot is free again");
}
