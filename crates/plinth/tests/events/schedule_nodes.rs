//! Three nodes on one PostgreSQL schema keep an every-second schedule for 20 s while the node
//! that fires the ticks (the upkeep leader) is SIGKILLed half-way: every tick in that window
//! fires exactly once. Needs `PLINTH_TEST_DATABASE_URL`; skipped loudly without it, except
//! under `CI`.

use crate::harness::{Served, client, send};
use crate::pg::{Schema, database_url};
use plinth_core::timefmt::parse_rfc3339;
use std::time::Duration;

const COMPONENT: &str = "component: {name: ticks, version: '1'}\n\
functions:\n\
\x20 - name: tick\n\
\x20   handler: {rust: noop}\n\
\x20   triggers: [{cron: '* * * * * *'}]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tick_fires_once_across_three_nodes_and_a_killed_leader() {
    let Some(url) = database_url() else { return };
    // Why: declared first so it is dropped last, after every node is stopped.
    let schema = Schema { url: url.clone(), name: format!("plinth_ticks_{}", std::process::id()) };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("component.yaml");
    std::fs::write(&config, COMPONENT).expect("component.yaml");
    let args = [
        "--database-url",
        url.as_str(),
        "--database-schema",
        schema.name.as_str(),
        "--lease",
        "2s",
        "--log-level",
        "warn,plinth::serve=info,plinth_engine::maintenance::scheduler=info",
    ];
    let mut nodes: Vec<Served> = (0..3).map(|_| Served::start(&config, &args, dir.path())).collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let fired = |s: &Served| s.logs().iter().filter(|l| l["message"] == "schedule tick fired").count();
    let counts: Vec<usize> = nodes.iter().map(fired).collect();
    let leader = counts.iter().position(|n| *n > 0).unwrap_or_else(|| panic!("no node fired a tick in 10s: {counts:?}"));
    assert_eq!(counts.iter().filter(|n| **n > 0).count(), 1, "one node fires the ticks: {counts:?}");
    nodes.remove(leader).kill9();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after: Vec<usize> = nodes.iter().map(fired).collect();
    assert!(after.iter().any(|n| *n > 0), "another node took the ticks over: {after:?}");
    let c = client();
    let (_, page) = send(c.get(nodes[0].url("/runs?trigger=cron&limit=500"))).await;
    for node in nodes {
        node.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30));
    }
    let mut ticks: Vec<i64> = page["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| parse_rfc3339(r["trigger"]["scheduled_at"].as_str().expect("scheduled_at")).expect("RFC 3339"))
        .collect();
    ticks.sort_unstable();
    let n = ticks.len();
    ticks.dedup();
    assert_eq!(ticks.len(), n, "no tick fired twice");
    assert!(n >= 17, "about 20 ticks in 20 s, got {n}");
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 1_000_000, "every second fired, none skipped, across the kill: {ticks:?}");
    }
    eprintln!("schedule across three nodes: {n} ticks, each once, leader (node {leader}) killed after 10 s");
}
