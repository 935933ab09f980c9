//! What several nodes on one schema rely on: notices between them (new work, ended runs,
//! cancels), one upkeep leader with take-over, batched ends, and calls that give up instead
//! of hanging. Like the other PostgreSQL tests they need `PLINTH_TEST_DATABASE_URL`.

use super::super::{OP_TIMEOUT, PostgresStore, lock_key};
use super::{Scratch, database_url, new_run, side_pool};
use crate::{CancelOutcome, ClaimRequest, Enqueued, FinishRequest, Store, StoreError};
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, RunStatus};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two stores on one fresh schema, as two nodes would have, with their listeners connected.
async fn two_nodes() -> Option<(Scratch, PostgresStore, PostgresStore)> {
    let url = database_url()?;
    let scratch = Scratch::new(&url);
    let a = PostgresStore::connect(&url, &scratch.schema).await.expect("node a connects");
    let b = PostgresStore::connect(&url, &scratch.schema).await.expect("node b connects");
    settle(&[&a, &b]).await;
    Some((scratch, a, b))
}

/// Waits for the listeners to connect, then takes the wake-up their connection fired.
async fn settle(stores: &[&PostgresStore]) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    for s in stores {
        let _ = tokio::time::timeout(Duration::from_millis(20), s.notifier().work().notified()).await;
    }
}

async fn claim_all(store: &PostgresStore, owner: &str, function: &str, n: u32) -> Vec<plinth_core::Run> {
    let now = now_micros();
    let req = ClaimRequest {
        owner: owner.into(),
        now,
        lease_until: now + 30_000_000,
        wants: vec![(function.into(), n)],
        limit: n,
        limits: Default::default(),
    };
    store.claim(req).await.expect("claim").runs
}

fn succeeded(run_id: &str, owner: &str, attempt: u32) -> FinishRequest {
    FinishRequest {
        run_id: run_id.into(),
        owner: owner.into(),
        attempt,
        finish: Finish::Succeeded(json!({"ok": true})),
        now: now_micros(),
        duration: Duration::from_millis(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_on_one_node_wakes_the_other_but_not_another_schema() {
    let Some((mut scratch, a, b)) = two_nodes().await else { return };
    let url = database_url().expect("set");
    let mut elsewhere = Scratch::new(&url);
    let other = PostgresStore::connect(&url, &elsewhere.schema).await.expect("another component");
    settle(&[&other]).await;
    let started = Instant::now();
    a.enqueue(new_run("echo", json!(1))).await.expect("enqueue on a");
    tokio::time::timeout(Duration::from_secs(2), b.notifier().work().notified()).await.expect("b hears of the new run");
    eprintln!("cross-node wake-up after {:?}", started.elapsed());
    let quiet = tokio::time::timeout(Duration::from_millis(300), other.notifier().work().notified()).await;
    assert!(quiet.is_err(), "a component on another schema is not woken");
    other.close().await;
    elsewhere.drop_now().await;
    a.close().await;
    b.close().await;
    scratch.drop_now().await;
}

/// Enqueues a run on `node` and claims it there, ready to be ended.
async fn running(node: &PostgresStore, owner: &str) -> plinth_core::Run {
    let Enqueued::Created(run) = node.enqueue(new_run("echo", json!(1))).await.expect("enqueue") else { panic!("created") };
    let claimed = claim_all(node, owner, "echo", 1).await;
    assert_eq!(claimed.len(), 1, "the run is claimed");
    claimed.into_iter().next().unwrap_or(run)
}

/// Waits until `node` announces its ends, as it does once another node asked.
async fn wanted(node: &PostgresStore) {
    let started = Instant::now();
    while !node.events.wanted_now() {
        assert!(started.elapsed() < Duration::from_secs(3), "the node hears that another one waits");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ended_on_one_node_ends_a_long_poll_on_the_other() {
    let Some((mut scratch, a, b)) = two_nodes().await else { return };
    // Ended before `a` heard that `b` waits, as when `b` read the run just before the end and
    // registered its waiter just after: nothing announced the end, but `a`'s answer to the ask
    // makes `b`'s waiter read again, so the wait ends all the same.
    let first = running(&a, "node-a").await;
    assert!(a.finish(succeeded(&first.run_id, "node-a", first.attempt)).await.expect("finish"));
    let mut waiter = b.notifier().wait_terminal(&first.run_id);
    tokio::time::timeout(Duration::from_secs(2), &mut waiter).await.expect("b is told to read again").expect("fired");
    // Once `a` announces its ends, only the waiter of the run that ended is woken.
    let second = running(&a, "node-a").await;
    let mut waiter = b.notifier().wait_terminal(&second.run_id);
    let mut unrelated = b.notifier().wait_terminal("01ARZ3NDEKTSV4RRFFQ69G5FAV");
    wanted(&a).await;
    assert!(a.finish(succeeded(&second.run_id, "node-a", second.attempt)).await.expect("finish"));
    tokio::time::timeout(Duration::from_secs(2), &mut waiter).await.expect("b hears the run ended").expect("fired");
    assert!(unrelated.try_recv().is_err(), "a waiter for another run keeps waiting");
    a.close().await;
    b.close().await;
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_are_not_announced_while_no_other_node_waits() {
    let Some((mut scratch, a, b)) = two_nodes().await else { return };
    let url = database_url().expect("set");
    let mut heard = sqlx::postgres::PgListener::connect(&url).await.expect("listener");
    heard.listen(&a.events.channel).await.expect("listen");
    let run = running(&a, "node-a").await;
    assert!(a.finish(succeeded(&run.run_id, "node-a", run.attempt)).await.expect("finish"));
    let deadline = Instant::now() + Duration::from_millis(500);
    while let Ok(Ok(n)) = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), heard.recv()).await {
        assert!(!n.payload().starts_with('t'), "no end announced while nobody waits: {}", n.payload());
    }
    assert!(!a.events.wanted_now() && !b.events.wanted_now(), "neither node was asked");
    let _ = heard.unlisten_all().await;
    a.close().await;
    b.close().await;
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_asked_on_one_node_reaches_the_worker_on_the_other() {
    let Some((mut scratch, a, b)) = two_nodes().await else { return };
    let Enqueued::Created(run) = a.enqueue(new_run("echo", json!(1))).await.expect("enqueue") else { panic!("created") };
    claim_all(&a, "node-a", "echo", 1).await;
    let mut cancels = a.notifier().cancels();
    assert!(matches!(b.cancel(&run.run_id, now_micros()).await, Ok(CancelOutcome::Requested(_))));
    let heard = tokio::time::timeout(Duration::from_secs(2), cancels.recv()).await.expect("a hears the cancel");
    assert_eq!(heard.ok().as_deref(), Some(run.run_id.as_str()));
    assert_eq!(b.cancel("01ARZ3NDEKTSV4RRFFQ69G5FAV", now_micros()).await, Ok(CancelOutcome::NotFound));
    a.close().await;
    b.close().await;
    scratch.drop_now().await;
}

/// Ends the session holding the upkeep lock of `schema`, as a lost connection would.
async fn cut_the_leader(url: &str, schema: &str) -> u64 {
    let key = lock_key(&["plinth-leader", schema]);
    let bits = u64::from_ne_bytes(key.to_ne_bytes());
    let (high, low) = (i64::try_from(bits >> 32).unwrap_or(0), i64::try_from(bits & 0xffff_ffff).unwrap_or(0));
    let side = side_pool(url).await;
    let cut: Vec<bool> = sqlx::query_scalar(
        // Why: with a timeout, the call returns once the session has ended and its lock is free;
        // without one it only signals, and the next node's try may still find the lock held.
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
    )
    .bind(high)
    .bind(low)
    .fetch_all(&side)
    .await
    .expect("terminate the leader's session");
    side.close().await;
    cut.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_and_another_takes_over_when_it_is_cut_off_or_closes() {
    let Some((mut scratch, a, b)) = two_nodes().await else { return };
    let url = database_url().expect("set");
    assert!(a.lead().await, "the first to ask leads");
    assert!(!b.lead().await, "only one leads");
    assert!(a.lead().await, "the leader keeps leading");
    assert_eq!(cut_the_leader(&url, &scratch.schema).await, 1, "one session holds the lock");
    assert!(!a.lead().await, "a leader cut off from the database stops leading");
    assert!(b.lead().await, "another node takes over at its next call");
    assert!(!a.lead().await, "the old leader does not take it back");
    b.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.lead().await {
        assert!(Instant::now() < deadline, "a closed leader's lock is released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.close().await;
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_blocked_by_a_lock_gives_up_instead_of_hanging() {
    let Some((mut scratch, a, b)) = two_nodes().await else { return };
    b.close().await;
    let url = database_url().expect("set");
    let side = side_pool(&url).await;
    let mut tx = side.begin().await.expect("begin");
    let lock = format!("LOCK TABLE \"{}\".runs IN ACCESS EXCLUSIVE MODE", scratch.schema);
    sqlx::query(&lock).execute(&mut *tx).await.expect("lock the table");
    let started = Instant::now();
    let err = a.enqueue(new_run("echo", json!(1))).await.expect_err("the table is locked");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < OP_TIMEOUT + Duration::from_secs(1), "gave up after {:?}", started.elapsed());
    let started = Instant::now();
    let read = a.list(crate::ListFilter { limit: 10, ..Default::default() }).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "a read waiting on the lock gives up too: {read:?}");
    assert!(started.elapsed() < OP_TIMEOUT + Duration::from_secs(1), "gave up after {:?}", started.elapsed());
    tx.rollback().await.expect("unlock");
    assert!(a.enqueue(new_run("echo", json!(2))).await.is_ok(), "works again once the lock is gone");
    side.close().await;
    a.close().await;
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_ends_at_once_are_each_recorded_and_a_stale_one_is_refused() {
    let Some((mut scratch, a, b)) = two_nodes().await else { return };
    b.close().await;
    let a = Arc::new(a);
    for i in 0..300 {
        a.enqueue(new_run("echo", json!(i))).await.expect("enqueue");
    }
    let runs = claim_all(&a, "node-a", "echo", 300).await;
    assert_eq!(runs.len(), 300);
    let mut tasks = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let (a, id, attempt) = (a.clone(), run.run_id.clone(), run.attempt);
        // Why: every tenth end comes from a worker that no longer holds the lease.
        let owner = if i % 10 == 0 { "node-stale" } else { "node-a" };
        tasks.push(tokio::spawn(async move { (owner, a.finish(succeeded(&id, owner, attempt)).await) }));
    }
    let (mut recorded, mut refused) = (0, 0);
    for t in tasks {
        match t.await.expect("the task ran") {
            ("node-a", Ok(true)) => recorded += 1,
            ("node-stale", Ok(false)) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((recorded, refused), (270, 30));
    let page = a.list(crate::ListFilter { status: Some(RunStatus::Succeeded), limit: 500, ..Default::default() }).await;
    assert_eq!(page.expect("list").runs.len(), 270);
    a.close().await;
    scratch.drop_now().await;
}

/// Two nodes enqueueing, claiming and ending runs at once, with the upkeep folding the counts
/// meanwhile, keep `run_counts` equal to what counting the table gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_counts_equal_the_table_after_two_nodes_race() {
    let Some((mut scratch, a, b)) = two_nodes().await else { return };
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for (i, node) in [a.clone(), b.clone(), a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..60 {
                node.enqueue(new_run(if n % 3 == 0 { "slow" } else { "echo" }, json!(n))).await.expect("enqueue");
                if n % 2 == 0 {
                    for run in claim_all(&node, &format!("node-{i}"), "echo", 2).await {
                        if n % 4 == 0 {
                            assert!(node.finish(succeeded(&run.run_id, &format!("node-{i}"), run.attempt)).await.is_ok());
                        }
                    }
                }
            }
        }));
    }
    let folder = {
        let a = a.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                a.roll_up(now_micros()).await.expect("roll up and fold");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    for t in tasks {
        t.await.expect("a node's task");
    }
    folder.await.expect("the upkeep");
    let url = database_url().expect("set");
    let side = side_pool(&url).await;
    let counted: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT function, status, COUNT(*) FROM \"{}\".runs WHERE status IN ('queued', 'running', 'waiting') \
         GROUP BY function, status ORDER BY function, status",
        scratch.schema
    ))
    .fetch_all(&side)
    .await
    .expect("count the table");
    let kept: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT function, status, SUM(runs)::BIGINT FROM \"{}\".run_counts GROUP BY function, status \
         HAVING SUM(runs) <> 0 ORDER BY function, status",
        scratch.schema
    ))
    .fetch_all(&side)
    .await
    .expect("read the kept counts");
    assert_eq!(kept, counted, "the kept counts are the table's");
    assert!(counted.iter().any(|c| c.1 == "running") && counted.iter().any(|c| c.1 == "queued"), "{counted:?}");
    let queued: i64 = counted.iter().filter(|c| c.1 == "queued").map(|c| c.2).sum();
    let stats = a.queue_stats(now_micros(), 10_000).await.expect("queue stats");
    assert_eq!(stats.iter().map(|q| q.queued).sum::<i64>(), queued, "the queue stats read the kept counts");
    side.close().await;
    a.close().await;
    b.close().await;
    scratch.drop_now().await;
}
