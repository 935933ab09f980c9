//! `plinth serve` logs: JSON lines with the common fields, the correlation id carried from the
//! request into the run and its log lines, and run payloads kept out of the logs.

use crate::harness::{Served, client, component_dir, component_text, parse_lines, send};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::time::Duration;

const FUNCTIONS: &str = concat!(
    "  - name: echo\n",
    "    handler: {command: {argv: [cat]}}\n",
    "  - name: fail\n",
    "    handler: {command: {argv: [sh, -c, 'cat > /dev/null; echo the handler gave up >&2; exit 3']}}\n",
    "    policy: {retries: {max_attempts: 2, backoff: {initial: 10ms, max: 20ms}}}\n",
    "  - name: typed\n",
    "    handler: {command: {argv: [cat]}}\n",
    "    input_schema: {type: object, properties: {n: {type: integer}}, required: [n]}\n",
);

const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

fn start(args: &[&str]) -> (tempfile::TempDir, Served) {
    let (dir, config) = component_dir(&component_text("logs", FUNCTIONS));
    let db = format!("sqlite://{}", dir.path().join("runs.db").display());
    let all: Vec<&str> = ["--database-url", db.as_str()].into_iter().chain(args.iter().copied()).collect();
    let served = Served::start(&config, &all, dir.path());
    (dir, served)
}

/// `POST /run` with extra headers: (status, the `x-correlation-id` response header, body).
async fn post(c: &reqwest::Client, s: &Served, body: &Value, headers: &[(&str, &str)]) -> (u16, Option<String>, Value) {
    let mut req = c.post(s.url("/run")).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("POST /run");
    let status = resp.status().as_u16();
    let echoed = resp.headers().get("x-correlation-id").map(|v| v.to_str().expect("ascii header").to_string());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, echoed, body)
}

/// Waits for run `id` to end (long-polling) and returns it.
async fn finished(c: &reqwest::Client, s: &Served, id: &str) -> Value {
    let (code, run) = send(c.get(s.url(&format!("/runs/{id}?wait=30")))).await;
    assert_eq!(code, 200, "{run}");
    run
}

/// Stops the server with SIGTERM and returns every stdout line (asserting a clean exit).
fn stop(s: Served) -> Vec<String> {
    let (status, lines) = s.stop(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    lines
}

fn about<'a>(logs: &'a [Value], run_id: &str) -> Vec<&'a Value> {
    logs.iter().filter(|l| l["run_id"] == run_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_is_a_json_object_with_the_common_fields() {
    let (_dir, s) = start(&["--log-level", "debug"]);
    let c = client();
    let (code, _, body) = post(&c, &s, &json!({"function": "echo", "input": {"a": 1}}), &[]).await;
    assert_eq!(code, 202, "{body}");
    let run_id = body["run_id"].as_str().expect("run_id").to_string();
    assert_eq!(finished(&c, &s, &run_id).await["status"], "succeeded");
    s.log_line("`attempt succeeded`", |l| l["message"] == "attempt succeeded").await;
    let lines = stop(s);
    let logs = parse_lines(&lines);
    for (line, log) in lines.iter().zip(&logs) {
        let ts = log["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {line}"));
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("timestamp {ts} is not RFC 3339 ({e}): {line}"));
        assert!(log["level"].as_str().is_some_and(|l| LEVELS.contains(&l)), "level: {line}");
        assert!(log["message"].as_str().is_some_and(|m| !m.is_empty()), "message: {line}");
        assert_eq!(log["component"], "logs", "component: {line}");
    }
    let messages: Vec<&str> = logs.iter().filter_map(|l| l["message"].as_str()).collect();
    for expected in ["listening", "run accepted", "attempt started", "attempt succeeded", "shutting down", "stopped"] {
        assert!(messages.iter().any(|m| m.starts_with(expected)), "no `{expected}` line in {messages:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_logged_as_json_warnings_with_the_run_and_the_error_code() {
    let (_dir, s) = start(&[]);
    let c = client();
    let (code, _, body) = post(&c, &s, &json!({"function": "fail", "input": {}}), &[("X-Correlation-ID", "corr-fail")]).await;
    assert_eq!(code, 202, "{body}");
    let run_id = body["run_id"].as_str().expect("run_id").to_string();
    assert_eq!(finished(&c, &s, &run_id).await["status"], "failed");
    s.log_line("`run failed`", |l| l["message"] == "run failed").await;
    let logs = parse_lines(&stop(s));
    let retry = logs.iter().find(|l| l["message"] == "attempt failed; will retry").expect("a retry line");
    let failed = logs.iter().find(|l| l["message"] == "run failed").expect("a failure line");
    for (line, attempt) in [(retry, 1), (failed, 2)] {
        assert_eq!(line["level"], "warn", "{line}");
        assert_eq!((&line["run_id"], &line["attempt"], &line["function"]), (&json!(run_id), &json!(attempt), &json!("fail")));
        assert_eq!(line["correlation_id"], "corr-fail", "{line}");
        assert_eq!(line["code"], "PLINTH_020", "{line}");
        assert!(line["error"].as_str().is_some_and(|e| e.contains("status 3")), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correlation_id_follows_the_run_into_its_logs() {
    let (_dir, s) = start(&[]);
    let c = client();
    let (code, echoed, body) =
        post(&c, &s, &json!({"function": "echo", "input": {}}), &[("X-Correlation-ID", "test-corr-1")]).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(echoed.as_deref(), Some("test-corr-1"), "the response echoes the header");
    assert_eq!(body["correlation_id"], "test-corr-1");
    let run_id = body["run_id"].as_str().expect("run_id").to_string();
    let run = finished(&c, &s, &run_id).await;
    assert_eq!((&run["status"], &run["correlation_id"]), (&json!("succeeded"), &json!("test-corr-1")), "{run}");
    s.log_line("`attempt succeeded`", |l| l["message"] == "attempt succeeded" && l["run_id"] == run_id).await;
    let logs = parse_lines(&stop(s));
    let lines = about(&logs, &run_id);
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert_eq!(messages, ["attempt started", "attempt succeeded"], "{lines:?}");
    let trace = &plinth_core::ids::traceparent(&run_id)[3..35];
    for line in lines {
        assert_eq!(line["correlation_id"], "test-corr-1", "{line}");
        assert_eq!((&line["function"], &line["attempt"]), (&json!("echo"), &json!(1)), "{line}");
        assert_eq!(line["trace_id"], trace, "without export, the run's own trace: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_correlation_id_one_is_made_and_followed() {
    let (_dir, s) = start(&[]);
    let c = client();
    let (code, echoed, body) = post(&c, &s, &json!({"function": "echo", "input": {}}), &[]).await;
    assert_eq!(code, 202, "{body}");
    let made = echoed.expect("a correlation id is always echoed");
    assert!(!made.is_empty());
    assert_eq!(body["correlation_id"], made.as_str());
    let run_id = body["run_id"].as_str().expect("run_id").to_string();
    assert_eq!(finished(&c, &s, &run_id).await["correlation_id"], made.as_str());
    let line = s.log_line("`attempt succeeded`", |l| l["message"] == "attempt succeeded" && l["run_id"] == run_id).await;
    assert_eq!(line["correlation_id"], made.as_str(), "{line}");
    // X-Request-ID is accepted when X-Correlation-ID is absent.
    let (_, echoed, body) = post(&c, &s, &json!({"function": "echo", "input": {}}), &[("X-Request-ID", "req-7")]).await;
    assert_eq!((echoed.as_deref(), &body["correlation_id"]), (Some("req-7"), &json!("req-7")));
    stop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_correlation_id_is_replaced_and_never_logged() {
    let (_dir, s) = start(&[]);
    let c = client();
    let long = "x".repeat(129);
    for bad in ["has spaces in it", long.as_str()] {
        let (code, echoed, body) = post(&c, &s, &json!({"function": "echo", "input": {}}), &[("X-Correlation-ID", bad)]).await;
        assert_eq!(code, 202, "{body}");
        let made = echoed.expect("a correlation id is echoed");
        assert_ne!(made, bad, "an unusable id is not echoed");
        assert_eq!(body["correlation_id"], made.as_str());
        let run_id = body["run_id"].as_str().expect("run_id").to_string();
        finished(&c, &s, &run_id).await;
        s.log_line("`attempt succeeded`", |l| l["message"] == "attempt succeeded" && l["run_id"] == run_id).await;
    }
    let lines = stop(s);
    assert!(lines.iter().all(|l| !l.contains("has spaces") && !l.contains(&long)), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_is_logged_with_its_correlation_id() {
    let (_dir, s) = start(&[]);
    let c = client();
    let resp = c.get(s.url("/runs/01NOSUCHRUN")).header("X-Correlation-ID", "corr-404").send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.headers().get("x-correlation-id").map(|v| v.to_str().expect("ascii")), Some("corr-404"));
    let line = s.log_line("`request rejected`", |l| l["message"] == "request rejected").await;
    assert_eq!(
        (&line["correlation_id"], &line["status"], &line["code"]),
        (&json!("corr-404"), &json!(404), &json!("PLINTH_006"))
    );
    assert_eq!(line["level"], "info");
    stop(s);
}

/// A marker no log line could hold by chance.
fn marker(tag: &str) -> String {
    format!("MARKER-{tag}-{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeded_runs_input_and_output_never_reach_the_logs() {
    let (_dir, s) = start(&[]);
    let c = client();
    let mark = marker("ok");
    let (code, _, body) = post(&c, &s, &json!({"function": "echo", "input": {"secret": mark}}), &[]).await;
    assert_eq!(code, 202, "{body}");
    let run_id = body["run_id"].as_str().expect("run_id").to_string();
    let run = finished(&c, &s, &run_id).await;
    assert_eq!(run["output"]["secret"], mark.as_str(), "the output echoes the input: {run}");
    s.log_line("`attempt succeeded`", |l| l["message"] == "attempt succeeded" && l["run_id"] == run_id).await;
    let lines = stop(s);
    assert_eq!(about(&parse_lines(&lines), &run_id).len(), 2, "the run is logged");
    assert!(lines.iter().all(|l| !l.contains(&mark)), "the payload is logged: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_runs_input_never_reaches_the_logs() {
    let (_dir, s) = start(&[]);
    let c = client();
    let mark = marker("fail");
    let (code, _, body) = post(&c, &s, &json!({"function": "fail", "input": {"secret": mark}}), &[]).await;
    assert_eq!(code, 202, "{body}");
    let run_id = body["run_id"].as_str().expect("run_id").to_string();
    assert_eq!(finished(&c, &s, &run_id).await["status"], "failed");
    s.log_line("`run failed`", |l| l["message"] == "run failed" && l["run_id"] == run_id).await;
    let lines = stop(s);
    assert!(lines.iter().all(|l| !l.contains(&mark)), "the payload is logged: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_input_never_reaches_the_logs() {
    let (_dir, s) = start(&[]);
    let c = client();
    let mark = marker("rejected");
    let (code, _, body) = post(&c, &s, &json!({"function": "typed", "input": {"n": mark}}), &[]).await;
    assert_eq!((code, &body["code"]), (422, &json!("PLINTH_004")), "{body}");
    let resp = c.post(s.url("/run")).header("content-type", "application/json").body(format!("{{\"input\": \"{mark}")).send();
    assert_eq!(resp.await.expect("POST").status().as_u16(), 400);
    s.log_line("two `request rejected`", |_| s.logs().iter().filter(|l| l["message"] == "request rejected").count() >= 2).await;
    let lines = stop(s);
    assert!(lines.iter().all(|l| !l.contains(&mark)), "the payload is logged: {lines:?}");
}
