//! PostgreSQL restarted under load, with two `plinth serve` nodes sharing one schema, then
//! stopped for a few seconds (a restart is over too fast to observe reliably): no request fails
//! with a 500 or hangs, `/health` and `/ready` answer 503 within 5 s of the outage, and once
//! PostgreSQL is back both nodes recover by themselves and every accepted run succeeds. A test
//! binary of its own, so no other test talks to PostgreSQL while it restarts. Needs
//! `PLINTH_TEST_DATABASE_URL` and the local cluster 15/main (`pg_ctlcluster`, as root); skipped
//! loudly without them, except under `CI`.

#[allow(dead_code)]
#[path = "cli/harness.rs"]
mod harness;
// Why: the schema guard is shared; this test has its own rule for finding the database.
#[allow(dead_code)]
#[path = "cli/pg.rs"]
mod pg;

use harness::{Served, send};
use pg::Schema;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 2_000;
/// Submissions per second, so the load lasts about 10 s.
const RATE: u64 = 200;
const CLUSTER: [&str; 2] = ["15", "main"];

/// Skips (returning false after saying why) unless `CI` is set, where it fails instead.
fn skip(why: &str) -> bool {
    assert!(std::env::var_os("CI").is_none(), "under CI: {why}");
    eprintln!("SKIPPED: the PostgreSQL restart test: {why}");
    false
}

/// The lines `psql URL -Atc SQL` prints, or `None` when psql fails.
fn psql(url: &str, sql: &str) -> Option<Vec<String>> {
    let out = Command::new("psql").args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-Atc", sql]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
}

/// `pg_ctlcluster 15 main ACTION`; whether it succeeded.
fn ctl(action: &str) -> bool {
    let mut cmd = Command::new("pg_ctlcluster");
    if action != "status" {
        cmd.arg("--skip-systemctl-redirect");
    }
    cmd.args(CLUSTER).arg(action).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Whether PostgreSQL at `url` answers a query within `within`.
fn wait_accepting(url: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while psql(url, "SELECT 1").is_none() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// The cluster, started again when the test ends whatever happened: CI runs on after this test
/// against the services as it leaves them. Declared before the nodes and after the schema guard,
/// so PostgreSQL is back before the schema is dropped.
struct Cluster {
    url: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !ctl("status") && !ctl("start") {
            eprintln!("pg_ctlcluster {CLUSTER:?} start failed");
        }
        if !wait_accepting(&self.url, Duration::from_secs(60)) {
            eprintln!("PostgreSQL does not accept connections 60 s after the test");
        }
    }
}

/// What a `POST /run` got.
#[derive(Debug)]
enum Answer {
    Accepted(String),
    /// 503, problem+json, `PLINTH_002`.
    Unavailable,
    Wrong(String),
}

async fn post_run(c: reqwest::Client, url: String, i: usize) -> (Answer, Duration) {
    let t = Instant::now();
    let answer = match c.post(&url).json(&json!({"function": "work", "input": {"i": i}})).send().await {
        Err(e) => Answer::Wrong(format!("no answer: {e}")),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let body: Value = resp.bytes().await.ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
            match (status, body["run_id"].as_str()) {
                (202, Some(id)) => Answer::Accepted(id.to_string()),
                (503, _) if ctype.starts_with("application/problem+json") && body["code"] == "PLINTH_002" => Answer::Unavailable,
                _ => Answer::Wrong(format!("{status} {ctype} {body}")),
            }
        }
    };
    (answer, t.elapsed())
}

/// `RUNS` submissions at `RATE` a second, alternating between the `/run` URLs.
async fn load(c: reqwest::Client, urls: Vec<String>) -> Vec<(Answer, Duration)> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut sent = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        tick.tick().await;
        sent.push(tokio::spawn(post_run(c.clone(), urls[i % urls.len()].clone(), i)));
    }
    let mut out = Vec::with_capacity(RUNS);
    for s in sent {
        out.push(s.await.expect("a submission"));
    }
    out
}

/// `GET URL` within 5 s: the status, or the error; and how long it took.
async fn probe(c: &reqwest::Client, url: String) -> (Result<u16, String>, Duration) {
    let t = Instant::now();
    let r = c.get(&url).timeout(Duration::from_secs(5)).send().await;
    (r.map(|r| r.status().as_u16()).map_err(|e| format!("{url}: {e}")), t.elapsed())
}

/// Probes `/health` and `/ready` of both nodes at once; `(path, answer, duration)` for each.
async fn probe_all(c: &reqwest::Client, nodes: &[Served]) -> Vec<(&'static str, Result<u16, String>, Duration)> {
    let (h0, h1, r0, r1) = tokio::join!(
        probe(c, nodes[0].url("/health")),
        probe(c, nodes[1].url("/health")),
        probe(c, nodes[0].url("/ready")),
        probe(c, nodes[1].url("/ready"))
    );
    vec![("/health", h0.0, h0.1), ("/health", h1.0, h1.1), ("/ready", r0.0, r0.1), ("/ready", r1.0, r1.1)]
}

/// Whether every probe answered 200 or 503 within 5 s.
fn check_probes(probes: &[(&str, Result<u16, String>, Duration)]) {
    for (path, answer, took) in probes {
        assert!(
            matches!(answer, Ok(200 | 503)) && *took <= Duration::from_secs(5),
            "{path} answered {answer:?} in {took:?} during the outage"
        );
    }
}

fn unhealthy(probes: &[(&str, Result<u16, String>, Duration)], path: &str) -> usize {
    probes.iter().filter(|(p, a, _)| *p == path && *a == Ok(503)).count()
}

/// Seconds until both nodes' `/health` answers 200.
async fn wait_healthy(c: &reqwest::Client, nodes: &[Served]) -> f64 {
    let t = Instant::now();
    loop {
        let (a, b) = tokio::join!(probe(c, nodes[0].url("/health")), probe(c, nodes[1].url("/health")));
        if a.0 == Ok(200) && b.0 == Ok(200) {
            return t.elapsed().as_secs_f64();
        }
        assert!(t.elapsed() < Duration::from_secs(30), "not healthy 30 s after PostgreSQL came back: {a:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn component(log: &Path) -> String {
    format!(
        "component: {{name: pgrestart, version: 0.1.0, owner: tests}}\n\
         functions:\n\
         \x20 - name: work\n\
         \x20   handler:\n\
         \x20     command:\n\
         \x20       argv: [sh, -c, 'echo \"$PLINTH_RUN_ID\" >> {}; cat']\n\
         \x20   policy: {{retries: {{max_attempts: 3, backoff: {{initial: 50ms, max: 200ms}}}}, timeout: 30s}}\n",
        log.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_nothing_and_the_nodes_recover_by_themselves() {
    let url = match std::env::var("PLINTH_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            skip("PLINTH_TEST_DATABASE_URL is not set");
            return;
        }
    };
    // Why: restart the server the URL points at, and no other.
    let status = Command::new("pg_ctlcluster").args(CLUSTER).arg("status").output();
    let status = status.map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
    let data_dir = psql(&url, "SHOW data_directory").and_then(|l| l.into_iter().next()).unwrap_or_default();
    if data_dir.is_empty() || !status.contains(&format!("\"{data_dir}\"")) {
        skip(&format!("the database at the URL ({data_dir:?}) is not the running cluster {CLUSTER:?}: {status:?}"));
        return;
    }
    let schema = Schema { url: url.clone(), name: format!("plinth_pg_restart_{}", std::process::id()) };
    let _cluster = Cluster { url: url.clone() };
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, log) = (dir.path().join("component.yaml"), dir.path().join("executions.log"));
    std::fs::write(&config, component(&log)).expect("component.yaml");
    let args = [
        "--database-url",
        url.as_str(),
        "--database-schema",
        schema.name.as_str(),
        "--workers",
        "8",
        "--log-level",
        "warn,plinth::serve=info",
    ];
    let mut nodes = [Served::start(&config, &args, dir.path()), Served::start(&config, &args, dir.path())];
    let pids: Vec<i32> = nodes.iter().map(Served::pid).collect();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    // 1. PostgreSQL restarted 2 s into the load.
    let t0 = Instant::now();
    let loading = tokio::spawn(load(c.clone(), nodes.iter().map(|n| n.url("/run")).collect()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_at = t0.elapsed();
    let restart = tokio::task::spawn_blocking(|| ctl("restart"));
    let mut probes = Vec::new();
    while !restart.is_finished() {
        probes.extend(probe_all(&c, &nodes).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(restart.await.expect("the restart"), "pg_ctlcluster restart failed");
    let back_at = t0.elapsed();
    let accepting = tokio::task::block_in_place(|| wait_accepting(&url, Duration::from_secs(30)));
    assert!(accepting, "PostgreSQL does not accept connections after the restart");
    let healthy_after_restart = wait_healthy(&c, &nodes).await;
    let (health_503, ready_503) = (unhealthy(&probes, "/health"), unhealthy(&probes, "/ready"));

    // 2. A restart is over in about 2 s, too fast to observe reliably: a longer outage, still
    // under load, stopped and started by hand.
    let stop_at = t0.elapsed();
    assert!(tokio::task::spawn_blocking(|| ctl("stop")).await.expect("stop"), "pg_ctlcluster stop failed");
    let stopped = Instant::now();
    let mut outage = Vec::new();
    let all_503_after = loop {
        let now = probe_all(&c, &nodes).await;
        let done = now.iter().all(|(_, a, _)| *a == Ok(503));
        outage.extend(now);
        if done || stopped.elapsed() > Duration::from_secs(8) {
            break done.then(|| stopped.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (a, b) = tokio::join!(post_run(c.clone(), nodes[0].url("/run"), RUNS), post_run(c.clone(), nodes[1].url("/run"), RUNS));
    let posted_in_outage = [a, b];
    assert!(tokio::task::spawn_blocking(|| ctl("start")).await.expect("start"), "pg_ctlcluster start failed");
    let start_at = t0.elapsed();
    let accepting = tokio::task::block_in_place(|| wait_accepting(&url, Duration::from_secs(30)));
    assert!(accepting, "PostgreSQL does not accept connections after start");
    let healthy_after_start = wait_healthy(&c, &nodes).await;

    // Every accepted run succeeds, on the same two processes.
    let answers = loading.await.expect("the load");
    let load_took = t0.elapsed();
    let accepted: Vec<&String> =
        answers.iter().filter_map(|(a, _)| if let Answer::Accepted(id) = a { Some(id) } else { None }).collect();
    let wrong: Vec<(&String, &Duration)> =
        answers.iter().filter_map(|(a, d)| if let Answer::Wrong(w) = a { Some((w, d)) } else { None }).collect();
    let unavailable = answers.len() - accepted.len() - wrong.len();
    let slowest = answers.iter().map(|(_, d)| *d).max().unwrap_or_default();
    let no_answer = wrong.iter().filter(|(w, _)| w.starts_with("no answer")).count();
    let runs = format!("\"{}\".runs", schema.name);
    let deadline = Instant::now() + Duration::from_secs(120);
    let stored: HashMap<String, String> = loop {
        let rows = psql(&url, &format!("SELECT id, status FROM {runs}")).expect("psql");
        let stored: HashMap<String, String> =
            rows.iter().filter_map(|l| l.split_once('|')).map(|(id, s)| (id.to_string(), s.to_string())).collect();
        if stored.values().all(|s| ["succeeded", "failed", "cancelled"].contains(&s.as_str())) {
            break stored;
        }
        assert!(Instant::now() < deadline, "runs still not terminal 120 s after the load");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let settled = t0.elapsed();
    let accepted_set: HashSet<&String> = accepted.iter().copied().collect();
    let extra: Vec<(&String, &String)> = stored.iter().filter(|(id, _)| !accepted_set.contains(id)).collect();
    let text = std::fs::read_to_string(&log).expect("executions.log");
    let mut executed: HashMap<&str, usize> = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        *executed.entry(line).or_insert(0) += 1;
    }
    let repeated = executed.values().filter(|n| **n > 1).count();
    let warnings = nodes.iter().map(|n| n.logs().iter().filter(|l| l["level"] == "warn").count()).sum::<usize>();
    eprintln!(
        "pg_restart: {RUNS} submissions over {:.1}s: {} accepted, {unavailable} answered 503 PLINTH_002, {} neither \
         ({no_answer} of them no answer within 10 s), slowest answer {:.2}s; {} runs stored but not accepted; {repeated} executed twice or more; {warnings} warnings",
        load_took.as_secs_f64(),
        accepted.len(),
        wrong.len(),
        slowest.as_secs_f64(),
        extra.len()
    );
    eprintln!(
        "pg_restart: restart at {:.1}s, back at {:.1}s, {} probes during it (/health 503 x{health_503}, /ready 503 \
         x{ready_503}), healthy {healthy_after_restart:.2}s after; stopped at {:.1}s, /health and /ready 503 on both \
         nodes after {all_503_after:.2?}, POST /run then: {posted_in_outage:?}; started at {:.1}s, healthy \
         {healthy_after_start:.2}s after; every run settled at {:.1}s",
        restart_at.as_secs_f64(),
        back_at.as_secs_f64(),
        probes.len(),
        stop_at.as_secs_f64(),
        start_at.as_secs_f64(),
        settled.as_secs_f64()
    );

    // During the outages: every probe answered within 5 s, both nodes said unhealthy and not
    // ready within 5 s, and every POST /run was a 202 or a 503 PLINTH_002 within 10 s.
    check_probes(&probes);
    check_probes(&outage);
    assert!(all_503_after.is_some_and(|d| d <= Duration::from_secs(5)), "not all 503 within 5 s: {outage:?}");
    for (answer, took) in &posted_in_outage {
        assert!(matches!(answer, Answer::Unavailable), "POST /run with PostgreSQL stopped: {answer:?} in {took:?}");
    }
    assert!(wrong.is_empty(), "{} answers neither 202 nor 503 PLINTH_002: {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);
    // Nothing accepted is lost.
    for id in &accepted {
        assert_eq!(stored.get(*id).map(String::as_str), Some("succeeded"), "accepted run {id}");
        assert!(executed.contains_key(id.as_str()), "accepted run {id} never executed");
    }
    assert!(extra.iter().all(|(_, s)| *s == "succeeded"), "runs stored without a 202: {extra:?}");

    // New runs are accepted and succeed on both nodes, which were never restarted.
    for node in &mut nodes {
        assert!(node.running(), "a node stopped during the outage");
        for i in 0..10 {
            let (code, body) = send(c.post(node.url("/run")).json(&json!({"function": "work", "input": {"after": i}}))).await;
            assert_eq!(code, 202, "a new run after the outage: {body}");
            let id = body["run_id"].as_str().expect("run_id");
            let (code, run) = send(c.get(node.url(&format!("/runs/{id}?wait=8")))).await;
            assert_eq!((code, run["status"].as_str()), (200, Some("succeeded")), "a new run after the outage: {run}");
        }
    }
    assert_eq!(nodes.iter().map(Served::pid).collect::<Vec<_>>(), pids);
}
