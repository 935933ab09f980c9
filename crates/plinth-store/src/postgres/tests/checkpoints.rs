//! Checkpoints saved in batches (checkpoints.rs): many attempts saving at once are each
//! fenced by their own lease, two checkpoints of one run at once are both kept, and a
//! checkpoint that cannot go into a batch (a step twice) is saved on its own.

use super::{fresh, new_run};
use crate::postgres::PostgresStore;
use crate::{ClaimRequest, Store};
use plinth_core::Run;
use plinth_core::steps::{Step, StepStatus};
use plinth_core::timefmt::now_micros;
use serde_json::json;
use std::sync::Arc;

/// `n` runs of `flow`, enqueued and claimed by `w1`.
async fn running(store: &PostgresStore, n: usize) -> Vec<Run> {
    for i in 0..n {
        store.enqueue(new_run("flow", json!(i))).await.expect("enqueue");
    }
    let now = now_micros();
    let req = ClaimRequest {
        owner: "w1".into(),
        now,
        lease_until: now + 60_000_000,
        wants: vec![("flow".into(), u32::try_from(n).expect("n"))],
        limit: u32::MAX,
        limits: Arc::default(),
    };
    let runs = store.claim(req).await.expect("claim").runs;
    assert_eq!(runs.len(), n, "every run claimed");
    runs
}

fn done(id: &str, seq: u32, output: serde_json::Value) -> Step {
    let t = now_micros();
    Step::reached(id, "step", seq, t).succeed(output, t + 1)
}

/// Saves every `(run, owner, steps)` at once, from tasks of their own; the answers in order.
async fn all_at_once(store: &Arc<PostgresStore>, saves: Vec<(Run, &'static str, Vec<Step>)>) -> Vec<bool> {
    let calls: Vec<_> = saves
        .into_iter()
        .map(|(run, owner, steps)| {
            let store = store.clone();
            tokio::spawn(async move { store.save_steps(&run.run_id, owner, run.attempt, steps).await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("the save task").expect("the save"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_attempts_saving_at_once_are_each_fenced_by_their_lease() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let store = Arc::new(store);
    let runs = running(&store, 48).await;
    // Why: every fourth save comes from an owner that holds nothing, in the same batches.
    let saves = runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let owner = if i % 4 == 3 { "intruder" } else { "w1" };
            (run.clone(), owner, vec![done("a", 0, json!(i)), done("b", 1, json!({"run": i}))])
        })
        .collect();
    let answers = all_at_once(&store, saves).await;
    for (i, (run, held)) in runs.iter().zip(answers).enumerate() {
        let steps = store.steps(&run.run_id).await.expect("read").expect("the run exists");
        if i % 4 == 3 {
            assert!(!held, "run {i}: an owner without the lease is refused");
            assert!(steps.is_empty(), "run {i}: nothing saved for an owner without the lease");
        } else {
            assert!(held, "run {i}: its holder saves");
            let outputs: Vec<_> = steps.iter().map(|s| (s.id.as_str(), s.output.clone())).collect();
            assert_eq!(outputs, [("a", Some(json!(i))), ("b", Some(json!({"run": i})))], "run {i}");
        }
    }
    Arc::into_inner(store).expect("the only handle").close().await;
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_checkpoints_of_one_run_at_once_are_both_kept() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let store = Arc::new(store);
    let run = running(&store, 1).await.remove(0);
    let saves = (0..8).map(|i| (run.clone(), "w1", vec![done(&format!("s{i}"), i, json!(i))])).collect();
    assert_eq!(all_at_once(&store, saves).await, [true; 8]);
    let steps = store.steps(&run.run_id).await.expect("read").expect("the run exists");
    let mut ids: Vec<_> = steps.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, (0..8).map(|i| format!("s{i}")).collect::<Vec<_>>());
    Arc::into_inner(store).expect("the only handle").close().await;
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_twice_in_one_checkpoint_keeps_the_last_and_an_ended_run_takes_none() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let runs = running(&store, 2).await;
    let first = Step::reached("a", "step", 0, now_micros());
    assert!(
        store.save_steps(&runs[0].run_id, "w1", runs[0].attempt, vec![first, done("a", 0, json!("last"))]).await.expect("save")
    );
    let steps = store.steps(&runs[0].run_id).await.expect("read").expect("the run exists");
    assert_eq!((steps.len(), steps[0].status, steps[0].output.clone()), (1, StepStatus::Succeeded, Some(json!("last"))));

    let ended = plinth_core::Finish::Succeeded(json!(null));
    let req = crate::FinishRequest {
        run_id: runs[1].run_id.clone(),
        owner: "w1".into(),
        attempt: runs[1].attempt,
        finish: ended,
        now: now_micros(),
        duration: std::time::Duration::from_millis(1),
    };
    assert!(store.finish(req).await.expect("finish"));
    assert!(!store.save_steps(&runs[1].run_id, "w1", runs[1].attempt, vec![done("late", 0, json!(1))]).await.expect("save"));
    assert!(store.steps(&runs[1].run_id).await.expect("read").expect("the run exists").is_empty(), "nothing saved after the end");
    store.close().await;
    scratch.drop_now().await;
}
