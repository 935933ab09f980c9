//! A run's life beyond one attempt: cancel, rescue from a dead worker, graceful shutdown.

use crate::harness::{Harness, alive, code, config, outcomes, read_pid, rust_fn, sh_fn};
use plinth_core::RunStatus;
use plinth_core::timefmt::now_micros;
use plinth_engine::{EngineConfig, HandlerContext};
use plinth_store::{CancelOutcome, ClaimRequest, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const SLEEPER: &str = "echo $$ > sh.pid; exec sleep 30";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_command_stops_it_quickly() {
    // Why: a long lease puts the first heartbeat seconds away, so only the cancel listener
    // can make the run end as quickly as asserted below.
    let cfg = EngineConfig { lease: Duration::from_secs(15), ..config() };
    let h = Harness::started(&sh_fn("sleeper", SLEEPER, ""), |_| {}, cfg);
    let id = h.enqueue("sleeper", json!({})).await;
    h.wait_running(&id).await;
    let pid = read_pid(&h.path("sh.pid")).await;
    assert!(alive(pid));

    let asked = Instant::now();
    match h.store.cancel(&id, now_micros()).await.expect("cancel") {
        CancelOutcome::Requested(run) => assert!(run.cancel_requested),
        other => panic!("expected a cancel request for a running run, got {other:?}"),
    }
    let run = h.wait_terminal(&id).await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(3), "the cancel took {took:?}");
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert_eq!(code(&run), "PLINTH_024");
    assert_eq!(run.attempt, 1);
    assert_eq!(outcomes(&run), ["cancelled"]);
    assert!(!alive(pid), "the cancelled command {pid} is still running");
    assert!(h.idle().await, "an attempt stayed in flight");

    // A second cancel finds the run finished.
    let again = h.store.cancel(&id, now_micros()).await.expect("cancel");
    assert!(matches!(again, CancelOutcome::AlreadyTerminal(_)), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_held_by_a_dead_worker_is_rescued_and_retried() {
    let policy = "{retries: {max_attempts: 3, backoff: {initial: 10ms, max: 20ms}}}";
    let mut h = Harness::new(&rust_fn("job", "echo", policy));
    let id = h.enqueue("job", json!({"n": 7})).await;
    let now = now_micros();
    let claimed = h
        .store
        .claim(ClaimRequest {
            owner: "dead-node".into(),
            now,
            lease_until: now,
            wants: vec![("job".into(), 1)],
            limit: 1,
            limits: Default::default(),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.runs.len(), 1);
    assert_eq!((claimed.runs[0].run_id.as_str(), claimed.runs[0].attempt), (id.as_str(), 1));
    assert_eq!(h.get(&id).await.status, RunStatus::Running);

    h.start(|_| {}, EngineConfig { lease: Duration::from_millis(500), ..config() });
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"n": 7})));
    assert_eq!(run.attempt, 2);
    assert_eq!(outcomes(&run), ["lease_expired", "succeeded"]);
    let lost = run.attempts.as_ref().expect("attempts")[0].error.as_ref().expect("the lost attempt's error");
    assert_eq!(lost.code, "PLINTH_025");
    assert!(lost.message.contains("dead-node"), "{}", lost.message);
    let metrics = h.metrics.render();
    for (outcome, n) in [("retrying", 1), ("succeeded", 1)] {
        let line = format!("plinth_runs_total{{component=\"t\",function=\"job\",status=\"{outcome}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "the attempt taken back and the retry are counted, {line}:\n{metrics}");
    }
}

/// A claim whose answer was lost leaves runs leased to a live node that never started them;
/// the node finds them by its heartbeat and runs them in the attempt they were leased for,
/// before the rescuer would take them back as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_leased_to_this_node_by_a_lost_answer_starts_here_in_its_attempt() {
    let mut h = Harness::new(&rust_fn("job", "echo", "{retries: {max_attempts: 1}}"));
    let id = h.enqueue("job", json!({"n": 8})).await;
    // Why six seconds: the heartbeat (every two) takes the run in once its lease is older than
    // three, two seconds or more before the rescuer could take it back.
    let cfg = EngineConfig { lease: Duration::from_secs(6), owner: "this-node".into(), ..config() };
    let now = now_micros();
    let lease_until = now + i64::try_from(cfg.lease.as_micros()).expect("lease");
    let req = ClaimRequest {
        owner: cfg.owner.clone(),
        now,
        lease_until,
        wants: vec![("job".into(), 1)],
        limit: 1,
        limits: Default::default(),
    };
    assert_eq!(h.store.claim(req).await.expect("claim").runs.len(), 1, "the claim committed; its answer is dropped");

    h.start(|_| {}, cfg);
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"n": 8})));
    assert_eq!(run.attempt, 1);
    assert_eq!(outcomes(&run), ["succeeded"], "its one attempt was not lost");
    let metrics = h.metrics.render();
    assert!(!metrics.contains("LeaseExpired"), "no lease ran out:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_a_long_run_back_to_the_queue() {
    let mut h = Harness::started(&sh_fn("sleeper", SLEEPER, ""), |_| {}, config());
    let id = h.enqueue("sleeper", json!({})).await;
    h.wait_running(&id).await;
    let pid = read_pid(&h.path("sh.pid")).await;

    let engine = h.engine.take().expect("engine");
    assert_eq!(engine.in_flight(), 1);
    let asked = Instant::now();
    let report = engine.shutdown(Duration::from_millis(200)).await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    assert_eq!(report.released, 1, "{report:?}");
    assert_eq!(report.finished, 0, "{report:?}");
    assert!(!alive(pid), "the released command {pid} is still running");

    let run = h.get(&id).await;
    assert_eq!(run.status, RunStatus::Queued, "{run:#?}");
    assert_eq!(run.attempt, 0, "a released attempt is not counted");
    assert!(run.error.is_none() && run.finished_at.is_none(), "{run:#?}");
    assert_eq!(outcomes(&run), ["released"]);

    // The next worker gets it as attempt 1 again.
    let now = now_micros();
    let req = ClaimRequest {
        owner: "next".into(),
        now,
        lease_until: now + 1_000_000,
        wants: vec![("sleeper".into(), 1)],
        limit: 1,
        limits: Default::default(),
    };
    let claimed = h.store.claim(req).await.expect("claim");
    assert_eq!(claimed.runs.iter().map(|r| (r.run_id.clone(), r.attempt)).collect::<Vec<_>>(), [(id, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_short_runs_finish() {
    // The handler finishes only when the test lets it, after the shutdown has begun.
    let gate = Arc::new(Notify::new());
    let opened = gate.clone();
    let mut h = Harness::started(
        &rust_fn("gated", "gated", ""),
        move |hs| {
            hs.register("gated", move |_ctx: HandlerContext, _input: Value| {
                let opened = opened.clone();
                async move {
                    opened.notified().await;
                    Ok(json!("finished"))
                }
            });
        },
        config(),
    );
    let id = h.enqueue("gated", json!({})).await;
    h.wait_running(&id).await;
    assert!(h.in_flight_becomes(1).await, "the attempt never entered the in-flight table");
    let engine = h.engine.take().expect("engine");
    let shutdown = tokio::spawn(engine.shutdown(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!shutdown.is_finished(), "the shutdown did not wait for the running attempt");
    gate.notify_one();
    let report = tokio::time::timeout(Duration::from_secs(5), shutdown).await.expect("shutdown in time").expect("join");
    assert_eq!(report.released, 0, "{report:?}");
    assert_eq!(report.finished, 1, "{report:?}");
    let run = h.get(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!("finished")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_recorded_by_another_node_is_honoured_at_the_next_heartbeat() {
    // Why: a second store on the same file is another node: its cancel reaches this engine
    // only through the database (the heartbeat), never through this store's notifier.
    let cfg = EngineConfig { lease: Duration::from_secs(1), ..config() };
    let h = Harness::started(&sh_fn("sleeper", SLEEPER, ""), |_| {}, cfg);
    let other = plinth_store::sqlite::SqliteStore::open(&h.path("db"), plinth_store::sqlite::Synchronous::Normal)
        .expect("a second node opens the same database");
    let id = h.enqueue("sleeper", json!({})).await;
    h.wait_running(&id).await;
    let pid = read_pid(&h.path("sh.pid")).await;
    match other.cancel(&id, now_micros()).await.expect("cancel from the other node") {
        CancelOutcome::Requested(run) => assert!(run.cancel_requested),
        outcome => panic!("expected a cancel request, got {outcome:?}"),
    }
    let run = h.wait_terminal(&id).await;
    assert_eq!((run.status, code(&run)), (RunStatus::Cancelled, "PLINTH_024"), "{run:#?}");
    assert!(!alive(pid), "the command {pid} of the cancelled run is still running");
    let seen = other.get(&id, false).await.expect("get").expect("run");
    assert_eq!(seen.status, RunStatus::Cancelled, "the other node sees the end too");
    match other.cancel(&id, now_micros()).await.expect("cancel") {
        CancelOutcome::AlreadyTerminal(_) => {}
        outcome => panic!("a second cancel of a finished run is a conflict, got {outcome:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_another_node_for_an_unknown_run_changes_nothing() {
    let h = Harness::started(&sh_fn("sleeper", SLEEPER, ""), |_| {}, config());
    let other = plinth_store::sqlite::SqliteStore::open(&h.path("db"), plinth_store::sqlite::Synchronous::Normal).expect("open");
    let outcome = other.cancel(&plinth_core::ids::new_run_id(), now_micros()).await.expect("cancel");
    assert!(matches!(outcome, CancelOutcome::NotFound), "{outcome:?}");
    assert!(h.idle().await);
}
