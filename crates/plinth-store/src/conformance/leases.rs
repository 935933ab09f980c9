//! Heartbeats, cancels, wake-ups and the rescue of lost leases.

use super::{LEASE, SEC, WAIT, claim, claim_one, enqueue, enqueue_at, finish, fires, get, new_run, sorted, stays_quiet};
use crate::{CancelOutcome, Heartbeat, Rescued, Store, cancelled_error};
use plinth_core::ids::new_run_id;
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, Finish, NewRun, RunError, RunStatus};
use serde_json::json;

/// A heartbeat extends the leases its owner holds, and reports lost and cancelled runs.
pub async fn heartbeat_extends_leases_and_reports(store: &dyn Store) {
    let t0 = now_micros();
    let a = enqueue_at(store, "echo", t0).await.run_id;
    let b = enqueue_at(store, "echo", t0).await.run_id;
    let claimed = claim(store, "w1", t0, &[("echo", 2)]).await;
    assert_eq!(claimed.runs.len(), 2, "both runs claimed: {claimed:?}");
    let both = vec![(a.clone(), 1), (b.clone(), 1)];

    let hb = store.heartbeat("w1", both.clone(), t0 + 120 * SEC).await.expect("heartbeat");
    assert_eq!(hb, Heartbeat::default(), "the owner keeps both leases, no cancel asked");
    let rescued = store.rescue(t0 + LEASE + 30 * SEC).await.expect("rescue");
    assert!(rescued.is_empty(), "extended leases must not expire at their first deadline: {rescued:?}");

    let requested = store.cancel(&b, t0 + SEC).await.expect("cancel");
    assert!(matches!(requested, CancelOutcome::Requested(_)), "cancel of a running run: {requested:?}");
    let hb = store.heartbeat("w1", both.clone(), t0 + 120 * SEC).await.expect("heartbeat");
    assert_eq!(hb, Heartbeat { lost: vec![], cancel: vec![b.clone()] }, "the cancel is reported, the lease kept");

    let lost = |ids: &[&String]| Heartbeat { lost: ids.iter().map(|s| (*s).clone()).collect(), cancel: vec![] };
    let hb = store.heartbeat("w2", vec![(a.clone(), 1)], t0 + 900 * SEC).await.expect("heartbeat");
    assert_eq!(hb, lost(&[&a]), "another owner does not hold the lease");
    let hb = store.heartbeat("w1", vec![(a.clone(), 2)], t0 + 900 * SEC).await.expect("heartbeat");
    assert_eq!(hb, lost(&[&a]), "a lease is for one attempt");
    let ghost = new_run_id();
    let hb = store.heartbeat("w1", vec![(ghost.clone(), 1)], t0 + 900 * SEC).await.expect("heartbeat");
    assert_eq!(hb, lost(&[&ghost]), "an unknown run is lost");
    let hb = store.heartbeat("w1", vec![], t0 + 900 * SEC).await.expect("heartbeat");
    assert_eq!(hb, Heartbeat::default(), "an empty heartbeat reports nothing");

    assert!(finish(store, &a, "w1", 1, Finish::Succeeded(json!("ok")), t0 + 2 * SEC).await);
    let hb = store.heartbeat("w1", both, t0 + 180 * SEC).await.expect("heartbeat");
    assert_eq!(hb, Heartbeat { lost: vec![a.clone()], cancel: vec![b.clone()] }, "a finished run is no longer held");

    let rescued = store.rescue(t0 + 121 * SEC).await.expect("rescue");
    assert!(rescued.is_empty(), "the foreign heartbeats did not move b's lease, the last one did: {rescued:?}");
    let rescued = store.rescue(t0 + 181 * SEC).await.expect("rescue");
    assert_eq!(rescued.iter().map(|r| (r.run_id.clone(), r.status)).collect::<Vec<_>>(), vec![(b.clone(), RunStatus::Cancelled)]);
    assert_eq!(get(store, &a).await.status, RunStatus::Succeeded, "rescue leaves finished runs alone");
}

/// A heartbeat of more runs than one statement renews on PostgreSQL (600, past two chunks of
/// 256) renews every one, and reports the lost and cancelled ones wherever they sit in it.
pub async fn a_heartbeat_of_many_runs_renews_each_and_reports_each(store: &dyn Store) {
    let t0 = now_micros();
    let mut ids = Vec::new();
    for _ in 0..600 {
        ids.push(enqueue_at(store, "echo", t0).await.run_id);
    }
    assert_eq!(claim(store, "w1", t0, &[("echo", 600)]).await.runs.len(), 600, "all claimed");
    let (lost, cancelled) = (ids[300].clone(), ids[599].clone());
    assert!(finish(store, &lost, "w1", 1, Finish::Succeeded(json!(1)), t0 + SEC).await);
    assert!(matches!(store.cancel(&cancelled, t0 + SEC).await.expect("cancel"), CancelOutcome::Requested(_)));
    let held: Vec<(String, u32)> = ids.iter().map(|id| (id.clone(), 1)).collect();
    let hb = store.heartbeat("w1", held, t0 + 600 * SEC).await.expect("heartbeat");
    assert_eq!(hb, Heartbeat { lost: vec![lost.clone()], cancel: vec![cancelled.clone()] });
    let rescued = store.rescue(t0 + LEASE + SEC).await.expect("rescue");
    assert!(rescued.is_empty(), "every lease was renewed, the last chunk's too: {} rescued", rescued.len());
    let rescued = store.rescue(t0 + 601 * SEC).await.expect("rescue");
    assert_eq!(rescued.len(), 599, "each renewed lease runs out at the new deadline");
}

/// A queued run is cancelled at once, for good.
pub async fn cancel_of_a_queued_run(store: &dyn Store) {
    let t0 = now_micros();
    let run = enqueue_at(store, "echo", t0).await;
    let other = enqueue_at(store, "echo", t0).await;
    let mut waiter = store.notifier().wait_terminal(&run.run_id);
    let cancelled = match store.cancel(&run.run_id, t0 + SEC).await.expect("cancel") {
        CancelOutcome::Cancelled(r) => r,
        other => panic!("cancel of a queued run must cancel it, got {other:?}"),
    };
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(cancelled.finished_at, Some(t0 + SEC), "cancelled at the cancel's time");
    assert_eq!(cancelled.error.as_ref().map(|e| e.code.as_str()), Some(cancelled_error().code.as_str()), "{cancelled:?}");
    assert_eq!(get(store, &run.run_id).await, cancelled, "the cancel is stored as returned");
    fires(&mut waiter, "waiter of a cancelled queued run").await;

    let claimed = claim(store, "w1", t0 + 2 * SEC, &[("echo", 10)]).await;
    assert_eq!(
        claimed.runs.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>(),
        vec![other.run_id],
        "a cancelled run is not claimed"
    );
    match store.cancel(&run.run_id, t0 + 3 * SEC).await.expect("cancel") {
        CancelOutcome::AlreadyTerminal(r) => assert_eq!(r, cancelled, "a second cancel changes nothing"),
        other => panic!("a second cancel must find the run terminal, got {other:?}"),
    }
}

/// A running run gets a cancel request; its next retry or release ends it as cancelled.
pub async fn cancel_of_a_running_run(store: &dyn Store) {
    let t0 = now_micros();
    for (i, ending) in [Finish::Retry(RunError::new(Code::HandlerFailed, "x"), t0), Finish::Released].into_iter().enumerate() {
        let run = enqueue_at(store, "echo", t0).await;
        claim_one(store, "w1", "echo", t0).await;
        let requested = match store.cancel(&run.run_id, t0 + SEC).await.expect("cancel") {
            CancelOutcome::Requested(r) => r,
            other => panic!("cancel of a running run must ask its worker, got {other:?}"),
        };
        assert_eq!((requested.status, requested.cancel_requested), (RunStatus::Running, true), "{requested:?}");
        let stored = get(store, &run.run_id).await;
        assert_eq!((stored.status, stored.cancel_requested, stored.finished_at), (RunStatus::Running, true, None));
        let again = store.cancel(&run.run_id, t0 + SEC).await.expect("cancel");
        assert!(matches!(again, CancelOutcome::Requested(_)), "a second cancel asks again: {again:?}");

        let mut waiter = store.notifier().wait_terminal(&run.run_id);
        assert!(finish(store, &run.run_id, "w1", 1, ending.clone(), t0 + 2 * SEC).await, "case {i}: the holder finishes");
        let done = get(store, &run.run_id).await;
        assert_eq!(done.status, RunStatus::Cancelled, "case {i}: {ending:?} of a cancel-requested run cancels it");
        assert_eq!(done.error.map(|e| e.code), Some(cancelled_error().code), "case {i}: the cancelled error");
        assert_eq!(done.finished_at, Some(t0 + 2 * SEC), "case {i}");
        fires(&mut waiter, "waiter of a cancel-requested run that ended").await;
        let after = store.cancel(&run.run_id, t0 + 3 * SEC).await.expect("cancel");
        assert!(matches!(after, CancelOutcome::AlreadyTerminal(_)), "case {i}: then it is terminal: {after:?}");
    }
}

/// Finished runs stay as they are; unknown runs are not found.
pub async fn cancel_of_finished_and_unknown_runs(store: &dyn Store) {
    let t0 = now_micros();
    let ok = enqueue_at(store, "echo", t0).await;
    claim_one(store, "w1", "echo", t0).await;
    assert!(finish(store, &ok.run_id, "w1", 1, Finish::Succeeded(json!({ "v": 1 })), t0 + SEC).await);
    let bad = enqueue_at(store, "echo", t0).await;
    claim_one(store, "w1", "echo", t0).await;
    assert!(finish(store, &bad.run_id, "w1", 1, Finish::Failed(RunError::new(Code::HandlerFailed, "no")), t0 + SEC).await);
    for (id, status) in [(&ok.run_id, RunStatus::Succeeded), (&bad.run_id, RunStatus::Failed)] {
        let before = get(store, id).await;
        match store.cancel(id, t0 + 2 * SEC).await.expect("cancel") {
            CancelOutcome::AlreadyTerminal(r) => {
                assert_eq!((r.status, &r), (status, &before), "a finished run is shown as it is")
            }
            other => panic!("cancel of a {status:?} run must be AlreadyTerminal, got {other:?}"),
        }
        assert_eq!(get(store, id).await, before, "cancel of a finished run changes nothing");
    }
    for id in [new_run_id(), String::new(), "nope".to_string()] {
        let outcome = store.cancel(&id, t0).await.expect("cancel");
        assert_eq!(outcome, CancelOutcome::NotFound, "cancel of unknown {id:?}");
    }
}

/// Waiters wake on terminal states only; workers hear of cancels of running runs.
pub async fn notifier_wakes_terminal_waiters_and_workers(store: &dyn Store) {
    let t0 = now_micros();
    let [a, b, c, d] = [0; 4].map(|_| new_run("echo", t0));
    for run in [&a, &b] {
        enqueue(store, run.clone()).await;
    }
    enqueue(store, NewRun { priority: -1, ..c.clone() }).await;
    enqueue(store, NewRun { not_before: t0 + 3600 * SEC, ..d.clone() }).await;
    let claimed = claim(store, "w1", t0, &[("echo", 2)]).await;
    assert_eq!(sorted(claimed.runs.iter().map(|r| r.run_id.clone()).collect()), sorted(vec![a.run_id.clone(), b.run_id.clone()]));
    let n = store.notifier();
    let (mut wa, mut wb, mut wc) = (n.wait_terminal(&a.run_id), n.wait_terminal(&b.run_id), n.wait_terminal(&c.run_id));
    let mut unknown = n.wait_terminal(&new_run_id());

    let retry = Finish::Retry(RunError::new(Code::HandlerFailed, "again"), t0 + SEC);
    assert!(finish(store, &a.run_id, "w1", 1, retry, t0 + SEC).await);
    stays_quiet(&mut wa, "a retried run").await;
    assert!(finish(store, &b.run_id, "w1", 1, Finish::Succeeded(json!(2)), t0 + SEC).await);
    fires(&mut wb, "waiter of a succeeded run").await;
    assert!(matches!(store.cancel(&c.run_id, t0 + SEC).await.expect("cancel"), CancelOutcome::Cancelled(_)));
    fires(&mut wc, "waiter of a cancelled run").await;
    claim_one(store, "w2", "echo", t0 + SEC).await;
    assert!(finish(store, &a.run_id, "w2", 2, Finish::Failed(RunError::new(Code::HandlerFailed, "x")), t0 + 2 * SEC).await);
    fires(&mut wa, "waiter of a failed run").await;
    stays_quiet(&mut unknown, "waiter of an unknown run").await;

    let mut cancels = n.cancels();
    let e = enqueue_at(store, "solo", t0).await;
    claim_one(store, "w3", "solo", t0).await;
    assert_eq!(store.cancel(&new_run_id(), t0).await.expect("cancel"), CancelOutcome::NotFound);
    assert!(matches!(store.cancel(&d.run_id, t0 + 2 * SEC).await.expect("cancel"), CancelOutcome::Cancelled(_)));
    assert!(matches!(store.cancel(&e.run_id, t0 + 2 * SEC).await.expect("cancel"), CancelOutcome::Requested(_)));
    let heard = tokio::time::timeout(WAIT, async {
        loop {
            match cancels.recv().await {
                Ok(id) if id == e.run_id => return Ok(id),
                Ok(_) => {}
                Err(err) => return Err(err),
            }
        }
    })
    .await;
    assert!(matches!(heard, Ok(Ok(_))), "workers must hear of the cancel of running run {}: {heard:?}", e.run_id);
}

/// Expired leases go back to the queue (the attempt counted), or fail at the last attempt.
pub async fn rescue_takes_back_expired_leases(store: &dyn Store) {
    let t0 = now_micros();
    let retried = enqueue(store, NewRun { max_attempts: 3, ..new_run("echo", t0) }).await.run_id;
    let last = enqueue(store, NewRun { max_attempts: 1, ..new_run("echo", t0) }).await.run_id;
    let cancelling = enqueue(store, NewRun { max_attempts: 3, ..new_run("echo", t0) }).await.run_id;
    assert_eq!(claim(store, "w1", t0, &[("echo", 3)]).await.runs.len(), 3, "all three claimed");
    assert!(matches!(store.cancel(&cancelling, t0).await.expect("cancel"), CancelOutcome::Requested(_)));
    let fresh = enqueue_at(store, "echo", t0 + SEC).await;
    let late = enqueue_at(store, "other", t0).await.run_id;
    claim_one(store, "w2", "other", t0 + 20 * SEC).await;

    for now in [t0, t0 + 10 * SEC, t0 + LEASE] {
        let rescued = store.rescue(now).await.expect("rescue");
        assert!(rescued.is_empty(), "a lease still valid (until {}) must not be taken at {now}: {rescued:?}", t0 + LEASE);
    }
    let mut waiter = store.notifier().wait_terminal(&last);
    let now = t0 + LEASE + 1;
    let mut rescued = store.rescue(now).await.expect("rescue");
    rescued.sort_by(|x, y| x.run_id.cmp(&y.run_id));
    let rescued_one =
        |id: &String, status| Rescued { run_id: id.clone(), function: "echo".into(), attempt: 1, owner: "w1".into(), status };
    let mut expected = vec![
        rescued_one(&retried, RunStatus::Queued),
        rescued_one(&last, RunStatus::Failed),
        rescued_one(&cancelling, RunStatus::Cancelled),
    ];
    expected.sort_by(|x, y| x.run_id.cmp(&y.run_id));
    assert_eq!(rescued, expected, "the three expired leases, and only them");
    fires(&mut waiter, "waiter of a run failed by the rescuer").await;

    let back = get(store, &retried).await;
    assert_eq!((back.status, back.attempt, back.next_attempt_at), (RunStatus::Queued, 1, Some(now)), "{back:?}");
    assert_eq!(back.error.as_ref().map(|e| e.code.as_str()), Some(Code::LeaseExpired.as_str()), "{back:?}");
    let failed = get(store, &last).await;
    assert_eq!((failed.status, failed.finished_at), (RunStatus::Failed, Some(now)), "no attempt left: {failed:?}");
    assert_eq!(failed.error.as_ref().map(|e| e.code.as_str()), Some(Code::LeaseExpired.as_str()));
    assert_eq!(get(store, &cancelling).await.status, RunStatus::Cancelled, "a cancel-requested run ends cancelled");
    assert_eq!(get(store, &fresh.run_id).await, fresh, "queued runs are untouched");
    assert_eq!(get(store, &late).await.status, RunStatus::Running, "a lease not yet expired is untouched");
    let attempts = store.get(&retried, true).await.expect("get").expect("exists").attempts.expect("attempts");
    assert_eq!(attempts.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(), vec!["lease_expired"], "{attempts:?}");

    assert!(!finish(store, &retried, "w1", 1, Finish::Succeeded(json!(1)), now).await, "the lost worker is fenced off");
    let again = claim(store, "w3", now, &[("echo", 10)]).await;
    let again_retried = again.runs.iter().find(|r| r.run_id == retried).expect("the rescued run is claimable");
    assert_eq!(again_retried.attempt, 2, "the lost attempt counted");
    assert!(store.rescue(now + 1).await.expect("rescue").is_empty(), "new leases are not rescued");
}

/// `adopt` renews and returns the runs leased to its owner whose lease ends before the bound,
/// and no other: not a fresher lease, not another owner's run, not a run that ended. A run it
/// renewed is not taken back by the rescue, and its attempt ends with its lease as before.
pub async fn adopt_takes_in_its_owners_stale_leases_only(store: &dyn Store) {
    let t0 = now_micros();
    let stale = enqueue_at(store, "echo", t0).await.run_id;
    let ended = enqueue_at(store, "echo", t0).await.run_id;
    assert_eq!(claim(store, "w1", t0, &[("echo", 2)]).await.runs.len(), 2, "both claimed");
    assert!(finish(store, &ended, "w1", 1, Finish::Succeeded(json!(1)), t0 + SEC).await);
    let fresh = enqueue_at(store, "echo", t0).await.run_id;
    claim_one(store, "w1", "echo", t0 + 20 * SEC).await;
    let foreign = enqueue_at(store, "other", t0).await.run_id;
    claim_one(store, "w2", "other", t0).await;
    let until = t0 + 200 * SEC;

    let none = store.adopt("w1", t0 + LEASE, until).await.expect("adopt");
    assert!(none.is_empty(), "a lease that ends at the bound is not older than it: {none:?}");
    let adopted = store.adopt("w1", t0 + LEASE + 1, until).await.expect("adopt");
    let got: Vec<_> = adopted.iter().map(|r| (r.run_id.clone(), r.status, r.attempt, r.function.clone())).collect();
    assert_eq!(got, vec![(stale.clone(), RunStatus::Running, 1, "echo".to_string())], "only w1's stale lease");
    let again = store.adopt("w1", t0 + LEASE + 1, until).await.expect("adopt");
    assert!(again.is_empty(), "a renewed lease is no longer stale: {again:?}");
    let nobody = store.adopt("w3", t0 + 1000 * SEC, until).await.expect("adopt");
    assert!(nobody.is_empty(), "an owner with no leases takes in nothing: {nobody:?}");

    let rescued = store.rescue(t0 + 20 * SEC + LEASE + 1).await.expect("rescue");
    let ids: Vec<_> = rescued.iter().map(|r| r.run_id.clone()).collect();
    assert_eq!(sorted(ids), sorted(vec![fresh.clone(), foreign.clone()]), "the adopted lease was renewed past the rescue");
    assert!(finish(store, &stale, "w1", 1, Finish::Succeeded(json!("late")), t0 + 100 * SEC).await, "its lease holds");
    let done = store.get(&stale, true).await.expect("get").expect("exists");
    let outcomes: Vec<_> = done.attempts.expect("attempts").iter().map(|a| a.outcome.clone()).collect();
    assert_eq!((done.status, outcomes), (RunStatus::Succeeded, vec!["succeeded".to_string()]), "one attempt, never lost");
    assert_eq!(get(store, &ended).await.status, RunStatus::Succeeded, "an ended run is left alone");
}
