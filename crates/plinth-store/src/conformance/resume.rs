//! Runs an event wakes, resumed on the node that took the event (decision 0036): stored
//! running, leased to that node, with their next attempt begun, in the event's own write; a run
//! with a lane, or with no slot free on the node, goes to the queue as before.

use super::{LEASE, SEC, claim, enqueue, finish, get, new_run};
use crate::{NewEvent, Starter, Store};
use plinth_core::run::StartNow;
use plinth_core::steps::{Step, StepStatus, Suspension, Wait};
use plinth_core::{Event, Finish, Run, RunStatus};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A node's slots as the store sees them: grants `slots` reservations, then refuses; records
/// what it was asked, what it started and what came back.
struct Slots {
    slots: usize,
    asked: AtomicUsize,
    released: AtomicUsize,
    started: Mutex<Vec<Run>>,
}

impl Slots {
    fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self { slots, asked: AtomicUsize::new(0), released: AtomicUsize::new(0), started: Mutex::default() })
    }

    fn started(&self) -> Vec<Run> {
        self.started.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Starter for Slots {
    fn reserve(&self, _function: &str, now: i64) -> Option<StartNow> {
        let n = self.asked.fetch_add(1, Ordering::SeqCst);
        (n < self.slots).then(|| StartNow { owner: "here".into(), started_at: now, lease_until: now + LEASE })
    }

    fn start(&self, run: Run) {
        if let Ok(mut s) = self.started.lock() {
            s.push(run);
        }
    }

    fn release(&self) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

fn approved(id: &str, order: &str, at: i64) -> NewEvent {
    let event = Event {
        id: id.into(),
        name: "shop/order.approved".into(),
        data: json!({"order": order}),
        ts: at / 1000,
        received_at: at,
    };
    NewEvent { event, runs: vec![], skipped: vec![], cancels: vec![] }
}

/// A run of `function` started on node `w1` (in lane `lane` when given), suspended on a wait
/// for the approval of `order`.
async fn waiting(store: &dyn Store, function: &str, order: &str, lane: Option<&str>, t0: i64) -> Run {
    let run = plinth_core::NewRun {
        input: json!({"order": order}),
        flow_key: lane.map(str::to_string),
        lane_limit: lane.map(|_| 5),
        start: Some(StartNow { owner: "w1".into(), started_at: t0, lease_until: t0 + LEASE }),
        ..new_run(function, t0)
    };
    let run = enqueue(store, run).await;
    assert_eq!(run.status, RunStatus::Running, "stored started: {run:?}");
    let cond = Some("event.data.order == run.input.order".to_string());
    let mut step = Step::reached("approve", "wait_for_event", 0, t0);
    step.status = StepStatus::Waiting;
    step.wait = Some(Wait::Event { event: "shop/order.approved".into(), cond, since: t0, timeout_at: None });
    let suspend = Finish::Suspended(Box::new(Suspension { step, child: None }));
    assert!(finish(store, &run.run_id, "w1", run.attempt, suspend, t0 + 1).await, "suspended");
    assert_eq!(get(store, &run.run_id).await.status, RunStatus::Waiting);
    run
}

async fn ingest(store: &dyn Store, events: Vec<NewEvent>, slots: &Arc<Slots>) {
    let resume: Arc<dyn Starter> = slots.clone();
    if let Err(e) = store.ingest(events, 0, Some(resume)).await {
        panic!("ingest failed: {e}");
    }
}

/// The woken run is stored running, leased to the node that took the event, with its next
/// attempt begun and recorded, and handed to that node; its step holds the event. The node
/// ends it like any run it claimed, and no claim finds it meanwhile.
pub async fn an_event_resumes_the_run_it_wakes_where_it_arrives(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let run = waiting(store, "flow", "o-1", None, t0).await;
    let slots = Slots::new(4);
    ingest(store, vec![approved("e1", "o-1", t0 + SEC)], &slots).await;
    let started = slots.started();
    assert_eq!(started.len(), 1, "the woken run was handed to the node: {started:?}");
    let r = &started[0];
    assert_eq!((r.run_id.as_str(), r.status, r.attempt), (run.run_id.as_str(), RunStatus::Running, 1));
    assert!(r.waiting_for.is_none(), "no longer waiting: {r:?}");
    assert_eq!((slots.asked.load(Ordering::SeqCst), slots.released.load(Ordering::SeqCst)), (1, 0));
    let stored = store.get(&run.run_id, true).await.expect("get").expect("stored");
    assert_eq!(stored.status, RunStatus::Running);
    let attempts = stored.attempts.unwrap_or_default();
    assert_eq!(attempts.iter().map(|a| (a.attempt, a.outcome.as_str())).collect::<Vec<_>>(), [(1, "running")], "recorded");
    let steps = store.steps(&run.run_id).await.expect("steps").unwrap_or_default();
    assert_eq!(steps[0].status, StepStatus::Succeeded);
    assert_eq!(steps[0].output.as_ref().map(|o| o["id"].clone()), Some(json!("e1")));
    assert!(claim(store, "w2", t0 + 2 * SEC, &[("flow", 10)]).await.runs.is_empty(), "a claim finds nothing to take");
    assert!(!finish(store, &run.run_id, "w1", 1, Finish::Succeeded(json!(1)), t0 + 2 * SEC).await, "not w1's lease");
    assert!(finish(store, &run.run_id, "here", 1, Finish::Succeeded(json!(1)), t0 + 2 * SEC).await, "the node's to end");
    assert_eq!(get(store, &run.run_id).await.status, RunStatus::Succeeded);
}

/// A run with a lane, and every run woken once the node's slots are taken, is queued as before
/// and claimed; the slot a refused reservation never held is not given back.
pub async fn a_woken_run_with_a_lane_or_no_slot_is_queued(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let free = waiting(store, "flow", "o-1", None, t0).await;
    let laned = waiting(store, "lim", "o-1", Some("k"), t0).await;
    let late = waiting(store, "flow", "o-1", None, t0 + 2).await;
    let slots = Slots::new(1);
    ingest(store, vec![approved("e1", "o-1", t0 + SEC)], &slots).await;
    let started: Vec<String> = slots.started().into_iter().map(|r| r.run_id).collect();
    assert_eq!(started.len(), 1, "one slot, one run resumed here: {started:?}");
    assert_eq!(slots.asked.load(Ordering::SeqCst), 2, "the laned run asks for no slot");
    assert_eq!(slots.released.load(Ordering::SeqCst), 0);
    let queued = if started[0] == free.run_id { &late } else { &free };
    assert!(started[0] == free.run_id || started[0] == late.run_id, "a run with no lane: {started:?}");
    for id in [&queued.run_id, &laned.run_id] {
        let run = get(store, id).await;
        assert_eq!((run.status, run.attempt), (RunStatus::Queued, 0), "queued, no attempt: {run:?}");
    }
    let claimed = claim(store, "w2", t0 + 2 * SEC, &[("flow", 10)]).await;
    assert_eq!(claimed.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), [queued.run_id.as_str()]);
}

/// An event that matches no wait, a repeat of one already stored, and a second event of the
/// same call for a wait the first one ended ask for no slot.
pub async fn only_a_wait_ended_asks_for_a_slot(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let run = waiting(store, "flow", "o-1", None, t0).await;
    let slots = Slots::new(8);
    ingest(store, vec![approved("other", "o-9", t0 + SEC)], &slots).await;
    assert_eq!(slots.asked.load(Ordering::SeqCst), 0, "no wait matched");
    assert_eq!(get(store, &run.run_id).await.status, RunStatus::Waiting);
    ingest(store, vec![approved("e1", "o-1", t0 + 2 * SEC), approved("e2", "o-1", t0 + 2 * SEC + 1)], &slots).await;
    ingest(store, vec![approved("e1", "o-1", t0 + 3 * SEC)], &slots).await;
    assert_eq!(slots.asked.load(Ordering::SeqCst), 1, "one wait ended, once");
    assert_eq!(slots.started().len(), 1);
    assert_eq!(slots.released.load(Ordering::SeqCst), 0);
    let steps = store.steps(&run.run_id).await.expect("steps").unwrap_or_default();
    assert_eq!(steps[0].output.as_ref().map(|o| o["id"].clone()), Some(json!("e1")), "the first event ended it");
}
