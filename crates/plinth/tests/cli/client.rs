//! `plinth run` and `plinth runs ...` against a real server: outputs and exit codes.

use crate::harness::{Served, component_dir, plinth};
use serde_json::Value;
use std::path::Path;

const COMPONENT: &str = "\
component: {name: client-test, version: '1'}
functions:
  - name: echo
    handler: {command: {argv: [cat]}}
  - name: fail
    handler: {command: {argv: [sh, -c, 'echo broken >&2; exit 3']}}
    policy: {retries: {max_attempts: 1}}
  - name: sleep
    handler: {command: {argv: [sh, -c, 'echo napping >&2; sleep 3']}}
    input_schema: {type: object, properties: {seconds: {type: number}}}
";

fn cli(served: &Served, args: &[&str], cwd: &Path) -> (i32, String, String) {
    let url = served.url("");
    let out = plinth(args, &[("PLINTH_URL", url.as_str())], cwd);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn run_wait_reports_each_outcome_with_its_exit_code() {
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://runs.db"], dir.path());
    let (code, out, err) = cli(&s, &["run", "echo", "--input", r#"{"hi":1}"#, "--wait", "--json"], dir.path());
    assert_eq!(code, 0, "{err}");
    let run: Value = serde_json::from_str(&out).expect("JSON run");
    assert_eq!((run["status"].as_str(), &run["output"]), (Some("succeeded"), &serde_json::json!({"hi": 1})));

    let (code, out, _) = cli(&s, &["run", "fail", "--wait"], dir.path());
    assert_eq!(code, 1, "a failed run exits 1: {out}");
    assert!(out.contains("PLINTH_020") && out.contains("broken"), "{out}");

    let (code, id, _) = cli(&s, &["run", "sleep"], dir.path());
    assert_eq!(code, 0, "accepted without --wait");
    let id = id.trim().to_string();
    let (code, out, _) = cli(&s, &["runs", "cancel", &id], dir.path());
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = cli(&s, &["run", "sleep", "--wait", "--timeout", "300ms"], dir.path());
    assert_eq!(code, 5, "still running when the wait ran out: {err}");
    assert!(err.contains("still"), "{err}");
}

#[test]
fn runs_list_show_and_logs_print_tables_and_json() {
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://runs.db"], dir.path());
    let (_, out, _) = cli(&s, &["run", "fail", "--wait", "--json"], dir.path());
    let id = serde_json::from_str::<Value>(&out).expect("run")["run_id"].as_str().expect("id").to_string();
    let (code, table, _) = cli(&s, &["runs", "list", "--function", "fail"], dir.path());
    assert_eq!(code, 0);
    assert!(table.starts_with("RUN_ID") && table.contains(&id) && table.contains("failed"), "{table}");
    let (_, none, _) = cli(&s, &["runs", "list", "--function", "echo"], dir.path());
    assert_eq!(none, "no runs\n");
    let (code, json, _) = cli(&s, &["runs", "show", &id, "--json"], dir.path());
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&json).expect("run")["attempts"][0]["outcome"], "failed");
    let (code, logs, _) = cli(&s, &["runs", "logs", &id], dir.path());
    assert_eq!(code, 0);
    assert!(logs.contains("#1") && logs.contains("broken"), "{logs}");
}

#[test]
fn refused_requests_exit_2_with_the_problem() {
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://runs.db"], dir.path());
    let (code, _, err) = cli(&s, &["run", "nope"], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("PLINTH_005") && err.contains("nope"), "{err}");
    let (code, _, err) = cli(&s, &["run", "sleep", "--input", r#"{"seconds":"x"}"#], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("PLINTH_004") && err.contains("/input/seconds"), "{err}");
    let (code, _, err) = cli(&s, &["run", "echo", "--input", "{oops"], dir.path());
    assert_eq!(code, 2, "bad JSON is caught before sending");
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = cli(&s, &["runs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("PLINTH_006"), "{err}");
    let (_, out, _) = cli(&s, &["run", "echo", "--wait", "--json"], dir.path());
    let id = serde_json::from_str::<Value>(&out).expect("run")["run_id"].as_str().expect("id").to_string();
    let (code, _, err) = cli(&s, &["runs", "cancel", &id], dir.path());
    assert_eq!(code, 2, "a finished run cannot be cancelled");
    assert!(err.contains("PLINTH_009"), "{err}");
}

#[test]
fn an_unreachable_server_exits_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let url = format!("http://{closed}");
    for args in [vec!["run", "echo"], vec!["runs", "list"], vec!["runs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]] {
        let out = plinth(&[args.as_slice(), &["--url", url.as_str()]].concat(), &[], dir.path());
        assert_eq!(out.status.code(), Some(4), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"), "{args:?}");
    }
    let out = plinth(&["run", "echo", "--url", "localhost:1"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2), "a URL without a scheme is a usage error");
}

#[test]
fn idempotency_keys_replay_the_same_run() {
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://runs.db"], dir.path());
    let args = ["run", "echo", "--input", "{}", "--idempotency-key", "order-42", "--json"];
    let (_, first, _) = cli(&s, &args, dir.path());
    let (_, second, _) = cli(&s, &args, dir.path());
    let (first, second): (Value, Value) =
        (serde_json::from_str(&first).expect("json"), serde_json::from_str(&second).expect("json"));
    assert_eq!(first["run_id"], second["run_id"]);
    assert_eq!(second["replayed"], true);
    let (code, _, err) = cli(&s, &["run", "echo", "--input", "{\"other\":1}", "--idempotency-key", "order-42"], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("PLINTH_015"), "{err}");
}

const GUARDED: &str = "\
auth:
  api_keys:
    - {name: ops, from_env: OPS_KEY, scopes: [admin]}
component: {name: guarded, version: '1'}
functions:
  - name: echo
    handler: {command: {argv: [cat]}}
    input_schema: {type: object}
";

#[test]
fn the_client_and_check_send_an_api_key_to_a_guarded_server() {
    let key = "ops-key-0123456789abcdef";
    let (dir, config) = component_dir(GUARDED);
    let config = config.to_str().expect("utf-8").to_string();
    let s = Served::spawn(
        &["serve", "--config", &config, "--port", "0", "--database-url", "sqlite://db"],
        &[("OPS_KEY", key)],
        dir.path(),
    );
    let url = s.url("");
    let out = plinth(&["run", "echo", "--input", "{}", "--wait", "--url", &url], &[], dir.path());
    assert_eq!(out.status.code(), Some(2), "refused without a key");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PLINTH_030"));
    let out = plinth(&["run", "echo", "--input", "{}", "--wait", "--url", &url], &[("PLINTH_API_KEY", key)], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = plinth(&["runs", "list", "--url", &url, "--api-key", "wrong-key-0123456789"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2), "a wrong key is refused");
    let out = plinth(&["check", &url, "--function", "echo", "--format", "json", "--api-key", key], &[], dir.path());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let failed: Vec<&serde_json::Value> =
        report["results"].as_array().expect("results").iter().filter(|r| r["outcome"] == "fail").collect();
    assert!(failed.is_empty() && out.status.success(), "{failed:?}");
    let all_out = [String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)].concat();
    assert!(!all_out.contains(key), "the key is never printed");
}
