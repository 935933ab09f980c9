//! `plinth check` against a server not written in Rust: `fixtures/partial_server.py`, Python's
//! standard library only, which follows the contract in part. The binary must report exactly its
//! known deviations (listed at the top of the script), pass the rest, and skip the rate-limit
//! probe unless asked for it.

use crate::check::{check, results};
use crate::harness::python3_available;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cli/fixtures/partial_server.py");

/// The script, running, on a free port it picked itself (and printed).
struct PythonServer {
    child: Child,
    url: String,
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> PythonServer {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read the script's first line");
    let Some(url) = line.trim().strip_prefix("listening on ").map(str::to_string) else {
        let _ = child.kill();
        panic!("the script did not say where it listens: {line:?}");
    };
    PythonServer { child, url }
}

fn ids(all: &[serde_json::Value], outcome: &str) -> Vec<String> {
    all.iter().filter(|r| r["outcome"] == outcome).map(|r| r["id"].as_str().expect("id").to_string()).collect()
}

fn field(all: &[serde_json::Value], id: &str, name: &str) -> String {
    let r = all.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} not reported"));
    r[name].as_str().unwrap_or_else(|| panic!("{id} has no {name}: {r}")).to_string()
}

#[test]
fn a_python_partial_server_fails_exactly_its_deviations() {
    if !python3_available("the non-Rust partial server") {
        return;
    }
    let server = start();
    let (code, out, err) = check(&[&server.url, "--function", "greet", "--input", r#"{"name":"ada"}"#, "--format", "json"]);
    assert_eq!(code, 1, "a failure exits 1: {err}");
    let all = results(&out);
    assert_eq!(all.len(), 33, "{out}");
    assert_eq!(
        ids(&all, "fail"),
        ["idempotency.mismatch", "openapi.present", "runs.list", "runs.logs", "run.unsupported_media_type"],
        "{out}"
    );
    assert_eq!(
        ids(&all, "pass"),
        [
            "health.status",
            "health.checks",
            "ready.status",
            "run.accepted",
            "run.location",
            "run.tracked_to_terminal",
            "run.malformed_json",
            "run.unknown_function",
            "run.schema_violation",
            "errors.problem_json",
            "errors.code",
            "correlation.echo",
            "metrics.exposed",
            "metrics.names",
            "idempotency.replay",
            "cancel.queued",
            "run.body_too_large",
            "flow.policy",
        ],
        "{out}"
    );
    assert_eq!(
        ids(&all, "skip"),
        [
            "events.accepted",
            "events.dedup",
            "events.invalid_422",
            "events.list",
            "steps.waits",
            "steps.wakes",
            "steps.records",
            "rate_limit.retry_after",
            "flow.held_by",
            "flow.keys"
        ],
        "{out}"
    );
    assert_eq!(field(&all, "events.accepted", "why"), "the server offers no POST /events (404)", "{out}");
    assert!(field(&all, "rate_limit.retry_after", "why").contains("--rate-limit-probe"), "{out}");
    assert_eq!(field(&all, "runs.list", "got"), "GET /runs?limit=1: no next_cursor field (null on the last page)", "{out}");
    assert!(field(&all, "runs.logs", "got").contains("/logs: 404 application/problem+json"), "{out}");
    assert!(field(&all, "run.unsupported_media_type", "got").starts_with("POST /run: 404 application/problem+json"), "{out}");
    assert!(field(&all, "idempotency.mismatch", "got").starts_with("POST /run: 202"), "{out}");
    assert!(field(&all, "openapi.present", "got").contains(r#"openapi: null"#), "{out}");
}

#[test]
fn probing_the_python_servers_rate_limit_finds_a_429_without_retry_after() {
    if !python3_available("the non-Rust partial server") {
        return;
    }
    let server = start();
    let probe = ["--only", "rate_limit.retry_after", "--format", "json"];
    let (code, out, _) = check(&[&[server.url.as_str(), "--rate-limit-probe", "50"], &probe[..]].concat());
    assert_eq!(code, 1, "{out}");
    let all = results(&out);
    assert_eq!(ids(&all, "fail"), ["rate_limit.retry_after"], "{out}");
    let got = field(&all, "rate_limit.retry_after", "got");
    assert!(
        got.starts_with("request 21: GET /functions: 429 application/problem+json") && got.ends_with("without Retry-After"),
        "{got}"
    );

    // Its minute is used up: a budget too small to reach a 429 is a failure of its own kind on
    // a fresh server, and 0 is a usage error.
    let fresh = start();
    let (code, out, _) = check(&[&[fresh.url.as_str(), "--rate-limit-probe", "5"], &probe[..]].concat());
    assert_eq!(code, 1, "{out}");
    let got = field(&results(&out), "rate_limit.retry_after", "got");
    assert!(got.starts_with("5 answers, none 429; the last was GET /functions: 200"), "{got}");
    let (code, _, err) = check(&[&[fresh.url.as_str(), "--rate-limit-probe", "0"], &probe[..]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("--rate-limit-probe must be more than 0"), "{err}");
}
