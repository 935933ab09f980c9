//! 5,000 events sent over HTTP while the server is SIGKILLed once and restarted on the same
//! database: every event answered 202 is stored once and started exactly its runs, each run
//! once, and every run ends.

use crate::harness::{Served, client, send};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

const EVENTS: usize = 5_000;
const PER_REQUEST: usize = 50;

fn component(log: &Path) -> String {
    format!(
        "component: {{name: crashy, version: '1'}}\n\
         functions:\n\
         \x20 - name: work\n\
         \x20   handler: {{command: {{argv: [sh, -c, 'echo \"$PLINTH_RUN_ID\" >> {}; cat >/dev/null; echo {{}}']}}}}\n\
         \x20   policy: {{retries: {{max_attempts: 3, backoff: {{initial: 50ms, max: 100ms}}}}, timeout: 10s}}\n\
         \x20   triggers: [{{event: load/item.created}}]\n\
         \x20 - name: audit\n\
         \x20   handler: {{rust: noop}}\n\
         \x20   triggers: [{{event: load/item.created, if: 'event.data.i % 2 == 0'}}]\n",
        log.display()
    )
}

/// Sends one batch; `Some(answer)` on a 202, `None` when the server could not answer.
async fn post(c: &reqwest::Client, s: &Served, first: usize) -> Option<Value> {
    let batch: Vec<Value> = (first..first + PER_REQUEST)
        .map(|i| json!({"name": "load/item.created", "id": format!("ev-{i}"), "data": {"i": i}}))
        .collect();
    let resp = c.post(s.url("/events")).json(&batch).send().await.ok()?;
    if resp.status().as_u16() != 202 {
        return None;
    }
    resp.json().await.ok()
}

async fn pages(c: &reqwest::Client, s: &Served, path: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = s.url(&format!("{path}{}limit=500", if path.contains('?') { "&" } else { "?" }));
        if let Some(cur) = &cursor {
            url.push_str(&format!("&cursor={cur}"));
        }
        let (status, page) = send(c.get(url)).await;
        assert_eq!(status, 200, "{page}");
        out.extend(page[key].as_array().expect("a page").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_events_through_a_sigkill_are_stored_once_with_their_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, log) = (dir.path().join("component.yaml"), dir.path().join("executions.log"));
    std::fs::write(&config, component(&log)).expect("component");
    let args = ["--database-url", "sqlite://db", "--lease", "2s", "--log-level", "warn,plinth::serve=info"];
    let mut server = Some(Served::start(&config, &args, dir.path()));
    let c = client();
    // Each event id, with the runs its 202 named.
    let mut answered: HashMap<String, Vec<String>> = HashMap::new();
    let mut first = 0;
    let mut killed = false;
    while first < EVENTS {
        let s = server.as_ref().expect("a server");
        if !killed && first >= EVENTS / 2 {
            // Why: a batch is in flight while the process dies.
            let pending = tokio::spawn({
                let (c, url) = (c.clone(), s.url("/events"));
                let batch: Vec<Value> = (0..PER_REQUEST)
                    .map(|i| json!({"name": "load/item.created", "id": format!("ev-{}", first + i), "data": {"i": first + i}}))
                    .collect();
                async move { c.post(url).json(&batch).send().await.ok().map(|r| r.status().as_u16()) }
            });
            tokio::time::sleep(Duration::from_millis(2)).await;
            server.take().expect("a server").kill9();
            let _ = pending.await;
            server = Some(Served::start(&config, &args, dir.path()));
            killed = true;
            continue;
        }
        match post(&c, s, first).await {
            Some(answer) => {
                for (i, id) in answer["event_ids"].as_array().expect("event_ids").iter().enumerate() {
                    let runs: Vec<String> = answer["run_ids"][i]
                        .as_array()
                        .expect("run ids")
                        .iter()
                        .map(|r| r.as_str().expect("id").to_string())
                        .collect();
                    let id = id.as_str().expect("id").to_string();
                    if let Some(before) = answered.insert(id.clone(), runs.clone()) {
                        assert_eq!(before, runs, "a repeat of {id} answers the first runs");
                    }
                }
                first += PER_REQUEST;
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let s = server.as_ref().expect("a server");
    assert_eq!(answered.len(), EVENTS, "every event was answered 202, some after a retry");
    let events = pages(&c, s, "/events", "events").await;
    assert_eq!(events.len(), EVENTS, "each event stored once");
    for e in &events {
        let id = e["id"].as_str().expect("id");
        let runs: Vec<String> =
            e["run_ids"].as_array().expect("runs").iter().map(|r| r.as_str().expect("id").to_string()).collect();
        assert_eq!(answered.get(id), Some(&runs), "event {id} started exactly the runs its 202 named");
        let i: usize = id.trim_start_matches("ev-").parse().expect("number");
        assert_eq!(runs.len(), if i.is_multiple_of(2) { 2 } else { 1 }, "{e}");
    }
    let expected_runs: usize = answered.values().map(Vec::len).sum();
    let deadline = Instant::now() + Duration::from_secs(180);
    let runs = loop {
        let runs = pages(&c, s, "/runs?trigger=event", "runs").await;
        if runs.len() == expected_runs && runs.iter().all(|r| r["status"] == "succeeded") {
            break runs;
        }
        assert!(Instant::now() < deadline, "not every run succeeded within 180s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ids: HashSet<&str> = runs.iter().map(|r| r["run_id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), expected_runs, "no run stored twice");
    let mut executions: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(&log).expect("log").lines() {
        *executions.entry(line.to_string()).or_default() += 1;
    }
    let work: Vec<&Value> = runs.iter().filter(|r| r["function"] == "work").collect();
    for r in &work {
        let id = r["run_id"].as_str().expect("id");
        assert!(executions.contains_key(id), "run {id} was executed");
    }
    let twice: Vec<&String> = executions.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    for id in &twice {
        let (_, run) = send(c.get(s.url(&format!("/runs/{id}")))).await;
        let lost = run["attempts"].as_array().expect("attempts").iter().any(|a| a["outcome"] == "lease_expired");
        assert!(lost, "only a run in flight at the kill runs again: {run}");
    }
    eprintln!(
        "events through a SIGKILL: {EVENTS} events, {expected_runs} runs, {} of {} command runs executed twice (in flight at the kill)",
        twice.len(),
        work.len()
    );
}
