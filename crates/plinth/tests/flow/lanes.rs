//! Three `plinth serve` nodes on one PostgreSQL schema share 2,000 runs over 50 tenants with
//! `concurrency: {limit: 2, key: input.tenant}`. A sampler reads the running set from the
//! database every 10 ms: no tenant ever has more than 2 running, across nodes, also after one
//! node is SIGKILLed mid-way (its leased runs come back through lease expiry). Needs
//! `PLINTH_TEST_DATABASE_URL`; skipped loudly without it, except under `CI`.

use crate::harness::{Served, client, send};
use crate::pg::{Schema, database_url};
use serde_json::json;
use sqlx::Connection;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const RUNS: usize = 2_000;
const TENANTS: usize = 50;
const LIMIT: i64 = 2;

fn component() -> String {
    "component: {name: lanes, version: 0.1.0, owner: tests, description: a keyed limit on three nodes}\n\
     functions:\n\
     \x20 - name: work\n\
     \x20   handler: {command: {argv: [sh, -c, 'sleep 0.2; cat']}}\n\
     \x20   policy:\n\
     \x20     retries: {max_attempts: 5, backoff: {initial: 50ms, max: 200ms}}\n\
     \x20     concurrency: {limit: 2, key: input.tenant}\n"
        .to_string()
}

/// What the sampler saw: samples taken, the most running for one tenant, and the tenants seen
/// at their limit.
#[derive(Default)]
struct Seen {
    samples: usize,
    most: i64,
    at_limit: usize,
    over: Vec<(String, i64)>,
}

/// Samples `SELECT flow_key, count(*) ... WHERE status = 'running'` every 10 ms until
/// `stop` is set.
async fn sample(url: String, runs: String, stop: Arc<AtomicBool>) -> Seen {
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("sampler connects");
    let sql = format!("SELECT flow_key, count(*) FROM {runs} WHERE status = 'running' GROUP BY flow_key");
    let mut seen = Seen::default();
    while !stop.load(Ordering::Relaxed) {
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(&sql).fetch_all(&mut conn).await.expect("sample");
        seen.samples += 1;
        for (key, n) in rows {
            seen.most = seen.most.max(n);
            if n == LIMIT {
                seen.at_limit += 1;
            }
            if n > LIMIT {
                seen.over.push((key.unwrap_or_default(), n));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_hold_a_keyed_limit_through_a_sigkill() {
    let Some(url) = database_url() else { return };
    let schema = Schema { url: url.clone(), name: format!("plinth_lanes_{}", std::process::id()) };
    let runs = format!("\"{}\".runs", schema.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("component.yaml");
    std::fs::write(&config, component()).expect("component.yaml");
    let args = [
        "--database-url",
        url.as_str(),
        "--database-schema",
        schema.name.as_str(),
        "--lease",
        "2s",
        "--workers",
        "16",
        "--log-level",
        "warn,plinth::serve=info",
    ];
    let mut nodes: Vec<Served> = std::thread::scope(|s| {
        let starting: Vec<_> = (0..3).map(|_| s.spawn(|| Served::start(&config, &args, dir.path()))).collect();
        starting.into_iter().map(|h| h.join().expect("a node starts")).collect()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(url.clone(), runs.clone(), stop.clone()));

    let c = client();
    let urls: Vec<String> = nodes.iter().map(|n| n.url("/run")).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let mut submitters = Vec::new();
    for _ in 0..16 {
        let (c, urls, next) = (c.clone(), urls.clone(), next.clone());
        submitters.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= RUNS {
                    break;
                }
                let body = json!({"function": "work", "input": {"tenant": format!("t-{}", i % TENANTS), "i": i}});
                let (code, answer) = send(c.post(&urls[i % urls.len()]).json(&body)).await;
                assert_eq!(code, 202, "POST /run #{i}: {answer}");
            }
        }));
    }
    for s in submitters {
        s.await.expect("a submitter");
    }

    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let succeeded = format!("SELECT count(*) FROM {runs} WHERE status = 'succeeded'");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n: i64 = sqlx::query_scalar(&succeeded).fetch_one(&mut conn).await.expect("count");
        if n >= i64::try_from(RUNS / 2).expect("small") {
            break;
        }
        assert!(Instant::now() < deadline, "{n} of {RUNS} runs succeeded within 120s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let owners: Vec<String> = nodes
        .iter()
        .map(|n| {
            n.logs()
                .into_iter()
                .find(|l| l["message"] == "listening")
                .and_then(|l| l["owner"].as_str().map(str::to_string))
                .expect("the owner in the listening line")
        })
        .collect();
    // Why: which node holds leases at a given moment is up to the claims; kill the busiest, so
    // the kill always takes leases with it.
    let leases = format!("SELECT lease_owner, count(*) FROM {runs} WHERE status = 'running' GROUP BY lease_owner");
    let held: HashMap<String, i64> = sqlx::query_as::<_, (Option<String>, i64)>(&leases)
        .fetch_all(&mut conn)
        .await
        .expect("leases")
        .into_iter()
        .map(|(o, n)| (o.unwrap_or_default(), n))
        .collect();
    let busiest = (0..owners.len()).max_by_key(|i| held.get(&owners[*i]).copied().unwrap_or(0)).expect("nodes");
    let owner = owners[busiest].clone();
    let killed = nodes.remove(busiest);
    killed.kill9();
    let leased_at_kill: Vec<String> =
        sqlx::query_scalar(&format!("SELECT id FROM {runs} WHERE status = 'running' AND lease_owner = '{owner}'"))
            .fetch_all(&mut conn)
            .await
            .expect("leased runs");

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let n: i64 = sqlx::query_scalar(&succeeded).fetch_one(&mut conn).await.expect("count");
        if n == i64::try_from(RUNS).expect("small") {
            break;
        }
        let left: Vec<(String, i64)> =
            sqlx::query_as(&format!("SELECT status, count(*) FROM {runs} WHERE status <> 'succeeded' GROUP BY status"))
                .fetch_all(&mut conn)
                .await
                .expect("statuses");
        assert!(Instant::now() < deadline, "not every run succeeded within 180s of the kill: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let seen = sampler.await.expect("the sampler");
    for node in &mut nodes {
        assert!(node.running(), "a node stopped by itself");
    }
    // Why: a completion the killed node had sent may still commit after the kill (PostgreSQL
    // ends the statement it received), so a run leased at the kill came back through its
    // lease's expiry or was ended by that last completion; it is never left behind.
    let outcomes: Vec<(String, bool, bool)> = sqlx::query_as(&format!(
        "SELECT run_id, bool_or(outcome = 'lease_expired'), bool_or(owner = $1 AND outcome = 'succeeded') \
         FROM \"{}\".attempts WHERE run_id = ANY($2) GROUP BY run_id",
        schema.name
    ))
    .bind(&owner)
    .bind(&leased_at_kill)
    .fetch_all(&mut conn)
    .await
    .expect("the killed node's runs");
    let came_back = outcomes.iter().filter(|(_, expired, _)| *expired).count();
    let ended_in_flight = outcomes.iter().filter(|(_, expired, ended)| !*expired && *ended).count();
    let per_tenant: Vec<(Option<String>, i64)> =
        sqlx::query_as(&format!("SELECT flow_key, count(*) FROM {runs} GROUP BY flow_key"))
            .fetch_all(&mut conn)
            .await
            .expect("per tenant");
    let per_tenant: HashMap<String, i64> = per_tenant.into_iter().map(|(k, n)| (k.unwrap_or_default(), n)).collect();
    eprintln!(
        "lanes: {} samples, most running for one tenant {}, {} samples of a tenant at its limit, {} runs \
         leased by the killed node, {came_back} came back after a lost lease, {ended_in_flight} ended by a completion \
         in flight at the kill",
        seen.samples,
        seen.most,
        seen.at_limit,
        leased_at_kill.len()
    );
    assert!(seen.over.is_empty(), "a tenant ran more than {LIMIT} at once: {:?}", &seen.over[..seen.over.len().min(10)]);
    assert!(seen.samples > 100, "the sampler ran: {} samples", seen.samples);
    assert_eq!(seen.most, LIMIT, "tenants reached their limit (the limit was used, not just respected)");
    assert_eq!(per_tenant.len(), TENANTS, "every run stored its tenant as its key: {per_tenant:?}");
    assert!(per_tenant.values().all(|n| *n == i64::try_from(RUNS / TENANTS).expect("small")));
    assert!(!leased_at_kill.is_empty(), "the node was killed while it held leases");
    assert!(came_back > 0, "runs leased by the killed node came back through lease expiry");
    assert_eq!(
        came_back + ended_in_flight,
        leased_at_kill.len(),
        "every run leased by the killed node came back or was ended by its last completion: {outcomes:?}"
    );
}
