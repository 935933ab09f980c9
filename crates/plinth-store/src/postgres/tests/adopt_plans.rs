//! The heartbeat's look for runs a node did not know it held (`Store::adopt`) reads only the
//! stale leases, through `runs_leases`, however many runs are running on other nodes.

use super::super::leases::adopt_sql;
use super::plans::explained_scans;
use super::{database_url, fresh};
use crate::Store;
use sqlx::{Connection, Executor, PgConnection};

/// 20,000 runs running on other nodes with fresh leases, 20,000 ended, analyzed; five runs
/// leased to `lost-node` whose leases went stale, and one of its runs with a fresh lease.
async fn busy_cluster(conn: &mut PgConnection, schema: &str) {
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    let fill = |prefix: &str, status: &str, owner: &str, lease: &str, from: u32, n: u32| {
        format!(
            "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, correlation_id, \
               lease_owner, lease_expires_at, finished_at) \
             SELECT '{prefix}' || lpad(g::text, 8, '0'), 'busy', '{status}', 1, 3, 'null', 1, 1, 'c', \
               {owner}, {lease}, CASE WHEN '{status}' = 'succeeded' THEN 2 END \
             FROM generate_series({from}, {}) g",
            from + n - 1
        )
    };
    for sql in [
        fill("other", "running", "'node-' || (g % 8)", "2000000000000000", 1, 20_000),
        fill("ended", "succeeded", "NULL", "NULL", 1, 20_000),
        fill("lost", "running", "'lost-node'", "1000", 1, 5),
        fill("lost", "running", "'lost-node'", "2000000000000000", 6, 1),
    ] {
        conn.execute(sql.as_str()).await.expect("fill");
    }
    conn.execute("ANALYZE runs").await.expect("analyze");
}

#[tokio::test]
async fn adopting_reads_only_the_stale_leases_through_their_index() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    busy_cluster(&mut conn, &scratch.schema).await;
    conn.execute(format!("PREPARE adopt(text, bigint, bigint, bigint) AS {}", adopt_sql()).as_str()).await.expect("prepare");
    let scans = explained_scans(&mut conn, "adopt('lost-node', 5000, 9000, 1000)").await;
    let leases: Vec<_> = scans.iter().filter(|(_, index, _)| index == "runs_leases").collect();
    assert_eq!(leases.len(), 1, "the stale leases are read through their index: {scans:?}");
    assert!(leases[0].2.contains("lease_expires_at <"), "by their end, not all running runs: {scans:?}");
    assert!(scans.iter().all(|(node, _, _)| node.starts_with("Index")), "no run is read by sequential scan: {scans:?}");

    let adopted = store.adopt("lost-node", 5000, 9000).await.expect("adopt");
    let mut ids: Vec<_> = adopted.iter().map(|r| r.run_id.clone()).collect();
    ids.sort();
    let stale: Vec<_> = (1..=5).map(|g| format!("lost{g:08}")).collect();
    assert_eq!(ids, stale, "the five stale leases of the node, not its fresh one nor the others'");
    let nothing = store.adopt("node-1", 5000, 9000).await.expect("adopt");
    assert!(nothing.is_empty(), "a node whose leases are all fresh takes in nothing: {nothing:?}");
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}
