//! Runs started the moment they are stored (decision 0019): a reserved slot, the run stored
//! leased to this node, its attempt run here; no slot when the node is full or stopping.

use crate::harness::{Harness, config, outcomes, rust_fn};
use plinth_core::RunStatus;
use plinth_core::timefmt::now_micros;
use plinth_engine::EngineConfig;
use plinth_store::Enqueued;
use serde_json::{Value, json};
use std::time::Duration;

/// Reserves a slot, stores the run started and starts it; `None` when no slot was given.
async fn start_at_once(h: &Harness, function: &str, input: Value) -> Option<String> {
    let starter = h.engine.as_ref().expect("engine").starter();
    let now = now_micros();
    let mut run = h.new_run(function, input, now);
    run.start = Some(starter.reserve(function, now)?);
    match h.store.enqueue(run).await.expect("enqueue") {
        Enqueued::Created(stored) => {
            assert_eq!((stored.status, stored.attempt), (RunStatus::Running, 1), "stored started: {stored:?}");
            let id = stored.run_id.clone();
            starter.start(stored);
            Some(id)
        }
        other => panic!("a new run is created, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_at_once_runs_here_once() {
    let h = Harness::started(&rust_fn("echo", "echo", ""), |_| {}, config());
    let id = start_at_once(&h, "echo", json!({"n": 7})).await.expect("a free slot");
    let run = h.wait_terminal(&id).await;
    assert_eq!((run.status, run.attempt, run.output.clone()), (RunStatus::Succeeded, 1, Some(json!({"n": 7}))), "{run:#?}");
    assert_eq!(outcomes(&run), ["succeeded"], "one attempt, never claimed again");
    assert!(h.idle().await, "its slot is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_gives_no_slot_and_queued_runs_follow_when_one_frees() {
    let h = Harness::started(&rust_fn("nap", "sleep", ""), |_| {}, EngineConfig { workers: 1, ..config() });
    let first = start_at_once(&h, "nap", json!({"ms": 600})).await.expect("the one slot");
    let starter = h.engine.as_ref().expect("engine").starter();
    assert!(starter.reserve("nap", now_micros()).is_none(), "the only slot is taken");
    let queued = h.enqueue("nap", json!({"ms": 1})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.get(&queued).await.status, RunStatus::Queued, "the queued run waits for the slot");
    assert_eq!(h.wait_terminal(&first).await.status, RunStatus::Succeeded);
    // Why: the dispatcher saw no free slot; the ending attempt must wake it.
    let second = h.wait_terminal(&queued).await;
    assert_eq!((second.status, second.attempt), (RunStatus::Succeeded, 1), "{second:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_slot_can_be_reserved_again_and_a_stopping_node_gives_none() {
    let mut h = Harness::started(&rust_fn("echo", "echo", ""), |_| {}, EngineConfig { workers: 1, ..config() });
    let starter = h.engine.as_ref().expect("engine").starter();
    let now = now_micros();
    let lease = starter.reserve("echo", now).expect("a free slot");
    assert_eq!(lease.started_at, now);
    assert_eq!(lease.lease_until, now + 2_000_000, "the engine's lease from now");
    assert!(starter.reserve("echo", now).is_none(), "one slot, reserved");
    starter.release();
    let again = starter.reserve("echo", now).expect("the released slot");
    assert_eq!(again.owner, lease.owner);
    starter.release();
    let report = h.engine.take().expect("engine").shutdown(Duration::from_millis(100)).await;
    assert_eq!((report.finished, report.released), (0, 0));
    assert!(starter.reserve("echo", now_micros()).is_none(), "a stopping node starts nothing");
}
