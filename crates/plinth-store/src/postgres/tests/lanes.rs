//! What a claim writes to the lanes of a limited function on PostgreSQL: the shared cases of
//! `conformance::lanes`, with the lanes read beside the store.

use super::{database_url, fresh, side_pool};
use crate::conformance::lanes::{
    LaneRow, a_claim_that_finds_every_lane_full_moves_no_lane, a_throttled_lane_that_admits_nothing_still_says_when,
};
use sqlx::PgPool;

/// The lanes of `f` with their row versions: an update, even one writing the same values,
/// gives the row a new `xmin`.
async fn lanes_of(side: &PgPool, schema: &str) -> Vec<LaneRow> {
    let sql = format!("SELECT key, served, touched_at, xmin::text FROM \"{schema}\".flow_keys WHERE function = 'f' ORDER BY key");
    sqlx::query_as(&sql).fetch_all(side).await.expect("read the lanes")
}

#[tokio::test]
async fn a_claim_that_finds_every_lane_full_updates_no_lane() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    a_claim_that_finds_every_lane_full_moves_no_lane(&store, async || lanes_of(&side, &scratch.schema).await).await;
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_throttled_lane_that_admits_nothing_is_not_updated_and_says_when() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    a_throttled_lane_that_admits_nothing_still_says_when(&store, async || lanes_of(&side, &scratch.schema).await).await;
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

/// The held-runs gauges' read of the lanes, with 5,000 lanes of `f` not forgotten yet (no open
/// run), a lane `hot` with 3,000 running runs and none queued, and a lane `busy` with one running
/// run and 2,000 queued, due; analyzed, read with a generic plan as the store's connections do.
#[tokio::test]
async fn the_gauges_read_only_the_lanes_with_queued_runs_whatever_else_the_lanes_table_holds() {
    use super::plans::explained_scans;
    use super::status_pages::executed;
    use crate::Store;
    use sqlx::{Connection, Executor, PgConnection};
    let Some((mut scratch, store)) = super::fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    conn.execute(format!("SET search_path TO \"{}\"", scratch.schema).as_str()).await.expect("search path");
    let fill = "INSERT INTO flow_keys (function, key, served, touched_at) \
          SELECT 'f', 'idle-' || lpad(g::text, 5, '0'), 1, 1 FROM generate_series(1, 5000) g \
          UNION ALL VALUES ('f', 'hot', 1, 1), ('f', 'busy', 1, 1); \
        INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, \
          flow_key, lease_owner, lease_expires_at) \
          SELECT lpad(g::text, 26, '0'), 'f', CASE WHEN g <= 3001 THEN 'running' ELSE 'queued' END, 1, 3, 'null', 1, 1, 'c', \
            CASE WHEN g <= 3000 THEN 'hot' ELSE 'busy' END, \
            CASE WHEN g <= 3001 THEN 'elsewhere' END, CASE WHEN g <= 3001 THEN 9 END \
          FROM generate_series(1, 5001) g; \
        ANALYZE runs; ANALYZE flow_keys";
    conn.execute(fill).await.expect("fill");
    conn.execute(super::super::dedicated::GENERIC_PLANS).await.expect("generic plans");
    let sql = super::super::lanes::LANE_ROOM;
    conn.execute(format!("PREPARE room(text, bigint, bigint, bigint) AS {sql}").as_str()).await.expect("prepare");

    let (blocks, rows) = executed(&mut conn, "room('f', 4, 10000, 5)").await;
    assert_eq!(rows, 1, "`busy` alone has queued runs");
    assert!(blocks < 200, "a bounded read, not one per lane or per running run: {blocks} blocks");
    let scans = explained_scans(&mut conn, "room('f', 4, 10000, 5)").await;
    assert!(scans.iter().all(|(node, _, _)| node.starts_with("Index")), "runs read through indexes only: {scans:?}");
    let room = store.lane_room("f", 4, 10_000, 5).await.expect("lane room");
    let seen: Vec<(&str, u64, u64)> = room.iter().map(|l| (l.key.as_str(), l.running, l.due)).collect();
    assert_eq!(seen, vec![("busy", 1, 4)], "its running run, its due runs up to the cap of 4");
    assert!(store.lane_room("f", 4, 0, 5).await.expect("no lane asked for").is_empty(), "`keys` 0 reads no lane");
    assert!(store.lane_room("none-such", 4, 10_000, 5).await.expect("lane room").is_empty(), "an unknown function has none");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

/// 1,000 lanes of function `f` (`k0` to `k999`), 20 runs each: two running on another node,
/// eighteen queued and due from time 1; analyzed.
const THOUSAND_LANES: &str = "INSERT INTO flow_keys (function, key, served, touched_at) \
      SELECT 'f', 'k' || g, 0, 1 FROM generate_series(0, 999) g; \
    INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, \
      flow_key, lease_owner, lease_expires_at) \
      SELECT lpad(g::text, 26, '0'), 'f', CASE WHEN g % 20 < 2 THEN 'running' ELSE 'queued' END, 0, 3, 'null', g, 1, 'c', \
        'k' || (g / 20), CASE WHEN g % 20 < 2 THEN 'elsewhere' END, CASE WHEN g % 20 < 2 THEN 9 END \
      FROM generate_series(0, 19999) g; \
    ANALYZE runs";

/// A fresh store holding [`THOUSAND_LANES`], and a connection of its own on its schema, or
/// `None` when the tests are skipped.
async fn thousand_lanes() -> Option<(super::Scratch, crate::postgres::PostgresStore, sqlx::PgConnection)> {
    use sqlx::{Connection, Executor};
    let (scratch, store) = fresh().await?;
    let mut conn = sqlx::PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    conn.execute(format!("SET search_path TO \"{}\"", scratch.schema).as_str()).await.expect("search path");
    conn.execute(THOUSAND_LANES).await.expect("fill");
    Some((scratch, store, conn))
}

/// A keyed claim's take statement, planned for each call (as the claim runs it) on a table of
/// 20,000 runs over 1,000 lanes (two running in each), analyzed: the runs it chose are updated
/// through the primary key. Joined to `runs`, they were hashed against a sequential scan of the
/// table, which the estimate finds cheaper at this size and which grew to seconds a claim as a
/// keyed round left dead versions behind.
#[tokio::test]
async fn a_keyed_claim_updates_the_runs_it_chose_by_id_never_by_scanning_the_table() {
    use super::plans::explained_scans;
    use sqlx::{Connection, Executor};
    let Some((mut scratch, store, mut conn)) = thousand_lanes().await else { return };
    conn.execute("SET plan_cache_mode = force_custom_plan").await.expect("custom plans");
    let sql = super::super::flow::take_sql();
    conn.execute(format!("PREPARE take(text, bigint, bigint, text, text[], bigint, bigint[]) AS {sql}").as_str())
        .await
        .expect("prepare");
    let keys = (100..260).map(|g| format!("k{g}")).collect::<Vec<_>>().join(",");
    let caps = vec!["2"; 160].join(",");
    let call = format!("take('me', 2000000, 1000, 'f', '{{{keys}}}', 144, '{{{caps}}}')");
    let scans = explained_scans(&mut conn, &call).await;
    assert!(scans.iter().all(|(node, _, _)| node.starts_with("Index")), "runs read through indexes only: {scans:?}");
    assert!(
        scans.iter().any(|(_, index, cond)| index == "runs_pkey" && cond.contains("ANY")),
        "the chosen runs found by id: {scans:?}"
    );
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

/// The lanes a keyed claim locks, under the claims' connection's generic plans, on 20,000 runs
/// over 1,000 lanes (two running in each, eighteen queued and due), analyzed: each lane's
/// running runs are counted through `runs_lane_open` and its due runs looked for through
/// `runs_lane_queue`, never by reading the table; a lane with room says it holds a due run, a
/// full one does not look, nor does an empty one find any.
#[tokio::test]
async fn a_keyed_claim_counts_its_lanes_through_their_indexes() {
    use super::plans::explained_scans;
    use sqlx::{Connection, Executor, Row};
    let Some((mut scratch, store, mut conn)) = thousand_lanes().await else { return };
    conn.execute("INSERT INTO flow_keys (function, key, served, touched_at) VALUES ('f', '', 0, 1); ANALYZE flow_keys")
        .await
        .expect("an empty lane");
    conn.execute(crate::postgres::dedicated::CLAIM_SETUP).await.expect("the claims' settings");
    let sql = super::super::flow::LANES_COUNTED_SQL;
    conn.execute(format!("PREPARE lanes(text, bigint, bigint, bigint) AS {sql}").as_str()).await.expect("prepare");
    for _ in 0..6 {
        conn.execute("EXECUTE lanes('f', 40, 4, 1000)").await.expect("a generic plan is made");
    }
    let scans = explained_scans(&mut conn, "lanes('f', 40, 4, 1000)").await;
    assert!(scans.iter().all(|(node, _, _)| node.starts_with("Index")), "runs read through indexes only: {scans:?}");
    let used: Vec<&str> = scans.iter().map(|(_, index, _)| index.as_str()).collect();
    assert!(used.contains(&"runs_lane_open") && used.contains(&"runs_lane_queue"), "each lane through its entries: {scans:?}");
    let read = |rows: Vec<sqlx::postgres::PgRow>| -> Vec<(String, i64, bool)> {
        rows.iter().map(|r| (r.get::<String, _>(0), r.get::<i64, _>(2), r.get::<bool, _>(3))).collect()
    };
    let room = read(sqlx::query("EXECUTE lanes('f', 2000, 4, 1000)").fetch_all(&mut conn).await.expect("lanes"));
    assert_eq!(room.len(), 1001, "every lane, the empty one too");
    assert!(room.iter().filter(|(k, _, _)| !k.is_empty()).all(|(_, running, due)| *running == 2 && *due), "room and due runs");
    assert!(room.iter().any(|(k, running, due)| k.is_empty() && *running == 0 && !*due), "the empty lane holds no due run");
    let full = read(sqlx::query("EXECUTE lanes('f', 2000, 2, 1000)").fetch_all(&mut conn).await.expect("lanes"));
    assert!(full.iter().all(|(_, _, due)| !*due), "full lanes do not look for due runs");
    let early = read(sqlx::query("EXECUTE lanes('f', 2000, 4, 0)").fetch_all(&mut conn).await.expect("lanes"));
    assert!(early.iter().all(|(_, _, due)| !*due), "runs not yet due are not due");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

/// The lane count of a batch that starts runs as it stores them (decision 0034), beside 20,000
/// ended runs, 3,000 runs of lane `hot` running, 2,000 of lane `busy` queued and 20,000 runs of
/// another function queued and due, analyzed, under a generic plan as the store's connections
/// keep: each lane read through its own entries of `runs_lane_open` and `runs_lane_queue`, never
/// through `runs_due` (every due run of every function) nor `runs_leases` (every running run).
#[tokio::test]
async fn a_batch_counts_its_lanes_through_their_indexes_whatever_the_statistics() {
    use super::plans::explained_scans;
    use super::status_pages::executed;
    use sqlx::{Connection, Executor, PgConnection};
    let Some((mut scratch, store)) = super::fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    conn.execute(format!("SET search_path TO \"{}\"", scratch.schema).as_str()).await.expect("search path");
    let cols = "id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, flow_key, \
        lease_owner, lease_expires_at, finished_at";
    let fill = format!(
        "INSERT INTO runs ({cols}) SELECT 'e' || lpad(g::text, 25, '0'), 'f', 'succeeded', 1, 3, 'null', 1, 1, 'c', 'k' || g % 100, \
           NULL, NULL, 2 FROM generate_series(1, 20000) g; \
         INSERT INTO runs ({cols}) SELECT 'r' || lpad(g::text, 25, '0'), 'f', \
           CASE WHEN g <= 3000 THEN 'running' ELSE 'queued' END, 1, 3, 'null', 1, 1, 'c', \
           CASE WHEN g <= 3000 THEN 'hot' ELSE 'busy' END, CASE WHEN g <= 3000 THEN 'elsewhere' END, \
           CASE WHEN g <= 3000 THEN 9 END, NULL FROM generate_series(1, 5000) g; \
         INSERT INTO runs ({cols}) SELECT 'q' || lpad(g::text, 25, '0'), 'other', 'queued', 0, 3, 'null', 1, 1, 'c', NULL, \
           NULL, NULL, NULL FROM generate_series(1, 20000) g; ANALYZE runs"
    );
    conn.execute(fill.as_str()).await.expect("fill");
    conn.execute(super::super::dedicated::GENERIC_PLANS).await.expect("generic plans");
    let sql = super::super::lanes::LANE_COUNT;
    conn.execute(format!("PREPARE counted(text[], text[], bigint[], bigint) AS {sql}").as_str()).await.expect("prepare");
    let call = "counted('{f,f,f}', '{busy,hot,new}', '{4,4,4}', 5)";
    let scans = explained_scans(&mut conn, call).await;
    assert!(scans.iter().all(|(node, _, _)| node.starts_with("Index")), "runs read through indexes only: {scans:?}");
    let indexes: Vec<&str> = scans.iter().map(|(_, index, _)| index.as_str()).collect();
    assert_eq!(indexes, vec!["runs_lane_open", "runs_lane_queue"], "{scans:?}");
    let (blocks, rows) = executed(&mut conn, call).await;
    assert_eq!(rows, 3, "one row a lane");
    assert!(blocks < 100, "a bounded read, not one per running or queued run: {blocks} blocks");
    let counted: Vec<(i64, bool)> = sqlx::query_as(&format!("EXECUTE {call}")).fetch_all(&mut conn).await.expect("count");
    assert_eq!(counted, vec![(0, true), (4, false), (0, false)], "busy: a due run waits; hot: full at 4; new: empty");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

/// A batch that opens and locks its lanes in one statement, while another transaction creates
/// one of them: the batch waits for it, finds the lane neither inserted by itself nor seen by its
/// statement, and starts over the long way; its run is stored started all the same, and a second
/// run of the full lane (limit 1) is stored queued.
#[tokio::test]
async fn a_lane_created_by_another_batch_meanwhile_sends_the_batch_the_long_way() {
    use crate::{Enqueued, Store};
    use plinth_core::run::StartNow;
    use plinth_core::{NewRun, RunStatus};
    use sqlx::{Connection, Executor, PgConnection};
    let Some((mut scratch, store)) = fresh().await else { return };
    let store = std::sync::Arc::new(store);
    let mut other = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    other.execute(format!("SET search_path TO \"{}\"", scratch.schema).as_str()).await.expect("search path");
    other.execute("BEGIN").await.expect("begin");
    other.execute("INSERT INTO flow_keys (function, key, served, touched_at) VALUES ('lim', 'z', 0, 1)").await.expect("lane");
    let starting = |at: i64| NewRun {
        flow_key: Some("z".into()),
        lane_limit: Some(1),
        start: Some(StartNow { owner: "w1".into(), started_at: at, lease_until: at + 30_000_000 }),
        ..super::new_run("lim", serde_json::json!({}))
    };
    let run = starting(plinth_core::timefmt::now_micros());
    let sent = tokio::spawn({
        let store = store.clone();
        async move { store.enqueue(run).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!sent.is_finished(), "the batch waits for the other transaction's lane");
    other.execute("COMMIT").await.expect("commit");
    let first = match sent.await.expect("joined").expect("stored") {
        Enqueued::Created(run) => run,
        other => panic!("a new run, got {other:?}"),
    };
    assert_eq!(first.status, RunStatus::Running, "the lane had room: {first:?}");
    let second = match store.enqueue(starting(plinth_core::timefmt::now_micros())).await.expect("stored") {
        Enqueued::Created(run) => run,
        other => panic!("a new run, got {other:?}"),
    };
    assert_eq!(second.status, RunStatus::Queued, "the lane is full: {second:?}");
    other.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}
