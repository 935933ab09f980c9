//! Runs started the moment they are stored (decision 0019): a reserved slot, the run stored
//! leased to this node, its attempt run here; a run that finds the slots taken waits here, up
//! to a wave of them, and goes back to the queue when it waits too long (decision 0028); no
//! slot when the node is full or stopping.

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
    let config = EngineConfig { workers: 1, wait_here_at_most: Duration::from_secs(60), ..config() };
    let h = Harness::started(&rust_fn("nap", "sleep", ""), |_| {}, config);
    let first = start_at_once(&h, "nap", json!({"ms": 600})).await.expect("the one slot");
    let waits = start_at_once(&h, "nap", json!({"ms": 1})).await.expect("room to wait here for the slot");
    let starter = h.engine.as_ref().expect("engine").starter();
    assert!(starter.reserve("nap", now_micros()).is_none(), "one slot and one run waiting for it: the node is full");
    let queued = h.enqueue("nap", json!({"ms": 1})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.get(&queued).await.status, RunStatus::Queued, "the queued run waits for the slot");
    assert_eq!(h.get(&waits).await.status, RunStatus::Running, "stored started, waiting here with its lease");
    assert!(starter.reserve("nap", now_micros()).is_none(), "a run is queued: no later run may skip it");
    assert_eq!(h.wait_terminal(&first).await.status, RunStatus::Succeeded);
    let waited = h.wait_terminal(&waits).await;
    assert_eq!(outcomes(&waited), ["succeeded"], "started once, here, when the slot freed: {waited:#?}");
    // Why: the dispatcher saw no free slot; the ending attempt must wake it.
    let second = h.wait_terminal(&queued).await;
    assert_eq!((second.status, second.attempt), (RunStatus::Succeeded, 1), "{second:#?}");
    assert!(reserve_within(&starter, Duration::from_secs(5)).await, "the queue is drained: runs start at once again");
    starter.release();
}

/// Whether the node gives a reservation within `limit` (it does once its dispatcher's claim
/// finds the queue drained).
async fn reserve_within(starter: &std::sync::Arc<dyn plinth_store::Starter>, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if starter.reserve("nap", now_micros()).is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_queued_while_runs_keep_waiting_here_is_not_starved() {
    // Why a long wait here: no run is given back, so only the dispatcher's probe can find the
    // queued run while the slot stays taken.
    let config = EngineConfig { workers: 1, wait_here_at_most: Duration::from_secs(60), ..config() };
    let h = Harness::started(&rust_fn("nap", "sleep", ""), |_| {}, config);
    let first = start_at_once(&h, "nap", json!({"ms": 200})).await.expect("the one slot");
    h.wait_terminal(&first).await;
    // Why: the room grows with the rate of ends, measured every 100 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let feeding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let feeder = {
        let (store, starter, feeding) = (h.store.clone(), h.engine.as_ref().expect("engine").starter(), feeding.clone());
        let template = h.new_run("nap", json!({"ms": 50}), now_micros());
        tokio::spawn(async move {
            let mut fed = 0;
            let until = std::time::Instant::now() + Duration::from_secs(4);
            while std::time::Instant::now() < until {
                let run = sent_now(&template, starter.as_ref());
                if let Enqueued::Created(stored) = store.enqueue(run).await.expect("enqueue")
                    && stored.status == RunStatus::Running
                {
                    starter.start(stored);
                    fed += 1;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            feeding.store(false, std::sync::atomic::Ordering::SeqCst);
            fed
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queued = h.enqueue("nap", json!({"ms": 1})).await;
    let run = h.wait_terminal(&queued).await;
    assert!(feeding.load(std::sync::atomic::Ordering::SeqCst), "the queued run ended only after the feeding stopped");
    assert_eq!(run.status, RunStatus::Succeeded);
    let fed = feeder.await.expect("feeder");
    assert!(fed > 40, "most fed runs were started here: {fed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_waits_here_too_long_goes_back_to_the_queue_uncounted() {
    let config = EngineConfig { workers: 1, wait_here_at_most: Duration::from_millis(300), ..config() };
    let h = Harness::started(&rust_fn("nap", "sleep", ""), |_| {}, config);
    let first = start_at_once(&h, "nap", json!({"ms": 1500})).await.expect("the one slot");
    let waits = start_at_once(&h, "nap", json!({"ms": 1})).await.expect("room to wait here");
    let back = h.wait_for(&waits, "queued again", |r| r.status == RunStatus::Queued).await;
    assert_eq!(back.attempt, 0, "the attempt that never ran is not counted: {back:#?}");
    assert_eq!(h.get(&first).await.status, RunStatus::Running, "given back while the slot was still busy");
    let starter = h.engine.as_ref().expect("engine").starter();
    assert!(starter.reserve("nap", now_micros()).is_none(), "a run is queued again: no later run may skip it");
    let done = h.wait_terminal(&waits).await;
    assert_eq!((done.status, done.attempt), (RunStatus::Succeeded, 1), "claimed from the queue once the slot freed");
    assert_eq!(outcomes(&done), ["succeeded"], "the claim's attempt takes the place of the one never run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_while_it_waits_here_ends_cancelled_unstarted() {
    // Why 2 s here and a first run of 6 s: the cancel must be stored before the give-back
    // finds it, and the slot must still be busy then; with 300 ms a loaded CI machine gave
    // the run back before the cancel was stored (outcome `released`, then cancelled queued).
    let config = EngineConfig { workers: 1, wait_here_at_most: Duration::from_secs(2), ..config() };
    let h = Harness::started(&rust_fn("nap", "sleep", ""), |_| {}, config);
    let first = start_at_once(&h, "nap", json!({"ms": 6000})).await.expect("the one slot");
    let waits = start_at_once(&h, "nap", json!({"ms": 1})).await.expect("room to wait here");
    h.store.cancel(&waits, now_micros()).await.expect("cancel");
    let run = h.wait_terminal(&waits).await;
    assert_eq!((run.status, run.output.clone()), (RunStatus::Cancelled, None), "{run:#?}");
    assert_eq!(outcomes(&run), ["cancelled"], "{run:#?}");
    assert_eq!(h.get(&first).await.status, RunStatus::Running, "ended before the slot freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_while_it_waits_here_never_starts_when_the_slot_frees() {
    // Why `echo`: a handler that ends on its first poll would win against the stop if it
    // were started at all. Why a long wait here: the slot frees before any give-back. Why a
    // first run of 2 s: the cancel must reach the node before the slot frees; with 400 ms a
    // loaded CI machine freed the slot first, and the run, not yet known as cancelled there,
    // was started and echoed.
    let config = EngineConfig { workers: 1, wait_here_at_most: Duration::from_secs(60), ..config() };
    let functions = [rust_fn("nap", "sleep", ""), rust_fn("echo", "echo", "")].concat();
    let h = Harness::started(&functions, |_| {}, config);
    let first = start_at_once(&h, "nap", json!({"ms": 2000})).await.expect("the one slot");
    let waits = start_at_once(&h, "echo", json!({"said": "hi"})).await.expect("room to wait here");
    h.store.cancel(&waits, now_micros()).await.expect("cancel");
    // Why: the cancel reaches the node through its listener; give it a moment before the slot frees.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.wait_terminal(&first).await.status, RunStatus::Succeeded);
    let run = h.wait_terminal(&waits).await;
    assert_eq!((run.status, run.output.clone()), (RunStatus::Cancelled, None), "never echoed: {run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_slot_can_be_reserved_again_and_a_stopping_node_gives_none() {
    let mut h = Harness::started(&rust_fn("echo", "echo", ""), |_| {}, EngineConfig { workers: 1, ..config() });
    let starter = h.engine.as_ref().expect("engine").starter();
    let now = now_micros();
    let lease = starter.reserve("echo", now).expect("a free slot");
    assert_eq!(lease.started_at, now);
    assert_eq!(lease.lease_until, now + 2_000_000, "the engine's lease from now");
    let waiting = starter.reserve("echo", now).expect("room for one run to wait for the slot");
    assert_eq!(waiting.owner, lease.owner);
    assert!(starter.reserve("echo", now).is_none(), "one slot and one place to wait, both reserved");
    starter.release();
    starter.release();
    // Why a wait: the refusal sent a run to the queue as far as the node knows; it starts
    // runs at once again when its dispatcher's next claim finds the queue drained.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let again = loop {
        if let Some(lease) = starter.reserve("echo", now) {
            break lease;
        }
        assert!(std::time::Instant::now() < deadline, "the released slot is never given again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(again.owner, lease.owner);
    starter.release();
    let report = h.engine.take().expect("engine").shutdown(Duration::from_millis(100)).await;
    assert_eq!((report.finished, report.released), (0, 0));
    assert!(starter.reserve("echo", now_micros()).is_none(), "a stopping node starts nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_gives_back_the_runs_waiting_here_with_the_ones_at_work() {
    let mut h = Harness::started(&rust_fn("nap", "sleep", ""), |_| {}, EngineConfig { workers: 1, ..config() });
    let first = start_at_once(&h, "nap", json!({"ms": 5000})).await.expect("the one slot");
    let waits = start_at_once(&h, "nap", json!({"ms": 1})).await.expect("room to wait here");
    h.wait_running(&first).await;
    let report = h.engine.take().expect("engine").shutdown(Duration::from_millis(100)).await;
    assert_eq!((report.finished, report.released), (0, 2), "both runs given back");
    for id in [&first, &waits] {
        let run = h.get(id).await;
        assert_eq!((run.status, run.attempt), (RunStatus::Queued, 0), "queued again, no attempt counted: {run:#?}");
    }
}

/// A new run like `template`, sent now: with a slot reserved here when the node has room.
fn sent_now(template: &plinth_core::run::NewRun, starter: &dyn plinth_store::Starter) -> plinth_core::run::NewRun {
    let now = now_micros();
    let mut run = template.clone();
    run.run_id = plinth_core::ids::new_run_id();
    (run.created_at, run.not_before) = (now, now);
    run.start = starter.reserve("nap", now);
    run
}

/// One client of [`a_backlog_left_by_a_burst_clears_while_the_clients_keep_sending`]: sends a
/// run, waits for its end, and again until `until`; says for each run when it was sent and
/// whether it started at once.
async fn closed_loop_client(
    store: std::sync::Arc<dyn plinth_store::Store>,
    engine: (std::sync::Arc<dyn plinth_store::Starter>, std::sync::Arc<tokio::sync::Notify>),
    template: plinth_core::run::NewRun,
    until: std::time::Instant,
) -> Vec<(std::time::Instant, bool)> {
    let (starter, waker) = engine;
    let mut sent = Vec::new();
    while std::time::Instant::now() < until {
        let run = sent_now(&template, starter.as_ref());
        let at_once = run.start.is_some();
        let Enqueued::Created(stored) = store.enqueue(run).await.expect("enqueue") else { panic!("a new run is created") };
        if at_once {
            starter.start(stored.clone());
        } else {
            waker.notify_one();
        }
        sent.push((std::time::Instant::now(), at_once));
        while !store.get(&stored.run_id, false).await.expect("get").expect("the run").status.is_terminal() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_left_by_a_burst_clears_while_the_clients_keep_sending() {
    // Why more clients than the room of a cold node (twice its slots): the burst finds no room,
    // sends runs to the queue and turns the backlog on; the queue then always holds more runs
    // than a claim for the free slots asks, so a claim sized by the slots never drained it.
    let config = EngineConfig { workers: 2, claim_batch: 2, wait_here_at_most: Duration::from_secs(10), ..config() };
    let h = Harness::started(&rust_fn("nap", "sleep", ""), |_| {}, config);
    let engine = h.engine.as_ref().expect("engine");
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let template = h.new_run("nap", json!({"ms": 5}), now_micros());
    let clients: Vec<_> = (0..12)
        .map(|_| tokio::spawn(closed_loop_client(h.store.clone(), (engine.starter(), engine.waker()), template.clone(), until)))
        .collect();
    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.expect("client"));
    }
    let queued = sent.iter().filter(|(_, at_once)| !at_once).count();
    assert!(queued > 0, "the burst found no room and went to the queue: {} runs, none queued", sent.len());
    let last_second: Vec<_> =
        sent.iter().filter(|(at, _)| until.saturating_duration_since(*at) < Duration::from_secs(1)).collect();
    let started = last_second.iter().filter(|(_, at_once)| *at_once).count();
    assert!(
        started * 10 >= last_second.len() * 9,
        "with the backlog drained, runs start at once again while the load lasts: {started} of {} in the last second ({queued} of {} queued in all)",
        last_second.len(),
        sent.len()
    );
    assert!(h.idle().await, "every slot is free again");
}

/// A run of a `concurrency` lane with room starts as it is stored (decision 0034); the next one,
/// its lane full, is stored queued (its reservation given back) and starts from the queue once
/// the first has ended, never beside it; a run of another lane starts at once meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_with_room_starts_its_run_at_once_and_a_full_one_queues_it() {
    let h = Harness::started(&rust_fn("lane", "sleep", "{concurrency: {limit: 1, key: input.k}}"), |_| {}, config());
    let starter = h.engine.as_ref().expect("engine").starter();
    let first = start_at_once(&h, "lane", json!({"k": "a", "ms": 300})).await.expect("a free slot, a free lane");
    let now = now_micros();
    let mut second = h.new_run("lane", json!({"k": "a", "ms": 1}), now);
    second.start = Some(starter.reserve("lane", now).expect("the node has free slots"));
    let second = match h.store.enqueue(second).await.expect("enqueue") {
        Enqueued::Created(run) => run,
        other => panic!("a new run is created, got {other:?}"),
    };
    assert_eq!((second.status, second.attempt), (RunStatus::Queued, 0), "its lane is full: {second:?}");
    starter.release();
    let other = start_at_once(&h, "lane", json!({"k": "b", "ms": 1})).await.expect("another lane has room");
    assert_eq!(h.wait_terminal(&other).await.status, RunStatus::Succeeded);
    let first = h.wait_terminal(&first).await;
    let second = h.wait_terminal(&second.run_id).await;
    assert_eq!((outcomes(&first), outcomes(&second)), (vec!["succeeded".to_string()], vec!["succeeded".to_string()]));
    assert!(
        second.started_at >= first.finished_at,
        "the lane's one place: {:?} started before {:?} ended",
        second.started_at,
        first.finished_at
    );
    assert!(h.idle().await, "every slot is free again");
}

/// A step's `send_event` (decision 0035): the run its event starts is stored started on this
/// node, its attempt begun the moment it is created (no claim), and runs here once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_a_steps_event_starts_begins_here_as_it_is_stored() {
    let register = |h: &mut plinth_engine::Handlers| {
        h.register("tell", |ctx: plinth_engine::HandlerContext, input: Value| async move {
            let ids = ctx.send_event("tell", json!({"name": "shop/told", "data": input})).await?;
            Ok(json!(ids))
        });
    };
    let functions = "  - name: teller\n    steps: true\n    handler:\n      rust: tell\n  \
        - name: told\n    handler:\n      rust: echo\n    triggers: [{event: shop/told}]\n  \
        - name: laned\n    handler:\n      rust: echo\n    triggers: [{event: shop/told}]\n    policy: {concurrency: 1}\n";
    let h = Harness::started(functions, register, config());
    let teller = h.enqueue("teller", json!({"k": 1})).await;
    let sent = h.wait_terminal(&teller).await;
    assert_eq!(sent.status, RunStatus::Succeeded, "{sent:#?}");
    let event_id = sent.output.as_ref().and_then(|o| o[0].as_str()).expect("the event's id").to_string();
    let event = h.store.event(&event_id).await.expect("read").expect("the event is stored");
    assert_eq!(event.run_ids.len(), 2, "told and laned: {event:?}");
    let mut runs = Vec::new();
    for id in &event.run_ids {
        runs.push(h.wait_terminal(id).await);
    }
    runs.sort_by(|a, b| a.function.cmp(&b.function));
    let (laned, told) = (&runs[0], &runs[1]);
    let data = told.output.as_ref().map(|o| o["data"].clone());
    assert_eq!((told.status, told.attempt, data), (RunStatus::Succeeded, 1, Some(json!({"k": 1}))), "{told:#?}");
    assert_eq!(told.started_at, Some(told.created_at), "stored started: its attempt began as it was stored: {told:#?}");
    assert_eq!(outcomes(told), ["succeeded"], "one attempt, never claimed");
    assert_eq!(laned.status, RunStatus::Succeeded, "{laned:#?}");
    assert!(laned.started_at > Some(laned.created_at), "a run with a lane is queued and claimed: {laned:#?}");
}
