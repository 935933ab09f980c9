//! Runs an event wakes, resumed on the node that took the event (decision 0036): the run is
//! stored running, leased to this node, in the event's write, and the engine runs its next
//! attempt from there, with no claim.

use super::harness::{Harness, config, outcomes};
use plinth_core::RunStatus;
use plinth_core::timefmt::now_micros;
use plinth_engine::{HandlerContext, Handlers};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// The engine's starter, with a record of the runs it was handed to start.
struct Seen {
    engine: Arc<dyn plinth_store::Starter>,
    started: Mutex<Vec<(String, u32)>>,
}

impl plinth_store::Starter for Seen {
    fn reserve(&self, function: &str, now: i64) -> Option<plinth_core::run::StartNow> {
        self.engine.reserve(function, now)
    }
    fn start(&self, run: plinth_core::Run) {
        self.started.lock().expect("lock").push((run.run_id.clone(), run.attempt));
        self.engine.start(run);
    }
    fn release(&self) {
        self.engine.release();
    }
}

fn approval(order: &str) -> plinth_store::NewEvent {
    let now = now_micros();
    let event = plinth_core::Event {
        id: plinth_core::ids::new_run_id(),
        name: "shop/approved".into(),
        data: json!({"order": order}),
        ts: now / 1000,
        received_at: now,
    };
    plinth_store::NewEvent { event, runs: vec![], skipped: vec![], cancels: vec![] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_run_resumes_here_and_ends_with_the_event() {
    let register = |h: &mut Handlers| {
        h.register("approve", |ctx: HandlerContext, input: Value| async move {
            let order = input["order"].as_str().unwrap_or_default().to_string();
            let cond = "event.data.order == run.input.order";
            let got = ctx.wait_for_event("approval", "shop/approved", Some(cond), None).await?;
            let after: String = ctx.step("after", async move { Ok(format!("{order} approved")) }).await?;
            Ok(json!({"event": got.map(|e| e["data"].clone()), "after": after}))
        });
    };
    let functions = "  - name: approver\n    steps: true\n    handler:\n      rust: approve\n";
    let h = Harness::started(functions, register, config());
    let id = h.enqueue("approver", json!({"order": "o-1"})).await;
    let waiting = h.wait_for(&id, "waiting", |r| r.status == RunStatus::Waiting).await;
    assert_eq!(waiting.attempt, 0, "a wait does not count an attempt");
    let seen = Arc::new(Seen { engine: h.engine.as_ref().expect("engine").starter(), started: Mutex::default() });
    let starter: Arc<dyn plinth_store::Starter> = seen.clone();
    let other = plinth_store::ingest_starting(h.store.clone(), Some(starter.clone()), vec![approval("o-9")], 0, now_micros())
        .await
        .expect("ingest");
    assert!(other.ingested[0].run_ids.is_empty());
    assert!(seen.started.lock().expect("lock").is_empty(), "another order's event wakes nothing");
    plinth_store::ingest_starting(h.store.clone(), Some(starter), vec![approval("o-1")], 0, now_micros()).await.expect("ingest");
    assert_eq!(*seen.started.lock().expect("lock"), [(id.clone(), 1)], "handed to this node's engine as stored");
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"event": {"order": "o-1"}, "after": "o-1 approved"})));
    assert_eq!(outcomes(&run), ["succeeded"], "one attempt, the resumed one");
    assert!(h.idle().await, "its slot is free again");
}
