//! The queue as the metrics and the overview read it: the depth and the open runs kept as runs
//! change (never counted), the due and not-due runs counted up to a bound, level by level.

use super::upkeep::cancel_at;
use super::{SEC, claim_one, enqueue, finish, new_run};
use crate::{QueueStats, Store};
use plinth_core::steps::{Step, StepStatus, Suspension, Wait};
use plinth_core::timefmt::now_micros;
use plinth_core::{Code, Finish, NewRun, RunError};

async fn stats(store: &dyn Store, now: i64, bound: u64) -> Vec<QueueStats> {
    let all = store.queue_stats(now, bound).await.expect("queue stats");
    assert!(all.windows(2).all(|w| w[0].function < w[1].function), "one entry a function, by name: {all:?}");
    assert!(all.iter().all(|q| q.queued > 0), "only functions with runs queued: {all:?}");
    all
}

fn of<'a>(all: &'a [QueueStats], function: &str) -> Option<&'a QueueStats> {
    all.iter().find(|q| q.function == function)
}

/// `(queued, due, not_due, oldest_due_at)` of `function`.
async fn queue(store: &dyn Store, function: &str, now: i64) -> (i64, i64, i64, Option<i64>) {
    let all = stats(store, now, 10_000).await;
    of(&all, function).map_or((0, 0, 0, None), |q| (q.queued, q.due, q.not_due, q.oldest_due_at))
}

/// Running and waiting runs of `function`, as the overview reads them.
async fn open(store: &dyn Store, function: &str) -> (i64, i64) {
    let open = store.run_stats(0).await.expect("run stats").open;
    let n = |status: &str| open.iter().find(|(f, s, _)| f == function && s == status).map_or(0, |(_, _, n)| *n);
    (n("running"), n("waiting"))
}

async fn put(store: &dyn Store, function: &str, priority: i32, due: i64) {
    enqueue(store, NewRun { priority, not_before: due, ..new_run(function, due.min(now_micros())) }).await;
}

/// The queue splits into due and scheduled runs over every priority level, and its oldest due
/// run is found whatever its level; a function with nothing queued is not listed.
pub async fn queue_stats_split_due_and_scheduled_runs(store: &dyn Store) {
    let t0 = now_micros();
    assert!(stats(store, t0, 10_000).await.is_empty(), "an empty store has no queue");
    for _ in 0..3 {
        put(store, "f", 0, t0).await;
    }
    put(store, "f", 5, t0 - 10 * SEC).await;
    put(store, "f", -7, t0 - 20 * SEC).await;
    put(store, "f", 0, t0 + 3600 * SEC).await;
    put(store, "f", 9, t0 + 60 * SEC).await;
    put(store, "later", 0, t0 + 60 * SEC).await;
    assert_eq!(queue(store, "f", t0).await, (7, 5, 2, Some(t0 - 20 * SEC)), "the oldest due run is at a low level");
    assert_eq!(queue(store, "later", t0).await, (1, 0, 1, None), "nothing due: no oldest");
    assert_eq!(queue(store, "f", t0 + 61 * SEC).await, (7, 6, 1, Some(t0 - 20 * SEC)), "time makes runs due");
    assert_eq!(queue(store, "nope", t0).await, (0, 0, 0, None));

    let first = claim_one(store, "w1", "f", t0).await;
    assert_eq!(first.priority, 5, "the highest level first");
    assert_eq!(queue(store, "f", t0).await, (6, 4, 2, Some(t0 - 20 * SEC)), "a claimed run leaves the queue");
    assert_eq!(open(store, "f").await, (1, 0));
    let retry = Finish::Retry(RunError::new(Code::HandlerFailed, "again"), t0 + 30 * SEC);
    assert!(finish(store, &first.run_id, "w1", 1, retry, t0).await);
    assert_eq!(queue(store, "f", t0).await, (7, 4, 3, Some(t0 - 20 * SEC)), "a retry is queued again, not due yet");
    assert_eq!(open(store, "f").await, (0, 0));
}

/// Running and waiting runs are kept counted through a sleep, a cancel and a prune; what the
/// upkeep folds (its roll-up) changes no count.
pub async fn open_runs_stay_counted_through_every_change(store: &dyn Store) {
    let t0 = now_micros();
    put(store, "flow", 0, t0).await;
    put(store, "flow", 0, t0).await;
    let run = claim_one(store, "w1", "flow", t0).await;
    let mut nap = Step::reached("nap", "sleep", 0, t0);
    nap.status = StepStatus::Waiting;
    nap.wait = Some(Wait::Sleep { until: t0 + 10 * SEC });
    let sleep = Finish::Suspended(Box::new(Suspension { step: nap, child: None }));
    assert!(finish(store, &run.run_id, "w1", run.attempt, sleep, t0).await);
    assert_eq!((queue(store, "flow", t0).await.0, open(store, "flow").await), (1, (0, 1)), "a sleeping run waits");
    store.roll_up(t0 + SEC).await.expect("roll up");
    assert_eq!((queue(store, "flow", t0).await.0, open(store, "flow").await), (1, (0, 1)), "the upkeep changes no count");
    cancel_at(store, &run.run_id, t0 + SEC).await;
    assert_eq!(open(store, "flow").await, (0, 0), "a cancelled run no longer waits");
    let other = claim_one(store, "w1", "flow", t0).await;
    assert!(finish(store, &other.run_id, "w1", other.attempt, Finish::Succeeded(serde_json::json!(1)), t0 + SEC).await);
    assert_eq!((queue(store, "flow", t0).await.0, open(store, "flow").await), (0, (0, 0)));
    store.prune(t0 + 3600 * SEC, 0, 100).await.expect("prune");
    assert_eq!((queue(store, "flow", t0).await.0, open(store, "flow").await), (0, (0, 0)), "pruning ended runs counts nothing");
    put(store, "flow", 0, t0).await;
    assert_eq!(queue(store, "flow", t0).await, (1, 1, 0, Some(t0)), "counting goes on after a prune");
}

/// The due and not-due runs are counted up to the bound: past it on one side, the other side
/// is counted and the first follows from the depth; past it on both, each says the bound.
pub async fn queue_stats_stop_counting_at_the_bound(store: &dyn Store) {
    let t0 = now_micros();
    for i in 0..5 {
        put(store, "f", i % 2, t0 - i64::from(i) * SEC).await;
    }
    put(store, "f", 0, t0 + 60 * SEC).await;
    let one = stats(store, t0, 3).await;
    let q = of(&one, "f").expect("f");
    assert_eq!((q.queued, q.due, q.not_due, q.split_is_exact()), (6, 5, 1, true), "the scheduled side is counted");
    for _ in 0..3 {
        put(store, "f", 1, t0 + 60 * SEC).await;
    }
    let both = stats(store, t0, 3).await;
    let q = of(&both, "f").expect("f");
    assert_eq!((q.queued, q.due, q.not_due, q.split_is_exact()), (9, 3, 3, false), "both sides stop at the bound");
    assert_eq!(q.oldest_due_at, Some(t0 - 4 * SEC), "the oldest is found past the bound");
    let wide = stats(store, t0, 10).await;
    let q = of(&wide, "f").expect("f");
    assert_eq!((q.due, q.not_due, q.split_is_exact()), (5, 4, true), "a wider bound counts all");
    let none = stats(store, t0, 0).await;
    assert_eq!(of(&none, "f").map(|q| (q.queued, q.split_is_exact())), Some((9, false)), "a bound of 0 counts nothing");
}
