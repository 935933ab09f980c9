//! What a claim writes to the lanes of a limited function on SQLite: the shared cases of
//! `conformance::lanes`, with the lanes read beside the store.

use super::fresh;
use crate::conformance::lanes::{
    LaneRow, a_claim_that_finds_every_lane_full_moves_no_lane, a_throttled_lane_that_admits_nothing_still_says_when,
};
use rusqlite::Connection;
use std::path::Path;

/// The lanes of `f`; SQLite shows no row version, and a claim's update changes the served turn.
fn lanes_of(path: &Path) -> Vec<LaneRow> {
    let conn = Connection::open(path).expect("open beside the store");
    conn.prepare("SELECT key, served, touched_at, '' FROM flow_keys WHERE function = 'f' ORDER BY key")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn a_claim_that_finds_every_lane_full_writes_nothing_and_one_that_takes_a_run_moves_its_lane() {
    let (dir, store) = fresh();
    let path = dir.path().join("plinth.db");
    a_claim_that_finds_every_lane_full_moves_no_lane(&store, async || lanes_of(&path)).await;
}

#[tokio::test]
async fn a_throttled_lane_that_admits_nothing_is_not_written_and_says_when() {
    let (dir, store) = fresh();
    let path = dir.path().join("plinth.db");
    a_throttled_lane_that_admits_nothing_still_says_when(&store, async || lanes_of(&path)).await;
}

/// A database with `idle` lanes of `f` not forgotten yet (no open run), a lane `hot` with 3,000
/// running runs and none queued, and a lane `busy` with one running run and 2,000 queued, due.
fn gauged(idle: usize) -> Connection {
    use super::super::migrate::{MIGRATIONS, migrate};
    use rusqlite::params;
    let mut conn = Connection::open_in_memory().expect("an in-memory database");
    migrate(&mut conn, MIGRATIONS).expect("migrations apply");
    let tx = conn.transaction().expect("a transaction");
    {
        let mut lane =
            tx.prepare("INSERT INTO flow_keys (function, key, served, touched_at) VALUES ('f', ?1, 1, 1)").expect("prepare");
        let mut run = tx
            .prepare(
                "INSERT INTO runs (id, function, status, max_attempts, input, created_at, next_attempt_at, flow_key, correlation_id) \
                 VALUES (?1, 'f', ?2, 3, '{}', 1, 1, ?3, 'c')",
            )
            .expect("prepare");
        for i in 0..idle {
            lane.execute(params![format!("idle-{i:05}")]).expect("an idle lane");
        }
        for key in ["hot", "busy"] {
            lane.execute(params![key]).expect("a lane with open runs");
        }
        let mut n = 0;
        for (key, status, count) in [("hot", "running", 3000), ("busy", "running", 1), ("busy", "queued", 2000)] {
            for _ in 0..count {
                n += 1;
                run.execute(params![format!("{n:026}"), status, key]).expect("a run");
            }
        }
    }
    tx.commit().expect("commit");
    conn
}

/// The gauges' read of the lanes and the virtual machine steps it took.
fn room(conn: &Connection) -> (Vec<(String, i64, i64)>, i32) {
    let mut stmt = conn.prepare(super::super::lanes::LANE_ROOM).expect("the statement prepares");
    let rows = stmt
        .query_map(rusqlite::params!["f", 4, 10_000, 5], |r| Ok((r.get::<_, String>(0)?, r.get(2)?, r.get(3)?)))
        .expect("the lanes read")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    (rows, stmt.get_status(rusqlite::StatementStatus::VmStep))
}

#[test]
fn the_gauges_read_only_the_lanes_with_queued_runs_whatever_else_the_lanes_table_holds() {
    let (few, few_steps) = room(&gauged(10));
    let (many, many_steps) = room(&gauged(5000));
    let busy = vec![("busy".to_string(), 1, 4)];
    assert_eq!(few, busy, "`busy` alone: its running run, its due runs up to the cap of 4");
    assert_eq!(many, busy, "idle lanes and a lane with running runs only hold nothing to count");
    assert_eq!(few_steps, many_steps, "5,000 idle lanes cost no step more than 10");
    assert!(many_steps < 500, "a bounded read, not one per lane or per running run: {many_steps} steps");
    let conn = gauged(10);
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", super::super::lanes::LANE_ROOM)).expect("plan");
    let plan: Vec<String> = stmt
        .query_map(rusqlite::params!["f", 4, 10_000, 5], |r| r.get(3))
        .expect("the plan")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(
        plan.iter().all(|line| !line.starts_with("SCAN runs") && !line.starts_with("SCAN f")),
        "no table read whole: {plan:?}"
    );
    assert!(
        plan.iter().any(|line| line.starts_with("SEARCH f USING INDEX sqlite_autoindex_flow_keys_1 (function=? AND key=?)")),
        "the throttle by key: {plan:?}"
    );
}

#[test]
fn the_gauges_read_no_lane_of_an_unknown_function_and_at_most_the_keys_asked_for() {
    let conn = gauged(3);
    let mut stmt = conn.prepare(super::super::lanes::LANE_ROOM).expect("the statement prepares");
    let read = |stmt: &mut rusqlite::Statement<'_>, function: &str, keys: i64| -> usize {
        stmt.query_map(rusqlite::params![function, 4, keys, 5], |r| r.get::<_, String>(0)).expect("read").count()
    };
    assert_eq!(read(&mut stmt, "none-such", 10_000), 0, "an unknown function has no lane");
    assert_eq!(read(&mut stmt, "f", 0), 0, "no lane asked for, none read");
    assert_eq!(read(&mut stmt, "f", 1), 1, "one asked for");
}
