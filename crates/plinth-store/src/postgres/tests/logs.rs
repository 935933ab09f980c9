//! Handlers' log lines on PostgreSQL (decision 0041): written in batches on a connection whose
//! commits do not wait for the disk's flush; lines of many runs in one statement, lines of one
//! run sent twice at once, and lines of a run that does not exist.

use super::{database_url, fresh, new_run, side_pool};
use crate::postgres::dedicated::Dedicated;
use crate::postgres::logs::LOG_SETUP;
use crate::{Enqueued, LogLine, Store, StoreError};
use plinth_core::timefmt::now_micros;
use sqlx::Executor;

async fn show(d: &mut Dedicated, setting: &str) -> Result<String, StoreError> {
    let sql = format!("SHOW {setting}");
    d.run(async |c| Ok(sqlx::query_scalar(&sql).fetch_one(&mut *c).await?)).await
}

#[tokio::test]
async fn the_log_lines_connection_commits_without_waiting_for_the_flush() {
    let Some(url) = database_url() else { return };
    let pool = side_pool(&url).await;
    let mut logs = Dedicated::with_setup(pool.clone(), LOG_SETUP);
    assert_eq!(show(&mut logs, "synchronous_commit").await.expect("show"), "off");
    assert_eq!(show(&mut logs, "plan_cache_mode").await.expect("show"), "force_generic_plan");
    let failed: Result<(), StoreError> =
        logs.run(async |c| Ok(c.execute("SELECT no_such_column FROM pg_class").await.map(|_| ())?)).await;
    assert!(failed.is_err(), "a failed use drops the connection");
    assert_eq!(show(&mut logs, "synchronous_commit").await.expect("show"), "off", "the new connection is set up too");
    let mut plain = Dedicated::new(pool.clone());
    assert_eq!(show(&mut plain, "synchronous_commit").await.expect("show"), "on", "the other writers' commits still wait");
    pool.close().await;
}

fn line(seq: u32, text: &str) -> LogLine {
    LogLine { seq, ts: now_micros(), line: text.to_string() }
}

#[tokio::test]
async fn lines_sent_together_are_kept_for_the_runs_that_exist() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut ids = Vec::new();
    for _ in 0..40 {
        match store.enqueue(new_run("f", serde_json::json!({}))).await.expect("enqueue") {
            Enqueued::Created(r) => ids.push(r.run_id),
            other => panic!("a new run, got {other:?}"),
        }
    }
    let ghost = plinth_core::ids::new_run_id();
    // Every run's line at once, two writes of the first run at once (one statement cannot
    // take both), and a run that does not exist.
    let mut writes: Vec<(String, Vec<LogLine>)> =
        ids.iter().map(|id| (id.clone(), vec![line(0, &format!("{id} 0")), line(1, "nul \0 inside")])).collect();
    writes.push((ids[0].clone(), vec![line(2, "second write of the first run")]));
    writes.push((ghost.clone(), vec![line(0, "orphan")]));
    let sent = writes.into_iter().map(|(id, lines)| {
        let store = &store;
        async move { store.append_logs(&id, 1, lines).await }
    });
    for r in futures_util::future::join_all(sent).await {
        r.expect("every write answers");
    }
    for (i, id) in ids.iter().enumerate() {
        let got: Vec<(u32, String)> =
            store.logs(id).await.expect("logs").expect("the run").into_iter().map(|e| (e.line.seq, e.line.line)).collect();
        let mut want = vec![(0, format!("{id} 0")), (1, "nul \u{fffd} inside".to_string())];
        if i == 0 {
            want.push((2, "second write of the first run".to_string()));
        }
        assert_eq!(got, want, "run {i}");
    }
    assert!(store.logs(&ghost).await.expect("logs").is_none(), "no run, no lines");
    store.close().await;
    scratch.drop_now().await;
}
