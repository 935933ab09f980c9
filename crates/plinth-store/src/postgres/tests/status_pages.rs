//! A page of runs in one status, of any function (migration 0019): with no index on
//! (status, id), the functions are walked along `runs_by_function_status` and one ordered range
//! of each is merged, newest first, with the cursor running through the merge.

use super::plans::explained_scans;
use super::{database_url, fresh};
use crate::{ListFilter, Store};
use plinth_core::RunStatus;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

/// 40,000 runs: succeeded runs of `many`, but for ids 20,001 to 30,000, queued runs of `hold`
/// (as a backlog between old and recent runs); then 30 failed ones spread over `a`, `b` and `c`
/// (ids 40,001 to 40,030); analyzed. `function` is then only loosely in the order of the table,
/// and the statistics made the planner walk the primary key for `hold`'s succeeded runs.
async fn fill(conn: &mut PgConnection, schema: &str) {
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    let runs = "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, \
           correlation_id, finished_at) \
         SELECT lpad(g::text, 26, '0'), \
           CASE WHEN g > 40000 THEN (ARRAY['a', 'b', 'c'])[1 + g % 3] WHEN g BETWEEN 20001 AND 30000 THEN 'hold' ELSE 'many' END, \
           CASE WHEN g > 40000 THEN 'failed' WHEN g BETWEEN 20001 AND 30000 THEN 'queued' ELSE 'succeeded' END, \
           1, 1, 'null', g, g, 'c', g \
         FROM generate_series(1, 40030) g";
    conn.execute(runs).await.expect("fill");
    conn.execute("ANALYZE runs").await.expect("analyze");
}

/// The blocks (in memory or read) and the rows of `call`, a prepared statement, executed.
pub(super) async fn executed(conn: &mut PgConnection, call: &str) -> (u64, u64) {
    let explained: Value = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {call}"))
        .fetch_one(&mut *conn)
        .await
        .expect("explain analyze");
    let top = &explained[0]["Plan"];
    let count = |key: &str| top[key].as_u64().unwrap_or(0);
    (count("Shared Hit Blocks") + count("Shared Read Blocks"), count("Actual Rows"))
}

#[tokio::test]
async fn a_page_in_one_status_of_any_function_merges_a_range_of_each_function() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    fill(&mut conn, &scratch.schema).await;
    let gone: bool = sqlx::query_scalar("SELECT to_regclass('runs_by_status') IS NULL").fetch_one(&mut conn).await.expect("look");
    assert!(gone, "migration 0019 dropped the index on (status, id)");

    let failed = ListFilter { status: Some(RunStatus::Failed), limit: 20, ..ListFilter::default() };
    let (sql, args) = super::super::read::list_query(&failed);
    assert_eq!(args.len(), 1, "the status (the limit is in the statement): {sql}");
    conn.execute(format!("PREPARE failed_page(text) AS {sql}").as_str()).await.expect("prepare");
    // Both a rare status and the one nearly every run is in (where the statistics once made the
    // planner walk the primary key backwards through `hold`, `a`, `b` and `c`, which have none).
    for status in ["failed", "succeeded"] {
        let plan = explained_scans(&mut conn, &format!("failed_page('{status}')")).await;
        assert!(!plan.is_empty(), "the page reads runs");
        assert!(
            plan.iter().all(|(node, index, _)| node.starts_with("Index") && index == "runs_by_function_status"),
            "{status}: the functions and their ranges are read through (function, status, id), never by a scan: {plan:?}"
        );
        assert!(
            plan.iter().any(|(_, _, cond)| cond.contains("function =") && cond.contains("status =")),
            "{status}: each function's range compares both in the index: {plan:?}"
        );
    }

    // A page of one function in a status it has no run in reads that function's range, not the
    // primary key through every run (which the statistics made the planner choose before).
    let none = ListFilter { function: Some("hold".into()), status: Some(RunStatus::Succeeded), ..ListFilter::default() };
    let (sql, _) = super::super::read::list_query(&none);
    conn.execute(format!("PREPARE hold_page(text, text) AS {sql}").as_str()).await.expect("prepare");
    let plan = explained_scans(&mut conn, "hold_page('hold', 'succeeded')").await;
    assert!(plan.iter().all(|(_, index, _)| index == "runs_by_function_status"), "{plan:?}");
    assert!(store.list(none).await.expect("no succeeded run of hold").runs.is_empty());

    // The 30 failed runs are the newest, spread over three functions: the page holds the newest
    // 20 of them in id order, and the cursor gives the last 10.
    let page = store.list(failed.clone()).await.expect("page");
    let ids: Vec<String> = page.runs.iter().map(|r| r.run_id.clone()).collect();
    let expected: Vec<String> = (40011..=40030).rev().map(|g| format!("{g:0>26}")).collect();
    assert_eq!(ids, expected, "newest first across the functions");
    let functions: std::collections::BTreeSet<&str> = page.runs.iter().map(|r| r.function.as_str()).collect();
    assert_eq!(functions.len(), 3, "from every function that has failed runs: {functions:?}");
    assert!(page.runs.iter().all(|r| r.status == RunStatus::Failed));
    let next = store.list(ListFilter { before_id: page.next_cursor.clone(), ..failed.clone() }).await.expect("next page");
    assert_eq!(next.runs.len(), 10, "the rest");
    assert_eq!(next.runs[0].run_id, format!("{:0>26}", 40010));
    assert!(next.next_cursor.is_none(), "nothing after the last failed run");

    // The other filters still hold inside each function's range.
    let older = ListFilter { created_before: Some(40005), ..failed.clone() };
    let page = store.list(older).await.expect("older page");
    assert_eq!(page.runs.len(), 4, "failed runs created before 40,005: {:?}", page.runs.len());
    assert_eq!(page.runs[0].run_id, format!("{:0>26}", 40004));
    let succeeded = store.list(ListFilter { status: Some(RunStatus::Succeeded), limit: 5, ..ListFilter::default() });
    let page = succeeded.await.expect("succeeded page");
    assert_eq!(page.runs[0].run_id, format!("{:0>26}", 40000), "one function's newest, past the other functions' runs");
    assert_eq!(page.runs.len(), 5);

    // The oldest 20,000 runs of `many` deleted, as the pruner does, and not vacuumed: the walk
    // of the functions goes down from the last one, so its probe lands on `many`'s newest
    // entries and never steps over the dead ones (upwards it read every one of them).
    conn.execute("DELETE FROM runs WHERE function = 'many' AND id <= lpad('20000', 26, '0')").await.expect("prune");
    let (blocks, rows) = executed(&mut conn, "failed_page('failed')").await;
    assert!(blocks < 200, "a page reads a few dozen blocks, not the dead entries: {blocks}");
    assert_eq!(rows, 21, "the page is still whole");

    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_status_no_run_is_in_or_an_empty_table_gives_an_empty_page() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let empty = ListFilter { status: Some(RunStatus::Cancelled), ..ListFilter::default() };
    let page = store.list(empty.clone()).await.expect("empty table");
    assert!(page.runs.is_empty() && page.next_cursor.is_none(), "no run at all");
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    fill(&mut conn, &scratch.schema).await;
    let page = store.list(empty).await.expect("no cancelled run");
    assert!(page.runs.is_empty() && page.next_cursor.is_none(), "runs, but none cancelled");
    let past = ListFilter { status: Some(RunStatus::Failed), before_id: Some(format!("{:0>26}", 1)), ..ListFilter::default() };
    assert!(store.list(past).await.expect("before the first run").runs.is_empty(), "a cursor before every run");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

/// A table analyzed when it held 40,000 succeeded runs of `many`, then 30,000 runs of `burst`
/// written after, as a burst is (one in a hundred running, the rest queued): the statistics know
/// no queued run and no `burst` function.
async fn burst(conn: &mut PgConnection, schema: &str) {
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    let settled = "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, \
           correlation_id, finished_at) \
         SELECT lpad(g::text, 26, '0'), 'many', 'succeeded', 1, 1, 'null', g, g, 'c', g FROM generate_series(1, 40000) g";
    conn.execute(settled).await.expect("the settled runs");
    conn.execute("ANALYZE runs").await.expect("analyze");
    conn.execute("ALTER TABLE runs SET (autovacuum_enabled = false)").await.expect("no analyze behind the test's back");
    let runs = "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, \
           lease_owner, lease_expires_at) \
         SELECT lpad(g::text, 26, '0'), 'burst', CASE WHEN g % 100 = 0 THEN 'running' ELSE 'queued' END, 1, 3, 'null', g, g, 'c', \
           CASE WHEN g % 100 = 0 THEN 'other-node' END, CASE WHEN g % 100 = 0 THEN g END \
         FROM generate_series(50001, 80000) g";
    conn.execute(runs).await.expect("the burst");
}

#[tokio::test]
async fn runs_written_after_the_statistics_are_paged_through_the_index_not_read_whole() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    burst(&mut conn, &scratch.schema).await;
    let pages = [
        ("function_queued", "text, text", "'burst', 'queued'", Some("burst"), Some(RunStatus::Queued)),
        ("function_running", "text, text", "'burst', 'running'", Some("burst"), Some(RunStatus::Running)),
        ("function_any", "text", "'burst'", Some("burst"), None),
        ("status_queued", "text", "'queued'", None, Some(RunStatus::Queued)),
    ];
    for (name, types, call, function, status) in pages {
        let filter = ListFilter { function: function.map(str::to_string), status, limit: 20, ..ListFilter::default() };
        let (sql, _) = super::super::read::list_query(&filter);
        conn.execute(format!("PREPARE {name}({types}) AS {sql}").as_str()).await.expect("prepare");
        let call = format!("{name}({call})");
        let plan = explained_scans(&mut conn, &call).await;
        assert!(
            plan.iter().all(|(node, index, _)| node.starts_with("Index") && index == "runs_by_function_status"),
            "{name}: (function, status, id), never a partial index of one status read whole: {plan:?}"
        );
        let (blocks, _) = executed(&mut conn, &call).await;
        assert!(blocks < 200, "{name}: a page reads a few dozen blocks, not 30,000 runs: {blocks}");
        let page = store.list(filter).await.expect("the page");
        assert_eq!(page.runs.len(), 20, "{name}: a whole page");
        assert!(page.runs.iter().all(|r| status.is_none_or(|s| r.status == s)), "{name}");
        assert!(page.runs.windows(2).all(|w| w[0].run_id > w[1].run_id), "{name}: newest first");
    }
    let newest = store.list(ListFilter { function: Some("burst".into()), limit: 1, ..ListFilter::default() }).await;
    assert_eq!(newest.expect("page").runs[0].run_id, format!("{:0>26}", 80000), "the burst's newest run, running");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}
