//! `POST /run` starting runs on this node as they are stored (decision 0019), through a
//! starter that records what it was asked.

use super::*;
use plinth_core::run::StartNow;
use plinth_core::{Run, RunStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
pub(super) struct Recorder {
    grant: bool,
    pub(super) asked: AtomicUsize,
    pub(super) started: Mutex<Vec<Run>>,
    pub(super) released: AtomicUsize,
}

impl plinth_store::Starter for Recorder {
    fn reserve(&self, _function: &str, now: i64) -> Option<StartNow> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.grant.then(|| StartNow { owner: "node-t".into(), started_at: now, lease_until: now + 30_000_000 })
    }

    fn start(&self, run: Run) {
        self.started.lock().expect("lock").push(run);
    }

    fn release(&self) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

fn with_starter(grant: bool) -> (Harness, Arc<Recorder>) {
    with_starter_on(harness(), grant)
}

/// `h` with a starter that grants every slot asked for (or none) and records what it was asked.
pub(super) fn with_starter_on(mut h: Harness, grant: bool) -> (Harness, Arc<Recorder>) {
    let recorder = Arc::new(Recorder { grant, ..Recorder::default() });
    let mut state = Arc::try_unwrap(h.state).unwrap_or_else(|_| panic!("the state is not shared yet"));
    state.starter = Some(recorder.clone());
    h.state = Arc::new(state);
    (h, recorder)
}

#[tokio::test]
async fn a_run_with_a_free_slot_is_stored_started_and_handed_to_the_engine() {
    let (h, rec) = with_starter(true);
    let r = h.post_json("/run", r#"{"function":"resize","input":{"width":3}}"#).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(r.json["status"], "queued", "the 202 says queued, as the contract fixes it");
    let id = r.json["run_id"].as_str().expect("id");
    let started = rec.started.lock().expect("lock").clone();
    assert_eq!(
        started.iter().map(|s| (s.run_id.as_str(), s.status, s.attempt)).collect::<Vec<_>>(),
        vec![(id, RunStatus::Running, 1)]
    );
    let shown = h.get(&format!("/runs/{id}")).await;
    assert_eq!((shown.json["status"].as_str(), shown.json["attempt"].as_u64()), (Some("running"), Some(1)), "{}", shown.json);
    assert_eq!(rec.released.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_node_without_a_free_slot_queues_the_run() {
    let (h, rec) = with_starter(false);
    let id = h.submit(r#"{"function":"resize","input":{"width":3}}"#).await;
    assert_eq!(rec.asked.load(Ordering::SeqCst), 1, "a slot was asked for");
    assert!(rec.started.lock().expect("lock").is_empty(), "nothing started");
    let shown = h.get(&format!("/runs/{id}")).await;
    assert_eq!((shown.json["status"].as_str(), shown.json["attempt"].as_u64()), (Some("queued"), Some(0)));
}

#[tokio::test]
async fn a_keyed_run_starts_at_once_and_its_replays_give_the_slot_back() {
    let (h, rec) = with_starter(true);
    let keyed = |body: &'static str| {
        Request::post("/run")
            .header("content-type", "application/json")
            .header("idempotency-key", "order-1")
            .body(Body::from(body))
            .expect("request")
    };
    let first = h.send(keyed(r#"{"function":"resize","input":{"width":3}}"#)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    let id = first.json["run_id"].as_str().expect("id").to_string();
    let started = rec.started.lock().expect("lock").iter().map(|r| r.run_id.clone()).collect::<Vec<_>>();
    assert_eq!(started, vec![id.clone()], "the keyed run was started by this node");

    let replay = h.send(keyed(r#"{"function":"resize","input":{"width":3}}"#)).await;
    assert_eq!((replay.status, replay.json["run_id"].as_str()), (StatusCode::ACCEPTED, Some(id.as_str())), "{}", replay.json);
    let other = h.send(keyed(r#"{"function":"resize","input":{"width":4}}"#)).await;
    assert_problem(&other, 422, "PLINTH_015");
    assert_eq!(rec.asked.load(Ordering::SeqCst), 3, "each keyed request asked for a slot");
    assert_eq!(rec.released.load(Ordering::SeqCst), 2, "the replay and the refusal gave theirs back");
    assert_eq!(rec.started.lock().expect("lock").len(), 1, "nothing more was started");
}

#[tokio::test]
async fn delayed_and_refused_runs_never_ask_for_a_slot() {
    let (h, rec) = with_starter(true);
    let delayed = h.submit(r#"{"function":"resize","input":{"width":3},"delay_seconds":60}"#).await;
    assert_eq!(h.get(&format!("/runs/{delayed}")).await.json["status"], "queued");
    let invalid = h.post_json("/run", r#"{"function":"resize","input":{"width":0}}"#).await;
    assert_problem(&invalid, 422, "PLINTH_004");
    assert_problem(&h.post_json("/run", r#"{"function":"nope","input":{}}"#).await, 404, "PLINTH_005");
    assert_eq!(rec.asked.load(Ordering::SeqCst), 0, "no slot asked for");
    assert!(rec.started.lock().expect("lock").is_empty());
}
