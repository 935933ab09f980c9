//! Cases for step functions: the memo, suspensions and the three ways a waiting run wakes
//! (its timer, a matching event, its invoked run's end), cancel of a waiting run, reruns.

use super::{SEC, claim, claim_one, finish, get, new_run};
use crate::{CancelOutcome, NewEvent, Store};
use plinth_core::steps::{Step, StepError, StepStatus, Suspension, Wait};
use plinth_core::{Event, Finish, RunStatus, Trigger};
use serde_json::{Value, json};

fn suspended(step: Step, wait: Wait) -> Finish {
    let mut step = step;
    step.status = if matches!(wait, Wait::Retry { .. }) { StepStatus::Retrying } else { StepStatus::Waiting };
    step.wait = Some(wait);
    Finish::Suspended(Box::new(Suspension { step, child: None }))
}

async fn steps(store: &dyn Store, run_id: &str) -> Vec<Step> {
    match store.steps(run_id).await {
        Ok(Some(s)) => s,
        other => panic!("steps of {run_id} should read back, got {other:?}"),
    }
}

fn event(id: &str, order: &str, at: i64) -> Event {
    Event { id: id.into(), name: "shop/order.approved".into(), data: json!({"order": order}), ts: at / 1000, received_at: at }
}

async fn ingest(store: &dyn Store, e: Event) {
    let planned = NewEvent { event: e, runs: vec![], skipped: vec![], cancels: vec![] };
    if let Err(e) = store.ingest(vec![planned], 0, None).await {
        panic!("ingest failed: {e}");
    }
}

/// A claimed run of `function` with `input`, at `t0`.
async fn running(store: &dyn Store, function: &str, input: Value, t0: i64) -> plinth_core::Run {
    let run = plinth_core::NewRun { input, ..new_run(function, t0) };
    super::enqueue(store, run).await;
    claim_one(store, "w1", function, t0).await
}

/// Steps are stored by a lease holder only, read back in the order first reached, and replaced
/// by id.
pub async fn steps_are_fenced_and_read_in_order(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let run = running(store, "flow", json!({}), t0).await;
    let a = Step::reached("zeta", "step", 0, t0).succeed(json!(1), t0 + 1);
    let b = Step::reached("alpha", "step", 1, t0);
    assert!(!store.save_steps(&run.run_id, "intruder", run.attempt, vec![a.clone()]).await.expect("save"), "another owner");
    assert!(!store.save_steps(&run.run_id, "w1", run.attempt + 1, vec![a.clone()]).await.expect("save"), "another attempt");
    assert!(steps(store, &run.run_id).await.is_empty());
    assert!(store.save_steps(&run.run_id, "w1", run.attempt, vec![a.clone(), b.clone()]).await.expect("save"));
    let b_done = b.clone().fail(StepError { message: "no".into(), retryable: false }, t0 + 2);
    assert!(store.save_steps(&run.run_id, "w1", run.attempt, vec![b_done.clone()]).await.expect("save"));
    let read = steps(store, &run.run_id).await;
    assert_eq!(read.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["zeta", "alpha"]);
    assert_eq!(read[0].output, Some(json!(1)));
    assert_eq!((read[1].status, read[1].error.clone()), (StepStatus::Failed, b_done.error));
    assert!(store.steps("01ARZ3NDEKTSV4RRFFQ69G5FAV").await.expect("read").is_none(), "no such run");
}

/// A sleep makes the run `waiting` with the attempt not counted; a claim before the sleep ends
/// takes nothing (and says when it ends); one after takes the run again.
pub async fn a_sleep_waits_then_its_timer_wakes_the_run(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let run = running(store, "flow", json!({}), t0).await;
    let nap = Step::reached("nap", "sleep", 0, t0);
    let sleep = suspended(nap, Wait::Sleep { until: t0 + 10 * SEC });
    assert!(!finish(store, &run.run_id, "intruder", run.attempt, sleep.clone(), t0).await, "fenced");
    assert!(finish(store, &run.run_id, "w1", run.attempt, sleep, t0).await);
    let waiting = get(store, &run.run_id).await;
    assert_eq!((waiting.status, waiting.attempt), (RunStatus::Waiting, 0));
    let w = waiting.waiting_for.expect("waiting_for");
    assert_eq!((w.step.as_str(), w.kind.as_str()), ("nap", "sleep"));
    let early = claim(store, "w2", t0 + 5 * SEC, &[("flow", 5)]).await;
    assert!(early.runs.is_empty(), "asleep: {:?}", early.runs);
    assert_eq!(early.next_due, Some(t0 + 10 * SEC), "the claim says when the sleep ends");
    let again = claim_one(store, "w2", "flow", t0 + 11 * SEC).await;
    assert_eq!((again.run_id.as_str(), again.attempt), (run.run_id.as_str(), 1), "the same attempt number");
    assert!(again.waiting_for.is_none());
}

/// A due sleep takes its place in the queue's order at a claim (priority, then due time) and
/// is leased as a woken run would be; the due sleeps a claim does not take (no slot here, a
/// function not asked for) are queued for any node; a sleep not yet due stays waiting.
pub async fn due_sleeps_keep_the_queues_order(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let mut sleepers = Vec::new();
    for (function, until) in [("flow", 10), ("flow", 12), ("other", 10), ("flow", 100)] {
        let run = running(store, function, json!({}), t0).await;
        let nap = suspended(Step::reached("nap", "sleep", 0, t0), Wait::Sleep { until: t0 + until * SEC });
        assert!(finish(store, &run.run_id, "w1", run.attempt, nap, t0).await);
        sleepers.push(run.run_id);
    }
    let urgent = super::enqueue(store, plinth_core::NewRun { priority: 5, ..new_run("flow", t0) }).await.run_id;
    let later = super::enqueue_at(store, "flow", t0 + 20 * SEC).await.run_id;
    let now = t0 + 30 * SEC;

    let two = claim(store, "w2", now, &[("flow", 2)]).await;
    assert_eq!(two.runs.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>(), [urgent.clone(), sleepers[0].clone()]);
    let woken = &two.runs[1];
    assert_eq!((woken.status, woken.attempt, woken.started_at), (RunStatus::Running, 1, Some(now)), "{woken:?}");
    assert!(woken.waiting_for.is_none() && woken.next_attempt_at.is_none(), "{woken:?}");
    assert_eq!(get(store, &woken.run_id).await, *woken, "stored as returned");
    for id in [&sleepers[1], &sleepers[2]] {
        let left = get(store, id).await;
        assert!(left.status == RunStatus::Queued && left.waiting_for.is_none(), "a due sleep not taken is queued: {left:?}");
    }
    assert_eq!(get(store, &sleepers[3]).await.status, RunStatus::Waiting, "not due yet");

    let none = claim(store, "w3", now, &[("flow", 0)]).await;
    assert!(none.runs.is_empty(), "zero wanted takes nothing: {none:?}");
    let rest = claim(store, "w3", now, &[("flow", 5)]).await;
    let rest_ids = super::sorted(rest.runs.iter().map(|r| r.run_id.clone()).collect());
    assert_eq!(rest_ids, super::sorted(vec![sleepers[1].clone(), later]), "then the other due sleep, and the queued run");
    let other = claim(store, "w3", now, &[("other", 5)]).await;
    assert_eq!(other.runs.iter().map(|r| (r.run_id.clone(), r.attempt)).collect::<Vec<_>>(), [(sleepers[2].clone(), 1)]);
}

/// An event wakes the runs whose wait it matches (condition over `event` and `run`), only when
/// received after the wait began; the step holds the event.
pub async fn an_event_wakes_the_waits_it_matches(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let one = running(store, "flow", json!({"order": "o-1"}), t0).await;
    let two = running(store, "flow", json!({"order": "o-2"}), t0).await;
    let cond = Some("event.data.order == run.input.order".to_string());
    let wait = Wait::Event { event: "shop/order.approved".into(), cond, since: t0 + SEC, timeout_at: Some(t0 + 3600 * SEC) };
    ingest(store, event("early", "o-1", t0 + SEC / 2)).await;
    for run in [&one, &two] {
        let f = suspended(Step::reached("approve", "wait_for_event", 0, t0), wait.clone());
        assert!(finish(store, &run.run_id, "w1", run.attempt, f, t0 + SEC).await);
    }
    assert_eq!(get(store, &one.run_id).await.status, RunStatus::Waiting, "an event from before the wait does not count");
    ingest(store, event("other", "o-9", t0 + 2 * SEC)).await;
    assert_eq!(get(store, &one.run_id).await.status, RunStatus::Waiting, "not its order");
    ingest(store, event("match", "o-1", t0 + 3 * SEC)).await;
    let woken = get(store, &one.run_id).await;
    assert_eq!((woken.status, woken.waiting_for), (RunStatus::Queued, None));
    let step = steps(store, &one.run_id).await.remove(0);
    assert_eq!(step.status, StepStatus::Succeeded);
    assert_eq!(step.output.as_ref().map(|o| o["id"].clone()), Some(json!("match")));
    assert_eq!(get(store, &two.run_id).await.status, RunStatus::Waiting, "the other order still waits");
}

/// An event that arrived between the op and its recording ends the wait at once.
pub async fn an_event_already_stored_ends_a_new_wait(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let run = running(store, "flow", json!({"order": "o-1"}), t0).await;
    ingest(store, event("racer", "o-1", t0 + 2 * SEC)).await;
    let wait = Wait::Event { event: "shop/order.approved".into(), cond: None, since: t0 + SEC, timeout_at: None };
    let f = suspended(Step::reached("approve", "wait_for_event", 0, t0), wait);
    assert!(finish(store, &run.run_id, "w1", run.attempt, f, t0 + 3 * SEC).await);
    assert_eq!(get(store, &run.run_id).await.status, RunStatus::Queued);
    assert_eq!(steps(store, &run.run_id).await[0].output.as_ref().map(|o| o["id"].clone()), Some(json!("racer")));
}

/// An invoke stores its child with the suspension; the child's end gives the parent's step its
/// output (or its error) and queues the parent.
pub async fn an_invoked_run_wakes_its_parent(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    for (child_end, ok) in [(Finish::Succeeded(json!({"sum": 3})), true), (Finish::Failed(crate::cancelled_error()), false)] {
        let parent = running(store, "parent", json!({}), t0).await;
        let child =
            plinth_core::NewRun { trigger: Trigger::Invoke { parent_run_id: parent.run_id.clone() }, ..new_run("child", t0) };
        let mut step = Step::reached("add", "invoke", 0, t0);
        step.status = StepStatus::Waiting;
        step.wait = Some(Wait::Run { run_id: child.run_id.clone(), timeout_at: None });
        let f = Finish::Suspended(Box::new(Suspension { step, child: Some(child.clone()) }));
        assert!(finish(store, &parent.run_id, "w1", parent.attempt, f, t0).await);
        let w = get(store, &parent.run_id).await.waiting_for.expect("waiting");
        assert_eq!((w.kind.as_str(), w.run_id.as_deref()), ("run", Some(child.run_id.as_str())));
        let c = claim_one(store, "w1", "child", t0).await;
        assert_eq!(c.trigger, Trigger::Invoke { parent_run_id: parent.run_id.clone() });
        assert!(finish(store, &c.run_id, "w1", c.attempt, child_end, t0 + SEC).await);
        let woken = get(store, &parent.run_id).await;
        assert_eq!(woken.status, RunStatus::Queued, "the child's end wakes the parent");
        let s = steps(store, &parent.run_id).await.remove(0);
        if ok {
            assert_eq!((s.status, s.output), (StepStatus::Succeeded, Some(json!({"sum": 3}))));
        } else {
            assert_eq!(s.status, StepStatus::Failed);
            assert!(s.error.expect("error").message.contains(&c.run_id));
        }
        claim_one(store, "w1", "parent", t0 + 2 * SEC).await;
    }
}

/// Cancelling a waiting run ends it at once, with the run it invoked and still waits for.
pub async fn cancel_of_a_waiting_run_cancels_its_child(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let parent = running(store, "parent", json!({}), t0).await;
    let child = plinth_core::NewRun { trigger: Trigger::Invoke { parent_run_id: parent.run_id.clone() }, ..new_run("child", t0) };
    let mut step = Step::reached("add", "invoke", 0, t0);
    step.status = StepStatus::Waiting;
    step.wait = Some(Wait::Run { run_id: child.run_id.clone(), timeout_at: None });
    let f = Finish::Suspended(Box::new(Suspension { step, child: Some(child.clone()) }));
    assert!(finish(store, &parent.run_id, "w1", parent.attempt, f, t0).await);
    let mut ended = store.notifier().wait_terminal(&parent.run_id);
    match store.cancel(&parent.run_id, t0 + SEC).await.expect("cancel") {
        CancelOutcome::Cancelled(r) => assert_eq!(r.status, RunStatus::Cancelled),
        other => panic!("a waiting run is cancelled at once, got {other:?}"),
    }
    super::fires(&mut ended, "cancel of a waiting run").await;
    assert_eq!(get(store, &child.run_id).await.status, RunStatus::Cancelled, "its child too");
    assert_eq!(steps(store, &parent.run_id).await[0].status, StepStatus::Failed, "no step shows waiting");
    assert!(claim(store, "w1", t0 + 2 * SEC, &[("parent", 5), ("child", 5)]).await.runs.is_empty());
}

/// A step's retry puts the run back in the queue, due at the retry's time, the attempt not
/// counted; a rerun starts with the steps it keeps.
pub async fn a_step_retry_requeues_and_a_rerun_keeps_steps(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let run = running(store, "flow", json!({}), t0).await;
    let mut step = Step::reached("charge", "step", 0, t0);
    step.attempts = 1;
    let f = suspended(step, Wait::Retry { at: t0 + 5 * SEC });
    assert!(finish(store, &run.run_id, "w1", run.attempt, f, t0).await);
    let queued = get(store, &run.run_id).await;
    assert_eq!((queued.status, queued.attempt, queued.waiting_for), (RunStatus::Queued, 0, None));
    assert!(claim(store, "w1", t0 + 4 * SEC, &[("flow", 1)]).await.runs.is_empty());
    assert_eq!(steps(store, &run.run_id).await[0].status, StepStatus::Retrying);
    claim_one(store, "w1", "flow", t0 + 5 * SEC).await;
    let kept = vec![Step::reached("reserve", "step", 0, t0).succeed(json!("ok"), t0)];
    let rerun = plinth_core::NewRun { trigger: Trigger::Rerun { of: run.run_id.clone() }, ..new_run("flow", t0) };
    let stored = store.enqueue_with_steps(rerun.clone(), kept.clone()).await.expect("rerun");
    assert_eq!((stored.status, stored.trigger.kind()), (RunStatus::Queued, "rerun"));
    assert_eq!(steps(store, &rerun.run_id).await, kept);
}

/// Waits whose condition compares a field of the event with one of the run's input are
/// narrowed in the store, with CEL's answer unchanged: a string never equals a number, an
/// event without the field wakes none of them, a wait without a condition or with another form
/// of condition still wakes.
pub async fn keyed_waits_wake_only_their_key(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let keyed = Some("event.data.order == run.input.order".to_string());
    let reversed = Some("run.input.order == event.data.order".to_string());
    let other_form = Some("event.data.order == run.input.order && event.data.ok == true".to_string());
    let cases = [
        ("text", json!({"order": "7"}), keyed.clone()),
        ("int", json!({"order": 7}), reversed),
        ("absent", json!({}), keyed),
        ("any", json!({"order": "zz"}), None),
        ("other_form", json!({"order": 7}), other_form),
    ];
    let mut ids = std::collections::HashMap::new();
    for (name, input, cond) in cases {
        let run = running(store, "flow", input, t0).await;
        let wait = Wait::Event { event: "shop/order.approved".into(), cond, since: t0, timeout_at: None };
        let f = suspended(Step::reached("approve", "wait_for_event", 0, t0), wait);
        assert!(finish(store, &run.run_id, "w1", run.attempt, f, t0).await);
        ids.insert(name, run.run_id);
    }
    let status = |name: &'static str| {
        let id = ids[name].clone();
        async move { get(store, &id).await.status }
    };
    let approved = |id: &str, data: Value, at: i64| Event {
        id: id.into(),
        name: "shop/order.approved".into(),
        data,
        ts: at / 1000,
        received_at: at,
    };
    ingest(store, approved("no-order", json!({"total": 1}), t0 + SEC)).await;
    assert_eq!(status("any").await, RunStatus::Queued, "a wait without a condition takes any event of its name");
    for name in ["text", "int", "absent", "other_form"] {
        assert_eq!(status(name).await, RunStatus::Waiting, "{name}: the event lacks `order`");
    }
    ingest(store, approved("int-7", json!({"order": 7}), t0 + 2 * SEC)).await;
    assert_eq!(status("int").await, RunStatus::Queued, "7 == 7, either way round");
    assert_eq!(status("text").await, RunStatus::Waiting, "\"7\" is not 7");
    assert_eq!(status("other_form").await, RunStatus::Waiting, "`ok` is missing: the whole condition decides");
    ingest(store, approved("text-7", json!({"order": "7", "ok": true}), t0 + 3 * SEC)).await;
    assert_eq!(status("text").await, RunStatus::Queued);
    assert_eq!(status("other_form").await, RunStatus::Waiting, "its order is the number 7");
    ingest(store, approved("int-7-ok", json!({"order": 7, "ok": true}), t0 + 4 * SEC)).await;
    assert_eq!(status("other_form").await, RunStatus::Queued);
    assert_eq!(status("absent").await, RunStatus::Waiting, "its input has no order: nothing matches it");
    let step = steps(store, &ids["text"]).await.remove(0);
    assert_eq!(step.output.as_ref().map(|o| o["id"].clone()), Some(json!("text-7")));
}

/// An event that ends a wait wakes this node's dispatcher at once (the run is due now); one
/// that ends none does not.
pub async fn an_event_ending_a_wait_wakes_the_dispatcher(store: &dyn Store) {
    let t0 = plinth_core::timefmt::now_micros();
    let run = running(store, "flow", json!({"order": "o-1"}), t0).await;
    let cond = Some("event.data.order == run.input.order".to_string());
    let wait = Wait::Event { event: "shop/order.approved".into(), cond, since: t0, timeout_at: None };
    let f = suspended(Step::reached("approve", "wait_for_event", 0, t0), wait);
    assert!(finish(store, &run.run_id, "w1", run.attempt, f, t0).await);
    let work = store.notifier().work();
    // What came before may have left a wake-up; take it.
    while tokio::time::timeout(std::time::Duration::from_millis(20), work.notified()).await.is_ok() {}
    ingest(store, event("other", "o-9", t0 + SEC)).await;
    assert!(tokio::time::timeout(super::QUIET, work.notified()).await.is_err(), "no wait ended: no wake-up");
    ingest(store, event("match", "o-1", t0 + 2 * SEC)).await;
    assert!(
        tokio::time::timeout(super::WAIT, work.notified()).await.is_ok(),
        "the woken run is due now: the dispatcher hears it"
    );
    assert_eq!(get(store, &run.run_id).await.status, RunStatus::Queued);
}

/// First half of [`a_wait_stored_before_its_match_value_wakes`]: two runs wait for the event
/// about their order; the backend then forgets the first one's `wait_match`, as a wait stored
/// before that column existed has none. Their ids.
pub async fn waits_before_their_match_value(store: &dyn Store) -> (String, String) {
    let t0 = plinth_core::timefmt::now_micros();
    let mut ids = Vec::new();
    for order in ["o-old", "o-new"] {
        let run = running(store, "flow", json!({"order": order}), t0).await;
        let cond = Some("event.data.order == run.input.order".to_string());
        let wait = Wait::Event { event: "shop/order.approved".into(), cond, since: t0, timeout_at: None };
        let f = suspended(Step::reached("approve", "wait_for_event", 0, t0), wait);
        assert!(finish(store, &run.run_id, "w1", run.attempt, f, t0).await);
        ids.push(run.run_id);
    }
    (ids.remove(0), ids.remove(0))
}

/// Second half: the event about the old wait's order still ends it (the store looks at waits
/// without a match value too, and CEL decides), and leaves the other wait alone.
pub async fn a_wait_stored_before_its_match_value_wakes(store: &dyn Store, old: &str, new: &str) {
    let t0 = plinth_core::timefmt::now_micros();
    ingest(store, event("about-old", "o-old", t0 + SEC)).await;
    assert_eq!(get(store, old).await.status, RunStatus::Queued, "the old wait is found without its match value");
    assert_eq!(get(store, new).await.status, RunStatus::Waiting, "CEL still decides: another order");
    ingest(store, event("about-new", "o-new", t0 + 2 * SEC)).await;
    assert_eq!(get(store, new).await.status, RunStatus::Queued);
}
