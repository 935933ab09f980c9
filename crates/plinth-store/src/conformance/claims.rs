//! Claims, finishes and the attempts they record.

use super::{SEC, claim, claim_one, enqueue, enqueue_at, finish, finish_took, get, ids, new_run, sorted};
use crate::{CancelOutcome, Store};
use plinth_core::ids::new_run_id;
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, Finish, NewRun, RunError, RunStatus};
use serde_json::json;
use std::time::Duration;

/// Only runs whose time has come are claimed; the next one's time is reported.
pub async fn claim_takes_only_due_runs(store: &dyn Store) {
    let t0 = now_micros();
    let empty = claim(store, "w1", t0, &[("echo", 10)]).await;
    assert!(empty.runs.is_empty() && empty.next_due.is_none(), "an empty store has nothing to claim: {empty:?}");

    let due = enqueue_at(store, "echo", t0).await;
    let later = enqueue(store, NewRun { not_before: t0 + 60 * SEC, ..new_run("echo", t0) }).await;
    let first = claim(store, "w1", t0, &[("echo", 10)]).await;
    assert_eq!(ids(&first.runs), vec![due.run_id.clone()], "only the due run is claimed");
    assert_eq!(first.next_due, Some(t0 + 60 * SEC), "the claim reports when the later run is due");

    let early = claim(store, "w1", t0 + 60 * SEC - 1, &[("echo", 10)]).await;
    assert!(early.runs.is_empty(), "a run is not claimed a microsecond before it is due: {early:?}");
    assert_eq!(early.next_due, Some(t0 + 60 * SEC));
    let elsewhere = claim(store, "w1", t0 + 60 * SEC, &[("other", 10), ("echo", 0)]).await;
    assert!(elsewhere.runs.is_empty(), "another function, or zero wanted, claims nothing: {elsewhere:?}");

    let on_time = claim(store, "w2", t0 + 60 * SEC, &[("echo", 10)]).await;
    assert_eq!(ids(&on_time.runs), vec![later.run_id.clone()], "a run is claimed once its time has come");
    assert_eq!(on_time.next_due, None, "nothing is left queued");
    assert_eq!(get(store, &due.run_id).await.status, RunStatus::Running);
}

/// At most `n` runs of each function are claimed, highest priority first, then oldest due.
pub async fn claim_respects_counts_and_priority(store: &dyn Store) {
    let t0 = now_micros();
    let mut echo = Vec::new();
    for (i, priority) in [0, 5, 1, 5, -3].into_iter().enumerate() {
        let at = t0 + i64::try_from(i).expect("small");
        echo.push(enqueue(store, NewRun { priority, ..new_run("echo", at) }).await.run_id);
    }
    let resize = vec![enqueue_at(store, "resize", t0).await.run_id, enqueue_at(store, "resize", t0).await.run_id];
    let now = t0 + SEC;

    let one = claim(store, "w1", now, &[("echo", 1)]).await;
    assert_eq!(ids(&one.runs), vec![echo[1].clone()], "the highest priority, earliest due run comes first");
    let mixed = claim(store, "w1", now, &[("echo", 1), ("resize", 10)]).await;
    let (echo_got, resize_got): (Vec<_>, Vec<_>) = mixed.runs.iter().partition(|r| r.function == "echo");
    assert_eq!(
        ids(&echo_got.into_iter().cloned().collect::<Vec<_>>()),
        vec![echo[3].clone()],
        "one echo run, the other priority 5"
    );
    assert_eq!(sorted(ids(&resize_got.into_iter().cloned().collect::<Vec<_>>())), sorted(resize.clone()), "every resize run");
    for run in one.runs.iter().chain(&mixed.runs) {
        assert_eq!(run.status, RunStatus::Running, "a claimed run is running: {run:?}");
        assert_eq!(run.attempt, 1, "a claim starts attempt 1: {run:?}");
        assert_eq!(run.started_at, Some(now), "a claimed run started at the claim: {run:?}");
        assert!(run.finished_at.is_none() && run.next_attempt_at.is_none(), "a running run is neither due nor finished: {run:?}");
        assert_eq!(get(store, &run.run_id).await, *run, "the claimed run is stored as returned");
    }
    let next = claim(store, "w2", now, &[("echo", 1)]).await;
    assert_eq!(ids(&next.runs), vec![echo[2].clone()], "then priority 1");
    let rest = claim(store, "w2", now, &[("echo", 10), ("resize", 10)]).await;
    assert_eq!(sorted(ids(&rest.runs)), sorted(vec![echo[0].clone(), echo[4].clone()]), "then the rest, never a claimed run");
    let none = claim(store, "w3", now, &[("echo", 10), ("resize", 10)]).await;
    assert!(none.runs.is_empty() && none.next_due.is_none(), "everything is claimed: {none:?}");
}

/// Concurrent claims split the due runs between them.
pub async fn claims_never_share_a_run(store: &dyn Store) {
    let t0 = now_micros();
    let mut made = Vec::new();
    for _ in 0..10 {
        made.push(enqueue_at(store, "echo", t0).await.run_id);
    }
    let (a, b) = tokio::join!(claim(store, "w1", t0, &[("echo", 6)]), claim(store, "w2", t0, &[("echo", 6)]));
    let (a, b) = (ids(&a.runs), ids(&b.runs));
    assert!(a.len() <= 6 && b.len() <= 6, "each claim takes at most 6: {a:?} {b:?}");
    assert!(a.iter().all(|id| !b.contains(id)), "two claims took the same run: {a:?} {b:?}");
    assert_eq!(sorted(a.into_iter().chain(b).collect()), sorted(made), "the two claims took all ten runs");
    let third = claim(store, "w3", t0 + SEC, &[("echo", 10)]).await;
    assert!(third.runs.is_empty(), "a third claim finds nothing left: {third:?}");
}

/// Only the lease holder, for the current attempt, can finish; success is terminal.
pub async fn finish_is_fenced_by_owner_and_attempt(store: &dyn Store) {
    let t0 = now_micros();
    let run = enqueue_at(store, "echo", t0).await;
    let claimed = claim_one(store, "w1", "echo", t0).await;
    let out = || Finish::Succeeded(json!({ "ok": true, "items": [1, 2] }));
    assert!(!finish(store, &run.run_id, "w2", 1, out(), t0 + SEC).await, "another owner must not finish it");
    assert!(!finish(store, &run.run_id, "w1", 2, out(), t0 + SEC).await, "a future attempt must not finish it");
    assert!(!finish(store, &run.run_id, "w1", 0, out(), t0 + SEC).await, "a stale attempt must not finish it");
    assert!(!finish(store, &new_run_id(), "w1", 1, out(), t0 + SEC).await, "an unknown run cannot be finished");
    assert_eq!(get(store, &run.run_id).await, claimed, "refused finishes change nothing");

    assert!(finish(store, &run.run_id, "w1", 1, out(), t0 + 2 * SEC).await, "the holder finishes its attempt");
    let done = get(store, &run.run_id).await;
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.output, Some(json!({ "ok": true, "items": [1, 2] })), "the output is kept");
    assert_eq!(done.finished_at, Some(t0 + 2 * SEC), "finished at the finish's time");
    assert_eq!((done.attempt, done.error.as_ref(), done.next_attempt_at), (1, None, None), "{done:?}");
    assert!(
        !finish(store, &run.run_id, "w1", 1, Finish::Failed(RunError::new(Code::HandlerFailed, "late")), t0 + 3 * SEC).await,
        "a finished run cannot be finished again"
    );
    assert_eq!(get(store, &run.run_id).await, done, "a second finish changes nothing");
    let again = claim(store, "w2", t0 + 3 * SEC, &[("echo", 10)]).await;
    assert!(again.runs.is_empty(), "a finished run is never claimed: {again:?}");
}

/// A retry re-queues the run for later; a failure ends it.
pub async fn finish_retry_requeues_then_failed_is_terminal(store: &dyn Store) {
    let t0 = now_micros();
    let run = enqueue_at(store, "echo", t0).await;
    claim_one(store, "w1", "echo", t0).await;
    let boom = RunError::new(Code::HandlerFailed, "boom");
    assert!(finish(store, &run.run_id, "w1", 1, Finish::Retry(boom.clone(), t0 + 10 * SEC), t0 + SEC).await);
    let queued = get(store, &run.run_id).await;
    assert_eq!(queued.status, RunStatus::Queued, "a retry queues the run again");
    assert_eq!(queued.attempt, 1, "the failed attempt counts");
    assert_eq!(queued.error, Some(boom), "the retry keeps the error");
    assert_eq!(queued.next_attempt_at, Some(t0 + 10 * SEC), "due at the retry's time");
    assert!(queued.finished_at.is_none() && queued.output.is_none(), "a queued run is not finished: {queued:?}");

    let early = claim(store, "w2", t0 + 5 * SEC, &[("echo", 10)]).await;
    assert!(early.runs.is_empty(), "not claimed before its retry time: {early:?}");
    assert_eq!(early.next_due, Some(t0 + 10 * SEC));
    let second = claim_one(store, "w2", "echo", t0 + 10 * SEC).await;
    assert_eq!((second.attempt, second.status), (2, RunStatus::Running), "the retry is attempt 2");
    let late = Finish::Succeeded(json!(null));
    assert!(!finish(store, &run.run_id, "w1", 1, late.clone(), t0 + 11 * SEC).await, "the first attempt is stale");
    assert!(!finish(store, &run.run_id, "w2", 1, late, t0 + 11 * SEC).await, "attempt 1 is stale for the new owner too");

    let fatal = RunError::new(Code::HandlerFailed, "fatal").retryable(false);
    assert!(finish(store, &run.run_id, "w2", 2, Finish::Failed(fatal.clone()), t0 + 12 * SEC).await);
    let failed = get(store, &run.run_id).await;
    assert_eq!((failed.status, failed.attempt), (RunStatus::Failed, 2));
    assert_eq!(failed.error, Some(fatal), "the failure's error is the run's error");
    assert_eq!(failed.finished_at, Some(t0 + 12 * SEC));
    assert!(failed.next_attempt_at.is_none() && failed.output.is_none(), "{failed:?}");
    assert!(claim(store, "w3", t0 + 60 * SEC, &[("echo", 10)]).await.runs.is_empty(), "a failed run is not claimed");
    let cancel = store.cancel(&run.run_id, t0 + 13 * SEC).await.expect("cancel");
    assert!(matches!(cancel, CancelOutcome::AlreadyTerminal(_)), "a failed run is terminal: {cancel:?}");
}

/// A released attempt does not count: the run is due again at once, at the same attempt.
pub async fn finish_released_does_not_count_the_attempt(store: &dyn Store) {
    let t0 = now_micros();
    let run = enqueue_at(store, "echo", t0).await;
    claim_one(store, "w1", "echo", t0).await;
    assert!(!finish(store, &run.run_id, "w2", 1, Finish::Released, t0 + SEC).await, "another owner cannot release it");
    assert!(finish(store, &run.run_id, "w1", 1, Finish::Released, t0 + SEC).await);
    let released = get(store, &run.run_id).await;
    assert_eq!(released.status, RunStatus::Queued, "a released run is queued");
    assert_eq!(released.attempt, 0, "the released attempt is not counted");
    assert_eq!(released.next_attempt_at, Some(t0 + SEC), "a released run is due at once");
    assert!(released.finished_at.is_none(), "{released:?}");
    assert!(!finish(store, &run.run_id, "w1", 1, Finish::Released, t0 + SEC).await, "a released lease is gone");

    let again = claim_one(store, "w2", "echo", t0 + SEC).await;
    assert_eq!(again.attempt, 1, "the next claim is attempt 1 again");
    let err = RunError::new(Code::HandlerFailed, "once");
    assert!(finish(store, &run.run_id, "w2", 1, Finish::Retry(err, t0 + 2 * SEC), t0 + SEC).await);
    claim_one(store, "w3", "echo", t0 + 2 * SEC).await;
    assert!(finish(store, &run.run_id, "w3", 2, Finish::Released, t0 + 3 * SEC).await);
    let after = get(store, &run.run_id).await;
    assert_eq!((after.status, after.attempt), (RunStatus::Queued, 1), "releasing attempt 2 leaves one counted attempt");
}

/// A cancelled finish is terminal with its error.
pub async fn finish_cancelled_is_terminal(store: &dyn Store) {
    let t0 = now_micros();
    let run = enqueue_at(store, "echo", t0).await;
    claim_one(store, "w1", "echo", t0).await;
    let stop = RunError::new(Code::RunCancelled, "stopped by its handler");
    assert!(!finish(store, &run.run_id, "w1", 3, Finish::Cancelled(stop.clone()), t0 + SEC).await, "wrong attempt");
    assert!(finish(store, &run.run_id, "w1", 1, Finish::Cancelled(stop.clone()), t0 + SEC).await);
    let done = get(store, &run.run_id).await;
    assert_eq!((done.status, done.error, done.finished_at), (RunStatus::Cancelled, Some(stop), Some(t0 + SEC)));
    assert!(claim(store, "w2", t0 + 2 * SEC, &[("echo", 1)]).await.runs.is_empty(), "a cancelled run is not claimed");
}

/// Every attempt is recorded with its outcome, error, times and duration.
pub async fn attempts_are_recorded(store: &dyn Store) {
    let t0 = now_micros();
    let run = enqueue_at(store, "echo", t0).await;
    claim_one(store, "w1", "echo", t0).await;
    let first = store.get(&run.run_id, true).await.expect("get").expect("exists").attempts.expect("attempts asked for");
    assert_eq!(first.len(), 1, "one attempt so far: {first:?}");
    assert_eq!((first[0].attempt, first[0].outcome.as_str(), first[0].started_at), (1, "running", t0));
    assert!(first[0].finished_at.is_none() && first[0].duration_ms.is_none() && first[0].error.is_none(), "{first:?}");

    let err = RunError::new(Code::HandlerFailed, "try again");
    let retry = Finish::Retry(err.clone(), t0 + SEC);
    assert!(finish_took(store, &run.run_id, "w1", 1, retry, t0 + SEC, Duration::from_millis(1500)).await);
    claim_one(store, "w2", "echo", t0 + SEC).await;
    let out = Finish::Succeeded(json!(1));
    assert!(!finish_took(store, &run.run_id, "w3", 2, out.clone(), t0 + 2 * SEC, Duration::from_secs(9)).await);
    assert!(finish_took(store, &run.run_id, "w2", 2, out, t0 + 2 * SEC, Duration::from_millis(250)).await);

    let done = store.get(&run.run_id, true).await.expect("get").expect("exists");
    let attempts = done.attempts.expect("attempts asked for");
    assert_eq!(attempts.len(), 2, "two attempts, the refused finish added none: {attempts:?}");
    let (a1, a2) = (&attempts[0], &attempts[1]);
    assert_eq!((a1.attempt, a1.outcome.as_str(), a1.error.as_ref()), (1, "retrying", Some(&err)), "{a1:?}");
    assert_eq!((a1.started_at, a1.finished_at), (t0, Some(t0 + SEC)));
    assert!(a1.duration_ms.is_some_and(|ms| (ms - 1500.0).abs() < 1.0), "attempt 1 took 1500 ms: {a1:?}");
    assert_eq!((a2.attempt, a2.outcome.as_str(), a2.error.as_ref()), (2, "succeeded", None), "{a2:?}");
    assert_eq!((a2.started_at, a2.finished_at), (t0 + SEC, Some(t0 + 2 * SEC)));
    assert!(a2.duration_ms.is_some_and(|ms| (ms - 250.0).abs() < 1.0), "attempt 2 took 250 ms: {a2:?}");
    assert!(get(store, &run.run_id).await.attempts.is_none(), "attempts only when asked for");
    assert!(store.get(&new_run_id(), true).await.expect("get").is_none(), "an unknown run has no attempts");

    let failing = enqueue_at(store, "solo", t0).await;
    claim_one(store, "w1", "solo", t0).await;
    let fatal = RunError::new(Code::HandlerFailed, "fatal");
    assert!(finish(store, &failing.run_id, "w1", 1, Finish::Failed(fatal.clone()), t0 + SEC).await);
    let recorded = store.get(&failing.run_id, true).await.expect("get").expect("exists").attempts.expect("attempts");
    assert_eq!(recorded.iter().map(|a| (a.outcome.as_str(), a.error.clone())).collect::<Vec<_>>(), vec![("failed", Some(fatal))]);
}
