//! The Rust checkout example (`examples/steps/rust`) on the engine and a SQLite store: it waits
//! for its approval without a worker, resumes on the event, and ran each step once.

use plinth_core::component::Component;
use plinth_core::metrics::Metrics;
use plinth_core::timefmt::now_micros;
use plinth_core::{Event, NewRun, RunStatus, Trigger};
use plinth_engine::{Engine, EngineConfig};
use plinth_store::sqlite::{SqliteStore, Synchronous};
use plinth_store::{NewEvent, Store};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../../../../examples/steps/rust/checkout.rs"]
mod checkout;

async fn until(store: &dyn Store, id: &str, status: RunStatus) -> plinth_core::Run {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = store.get(id, false).await.expect("get").expect("run");
        if run.status == status {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} not {status:?} in time: {run:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_checkout_waits_resumes_and_pays() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/steps/rust"));
    let component = Arc::new(Component::load(&root.join("component.yaml")).expect("the example's component"));
    let handlers = checkout::handlers();
    Engine::check_handlers(&component, &handlers).expect("registered");
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db"), Synchronous::Normal).expect("store"));
    let engine = Engine::start(
        store.clone(),
        Arc::new(plinth_core::component::Live::new((*component).clone())),
        Arc::new(handlers),
        Arc::new(Metrics::new("plinth", "t")),
        EngineConfig::default(),
    );
    let (_, spec) = component.function("checkout").expect("checkout");
    let input = json!({"order": "o-9", "items": ["lamp"], "amount": 40});
    let run = NewRun::of(spec, input, Trigger::Api, "corr", now_micros());
    let id = run.run_id.clone();
    store.enqueue(run).await.expect("enqueue");
    engine.waker().notify_one();
    let waiting = until(store.as_ref(), &id, RunStatus::Waiting).await;
    assert_eq!(waiting.waiting_for.expect("why").event.as_deref(), Some("shop/order.approved"));
    // Why a wait: the store says `waiting` once the wait is committed, a moment before the
    // attempt that committed it gives its worker back (seen once in CI on a loaded machine).
    let released = Instant::now() + Duration::from_secs(5);
    while engine.in_flight() > 0 && Instant::now() < released {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(engine.in_flight(), 0, "a waiting run holds no worker");
    let steps = store.steps(&id).await.expect("steps").expect("run");
    assert_eq!(steps[0].output, Some(json!(["lamp"])), "reserve is stored before the wait");
    let now = now_micros();
    let approval = Event {
        id: "ok-1".into(),
        name: "shop/order.approved".into(),
        data: json!({"order": "o-9", "by": "eve"}),
        ts: now / 1000,
        received_at: now,
    };
    store
        .ingest(vec![NewEvent { event: approval, runs: vec![], skipped: vec![], cancels: vec![] }], 0, None)
        .await
        .expect("ingest");
    let done = until(store.as_ref(), &id, RunStatus::Succeeded).await;
    assert_eq!(done.output.expect("output")["charge"], json!({"charged": 40, "by": "eve"}));
    let steps = store.steps(&id).await.expect("steps").expect("run");
    let names: Vec<(&str, u32)> = steps.iter().map(|s| (s.id.as_str(), s.attempts)).collect();
    assert_eq!(names, [("reserve", 1), ("approval", 1), ("charge", 1), ("receipt", 1)], "each step ran once");
    engine.shutdown(Duration::from_secs(1)).await;
}
