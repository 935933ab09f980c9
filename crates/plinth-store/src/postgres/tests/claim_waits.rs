//! A claim leases the due waits of the functions it asks for without flow limits straight from
//! `waiting` (decision 0039): each such run is written once, not queued and then leased. The
//! runs' status changes are logged by a trigger on the scratch schema's `runs`.

use super::fresh;
use crate::conformance::new_run;
use crate::{ClaimRequest, Claimed, FinishRequest, FlowLimit, Store};
use plinth_core::steps::{Step, StepStatus, Suspension, Wait};
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, NewRun, RunStatus};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const SEC: i64 = 1_000_000;

async fn claim(store: &dyn Store, now: i64, wants: &[(&str, u32)], limits: &HashMap<String, FlowLimit>) -> Claimed {
    let req = ClaimRequest {
        owner: "w2".into(),
        now,
        lease_until: now + 30 * SEC,
        wants: wants.iter().map(|(f, n)| ((*f).to_string(), *n)).collect(),
        limit: u32::MAX,
        limits: Arc::new(limits.clone()),
    };
    store.claim(req).await.expect("claim")
}

/// A run of `function` (in lane `key` if given) that sleeps until `until`.
async fn sleeping(store: &dyn Store, function: &str, key: Option<&str>, t0: i64, until: i64) -> String {
    let run = NewRun { flow_key: key.map(str::to_string), ..new_run(function, t0) };
    let id = run.run_id.clone();
    store.enqueue(run).await.expect("enqueue");
    let limits = key.map(|_| (function.to_string(), FlowLimit { concurrency: Some(5), throttle: None }));
    let got = claim(store, t0, &[(function, 1)], &limits.into_iter().collect()).await;
    assert_eq!(got.runs.len(), 1, "the run is leased: {got:?}");
    let mut step = Step::reached("nap", "sleep", 0, t0);
    step.status = StepStatus::Waiting;
    step.wait = Some(Wait::Sleep { until });
    let finish = Finish::Suspended(Box::new(Suspension { step, child: None }));
    let req = FinishRequest { run_id: id.clone(), owner: "w2".into(), attempt: 1, finish, now: t0, duration: Duration::ZERO };
    assert!(store.finish(req).await.expect("finish"), "the run sleeps");
    id
}

#[tokio::test]
async fn a_claim_leases_a_due_sleep_in_one_write_and_queues_the_others() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let t0 = now_micros();
    let direct = sleeping(&store, "plain", None, t0, t0 + 10 * SEC).await;
    let laned = sleeping(&store, "limited", Some("k"), t0, t0 + 10 * SEC).await;
    let elsewhere = sleeping(&store, "unasked", None, t0, t0 + 10 * SEC).await;
    let pool = store.pool.clone();
    let schema = scratch.schema.clone();
    let setup = format!(
        "SET search_path TO \"{schema}\"; \
         CREATE TABLE changes (seq bigserial, id text, before text, after text); \
         CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           INSERT INTO changes (id, before, after) VALUES (NEW.id, OLD.status, NEW.status); RETURN NEW; END $$; \
         CREATE TRIGGER runs_changes AFTER UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION log_change()"
    );
    sqlx::raw_sql(&setup).execute(&pool).await.expect("the change log");

    let limits = HashMap::from([("limited".to_string(), FlowLimit { concurrency: Some(5), throttle: None })]);
    let got = claim(&store, t0 + 11 * SEC, &[("plain", 5), ("limited", 5)], &limits).await;
    let mut taken: Vec<&str> = got.runs.iter().map(|r| r.run_id.as_str()).collect();
    taken.sort_unstable();
    let mut want = vec![direct.as_str(), laned.as_str()];
    want.sort_unstable();
    assert_eq!(taken, want, "both due sleeps of the functions asked for are leased in the one claim");
    assert!(got.runs.iter().all(|r| r.status == RunStatus::Running && r.attempt == 1), "{got:?}");

    let changes = |id: &str| {
        let (pool, schema, id) = (pool.clone(), schema.clone(), id.to_string());
        async move {
            let sql = format!("SELECT before || '>' || after FROM \"{schema}\".changes WHERE id = $1 ORDER BY seq");
            sqlx::query_scalar::<_, String>(&sql).bind(id).fetch_all(&pool).await.expect("the log")
        }
    };
    assert_eq!(changes(&direct).await, ["waiting>running"], "leased from waiting in one write");
    assert_eq!(changes(&laned).await, ["waiting>queued", "queued>running"], "a limited function's goes through its lane");
    assert_eq!(changes(&elsewhere).await, ["waiting>queued"], "a function not asked for is queued for any node");
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_claim_with_no_room_for_a_due_sleep_queues_it_and_leaves_a_later_one_waiting() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let t0 = now_micros();
    let first = sleeping(&store, "plain", None, t0, t0 + 10 * SEC).await;
    let second = sleeping(&store, "plain", None, t0, t0 + 11 * SEC).await;
    let later = sleeping(&store, "plain", None, t0, t0 + 60 * SEC).await;
    let got = claim(&store, t0 + 12 * SEC, &[("plain", 1)], &HashMap::new()).await;
    assert_eq!(got.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), [first.as_str()], "the earliest due first");
    assert_eq!(got.next_due, Some(t0 + 60 * SEC), "the sleep not yet due is the next");
    let status = async |id: &str| store.get(id, false).await.expect("get").expect("stored").status;
    assert_eq!(status(&second).await, RunStatus::Queued, "no room: queued for any node");
    assert_eq!(status(&later).await, RunStatus::Waiting, "not due: still asleep");
    let none = claim(&store, t0 + 12 * SEC, &[("plain", 0)], &HashMap::new()).await;
    assert!(none.runs.is_empty(), "zero wanted leases nothing: {none:?}");
    assert_eq!(status(&later).await, RunStatus::Waiting);
    store.close().await;
    scratch.drop_now().await;
}
