//! Cases for `timeouts` (the expire sweep) and `cancel_on` (events that cancel runs).

use super::{SEC, claim, claim_one, enqueue, finish, get, new_run};
use crate::{NewEvent, Store};
use plinth_core::flow::{CancelCond, CancelMatch, Expiry};
use plinth_core::steps::{Step, StepStatus, Suspension, Wait};
use plinth_core::timefmt::now_micros;
use plinth_core::{Event, Finish, NewRun, RunStatus, Trigger};
use serde_json::json;

fn expiring(function: &str, at: i64, start: Option<i64>, finish: Option<i64>) -> NewRun {
    let expiry = Expiry { start_by: start.map(|s| at + s), finish_by: finish.map(|f| at + f), cancel_on: false };
    NewRun { expiry, ..new_run(function, at) }
}

fn code(run: &plinth_core::Run) -> Option<String> {
    run.error.as_ref().map(|e| e.code.clone())
}

fn sleeping(at: i64) -> Finish {
    let mut step = Step::reached("nap", "sleep", 0, at);
    step.status = StepStatus::Waiting;
    step.wait = Some(Wait::Sleep { until: at + 3600 * SEC });
    Finish::Suspended(Box::new(Suspension { step, child: None }))
}

/// A queued run never started by its `start` deadline ends with PLINTH_046; any unfinished
/// run past its `finish` deadline ends with PLINTH_047 (a running one when its worker stops
/// it, or when its lease is taken back); runs without deadlines, or not yet past them, stay.
pub async fn timeouts_cancel_runs_past_their_deadlines(store: &dyn Store) {
    let t0 = now_micros();
    let unstarted = enqueue(store, expiring("slow", t0, Some(10 * SEC), None)).await.run_id;
    let plain = enqueue(store, new_run("slow", t0)).await.run_id;
    let started = enqueue(store, expiring("busy", t0, Some(10 * SEC), Some(60 * SEC))).await.run_id;
    let taken = claim_one(store, "w1", "busy", t0).await;
    assert_eq!(taken.run_id, started);
    assert!(store.expire(t0 + 9 * SEC).await.expect("expire").is_empty(), "nothing is past its deadline yet");
    let expired = store.expire(t0 + 10 * SEC).await.expect("expire");
    assert_eq!(expired.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(), [unstarted.as_str()], "{expired:?}");
    assert!(!expired[0].stopping && expired[0].error.code == "PLINTH_046", "{expired:?}");
    let gone = get(store, &unstarted).await;
    assert_eq!((gone.status, code(&gone).as_deref()), (RunStatus::Cancelled, Some("PLINTH_046")));
    assert_eq!(gone.finished_at, Some(t0 + 10 * SEC));
    assert_eq!(get(store, &plain).await.status, RunStatus::Queued, "a run without timeouts stays");
    assert!(store.expire(t0 + 11 * SEC).await.expect("expire").is_empty(), "a started run is past `start` for good");

    let expired = store.expire(t0 + 60 * SEC).await.expect("expire");
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert!(expired[0].stopping && expired[0].error.code == "PLINTH_047", "a running run is asked to stop: {expired:?}");
    assert!(get(store, &started).await.cancel_requested);
    assert!(store.expire(t0 + 61 * SEC).await.expect("expire").is_empty(), "asked once");
    let cancelled = Finish::Cancelled(crate::cancelled_error());
    assert!(finish(store, &started, "w1", taken.attempt, cancelled, t0 + 62 * SEC).await);
    let ended = get(store, &started).await;
    assert_eq!((ended.status, code(&ended).as_deref()), (RunStatus::Cancelled, Some("PLINTH_047")), "{ended:?}");

    let waiting = enqueue(store, expiring("nap", t0, None, Some(120 * SEC))).await.run_id;
    let lost = enqueue(store, expiring("lost", t0, None, Some(120 * SEC))).await.run_id;
    let nap = claim_one(store, "w1", "nap", t0).await;
    assert!(finish(store, &waiting, "w1", nap.attempt, sleeping(t0), t0 + SEC).await);
    assert_eq!(get(store, &waiting).await.status, RunStatus::Waiting);
    claim_one(store, "w2", "lost", t0).await;
    let expired = store.expire(t0 + 120 * SEC).await.expect("expire");
    assert_eq!(expired.len(), 2, "{expired:?}");
    let slept = get(store, &waiting).await;
    assert_eq!((slept.status, code(&slept).as_deref()), (RunStatus::Cancelled, Some("PLINTH_047")), "a waiting run ends");
    let rescued = store.rescue(t0 + 3600 * SEC).await.expect("rescue");
    assert!(rescued.iter().any(|r| r.run_id == lost && r.status == RunStatus::Cancelled), "{rescued:?}");
    let dead = get(store, &lost).await;
    assert_eq!(code(&dead).as_deref(), Some("PLINTH_047"), "a dead worker's run ends with the timeout's code");
}

fn event(id: &str, order: &str, at: i64) -> Event {
    Event { id: id.into(), name: "shop/order.cancelled".into(), data: json!({"order": order}), ts: at / 1000, received_at: at }
}

fn listening(function: &str, order: &str, at: i64) -> NewRun {
    let expiry = Expiry { cancel_on: true, ..Expiry::default() };
    NewRun { input: json!({"order": order}), expiry, ..new_run(function, at) }
}

fn rule(function: &str, cond: Option<&str>, since: i64) -> CancelMatch {
    let cond = cond.map(|c| CancelCond::compile(c).expect("valid CEL"));
    CancelMatch { function: function.into(), rule: 0, cond, since }
}

/// An event cancels the unfinished runs its `cancel_on` rules match: created before it and
/// within the rule's reach, `if` true (one that fails is no match); a running one is asked to
/// stop. The runs it starts itself are not touched.
pub async fn cancel_on_events_cancel_the_runs_they_match(store: &dyn Store) {
    let t0 = now_micros();
    let target = enqueue(store, listening("ship", "o-1", t0)).await.run_id;
    let other_order = enqueue(store, listening("ship", "o-2", t0)).await.run_id;
    let too_old = enqueue(store, listening("ship", "o-1", t0 - 3600 * SEC)).await.run_id;
    let deaf = enqueue(store, NewRun { input: json!({"order": "o-1"}), ..new_run("ship", t0) }).await.run_id;
    let broken = enqueue(store, NewRun { input: json!({"no_order": 1}), ..listening("ship", "", t0) }).await.run_id;
    let running = enqueue(store, listening("pack", "o-1", t0)).await.run_id;
    let taken = claim(store, "w1", t0, &[("pack", 1)]).await.runs;
    assert_eq!(taken.len(), 1);

    let e = event("e-cancel", "o-1", t0 + SEC);
    let cond = Some("event.data.order == run.input.order");
    let born = NewRun {
        input: json!({"order": "o-1"}),
        trigger: Trigger::Event { event_id: e.id.clone() },
        ..listening("ship", "o-1", t0 + SEC)
    };
    let planned = NewEvent {
        event: e.clone(),
        runs: vec![born.clone()],
        skipped: vec![],
        cancels: vec![rule("ship", cond, t0 - 60 * SEC), rule("pack", cond, t0 - 60 * SEC)],
    };
    store.ingest(vec![planned], 0, None).await.expect("ingest");
    let cancelled = get(store, &target).await;
    assert_eq!((cancelled.status, code(&cancelled).as_deref()), (RunStatus::Cancelled, Some("PLINTH_048")));
    assert_eq!(cancelled.error.as_ref().and_then(|e| e.event_id.as_deref()), Some("e-cancel"), "{cancelled:?}");
    for (id, why) in [
        (&other_order, "its `if` is false"),
        (&too_old, "created before the rule's reach"),
        (&deaf, "its function had no cancel_on when it was created"),
        (&broken, "its `if` failed"),
        (&born.run_id, "the event started it"),
    ] {
        assert_eq!(get(store, id).await.status, RunStatus::Queued, "not cancelled: {why}");
    }
    let asked = get(store, &running).await;
    assert_eq!((asked.status, asked.cancel_requested), (RunStatus::Running, true), "a running run is asked to stop");
    let stop = Finish::Cancelled(crate::cancelled_error());
    assert!(finish(store, &running, "w1", taken[0].attempt, stop, t0 + 2 * SEC).await);
    let stopped = get(store, &running).await;
    assert_eq!((stopped.status, code(&stopped).as_deref()), (RunStatus::Cancelled, Some("PLINTH_048")), "{stopped:?}");
    let user = store.cancel(&other_order, t0 + 3 * SEC).await.expect("cancel");
    assert!(matches!(user, crate::CancelOutcome::Cancelled(ref r) if code(r).as_deref() == Some("PLINTH_024")), "{user:?}");
}
