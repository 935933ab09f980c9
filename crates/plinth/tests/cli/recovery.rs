//! SIGKILL with runs queued and running, then a restart on the same database: every accepted run
//! ends, none is lost, and no run recorded as succeeded is executed again.

use crate::harness::{Served, client, component_dir, send, submit};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

const RUNS: usize = 40;

fn component(dir: &Path) -> String {
    let starts = dir.join("starts.log");
    let dones = dir.join("dones.log");
    format!(
        "component: {{name: recovery, version: 0.1.0, owner: tests, description: SIGKILL recovery}}\n\
         functions:\n\
         \x20 - name: work\n\
         \x20   handler:\n\
         \x20     command:\n\
         \x20       argv: [sh, -c, 'echo $PLINTH_RUN_ID >> {}; sleep 0.2; echo $PLINTH_RUN_ID >> {}; echo {{}}']\n\
         \x20   policy: {{retries: {{max_attempts: 3, backoff: {{initial: 50ms, max: 100ms}}}}, timeout: 10s}}\n",
        starts.display(),
        dones.display()
    )
}

/// How many times each run id appears in a file of lines.
fn counts(path: &Path) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines().filter(|l| !l.is_empty()) {
        *out.entry(line.to_string()).or_insert(0) += 1;
    }
    out
}

async fn ids_with_status(c: &reqwest::Client, s: &Served, status: &str) -> HashSet<String> {
    let (code, body) = send(c.get(s.url(&format!("/runs?status={status}&limit=500")))).await;
    assert_eq!(code, 200, "{body}");
    body["runs"].as_array().expect("runs").iter().map(|r| r["run_id"].as_str().expect("id").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_restart_loses_nothing_and_repeats_no_success() {
    let (dir, config) = component_dir("");
    std::fs::write(&config, component(dir.path())).expect("component");
    let db = format!("sqlite://{}", dir.path().join("runs.db").display());
    let args = ["--database-url", db.as_str(), "--lease", "1s", "--workers", "4", "--log-level", "warn,plinth=info"];
    let c = client();

    let first = Served::start(&config, &args, dir.path());
    let mut ids = Vec::new();
    for i in 0..RUNS {
        ids.push(submit(&c, &first, "work", json!({"i": i})).await);
    }
    // Kill once some runs have succeeded and others are still queued.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts(&dir.path().join("dones.log")).len() < 8 {
        assert!(Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let succeeded_before = ids_with_status(&c, &first, "succeeded").await;
    first.kill9();
    // Why not the runs `queued` at the kill: a run may wait on its node for a worker with its
    // lease held, reading `running` before it starts (decision 0028).
    let started_at_kill = counts(&dir.path().join("starts.log"));
    let unstarted = ids.iter().filter(|id| !started_at_kill.contains_key(*id)).count();
    assert!(!succeeded_before.is_empty(), "some runs succeeded before the kill");
    assert!(unstarted > 0, "some runs had not started at the kill");

    let second = Served::start(&config, &args, dir.path());
    for id in &ids {
        let (code, run) = send(c.get(second.url(&format!("/runs/{id}?wait=30")))).await;
        assert_eq!(code, 200, "run {id} lost: {run}");
        assert_eq!(run["status"], "succeeded", "run {id}: {run}");
    }
    let starts = counts(&dir.path().join("starts.log"));
    for id in &succeeded_before {
        assert_eq!(starts.get(id), Some(&1), "run {id} succeeded before the kill and ran again");
    }
    for id in &ids {
        assert!(starts.get(id).is_some_and(|n| *n >= 1), "run {id} never executed");
    }
    let repeated: Vec<&String> = starts.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    eprintln!(
        "recovery: {} runs, {} succeeded before SIGKILL, {} not started at it, {} executed again (in flight at the kill)",
        ids.len(),
        succeeded_before.len(),
        unstarted,
        repeated.len()
    );
    assert!(repeated.len() <= 4, "only runs in flight on the killed node (4 workers) may repeat: {repeated:?}");
    let status = second.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_corrupt_database_fails_loudly() {
    let (dir, config) = component_dir("");
    std::fs::write(&config, component(dir.path())).expect("component");
    let db = dir.path().join("runs.db");
    std::fs::write(&db, b"this is not a SQLite database, just some bytes that fill a page").expect("db");
    let out = crate::harness::plinth(
        &[
            "serve",
            "--config",
            config.to_str().expect("utf-8"),
            "--port",
            "0",
            "--database-url",
            &format!("sqlite://{}", db.display()),
        ],
        &[],
        dir.path(),
    );
    assert!(!out.status.success(), "started on a corrupt database");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PLINTH_002"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_queued_work_for_the_next_start() {
    let (dir, config) = component_dir("");
    std::fs::write(&config, component(dir.path())).expect("component");
    let db = format!("sqlite://{}", dir.path().join("runs.db").display());
    let args = ["--database-url", db.as_str(), "--workers", "1", "--shutdown-grace", "5s"];
    let c = client();
    let first = Served::start(&config, &args, dir.path());
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit(&c, &first, "work", json!({"i": i})).await);
    }
    let status = first.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    let second = Served::start(&config, &args, dir.path());
    for id in &ids {
        let (_, run) = send(c.get(second.url(&format!("/runs/{id}?wait=30")))).await;
        assert_eq!(run["status"], Value::from("succeeded"), "{run}");
    }
    let starts = counts(&dir.path().join("starts.log"));
    assert!(ids.iter().all(|id| starts.get(id) == Some(&1)), "a graceful stop repeats nothing: {starts:?}");
}
