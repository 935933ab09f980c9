//! The hot statements' one generic plan (decision 0018): the claim and the batched ends read
//! each run by its id, whatever the statistics, and the connections that run them keep the
//! setting across reconnects. A queued run's lane is read with custom plans. A page of one
//! function's runs in one status is read through its own index.

use super::super::checkpoints::SAVE_SQL;
use super::super::dedicated::{CLAIM_SETUP, Dedicated, ENDS_SETUP, GENERIC_PLANS};
use super::super::finish::FINISH_SQL;
use super::super::flow::{LANE_SETUP, LANE_SQL};
use super::super::leases::claim_sql;
use super::super::read::list_query;
use super::super::steps::HOLDS_SQL;
use super::{database_url, fresh, side_pool};
use crate::{ListFilter, Store, StoreError};
use plinth_core::RunStatus;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

/// Every scan of `runs` in a plan: (node type, index name, index condition).
fn scans_of_runs(plan: &Value, out: &mut Vec<(String, String, String)>) {
    let text = |k: &str| plan.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    if text("Relation Name") == "runs" && text("Node Type") != "ModifyTable" {
        out.push((text("Node Type"), text("Index Name"), text("Index Cond")));
    }
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        scans_of_runs(child, out);
    }
}

/// The generic plan of `sql` (with `params` PostgreSQL types) in `schema`, as its scans of `runs`;
/// `name` names the prepared statement (one per call on a connection).
pub(super) async fn generic_scans(
    conn: &mut PgConnection,
    schema: &str,
    name: &str,
    sql: &str,
    params: &[&str],
) -> Vec<(String, String, String)> {
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    conn.execute(GENERIC_PLANS).await.expect("generic plans");
    conn.execute(format!("PREPARE {name}({}) AS {sql}", params.join(", ")).as_str()).await.expect("prepare");
    let nulls = vec!["NULL"; params.len()].join(", ");
    explained_scans(conn, &format!("{name}({nulls})")).await
}

/// The scans of `runs` in the plan of `EXECUTE {call}`.
pub(super) async fn explained_scans(conn: &mut PgConnection, call: &str) -> Vec<(String, String, String)> {
    let explained: Value =
        sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) EXECUTE {call}")).fetch_one(&mut *conn).await.expect("explain");
    let mut scans = Vec::new();
    scans_of_runs(&explained[0]["Plan"], &mut scans);
    scans
}

/// A table as a busy node sees it, analyzed: a few hundred runs running on other nodes, many
/// queued and ended. With few running runs, reading them all looks cheap to the planner.
async fn crowded(conn: &mut PgConnection, schema: &str) {
    // Why: the counting triggers name their table without a schema, as the store's sessions do.
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    for (status, n) in [("running", 200), ("queued", 20000), ("succeeded", 20000)] {
        let sql = format!(
            "INSERT INTO \"{schema}\".runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, \
               correlation_id, lease_owner, lease_expires_at, finished_at) \
             SELECT '{status}' || lpad(g::text, 8, '0'), 'busy', '{status}', 1, 3, 'null', 1, 1, 'c' || g, \
               CASE WHEN '{status}' = 'running' THEN 'other-node' END, CASE WHEN '{status}' = 'running' THEN 9 END, \
               CASE WHEN '{status}' = 'succeeded' THEN 2 END \
             FROM generate_series(1, {n}) g"
        );
        conn.execute(sql.as_str()).await.expect("fill");
    }
    conn.execute(format!("ANALYZE \"{schema}\".runs").as_str()).await.expect("analyze");
}

pub(super) const FINISH_PARAMS: [&str; 17] = [
    "text[]", "text[]", "bigint[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]", "bigint[]", "bigint[]",
    "bigint[]", "bigint[]", "bigint[]", "text[]", "text[]", "bigint[]",
];
pub(super) const CLAIM_PARAMS: [&str; 5] = ["text", "bigint", "bigint", "text", "bigint"];

/// The ends' lock as it is written now, and as it was written before.
const OLD_HELD: (&str, &str) = (
    "SELECT i.*, h.cancel FROM input i CROSS JOIN LATERAL (
    SELECT r.cancel_requested AS cancel FROM runs r
    WHERE r.id = i.id AND r.lease_owner = i.owner AND r.attempt = i.attempt AND r.status = (SELECT 'running'::text)
    FOR UPDATE) h",
    "SELECT i.*, r.cancel_requested AS cancel FROM runs r JOIN input i
    ON r.id = i.id AND r.lease_owner = i.owner AND r.attempt = i.attempt AND r.status = 'running'
  ORDER BY r.id FOR UPDATE OF r",
);

#[tokio::test]
async fn the_batched_ends_read_each_run_by_its_id_under_the_generic_plan() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    crowded(&mut conn, &scratch.schema).await;
    let scans = generic_scans(&mut conn, &scratch.schema, "ends", FINISH_SQL, &FINISH_PARAMS).await;
    assert!(scans.len() >= 2, "the ends lock and update runs: {scans:?}");
    for (node, index, cond) in &scans {
        assert!(node == "Index Scan" && cond.contains("(id = "), "each run is read by its id, not {node} {index} {cond}");
    }
    // And so with the settings the ends' connection adds to generic plans.
    conn.execute(ENDS_SETUP).await.expect("the ends' settings");
    let scans = generic_scans(&mut conn, &scratch.schema, "set_ends", FINISH_SQL, &FINISH_PARAMS).await;
    assert!(scans.len() >= 2, "the ends lock and update runs: {scans:?}");
    for (node, index, cond) in &scans {
        assert!(node == "Index Scan" && cond.contains("(id = "), "with the ends' settings, not {node} {index} {cond}");
    }
    conn.execute("RESET ALL").await.expect("reset");

    // The check is not vacuous: the ends as they were written before (the runs joined to the
    // input and locked in one go) get a generic plan that reads every running run.
    let before = FINISH_SQL.replace(OLD_HELD.0, OLD_HELD.1);
    assert_ne!(before, FINISH_SQL, "the old form is rebuilt");
    let scans = generic_scans(&mut conn, &scratch.schema, "old_ends", &before, &FINISH_PARAMS).await;
    assert!(scans.iter().any(|(_, _, cond)| !cond.contains("(id = ")), "the old form read runs only by id: {scans:?}");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

/// Statistics taken while no run was running (a queue filled, then 4,000 of its runs started
/// by keyed lanes, not analyzed since) make `runs_leases` look empty: the ends, the batched
/// checkpoints and a single write's lease check still read each run by its id. With the status
/// compared with a constant, each walked `runs_leases` instead.
#[tokio::test]
async fn the_batched_ends_read_each_run_by_its_id_when_the_statistics_saw_no_run_running() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    let schema = scratch.schema.clone();
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    let fill = "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id) \
        SELECT lpad(g::text, 26, '0'), 'keyed', 'queued', 0, 3, 'null', g, g, 'c' FROM generate_series(1, 40000) g; \
        ANALYZE runs; \
        UPDATE runs SET status = 'running', attempt = 1, lease_owner = 'n', lease_expires_at = 9 WHERE id <= lpad('4000', 26, '0')";
    conn.execute(fill).await.expect("fill, analyze, then start 4,000");
    let save: [&str; 14] = [
        "text[]", "text[]", "bigint[]", "text[]", "text[]", "bigint[]", "text[]", "text[]", "bigint[]", "bigint[]", "bigint[]",
        "text[]", "text[]", "text[]",
    ];
    let statements: [(&str, &str, &[&str]); 3] = [
        ("ends", FINISH_SQL, &FINISH_PARAMS),
        ("checkpoints", SAVE_SQL, &save),
        ("holds", HOLDS_SQL, &["text", "text", "bigint"]),
    ];
    for (name, sql, params) in statements {
        let scans = generic_scans(&mut conn, &schema, name, sql, params).await;
        assert!(scans.iter().all(|(node, _, cond)| node.starts_with("Index") && cond.contains("(id = ")), "{name}: {scans:?}");
        let constant = sql.replace("status = (SELECT 'running'::text)", "status = 'running'");
        assert_ne!(constant, sql, "{name}: the form with a constant is rebuilt");
        let scans = generic_scans(&mut conn, &schema, &format!("constant_{name}"), &constant, params).await;
        assert!(
            scans.iter().any(|(_, index, _)| index == "runs_leases"),
            "{name} with a constant walks the running runs: {scans:?}"
        );
    }
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

/// The claim picks runs from the queue's index, then leases them through a join on their id
/// (decision 0026's plan needs a join: see `partition_plans.rs`). With the claims' settings
/// the join is a nested loop reading each picked run by primary key.
#[tokio::test]
async fn the_claim_reads_the_queue_then_the_leased_runs_by_id_under_the_generic_plan() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    crowded(&mut conn, &scratch.schema).await;
    conn.execute(CLAIM_SETUP).await.expect("the claims' settings");
    let scans = generic_scans(&mut conn, &scratch.schema, "claim", &claim_sql(), &CLAIM_PARAMS).await;
    let indexes: Vec<&str> = scans.iter().map(|(_, index, _)| index.as_str()).collect();
    assert_eq!(indexes, ["runs_queue", "runs_pkey"], "{scans:?}");
    assert!(scans.iter().all(|(node, _, _)| node == "Index Scan"), "{scans:?}");
    assert_eq!(scans[1].2, "(id = p.pid)", "the leased runs are read by their ids, one at a time: {scans:?}");

    // The check is not vacuous: with hash joins allowed, the generic plan of the same statement
    // on the same table hashes the picked runs against all of `runs`, read whole.
    conn.execute("RESET ALL").await.expect("reset");
    let scans = generic_scans(&mut conn, &scratch.schema, "hashed_claim", &claim_sql(), &CLAIM_PARAMS).await;
    assert!(scans.iter().any(|(node, _, _)| node == "Seq Scan"), "hash joins allowed, the runs read by id: {scans:?}");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

pub(super) async fn plan_cache_mode(dedicated: &mut Dedicated) -> Result<String, StoreError> {
    dedicated.run(async |c| Ok(sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(&mut *c).await?)).await
}

#[tokio::test]
async fn a_dedicated_connection_keeps_its_setting_across_a_reconnect() {
    let Some(url) = database_url() else { return };
    let pool = side_pool(&url).await;
    let mut dedicated = Dedicated::with_setup(pool.clone(), GENERIC_PLANS);
    assert_eq!(plan_cache_mode(&mut dedicated).await.expect("show"), "force_generic_plan");
    let failed: Result<(), StoreError> =
        dedicated.run(async |c| Ok(c.execute("SELECT no_such_column FROM pg_class").await.map(|_| ())?)).await;
    assert!(failed.is_err(), "a failed use drops the connection");
    assert_eq!(plan_cache_mode(&mut dedicated).await.expect("show"), "force_generic_plan", "the new connection is set up too");
    let mut plain = Dedicated::new(pool.clone());
    assert_eq!(plan_cache_mode(&mut plain).await.expect("show"), "auto", "without a setup nothing is set");
    pool.close().await;
}

#[tokio::test]
async fn a_setup_the_database_refuses_fails_each_use_and_is_tried_again() {
    let Some(url) = database_url() else { return };
    let pool = side_pool(&url).await;
    let mut dedicated = Dedicated::with_setup(pool.clone(), "SET plinth_no_such_setting = 1");
    for attempt in 0..2 {
        let err = plan_cache_mode(&mut dedicated).await.expect_err("a refused setup fails the use");
        assert!(err.to_string().contains("plinth_no_such_setting"), "attempt {attempt}: {err}");
        assert!(!dedicated.unreachable(), "the database was reached");
    }
    pool.close().await;
}

/// One lane holding many queued runs behind one running run, and many ended runs, analyzed.
async fn long_lane(conn: &mut PgConnection, schema: &str) {
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    let fill = format!(
        "INSERT INTO \"{schema}\".runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, \
           correlation_id, flow_key, finished_at) \
         SELECT lpad(g::text, 26, '0'), CASE WHEN g <= 30000 THEN 'other' ELSE 'hold' END, \
           CASE WHEN g <= 30000 THEN 'succeeded' WHEN g = 30001 THEN 'running' ELSE 'queued' END, 0, 1, 'null', g, g, 'c', \
           CASE WHEN g > 30000 THEN 'busy' END, CASE WHEN g <= 30000 THEN g END \
         FROM generate_series(1, 60000) g"
    );
    conn.execute(fill.as_str()).await.expect("fill");
    conn.execute(format!("ANALYZE \"{schema}\".runs").as_str()).await.expect("analyze");
}

async fn plan_mode(conn: &mut PgConnection) -> String {
    sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(conn).await.expect("show")
}

const LANE_PARAMS: [&str; 4] = ["text", "text", "text", "bigint"];

/// The scans of `runs` in the plan of the prepared `name` for the newest run of the lane.
async fn lane_scans(conn: &mut PgConnection, name: &str) -> Vec<(String, String, String)> {
    explained_scans(conn, &format!("{name}('hold', 'busy', '{:0>26}', 1000)", 60000)).await
}

#[tokio::test]
async fn a_runs_lane_is_read_with_custom_plans_in_the_queues_order() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    long_lane(&mut conn, &scratch.schema).await;
    // The store's read sets custom plans for its transaction only. (The generic plan that
    // walked every entry of the lane through `runs_lane_open` was seen with 200,000 runs in
    // the lane among 1,200,000: 120 ms against 0.9 ms. A table this small does not lead the
    // planner there, so this test shows the setting and the custom plan, not the bad plan.)
    let mut tx = conn.begin().await.expect("begin");
    tx.execute(LANE_SETUP).await.expect("the lane's settings");
    assert_eq!(plan_mode(&mut tx).await, "force_custom_plan");
    let prepare = format!("PREPARE lane_custom({}) AS {}", LANE_PARAMS.join(", "), LANE_SQL);
    tx.execute(prepare.as_str()).await.expect("prepare");
    let custom = lane_scans(&mut tx, "lane_custom").await;
    tx.rollback().await.expect("rollback");
    assert_eq!(plan_mode(&mut conn).await, "auto", "the setting ends with the transaction");
    let walks_the_lane = custom.iter().any(|(_, index, cond)| index == "runs_lane_open" && !cond.contains("'running'"));
    assert!(!walks_the_lane, "the queued ranges are read in the queue's order: {custom:?}");
    // Why: 29,999 runs ahead of the newest, and the planner guesses fewer than the bound; read
    // through a bitmap, the whole range was read and sorted to count the first 1,000.
    // Read in an index's order (the lane's, or the due runs' where the planner prefers it),
    // each range stops at the bound.
    let ranges: Vec<_> = custom.iter().filter(|(_, index, _)| index == "runs_lane_queue" || index == "runs_due").collect();
    assert_eq!(ranges.len(), 2, "both ranges ahead read in an index's order: {custom:?}");
    assert!(ranges.iter().all(|(node, _, _)| node == "Index Scan" || node == "Index Only Scan"), "{custom:?}");
    assert!(custom.iter().all(|(node, _, _)| !node.starts_with("Bitmap")), "no bitmap reads the lane whole: {custom:?}");

    // And the read answers: one running, 1,000 counted ahead (the bound) of the newest run.
    let newest = format!("{:0>26}", 60000);
    for _ in 0..7 {
        let lane = store.lane("hold", "busy", &newest).await.expect("lane");
        assert_eq!((lane.running, lane.ahead), (1, 1000), "{lane:?}");
    }
    let unknown = store.lane("hold", "busy", "not-a-run").await.expect("lane of an unknown run");
    assert_eq!(unknown.ahead, 0, "no run, nothing counted ahead: {unknown:?}");
    let other = store.lane("hold", "idle", &newest).await.expect("lane of an empty key");
    assert_eq!((other.running, other.ahead), (0, 0), "{other:?}");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

/// Runs of `hold` queued long ago, then as many newer runs of `other` that ended, analyzed: the
/// pair (`hold`, `queued`) looks spread over the table, yet every one of them is older than the
/// ended runs.
async fn old_backlog(conn: &mut PgConnection, schema: &str) {
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    let fill = format!(
        "INSERT INTO \"{schema}\".runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, \
           correlation_id, finished_at) \
         SELECT lpad(g::text, 26, '0'), CASE WHEN g <= 30000 THEN 'hold' ELSE 'other' END, \
           CASE WHEN g <= 30000 THEN 'queued' ELSE 'succeeded' END, 0, 1, 'null', g, g, 'c', \
           CASE WHEN g > 30000 THEN g END \
         FROM generate_series(1, 60000) g"
    );
    conn.execute(fill.as_str()).await.expect("fill");
    conn.execute(format!("ANALYZE \"{schema}\".runs").as_str()).await.expect("analyze");
}

#[tokio::test]
async fn a_page_of_one_functions_runs_in_one_status_is_read_through_its_own_index() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    old_backlog(&mut conn, &scratch.schema).await;
    let filter =
        ListFilter { function: Some("hold".into()), status: Some(RunStatus::Queued), limit: 50, ..ListFilter::default() };
    let (sql, args) = list_query(&filter);
    assert_eq!(args.len(), 2, "function and status (the limit is in the statement): {sql}");
    conn.execute(format!("PREPARE page(text, text) AS {sql}").as_str()).await.expect("prepare");
    let scans = explained_scans(&mut conn, "page('hold', 'queued')").await;
    assert!(
        scans.iter().all(|(_, index, cond)| index == "runs_by_function_status" && cond.contains("status =")),
        "the page is read through (function, status, id), both compared in the index: {scans:?}"
    );

    // The check is not vacuous: without that index no plan compares both in an index; the rows
    // of the other status are read and filtered out. (At scale, 200,000 runs of `hold` queued
    // among 1,200,000, the planner walked the primary key from the newest run through 20,000
    // runs of another function: 3.2 ms a page, through the index this one replaced.)
    let mut tx = conn.begin().await.expect("begin");
    tx.execute("DROP INDEX runs_by_function_status").await.expect("drop the index");
    tx.execute(format!("PREPARE page_before(text, text) AS {sql}").as_str()).await.expect("prepare");
    let before = explained_scans(&mut tx, "page_before('hold', 'queued')").await;
    tx.rollback().await.expect("rollback");
    assert!(!before.is_empty(), "the page reads runs");
    assert!(
        before.iter().all(|(_, _, cond)| !(cond.contains("function =") && cond.contains("status ="))),
        "without the index one of the two is a filter: {before:?}"
    );

    // The store's page: the newest 50 queued runs of `hold`, then the next from the cursor.
    let page = store.list(filter.clone()).await.expect("page");
    assert_eq!(page.runs.len(), 50);
    assert_eq!(page.runs[0].run_id, format!("{:0>26}", 30000), "the newest first");
    assert!(page.runs.iter().all(|r| r.function == "hold" && r.status == RunStatus::Queued));
    let next = store.list(ListFilter { before_id: page.next_cursor, ..filter }).await.expect("next page");
    assert_eq!(next.runs[0].run_id, format!("{:0>26}", 29950), "the cursor goes on where the page ended");
    let none = ListFilter { function: Some("hold".into()), status: Some(RunStatus::Failed), ..ListFilter::default() };
    assert!(store.list(none).await.expect("empty page").runs.is_empty(), "no failed run of `hold`");

    // A page of one function in any status merges a range per status, each through the index.
    let newer = "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, finished_at) \
        SELECT lpad(g::text, 26, '0'), 'hold', CASE WHEN g % 2 = 0 THEN 'failed' ELSE 'succeeded' END, 1, 1, 'null', g, g, 'c', g \
        FROM generate_series(60001, 60010) g";
    conn.execute(newer).await.expect("newer runs of hold");
    let any = ListFilter { function: Some("hold".into()), limit: 20, ..ListFilter::default() };
    let (sql, args) = list_query(&any);
    assert_eq!(args.len(), 1, "the function (the limit is in the statement): {sql}");
    conn.execute(format!("PREPARE any_status(text) AS {sql}").as_str()).await.expect("prepare");
    let scans = explained_scans(&mut conn, "any_status('hold')").await;
    assert_eq!(scans.len(), RunStatus::ALL.len(), "one range per status: {scans:?}");
    // Each range through (function, status, id): the status is a sub-select, so no partial
    // index of the live runs in one status can serve it (see `tests/status_pages.rs`).
    assert!(
        scans.iter().all(|(node, index, cond)| node.starts_with("Index")
            && index == "runs_by_function_status"
            && cond.contains("status =")),
        "{scans:?}"
    );
    let page = store.list(any.clone()).await.expect("page of any status");
    let ids: Vec<String> = page.runs.iter().map(|r| r.run_id.clone()).collect();
    let expected: Vec<String> = (59991..=60010).rev().map(|g| format!("{g:0>26}")).collect();
    assert_eq!(ids[..10], expected[..10], "the ended runs first, newest first");
    assert_eq!(ids[10], format!("{:0>26}", 30000), "then the queued ones, in id order");
    assert_eq!(page.runs.len(), 20);
    let next = store.list(ListFilter { before_id: page.next_cursor, ..any }).await.expect("next page");
    assert_eq!(next.runs[0].run_id, format!("{:0>26}", 29990), "the cursor runs through the merge");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}
