//! Graceful shutdown: SIGTERM and SIGINT drain in-flight runs, `/ready` answers 503 meanwhile,
//! the exit code is 0, and nothing accepted is lost across a restart on the same database.

use crate::harness::{Served, client, component_dir, component_text, parse_lines, send, submit, wait_status};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A component whose `slow` handler notes its run id in `starts.log`, then sleeps 2s.
struct Node {
    dir: tempfile::TempDir,
    config: PathBuf,
    db: String,
}

impl Node {
    fn new() -> Self {
        let (dir, config) = component_dir("");
        let starts = dir.path().join("starts.log");
        let functions = format!(
            "  - name: slow\n    handler: {{command: {{argv: [sh, -c, 'cat > /dev/null; echo \"$PLINTH_RUN_ID\" >> {}; \
             sleep 2; echo \"{{\\\"slept\\\": 2}}\"']}}}}\n    policy: {{timeout: 30s}}\n",
            starts.display()
        );
        std::fs::write(&config, component_text("drain", &functions)).expect("component.yaml");
        let db = format!("sqlite://{}", dir.path().join("runs.db").display());
        Self { dir, config, db }
    }

    /// Serves on the node's database with `--shutdown-grace 5s` unless `extra` gives one.
    fn start(&self, extra: &[&str]) -> Served {
        let mut args = vec!["--database-url", self.db.as_str()];
        if !extra.contains(&"--shutdown-grace") {
            args.extend(["--shutdown-grace", "5s"]);
        }
        args.extend(extra);
        Served::start(&self.config, &args, self.dir.path())
    }

    /// How many attempts of run `id` the handler started.
    fn starts(&self, id: &str) -> usize {
        let text = std::fs::read_to_string(self.dir.path().join("starts.log")).unwrap_or_default();
        text.lines().filter(|l| *l == id).count()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Polls `/ready` until it answers 503 while the process still runs; returns the body.
async fn not_ready_while_draining(c: &reqwest::Client, s: &mut Served) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = c.get(s.url("/ready")).send().await.unwrap_or_else(|e| panic!("/ready stopped answering before 503: {e}"));
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().expect("ascii").to_string());
        let body: Value = resp.json().await.expect("JSON");
        if status == 503 {
            assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
            return body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(s.running(), "the server exited before /ready answered 503");
        assert!(Instant::now() < deadline, "/ready never answered 503 during the drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn line<'a>(logs: &'a [Value], message: &str) -> &'a Value {
    logs.iter()
        .find(|l| l["message"].as_str().is_some_and(|m| m.starts_with(message)))
        .unwrap_or_else(|| panic!("no `{message}` line: {logs:?}"))
}

/// Submits a slow run, sends `signal` while it runs, checks the drain, the exit and the run.
async fn drains_on(signal: Signal, name: &str) {
    let node = Node::new();
    let c = client();
    let mut s = node.start(&[]);
    let (code, body) = send(c.get(s.url("/ready"))).await;
    assert_eq!((code, &body["status"]), (200, &json!("ready")), "{body}");
    let id = submit(&c, &s, "slow", json!({})).await;
    wait_status(&c, &s, &id, "running").await;
    s.signal(signal);
    let body = not_ready_while_draining(&c, &mut s).await;
    assert_eq!(body, json!({"status": "not_ready", "reason": "draining"}));
    let (status, lines) = s.finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status}");
    let logs = parse_lines(&lines);
    assert_eq!(line(&logs, "shutting down")["signal"], name);
    let stopped = line(&logs, "stopped");
    assert_eq!((&stopped["finished"], &stopped["released"]), (&json!(1), &json!(0)), "{stopped}");
    assert!(logs.iter().any(|l| l["message"] == "attempt succeeded" && l["run_id"] == id.as_str()), "{lines:?}");

    let again = node.start(&[]);
    let (code, run) = send(c.get(again.url(&format!("/runs/{id}")))).await;
    assert_eq!(code, 200, "{run}");
    assert_eq!(
        (&run["status"], &run["attempt"], &run["output"]),
        (&json!("succeeded"), &json!(1), &json!({"slept": 2})),
        "{run}"
    );
    assert_eq!(node.starts(&id), 1, "the drained run is not executed again");
    assert!(again.signal_and_wait(Signal::SIGTERM, Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_in_flight_run_and_exits_zero() {
    drains_on(Signal::SIGTERM, "SIGTERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_the_in_flight_run_and_exits_zero() {
    drains_on(Signal::SIGINT, "SIGINT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_the_grace_is_released_and_finishes_after_a_restart() {
    let node = Node::new();
    let c = client();
    let s = node.start(&["--shutdown-grace", "100ms", "--kill-grace", "1s"]);
    let id = submit(&c, &s, "slow", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.starts(&id) == 0 {
        assert!(Instant::now() < deadline, "the handler never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, lines) = s.stop(Signal::SIGTERM, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "a released run still means a clean stop: {status}");
    let logs = parse_lines(&lines);
    let released = line(&logs, "attempt released at shutdown");
    assert_eq!((&released["run_id"], &released["outcome"]), (&json!(id), &json!("released")), "{released}");
    let stopped = line(&logs, "stopped");
    assert_eq!((&stopped["finished"], &stopped["released"]), (&json!(0), &json!(1)), "{stopped}");
    assert!(!logs.iter().any(|l| l["message"] == "run failed"), "a release is not a failure");

    let again = node.start(&[]);
    let (_, run) = send(c.get(again.url(&format!("/runs/{id}?wait=30")))).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(node.starts(&id), 2, "the released run is executed again after the restart");
    assert!(again.signal_and_wait(Signal::SIGTERM, Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_accepted_during_the_drain_is_kept_for_the_next_start() {
    let node = Node::new();
    let c = client();
    let mut s = node.start(&[]);
    let first = submit(&c, &s, "slow", json!({})).await;
    wait_status(&c, &s, &first, "running").await;
    s.signal(Signal::SIGTERM);
    not_ready_while_draining(&c, &mut s).await;
    let late = submit(&c, &s, "slow", json!({})).await;
    let (status, lines) = s.finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status}");
    let logs = parse_lines(&lines);
    assert!(logs.iter().all(|l| l["run_id"] != late.as_str()), "the draining node started the late run: {lines:?}");
    assert_eq!(node.starts(&late), 0);

    let again = node.start(&[]);
    for id in [&first, &late] {
        let (_, run) = send(c.get(again.url(&format!("/runs/{id}?wait=30")))).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(node.starts(id), 1, "{id}");
    }
    assert!(again.signal_and_wait(Signal::SIGTERM, Duration::from_secs(30)).success());
}

#[test]
fn a_signal_as_soon_as_the_node_is_listening_stops_it_cleanly() {
    let node = Node::new();
    for (signal, name) in [(Signal::SIGTERM, "SIGTERM"), (Signal::SIGINT, "SIGINT")] {
        for _ in 0..3 {
            let s = node.start(&[]);
            let (status, lines) = s.stop(signal, Duration::from_secs(30));
            assert_eq!(status.code(), Some(0), "{name} right after `listening`: {status}");
            let logs = parse_lines(&lines);
            assert_eq!(line(&logs, "shutting down")["signal"], name);
            line(&logs, "stopped");
        }
    }
    assert!(node.path().join("runs.db").exists());
}
