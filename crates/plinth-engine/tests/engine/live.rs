//! The component changes while the engine runs, as when an Inngest app registers: a function
//! added then is claimed from then on (its runs waited in the queue before), and its schedule
//! fires from the moment it was added, never for a tick before.

use crate::harness::{Harness, component, config, rust_fn};
use plinth_core::component::Live;
use plinth_core::metrics::Metrics;
use plinth_core::timefmt::{now_micros, parse_rfc3339};
use plinth_core::{NewRun, RunStatus, Trigger};
use plinth_engine::{Engine, Handlers};
use plinth_store::ListFilter;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_added_while_running_are_claimed_and_scheduled_from_then_on() {
    let h = Harness::new(&rust_fn("first", "noop", ""));
    let live = Arc::new(Live::new((*h.component).clone()));
    let engine =
        Engine::start(h.store.clone(), live.clone(), Arc::new(Handlers::builtin()), Arc::new(Metrics::new("p", "t")), config());
    let more = format!(
        "{}{}{}    triggers: [{{cron: '* * * * * *'}}]\n",
        rust_fn("first", "noop", ""),
        rust_fn("later", "noop", ""),
        rust_fn("ticker", "noop", "")
    );
    let next = component(&more, h.dir.path().to_path_buf());
    let (_, later) = next.function("later").expect("later");
    let run = NewRun::of(later, serde_json::json!({}), Trigger::Api, "c", now_micros());
    let id = run.run_id.clone();
    h.store.enqueue(run).await.expect("enqueue");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting = h.store.get(&id, false).await.expect("get").expect("the run");
    assert_eq!(waiting.status, RunStatus::Queued, "a function the node does not serve is not claimed");
    let cron = ListFilter { trigger: Some("cron".into()), limit: 50, ..ListFilter::default() };
    assert!(h.store.list(cron.clone()).await.expect("list").runs.is_empty(), "no schedule yet");

    let added = now_micros();
    live.set(next);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = h.store.get(&id, false).await.expect("get").expect("the run");
        if run.status == RunStatus::Succeeded {
            break;
        }
        assert!(Instant::now() < deadline, "the queued run of the added function ran: {run:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ticks = loop {
        let runs = h.store.list(cron.clone()).await.expect("list").runs;
        if !runs.is_empty() {
            break runs;
        }
        assert!(Instant::now() < deadline, "the added schedule fired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for run in ticks {
        let Trigger::Cron { scheduled_at } = &run.trigger else { panic!("a cron run: {run:?}") };
        let at = parse_rfc3339(scheduled_at).expect("a time");
        assert!(at >= added - 1_000_000, "no tick from before the function was added: {scheduled_at}");
        assert_eq!(run.function, "ticker");
    }
    engine.shutdown(Duration::from_secs(5)).await;
}
