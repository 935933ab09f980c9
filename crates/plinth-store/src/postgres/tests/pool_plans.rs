//! The pool's statements on run tables partitioned by run id (decision 0026's plan; the schema of
//! `partitioned.rs`): the pool keeps one generic plan per statement there, and only there, and
//! those plans, made while every partition is empty, read the partition of their run only.

use super::fresh;
use super::partition_plans::{fill_today, plan_of};
use super::partitioned::{DAY_MICROS, fresh_partitioned};
use crate::postgres::checkpoints::SAVE_SQL;
use crate::postgres::connect::runs_partitioned;
use crate::postgres::rows::RUN_COLS;
use crate::postgres::steps::{HOLDS_SQL, STEP_COLS};
use plinth_core::ids::id_floor;
use plinth_core::timefmt::now_micros;
use serde_json::Value;
use sqlx::{Acquire, Executor, PgConnection};

/// The tables `plan` (EXPLAIN ANALYZE, JSON) read rows of, with the node that read them, for
/// every scan that ran, sorted.
fn reads(plan: &Value, out: &mut Vec<(String, String)>) {
    let text = |k: &str| plan.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let loops = plan.get("Actual Loops").and_then(Value::as_u64).unwrap_or(0);
    if !text("Relation Name").is_empty() && text("Node Type") != "ModifyTable" && loops > 0 {
        out.push((text("Relation Name"), text("Node Type")));
    }
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        reads(child, out);
    }
}

/// The partitions `plan` holds: scans in it, run or not, and those it left out as it started
/// (`Subplans Removed`). A generic plan holds every partition and prunes as it runs; a custom
/// plan pruned while planning and holds the one it reads.
fn partitions_planned(plan: &Value) -> u64 {
    let scan =
        plan.get("Relation Name").and_then(Value::as_str).is_some_and(|r| r.starts_with("runs_") || r.starts_with("steps_"));
    let here = plan.get("Subplans Removed").and_then(Value::as_u64).unwrap_or(0) + u64::from(scan);
    here + plan.get("Plans").and_then(Value::as_array).into_iter().flatten().map(partitions_planned).sum::<u64>()
}

/// The tables `call` read, sorted, and the partitions its plan holds; the call is rolled back.
async fn read_by(conn: &mut PgConnection, call: &str) -> (Vec<(String, String)>, u64) {
    let plan = plan_of(conn, call, true).await;
    let mut out = Vec::new();
    reads(&plan, &mut out);
    out.sort();
    out.dedup();
    (out, partitions_planned(&plan))
}

async fn show(conn: &mut PgConnection, setting: &str) -> String {
    sqlx::query_scalar(&format!("SHOW {setting}")).fetch_one(conn).await.expect("show")
}

/// The pool's hot statements of a step workflow: the run read by id, its steps, the lease
/// check of a step's write and the batched checkpoint. Each is prepared and planned on the
/// pool's connection while every partition is empty (as a node does on its first use), then
/// run with 5,030 runs and their steps in today's partition.
#[tokio::test]
async fn the_pools_generic_plans_read_their_runs_partition_only() {
    let Some((mut scratch, store)) = fresh_partitioned().await else { return };
    let mut conn = store.pool.acquire().await.expect("a pool connection");
    assert_eq!(show(&mut conn, "plan_cache_mode").await, "force_generic_plan", "the pool keeps one plan on partitions");
    let statements = [
        ("by_id(text)", format!("SELECT {RUN_COLS} FROM runs WHERE id = $1")),
        ("steps_of(text)", format!("SELECT {STEP_COLS} FROM steps WHERE run_id = $1 ORDER BY seq")),
        ("holds(text, text, bigint)", HOLDS_SQL.to_string()),
        (
            "save(text[], text[], bigint[], text[], text[], bigint[], text[], text[], bigint[], bigint[], bigint[], \
             text[], text[], text[])",
            SAVE_SQL.to_string(),
        ),
    ];
    for (name, sql) in &statements {
        conn.execute(format!("PREPARE {name} AS {sql}").as_str()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let now = now_micros();
    let prefix = id_floor(now / DAY_MICROS * DAY_MICROS)[..10].to_string();
    let run = format!("{prefix}{:016}", 4_000);
    let calls = [
        format!("by_id('{run}')"),
        format!("steps_of('{run}')"),
        format!("holds('{run}', 'w', 1)"),
        format!(
            "save(ARRAY['{run}'], ARRAY['w'], ARRAY[1::bigint], ARRAY['{run}'], ARRAY['s9'], ARRAY[9::bigint], \
             ARRAY['run'], ARRAY['succeeded'], ARRAY[1::bigint], ARRAY[{now}::bigint], ARRAY[{now}::bigint], \
             ARRAY['1'], ARRAY[NULL::text], ARRAY[NULL::text])"
        ),
    ];
    for call in &calls {
        let (empty, _) = read_by(&mut conn, call).await;
        assert!(empty.iter().all(|(_, node)| node != "Seq Scan"), "{call} on empty partitions: {empty:?}");
    }

    fill_today(&mut conn, now).await;
    conn.execute(
        format!(
            "UPDATE runs SET status = 'running', attempt = 1, lease_owner = 'w', lease_expires_at = {now} WHERE id = '{run}'; \
             INSERT INTO steps (run_id, id, seq, op, status, attempts, started_at) \
             SELECT r.id, 's' || s, s, 'run', 'succeeded', 1, 1 FROM runs r, generate_series(1, 3) s"
        )
        .as_str(),
    )
    .await
    .expect("steps of every run");
    let expected: [&[&str]; 4] = [&["runs_p8"], &["steps_p8"], &["runs_p8"], &["runs_p8"]];
    for (call, tables) in calls.iter().zip(expected) {
        let (read, planned) = read_by(&mut conn, call).await;
        let names: Vec<&str> = read.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, tables, "{call} reads its run's partition only: {read:?}");
        assert!(read.iter().all(|(_, node)| node != "Seq Scan"), "{call} reads by key: {read:?}");
        assert!(planned >= 12, "{call} ran a generic plan, which holds all 12 partitions ({planned})");
    }
    drop(conn);
    store.close().await;
    scratch.drop_now().await;
}

/// On one table the pool is left in PostgreSQL's automatic plan mode, and a schema that does not
/// exist has no partitioned runs.
#[tokio::test]
async fn the_pool_on_one_table_is_left_in_automatic_plan_mode() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = store.pool.acquire().await.expect("a pool connection");
    assert_eq!(show(&mut conn, "plan_cache_mode").await, "auto");
    drop(conn);
    assert!(!runs_partitioned(&store.pool, &scratch.schema).await.expect("asked"), "one table");
    assert!(!runs_partitioned(&store.pool, "plinth_no_such_schema").await.expect("asked"), "no schema");
    store.close().await;
    scratch.drop_now().await;
}

/// The lanes' transactions on partitions still plan for their values (decision 0009), and the
/// pool's connection keeps its generic plans once the transaction ends.
#[tokio::test]
async fn a_lanes_transaction_on_partitions_plans_for_its_values() {
    let Some((mut scratch, store)) = fresh_partitioned().await else { return };
    let mut conn = store.pool.acquire().await.expect("a pool connection");
    assert!(runs_partitioned(&store.pool, &scratch.schema).await.expect("asked"));
    let mut tx = conn.begin().await.expect("begin");
    crate::postgres::flow::custom_plans(&mut tx).await.expect("custom plans");
    assert_eq!(show(&mut tx, "plan_cache_mode").await, "force_custom_plan");
    tx.commit().await.expect("commit");
    assert_eq!(show(&mut conn, "plan_cache_mode").await, "force_generic_plan");
    drop(conn);
    store.close().await;
    scratch.drop_now().await;
}
