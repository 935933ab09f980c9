//! Three `plinth serve` nodes on one PostgreSQL schema share 10,000 runs of a short command
//! handler; one node is SIGKILLed half-way and started again. Every run ends succeeded, recorded
//! succeeded exactly once, and a handler execution is repeated only for runs whose attempt was in
//! flight on the killed node. Needs `PLINTH_TEST_DATABASE_URL`; skipped loudly without it,
//! except under `CI`. Built as its own test binary (`tests/nodes.rs`), so its load does not
//! starve the other black-box tests of CPU.

use crate::harness::{Served, client, send};
use crate::pg::{Schema, database_url};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const RUNS: usize = 10_000;
const IN_FLIGHT: usize = 32;
const NODES: usize = 3;

fn component(log: &Path) -> String {
    format!(
        "component: {{name: nodes, version: 0.1.0, owner: tests, description: three nodes and a SIGKILL}}\n\
         functions:\n\
         \x20 - name: work\n\
         \x20   handler:\n\
         \x20     command:\n\
         \x20       argv: [sh, -c, 'echo \"$PLINTH_RUN_ID\" >> {}; cat']\n\
         \x20   policy: {{retries: {{max_attempts: 3, backoff: {{initial: 50ms, max: 200ms}}}}, timeout: 30s}}\n",
        log.display()
    )
}

/// The lines `psql URL -Atc SQL` prints (panics when psql fails).
fn psql(url: &str, sql: &str) -> Vec<String> {
    let out = Command::new("psql").args([url, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql]).output().expect("run psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn count(url: &str, sql: &str) -> usize {
    let lines = psql(url, sql);
    lines.first().and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("{sql}: not a count: {lines:?}"))
}

/// `(status, count)` of every run.
fn statuses(url: &str, runs: &str) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = psql(url, &format!("SELECT status, count(*) FROM {runs} GROUP BY status"))
        .iter()
        .map(|l| {
            let (status, n) = l.split_once('|').expect("status|count");
            (status.to_string(), n.parse().expect("count"))
        })
        .collect();
    out.sort();
    out
}

/// Submits `RUNS` runs of `work`, `IN_FLIGHT` at once, round robin over the `/run` URLs; the
/// accepted run ids.
async fn submit_all(c: reqwest::Client, urls: Vec<String>) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (c, urls, next) = (c.clone(), urls.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= RUNS {
                    break ids;
                }
                let req = c.post(&urls[i % urls.len()]).json(&json!({"function": "work", "input": {"i": i}}));
                let (code, body) = send(req).await;
                assert_eq!(code, 202, "POST /run #{i}: {body}");
                ids.push(body["run_id"].as_str().expect("run_id").to_string());
            }
        }));
    }
    let mut all = Vec::with_capacity(RUNS);
    for t in tasks {
        all.extend(t.await.expect("a submitter"));
    }
    all
}

/// How many times each run id appears in the executions log.
fn executions(path: &Path) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in std::fs::read_to_string(path).expect("executions.log").lines().filter(|l| !l.is_empty()) {
        *out.entry(line.to_string()).or_insert(0) += 1;
    }
    out
}

fn owner(node: &Served) -> String {
    let listening = node.logs().into_iter().find(|l| l["message"] == "listening").expect("the listening line");
    listening["owner"].as_str().expect("owner in the listening line").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_node_among_three_repeats_only_its_in_flight_runs() {
    let Some(url) = database_url() else { return };
    // Why: declared first so it is dropped last, after every node is killed.
    let schema = Schema { url: url.clone(), name: format!("plinth_nodes_{}", std::process::id()) };
    let (runs, attempts) = (format!("\"{}\".runs", schema.name), format!("\"{}\".attempts", schema.name));
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, log) = (dir.path().join("component.yaml"), dir.path().join("executions.log"));
    std::fs::write(&config, component(&log)).expect("component.yaml");
    let args = [
        "--database-url",
        url.as_str(),
        "--database-schema",
        schema.name.as_str(),
        "--lease",
        "2s",
        "--workers",
        "8",
        "--log-level",
        "warn,plinth::serve=info",
    ];
    let c = client();
    let t0 = Instant::now();
    // The three start at once on a fresh schema: their migrations race.
    let mut nodes: Vec<Served> = std::thread::scope(|s| {
        let starting: Vec<_> = (0..NODES).map(|_| s.spawn(|| Served::start(&config, &args, dir.path()))).collect();
        starting.into_iter().map(|h| h.join().expect("a node starts")).collect()
    });
    let owners: Vec<String> = nodes.iter().map(owner).collect();
    let urls = nodes.iter().map(|n| n.url("/run")).collect();
    let submitter = c.clone();
    let submitting = tokio::spawn(async move {
        let ids = submit_all(submitter, urls).await;
        (ids, t0.elapsed())
    });

    let succeeded = format!("SELECT count(*) FROM {runs} WHERE status = 'succeeded'");
    let deadline = Instant::now() + Duration::from_secs(300);
    while count(&url, &succeeded) < RUNS / 2 {
        assert!(Instant::now() < deadline, "{} of {RUNS} runs succeeded within 300s", count(&url, &succeeded));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let half = t0.elapsed();
    let submitted_at_half = submitting.is_finished();
    let (ids, submitted) = submitting.await.expect("the submitters");
    let killed_owner = owners[0].clone();
    let running_at_kill =
        count(&url, &format!("SELECT count(*) FROM {runs} WHERE status = 'running' AND lease_owner = '{killed_owner}'"));
    let succeeded_before = count(&url, &succeeded);
    nodes.remove(0).kill9();
    let killed_at = t0.elapsed();
    nodes.push(Served::start(&config, &args, dir.path()));
    let restarted_owner = owner(&nodes[2]);
    assert_ne!(restarted_owner, killed_owner, "a restarted node has a new owner id");

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let now = statuses(&url, &runs);
        let terminal: usize =
            now.iter().filter(|(s, _)| ["succeeded", "failed", "cancelled"].contains(&s.as_str())).map(|(_, n)| n).sum();
        if terminal == RUNS {
            break;
        }
        assert!(Instant::now() < deadline, "not every run terminal within 300s of the kill: {now:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let done = t0.elapsed();
    for node in &mut nodes {
        assert!(node.running(), "a node stopped by itself");
    }

    // Every run accepted is in the store, terminal and succeeded; nothing else is there.
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (RUNS, RUNS), "every submission accepted once, each a new run");
    assert_eq!(statuses(&url, &runs), vec![("succeeded".to_string(), RUNS)]);
    let stored: HashSet<String> = psql(&url, &format!("SELECT id FROM {runs}")).into_iter().collect();
    assert!(stored.len() == RUNS && unique.iter().all(|id| stored.contains(*id)), "the stored runs are the accepted ones");

    // Each run is recorded succeeded exactly once.
    let mut per_run: HashMap<String, (usize, usize)> = HashMap::new();
    let sql = format!("SELECT run_id, count(*) FILTER (WHERE outcome = 'succeeded'), count(*) FROM {attempts} GROUP BY run_id");
    for line in psql(&url, &sql) {
        let mut parts = line.split('|');
        let (id, ok, all) = (parts.next().expect("id"), parts.next().expect("ok"), parts.next().expect("all"));
        per_run.insert(id.to_string(), (ok.parse().expect("count"), all.parse().expect("count")));
    }
    for id in &ids {
        assert_eq!(per_run.get(id).map(|p| p.0), Some(1), "run {id} recorded succeeded exactly once");
    }

    // Runs in flight on the killed node: their attempt there ended by lease expiry.
    let in_flight: HashSet<String> = psql(
        &url,
        &format!("SELECT DISTINCT run_id FROM {attempts} WHERE owner = '{killed_owner}' AND outcome = 'lease_expired'"),
    )
    .into_iter()
    .collect();
    let expired_by_owner = psql(
        &url,
        &format!("SELECT owner, count(*) FROM {attempts} WHERE outcome = 'lease_expired' GROUP BY owner ORDER BY owner"),
    );
    let others: Vec<&String> = expired_by_owner.iter().filter(|l| !l.starts_with(&format!("{killed_owner}|"))).collect();
    assert!(others.is_empty(), "only the killed node lost leases: {expired_by_owner:?} (killed: {killed_owner})");

    // A handler execution is repeated only for those.
    let executed = executions(&log);
    for id in &ids {
        let n = executed.get(id).copied().unwrap_or(0);
        let attempts_of = per_run.get(id).map_or(0, |p| p.1);
        assert!(n >= 1 && n <= attempts_of, "run {id} executed {n} times in {attempts_of} attempt(s)");
    }
    assert!(executed.keys().all(|id| unique.contains(id)), "only accepted runs are executed");
    let repeated: Vec<&String> = executed.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    let stray: Vec<&&String> = repeated.iter().filter(|id| !in_flight.contains(**id)).collect();
    assert!(stray.is_empty(), "executed again without being in flight on the killed node: {stray:?}");
    let executions_total: usize = executed.values().sum();
    eprintln!(
        "nodes: {RUNS} runs on {NODES} nodes, {succeeded_before} succeeded before the kill, {running_at_kill} running on \
         the killed node at the kill, {} in flight on the killed node (lease expired), {} executed twice or more \
         ({executions_total} executions in all)",
        in_flight.len(),
        repeated.len()
    );
    eprintln!(
        "nodes: half-way at {:.1}s (all submitted then: {submitted_at_half}), all submitted at {:.1}s, killed at {:.1}s, \
         all terminal at {:.1}s ({:.1}s after the kill)",
        half.as_secs_f64(),
        submitted.as_secs_f64(),
        killed_at.as_secs_f64(),
        done.as_secs_f64(),
        (done - killed_at).as_secs_f64()
    );
}
