//! Access control in the real binary: an API key read from the environment guards the API,
//! never shows in the logs, and a missing one stops start-up; the "no authentication" warning
//! only shows when no access control is configured.

use crate::harness::{Served, client, component_dir, component_text, plinth, send};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const FUNCTIONS: &str = "  - name: echo\n    handler: {command: {argv: [cat]}}\n";
const KEY: &str = "cli-test-key-5f1c9a7e3b20d4";
const WARNING: &str = "listening beyond loopback without authentication";

fn guarded() -> String {
    format!(
        "{}auth:\n  api_keys:\n    - {{name: ops, from_env: HELLO_API_KEY, scopes: [runs:write, runs:read]}}\n",
        component_text("guarded", FUNCTIONS)
    )
}

fn serve(config: &Path, dir: &Path, host: &str, envs: &[(&str, &str)]) -> Served {
    let db = format!("sqlite://{}", dir.join("runs.db").display());
    let config = config.to_str().expect("utf-8 path");
    let args = ["serve", "--config", config, "--port", "0", "--host", host, "--database-url", &db, "--log-level", "debug"];
    Served::spawn(&args, envs, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_from_the_environment_guards_the_api_and_stays_out_of_the_logs() {
    let (dir, config) = component_dir(&guarded());
    let s = serve(&config, dir.path(), "127.0.0.1", &[("HELLO_API_KEY", KEY)]);
    let c = client();
    let input = json!({"function": "echo", "input": {"n": 1}});
    let resp = c.post(s.url("/run")).json(&input).send().await.expect("POST /run");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().get("www-authenticate").is_some_and(|v| v.as_bytes().starts_with(b"Bearer")));
    let (code, body) = send(c.post(s.url("/run")).bearer_auth("wrong-key-0123456789abc").json(&input)).await;
    assert_eq!((code, body["code"].clone()), (401, json!("PLINTH_030")), "{body}");
    let (code, body) = send(c.post(s.url("/run")).bearer_auth(KEY).json(&input)).await;
    assert_eq!(code, 202, "{body}");
    let id = body["run_id"].as_str().expect("run_id").to_string();
    let (code, run) = send(c.get(s.url(&format!("/runs/{id}?wait=30"))).header("x-api-key", KEY)).await;
    assert_eq!((code, run["status"].clone()), (200, json!("succeeded")), "{run}");
    let (code, body) = send(c.get(s.url(&format!("/runs?api_key={KEY}"))).header("x-api-key", KEY)).await;
    assert_eq!((code, body["code"].clone()), (400, json!("PLINTH_032")), "{body}");
    let (code, _) = send(c.get(s.url("/health"))).await;
    assert_eq!(code, 200, "/health stays public");
    s.log_line("`access control on`", |l| l["message"] == "access control on").await;
    let refused = s.log_line("`authentication failed`", |l| l["message"] == "authentication failed").await;
    assert!(refused["reason"].is_string() && refused["correlation_id"].is_string(), "{refused}");
    let (status, lines) = s.stop(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert!(lines.len() > 5, "debug logs were written: {lines:?}");
    for line in &lines {
        assert!(!line.contains(KEY), "the key leaked into a log line: {line}");
        assert!(!line.contains("wrong-key-0123456789abc"), "a presented key leaked: {line}");
    }
}

#[test]
fn a_missing_or_weak_key_stops_start_up() {
    let (dir, config) = component_dir(&guarded());
    let config = config.to_str().expect("utf-8 path");
    let out = plinth(&["serve", "--config", config, "--port", "0"], &[], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for fragment in ["auth.api_keys[0].from_env", "HELLO_API_KEY", "not set", "PLINTH_001"] {
        assert!(err.contains(fragment), "`{fragment}` missing: {err}");
    }
    assert!(!dir.path().join(".plinth").exists(), "no database is created");
    let out = plinth(&["serve", "--config", config, "--port", "0"], &[("HELLO_API_KEY", "hunter2")], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("16 to 4096 characters") && !err.contains("hunter2"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_no_authentication_warning_shows_only_without_access_control() {
    let warned = |l: &Value| l["message"] == WARNING;
    let (dir, config) = component_dir(&component_text("open", FUNCTIONS));
    let open = serve(&config, dir.path(), "0.0.0.0", &[]);
    let line = open.log_line("the warning", warned).await;
    assert_eq!(line["level"], "warn", "{line}");
    drop(open);
    let (dir, config) = component_dir(&guarded());
    let s = serve(&config, dir.path(), "0.0.0.0", &[("HELLO_API_KEY", KEY)]);
    s.log_line("`access control on`", |l| l["message"] == "access control on").await;
    let (status, lines) = s.stop(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert!(!lines.iter().any(|l| l.contains(WARNING)), "no warning with access control: {lines:?}");
}

/// A component whose `parent` sends an event back with the CLI, which reads `PLINTH_URL` and the
/// attempt's own `PLINTH_API_KEY` from its environment; `child` runs on that event.
fn sends_events(token_file: &Path) -> String {
    let bin = crate::harness::BIN;
    format!(
        "component: {{name: chain, version: '1'}}\n\
         functions:\n\
         \x20 - name: parent\n\
         \x20   handler: {{command: {{argv: [sh, -c, 'echo \"$PLINTH_RUN_TOKEN\" > {}; {bin} events send chain/child.wanted --data \"{{\\\"from\\\":\\\"$PLINTH_RUN_ID\\\"}}\" >&2']}}}}\n\
         \x20   policy: {{retries: {{max_attempts: 1}}}}\n\
         \x20 - name: child\n\
         \x20   handler: {{command: {{argv: [cat]}}}}\n\
         \x20   triggers: [{{event: chain/child.wanted}}]\n\
         auth:\n  api_keys:\n    - {{name: ops, from_env: CHAIN_KEY, scopes: [runs:write, runs:read]}}\n",
        token_file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_run_sends_events_with_its_own_token_valid_only_while_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    let config = dir.path().join("component.yaml");
    std::fs::write(&config, sends_events(&token_file)).expect("component");
    let s = serve(&config, dir.path(), "127.0.0.1", &[("CHAIN_KEY", KEY)]);
    let c = client();
    let (code, body) = send(c.post(s.url("/run")).bearer_auth(KEY).json(&json!({"function": "parent"}))).await;
    assert_eq!(code, 202, "{body}");
    let parent = body["run_id"].as_str().expect("run_id").to_string();
    let (_, run) = send(c.get(s.url(&format!("/runs/{parent}?wait=30"))).bearer_auth(KEY)).await;
    assert_eq!(run["status"], "succeeded", "the CLI inside the handler sent the event: {run}");
    let (_, events) = send(c.get(s.url("/events?name=chain/child.wanted")).bearer_auth(KEY)).await;
    let event = &events["events"][0];
    assert_eq!(event["data"]["from"], json!(parent), "{events}");
    let child = event["run_ids"][0].as_str().expect("the event started the child").to_string();
    let (_, child_run) = send(c.get(s.url(&format!("/runs/{child}?wait=30"))).bearer_auth(KEY)).await;
    assert_eq!((child_run["status"].as_str(), child_run["trigger"]["type"].as_str()), (Some("succeeded"), Some("event")));
    let token = std::fs::read_to_string(&token_file).expect("the token the handler had").trim().to_string();
    assert!(token.starts_with("plinth-run-"), "{token}");
    let (code, body) = send(c.post(s.url("/events")).bearer_auth(&token).json(&json!({"name": "chain/child.wanted"}))).await;
    assert_eq!((code, body["code"].clone()), (401, json!("PLINTH_030")), "the token ended with its attempt: {body}");
    let (status, lines) = s.stop(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success());
    assert!(lines.iter().all(|l| !l.contains(&token)), "the run token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_access_control_no_token_is_handed_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("env");
    let text = component_text(
        "open",
        &format!("  - name: envs\n    handler: {{command: {{argv: [sh, -c, 'env > {}; echo {{}}']}}}}\n", out.display()),
    );
    let config = dir.path().join("component.yaml");
    std::fs::write(&config, text).expect("component");
    let s = serve(&config, dir.path(), "127.0.0.1", &[]);
    let c = client();
    let (_, body) = send(c.post(s.url("/run")).json(&json!({"function": "envs"}))).await;
    let id = body["run_id"].as_str().expect("run_id").to_string();
    let (_, run) = send(c.get(s.url(&format!("/runs/{id}?wait=30")))).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let env = std::fs::read_to_string(&out).expect("env");
    assert!(env.contains("PLINTH_URL=http://") && !env.contains("PLINTH_RUN_TOKEN"), "{env}");
}
