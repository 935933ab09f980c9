//! The claim and the pages on run tables partitioned by run id (decision 0026's plan; the
//! schema of `partitioned.rs`): the runs a claim picks are leased in their own partition only,
//! whatever the partitions held when the node prepared the statement, and the newest page reads
//! the newest partitions only.

use super::database_url;
use super::partitioned::{DAY_MICROS, fresh_partitioned};
use crate::postgres::dedicated::CLAIM_SETUP;
use crate::postgres::leases::{DUE_SQL, WAKE_LEFT_SQL, claim_sql, claim_with_waits_sql};
use crate::postgres::read::list_query;
use crate::{ListFilter, Store};
use plinth_core::ids::id_floor;
use plinth_core::timefmt::now_micros;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

/// The partitions of `runs` that the update in `plan` (EXPLAIN ANALYZE, JSON) read: the scans
/// below its `ModifyTable` node that ran, leaving out the sub-plans it only takes values from.
fn updated(plan: &Value, under_update: bool, out: &mut Vec<String>) {
    let text = |k: &str| plan.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let loops = plan.get("Actual Loops").and_then(Value::as_u64).unwrap_or(0);
    let is_update = text("Node Type") == "ModifyTable";
    if under_update && !is_update && text("Relation Name").starts_with("runs_") && loops > 0 {
        out.push(text("Relation Name"));
    }
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        let side = child.get("Parent Relationship").and_then(Value::as_str).unwrap_or_default();
        let below = (under_update || is_update) && side != "InitPlan" && side != "SubPlan";
        updated(child, below, out);
    }
}

/// The plan of `EXECUTE {call}` (JSON), with what ran when `run`; the call is rolled back.
pub(super) async fn plan_of(conn: &mut PgConnection, call: &str, run: bool) -> Value {
    let mut tx = conn.begin().await.expect("begin");
    let options = if run { "ANALYZE, FORMAT JSON" } else { "FORMAT JSON" };
    let explained: Value =
        sqlx::query_scalar(&format!("EXPLAIN ({options}) EXECUTE {call}")).fetch_one(&mut *tx).await.expect("explain");
    tx.rollback().await.expect("rollback");
    explained[0]["Plan"].clone()
}

/// The partitions of `runs` whose rows the claim `call` looked up to lease them, sorted; the
/// claim is rolled back.
async fn leased_from(conn: &mut PgConnection, call: &str) -> Vec<String> {
    let explained = plan_of(conn, call, true).await;
    let mut read = Vec::new();
    updated(&explained, false, &mut read);
    read.sort();
    read
}

/// How many runs of `status` are leased to `owner`, and in how many partitions of `runs` and
/// `attempts` they and their attempts are kept.
async fn leased(conn: &mut PgConnection, owner: &str) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT r.tableoid), COUNT(DISTINCT a.tableoid) FROM runs r \
         JOIN attempts a ON a.run_id = r.id AND a.attempt = r.attempt WHERE r.status = 'running' AND r.lease_owner = $1",
    )
    .bind(owner)
    .fetch_one(conn)
    .await
    .expect("the leased runs")
}

/// Fills today's partition (the day of `now`) with 30 runs of `f` waiting and due, then 5,000
/// queued, due in id order.
pub(super) async fn fill_today(conn: &mut PgConnection, now: i64) {
    let prefix = id_floor(now / DAY_MICROS * DAY_MICROS)[..10].to_string();
    let fill = format!(
        "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id) \
         SELECT '{prefix}' || lpad(g::text, 16, '0'), 'f', CASE WHEN g <= 30 THEN 'waiting' ELSE 'queued' END, 0, 3, 'null', \
           1, g, 'c' FROM generate_series(1, 5030) g"
    );
    conn.execute(fill.as_str()).await.expect("filled");
}

/// The claim and the claim of a function with due waits, each prepared on the claims'
/// connection while every partition is empty (as a node does on its first claim), then run
/// with 5,000 runs queued and 30 due waits in today's partition: each leased run is read by
/// its key in `runs_p8` alone, and the claim leases them.
#[tokio::test]
async fn the_claim_leases_its_runs_in_their_partition_only() {
    let Some((mut scratch, store)) = fresh_partitioned().await else { return };
    store.close().await;
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    conn.execute(format!("SET search_path TO \"{}\"", scratch.schema).as_str()).await.expect("search path");
    conn.execute(CLAIM_SETUP).await.expect("the claims' settings");
    let params = "text, bigint, bigint, text, bigint";
    conn.execute(format!("PREPARE claim({params}) AS {}", claim_sql()).as_str()).await.expect("prepare");
    conn.execute(format!("PREPARE claim_waits({params}) AS {}", claim_with_waits_sql()).as_str()).await.expect("prepare");
    // The old form: the picked ids as an array computed while the statement runs.
    let array_form = claim_sql().replace("FROM picked p WHERE r.id = p.pid", "WHERE r.id = ANY(ARRAY(SELECT pid FROM picked))");
    assert_ne!(array_form, claim_sql(), "the array form is rebuilt");
    conn.execute(format!("PREPARE claim_array({params}) AS {array_form}").as_str()).await.expect("prepare");
    let now = now_micros();
    let at = |name: &str, n: u32| format!("{name}('node-a', {}, {now}, 'f', {n})", now + 30_000_000);
    for name in ["claim", "claim_waits", "claim_array"] {
        conn.execute(format!("EXECUTE {}", at(name, 10)).as_str()).await.expect("a claim on empty partitions");
    }
    fill_today(&mut conn, now).await;

    assert_eq!(leased_from(&mut conn, &at("claim", 10)).await, ["runs_p8"], "each picked run read in today's partition");
    assert_eq!(leased_from(&mut conn, &at("claim_waits", 10)).await, ["runs_p8"], "and so with due waits among them");
    // The check is not vacuous: the array form reads every partition.
    let array = leased_from(&mut conn, &at("claim_array", 10)).await;
    assert!(array.len() >= 12, "the array form read one partition: {array:?}");

    // The claims lease: ten queued runs, then forty runs of which the thirty waits due first.
    conn.execute(format!("EXECUTE {}", at("claim", 10)).as_str()).await.expect("claim");
    assert_eq!(leased(&mut conn, "node-a").await, (10, 1, 1), "ten runs leased, their attempts recorded, in one partition each");
    conn.execute(format!("EXECUTE {}", at("claim_waits", 40)).as_str()).await.expect("claim with waits");
    assert_eq!(leased(&mut conn, "node-a").await, (50, 1, 1));
    let waiting: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status = 'waiting'").fetch_one(&mut conn).await.expect("count");
    assert_eq!(waiting, 0, "the due waits were leased first");
    // A claim of a function with nothing queued leases nothing.
    let other = at("claim", 10).replace("'f'", "'g'");
    conn.execute(format!("EXECUTE {other}").as_str()).await.expect("claim of another function");
    assert_eq!(leased(&mut conn, "node-a").await.0, 50, "nothing more leased");
    conn.close().await.expect("close");
    scratch.drop_now().await;
}

/// The partitions of `runs` that `call` reads whole: the sequential scans of its plan, those
/// that ran when `run` (the call is then rolled back).
async fn read_whole(conn: &mut PgConnection, call: &str, run: bool) -> Vec<String> {
    fn walk(plan: &Value, run: bool, out: &mut Vec<String>) {
        let text = |k: &str| plan.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let ran = !run || plan.get("Actual Loops").and_then(Value::as_u64).unwrap_or(0) > 0;
        if ran && text("Node Type") == "Seq Scan" && text("Relation Name").starts_with("runs_") {
            out.push(text("Relation Name"));
        }
        for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
            walk(child, run, out);
        }
    }
    let explained = plan_of(conn, call, run).await;
    let mut read = Vec::new();
    walk(&explained, run, &mut read);
    read.sort();
    read.dedup();
    read
}

/// The claim's probe (which also wakes the due waits of functions it leases from the queue)
/// and its last statement (which queues the due waits it did not lease), prepared on the
/// claims' connection while every partition is empty, then run with 5,000 runs queued and 30
/// due waits in today's partition: neither reads a partition whole. With sequential scans
/// allowed (the claims' settings before session 47), the plan made on empty partitions read
/// every partition whole, on every claim.
#[tokio::test]
async fn the_claims_probe_reads_no_partition_whole() {
    let Some((mut scratch, store)) = fresh_partitioned().await else { return };
    store.close().await;
    let url = database_url().expect("set");
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let now = now_micros();
    let calls =
        [format!("due({now}, ARRAY['f', 'g'], 9000000000000000000, ARRAY['g'])"), format!("wake_left({now}, ARRAY['f'])")];
    let prepare = async |conn: &mut PgConnection, extra: &str| {
        conn.execute(format!("SET search_path TO \"{}\"; {CLAIM_SETUP}{extra}", scratch.schema).as_str())
            .await
            .expect("the settings");
        conn.execute(format!("PREPARE due(bigint, text[], bigint, text[]) AS {DUE_SQL}").as_str()).await.expect("prepare");
        conn.execute(format!("PREPARE wake_left(bigint, text[]) AS {WAKE_LEFT_SQL}").as_str()).await.expect("prepare");
    };
    // The check is not vacuous: with sequential scans allowed, the plans made on empty
    // partitions read them all whole. (Checked on the plan as it is made: a node keeps it, but
    // here the DDL of tests running beside this one may make PostgreSQL plan it again.)
    let mut before = PgConnection::connect(&url).await.expect("connect");
    prepare(&mut before, "; SET enable_seqscan = on").await;
    for call in &calls {
        assert_eq!(read_whole(&mut before, call, false).await.len(), 12, "{call} with sequential scans allowed");
    }
    before.close().await.expect("close");
    prepare(&mut conn, "").await;
    for call in &calls {
        assert!(read_whole(&mut conn, call, false).await.is_empty(), "{call} planned on empty partitions");
        conn.execute(format!("EXECUTE {call}").as_str()).await.expect("on empty partitions");
    }
    fill_today(&mut conn, now).await;
    for call in &calls {
        assert!(read_whole(&mut conn, call, true).await.is_empty(), "{call} read a partition whole");
    }
    // And the probe answers: `f` has due runs and its 30 due waits are woken; `g` has none.
    let (due, waits, _, _): (Vec<String>, Vec<String>, Option<i64>, Option<i64>) =
        sqlx::query_as(&format!("EXECUTE {}", calls[0])).fetch_one(&mut conn).await.expect("the probe");
    assert_eq!((due, waits), (vec!["f".to_string()], Vec::<String>::new()));
    let waiting: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status = 'waiting'").fetch_one(&mut conn).await.expect("count");
    assert_eq!(waiting, 0, "the due waits of `f` were queued");
    conn.close().await.expect("close");
    scratch.drop_now().await;
}

/// The partitions of `runs` whose scans in `plan` (EXPLAIN ANALYZE, JSON) ran, in the order
/// the plan lists them.
fn scanned(plan: &Value, out: &mut Vec<String>) {
    let text = |k: &str| plan.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    if text("Relation Name").starts_with("runs_") && plan.get("Actual Loops").and_then(Value::as_u64).unwrap_or(0) > 0 {
        out.push(text("Relation Name"));
    }
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        scanned(child, out);
    }
}

/// Runs ended three days ago and runs queued today: the newest page, prepared on empty
/// partitions, reads the partitions from the newest down to today's and stops there (the
/// partitions are ordered by id, so PostgreSQL appends them in order instead of merging them);
/// the pages after it go on into the older partition.
#[tokio::test]
async fn the_newest_page_reads_the_newest_partitions_only() {
    let Some((mut scratch, store)) = fresh_partitioned().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    conn.execute(format!("SET search_path TO \"{}\"; SET plan_cache_mode = force_generic_plan", scratch.schema).as_str())
        .await
        .expect("search path");
    let filter = ListFilter { limit: 50, ..ListFilter::default() };
    let (sql, args) = list_query(&filter);
    assert!(args.is_empty(), "the newest page has no parameter: {sql}");
    conn.execute(format!("PREPARE page AS {sql}").as_str()).await.expect("prepare");
    conn.execute("EXECUTE page").await.expect("a page of empty partitions");
    let day = |d: i64| id_floor((now_micros() / DAY_MICROS + d) * DAY_MICROS)[..10].to_string();
    let fill = format!(
        "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, \
           finished_at) \
         SELECT p || lpad(g::text, 16, '0'), 'f', s, 1, 3, 'null', 1, 1, 'c', CASE WHEN s = 'succeeded' THEN 2 END \
         FROM (VALUES ('{}', 'succeeded'), ('{}', 'queued')) v(p, s), generate_series(1, 60) g",
        day(-3),
        day(0)
    );
    conn.execute(fill.as_str()).await.expect("filled");
    let explained: Value =
        sqlx::query_scalar("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page").fetch_one(&mut conn).await.expect("explain");
    let mut read = Vec::new();
    scanned(&explained[0]["Plan"], &mut read);
    assert_eq!(read, ["runs_other", "runs_ahead", "runs_p9", "runs_p8"], "the newest partitions, newest first");

    // The store's pages: 50 of today's runs, then today's last 10 and 40 from three days ago.
    let first = store.list(filter.clone()).await.expect("a page");
    assert_eq!(first.runs.len(), 50);
    assert!(first.runs.iter().all(|r| r.status == plinth_core::RunStatus::Queued), "today's runs first");
    let second = store.list(ListFilter { before_id: first.next_cursor.clone(), ..filter.clone() }).await.expect("next");
    let queued = second.runs.iter().filter(|r| r.status == plinth_core::RunStatus::Queued).count();
    assert_eq!((second.runs.len(), queued), (50, 10), "the cursor crosses into the older partition");
    let third = store.list(ListFilter { before_id: second.next_cursor.clone(), ..filter }).await.expect("last");
    assert_eq!(third.runs.len(), 20, "the last 20 ended runs");
    assert!(third.next_cursor.is_none(), "and no page after them");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}
