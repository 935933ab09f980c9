//! Copies of runs (`crate::copies`), checked the same way on both backends: the backend's own
//! test writes them between [`templates`] and [`copies_are_runs_like_any_other`].

use super::{SEC, claim_one, enqueue, finish, get, new_run};
use crate::copies::RunCopies;
use crate::{ListFilter, Store};
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, NewRun, RunStatus};
use serde_json::json;

/// A run of `done` that succeeded in one attempt, and a run of `lane` queued under the key
/// `busy`: the templates, as `(finished, queued)`.
pub(crate) async fn templates(store: &dyn Store) -> (String, String) {
    let t0 = now_micros() - 60 * SEC;
    let done = enqueue(store, NewRun { idempotency_key: Some("once".into()), ..new_run("done", t0) }).await.run_id;
    claim_one(store, "w1", "done", t0).await;
    assert!(finish(store, &done, "w1", 1, Finish::Succeeded(json!({"ok": true})), t0 + SEC).await);
    let queued = NewRun { flow_key: Some("busy".into()), ..new_run("lane", t0) };
    (done, enqueue(store, queued).await.run_id)
}

/// What the tests copy: 3 of the finished run (`0000D0…0` to `…2`) and 2 of the queued one with
/// a new input (`0000W0…5` and `…6`), at `at`.
pub(crate) fn plan(finished: &str, queued: &str, at: i64) -> [RunCopies; 2] {
    let done = RunCopies {
        template: finished.to_string(),
        first: 0,
        count: 3,
        prefix: "0000D0".into(),
        at,
        finished_at: at + SEC,
        step: 1,
        input: None,
    };
    let wait = RunCopies {
        template: queued.to_string(),
        first: 5,
        count: 2,
        prefix: "0000W0".into(),
        at,
        finished_at: 0,
        step: 1000,
        input: Some(r#"{"k":"busy","copied":true}"#.into()),
    };
    [done, wait]
}

/// The copies of [`plan`] read back through the store as runs of their own.
pub(crate) async fn copies_are_runs_like_any_other(store: &dyn Store, finished: &str, at: i64) {
    let id = |prefix: &str, n: u64| format!("{prefix}{n:020}");
    let (done, wait) = ("0000D0", "0000W0");
    let template = store.get(finished, true).await.expect("get").expect("the template");
    let copy = store.get(&id(done, 2), true).await.expect("get").expect("the third copy is stored");
    assert_eq!(copy.status, RunStatus::Succeeded);
    assert_eq!((copy.created_at, copy.finished_at), (at + 2, Some(at + SEC + 2)), "copy i is i micros after the first");
    assert_eq!(copy.correlation_id, copy.run_id, "each copy is a correlation of its own");
    assert_eq!(copy.output, template.output, "the rest is the template's");
    assert_eq!(copy.attempts.as_ref().map(Vec::len), Some(1), "with the template's attempt");
    assert!(store.get(&id(done, 3), false).await.expect("get").is_none(), "three copies, numbered from 0");
    let queued = get(store, &id(wait, 6)).await;
    assert_eq!((queued.status, queued.flow_key.as_deref()), (RunStatus::Queued, Some("busy")));
    assert_eq!(queued.input, json!({"k": "busy", "copied": true}), "the input given replaces the template's");
    assert_eq!(queued.created_at, at + 6 * 1000, "copies `step` micros apart");
    assert!(store.get(&id(wait, 4), false).await.expect("get").is_none(), "numbered from `first`");
    let stats = store.queue_stats(now_micros(), 100).await.expect("queue stats");
    let lane = stats.iter().find(|q| q.function == "lane").expect("the lane's function is counted");
    assert_eq!(lane.queued, 3, "the template and its two copies, counted by the store's own triggers");
    let page = store.list(ListFilter { function: Some("done".into()), limit: 100, ..ListFilter::default() }).await.expect("list");
    assert_eq!(page.runs.len(), 4, "the copies are listed with the template");
}
