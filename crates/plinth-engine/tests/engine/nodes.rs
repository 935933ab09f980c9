//! Two engines ("nodes") on one PostgreSQL schema, racing to claim the same runs. Needs
//! `PLINTH_TEST_DATABASE_URL`; without it the test says it is skipped (and fails under CI).

use crate::harness::{component, database_url, rust_fn};
use plinth_core::metrics::Metrics;
use plinth_core::timefmt::now_micros;
use plinth_core::{NewRun, RunStatus};
use plinth_engine::{Engine, EngineConfig, HandlerContext, Handlers};
use plinth_store::postgres::{PostgresStore, drop_schema};
use plinth_store::{ListFilter, Store};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Per run: how many nodes execute it right now, the most ever at once, and executions.
#[derive(Default)]
struct Ledger {
    now: HashMap<String, u32>,
    most: u32,
    executions: HashMap<String, u32>,
    by_node: HashMap<String, u32>,
}

fn handlers(ledger: Arc<Mutex<Ledger>>, node: &'static str) -> Handlers {
    let mut h = Handlers::builtin();
    h.register("track", move |ctx: HandlerContext, input: Value| {
        let ledger = ledger.clone();
        async move {
            {
                let mut l = ledger.lock().expect("ledger");
                let n = l.now.entry(ctx.run_id.clone()).or_default();
                *n += 1;
                let n = *n;
                l.most = l.most.max(n);
                *l.executions.entry(ctx.run_id.clone()).or_default() += 1;
                *l.by_node.entry(node.to_string()).or_default() += 1;
            }
            // Why: a few milliseconds of work keep runs in flight while the other node claims.
            tokio::time::sleep(Duration::from_millis(input.as_u64().unwrap_or(0))).await;
            *ledger.lock().expect("ledger").now.entry(ctx.run_id.clone()).or_default() -= 1;
            Ok(json!({"done": ctx.run_id}))
        }
    });
    h
}

async fn count_succeeded(store: &dyn Store) -> u64 {
    let mut cursor = None;
    let mut n = 0;
    loop {
        let filter = ListFilter { status: Some(RunStatus::Succeeded), limit: 500, before_id: cursor, ..Default::default() };
        let page = store.list(filter).await.expect("list");
        n += page.runs.len() as u64;
        cursor = page.next_cursor;
        if cursor.is_none() {
            return n;
        }
    }
}

/// The nodes the store knows, and the succeeded runs rolled up, once the roll-up has them all
/// (or 20 s passed).
async fn overview(store: &dyn Store, runs: u64) -> (Vec<plinth_store::NodeBeat>, i64) {
    let since = now_micros() - 3_600_000_000;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats = store.run_stats(since).await.expect("stats");
        let rolled: i64 = stats.minutes.iter().filter(|m| m.status == "succeeded").map(|m| m.runs).sum();
        let nodes = store.nodes().await.expect("nodes");
        let leaders = nodes.iter().filter(|n| n.leads).count();
        if (rolled >= runs as i64 && nodes.len() >= 2 && leaders == 1) || std::time::Instant::now() > deadline {
            return (nodes, rolled);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_never_run_one_run_twice_at_once() {
    let Some(url) = database_url("the multi-node engine test") else { return };
    let schema = format!("plinth_test_{}", plinth_core::ids::new_run_id().to_lowercase());
    let dir = tempfile::tempdir().expect("temp dir");
    let comp = Arc::new(component(&rust_fn("track", "track", "{retries: {max_attempts: 1}}"), dir.path().to_path_buf()));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut engines = Vec::new();
    let mut stores = Vec::new();
    for node in ["node-a", "node-b"] {
        let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url, &schema).await.expect("connect"));
        let config =
            EngineConfig { owner: node.into(), workers: 8, claim_batch: 4, lease: Duration::from_secs(3), ..Default::default() };
        let engine = Engine::start(
            store.clone(),
            Arc::new(plinth_core::component::Live::new((*comp).clone())),
            Arc::new(handlers(ledger.clone(), node)),
            Arc::new(Metrics::new("p", "t")),
            config,
        );
        engines.push(engine);
        stores.push(store);
    }
    const RUNS: u64 = 1000;
    for i in 0..RUNS {
        let now = now_micros();
        let run = NewRun {
            run_id: plinth_core::ids::new_run_id(),
            function: "track".into(),
            input: json!(i % 4),
            max_attempts: 1,
            priority: 0,
            created_at: now,
            not_before: now,
            correlation_id: format!("c{i}"),
            idempotency_key: None,
            request_hash: None,
            max_queued: None,
            trigger: plinth_core::Trigger::Api,
            flow_key: None,
            lane_limit: None,
            rate: None,
            debounce: None,
            singleton: None,
            batch: None,
            expiry: plinth_core::flow::Expiry::default(),
            traceparent: None,
            tracestate: None,
            start: None,
        };
        // Why: enqueues alternate between the nodes, as a load balancer would spread them.
        stores[usize::try_from(i % 2).unwrap_or(0)].enqueue(run).await.expect("enqueue");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut succeeded = 0;
    while succeeded < RUNS && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        succeeded = count_succeeded(stores[0].as_ref()).await;
    }
    let (nodes, rolled) = overview(stores[0].as_ref(), RUNS).await;
    for e in engines {
        e.shutdown(Duration::from_secs(5)).await;
    }
    let (most, repeated, a, b) = {
        let l = ledger.lock().expect("ledger");
        let node = |n: &str| l.by_node.get(n).copied().unwrap_or(0);
        (l.most, l.executions.values().filter(|n| **n > 1).count(), node("node-a"), node("node-b"))
    };
    eprintln!("executions: node-a {a}, node-b {b}; runs executed twice: {repeated}; most at once for one run: {most}");
    assert_eq!(most, 1, "no run ever executed on two nodes at once");
    assert_eq!(repeated, 0, "no run executed twice: no node died, no lease expired");
    assert!(a > 0 && b > 0, "both nodes took work: {a} and {b}");
    assert_eq!(succeeded, RUNS, "every run is recorded succeeded");
    assert_eq!(nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["node-a", "node-b"], "both nodes beat");
    assert_eq!(nodes.iter().filter(|n| n.leads).count(), 1, "one node leads the upkeep: {nodes:?}");
    assert_eq!(rolled, RUNS as i64, "the leader rolled up every run once");
    drop(stores);
    drop_schema(&url, &schema).await.expect("drop the scratch schema");
}
