use super::api::describe_problem;
use super::render::{log_lines, run_detail, run_table, table};
use super::*;
use crate::cli::ClientArgs;

fn client(url: &str) -> ClientArgs {
    ClientArgs { url: url.into(), json: false, api_key: None }
}

#[test]
fn inline_and_file_input_parse() {
    assert_eq!(read_input(None), Ok(json!({})));
    assert_eq!(read_input(Some(r#"{"a":[1,2]}"#)), Ok(json!({"a": [1, 2]})));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in.json");
    std::fs::write(&path, "{\"from\": \"file\"}").expect("write");
    assert_eq!(read_input(Some(&format!("@{}", path.display()))), Ok(json!({"from": "file"})));
}

#[test]
fn bad_input_is_a_usage_error() {
    let e = read_input(Some("{not json")).expect_err("invalid");
    assert_eq!(e.exit, EXIT_USAGE);
    assert!(e.message.contains("--input is not valid JSON"), "{}", e.message);
    let e = read_input(Some("@/nonexistent/input.json")).expect_err("missing file");
    assert_eq!(e.exit, EXIT_USAGE);
    assert!(e.message.contains("/nonexistent/input.json"), "{}", e.message);
}

#[test]
fn urls_must_be_http() {
    assert_eq!(base_url(&client("http://127.0.0.1:8000/")), Ok("http://127.0.0.1:8000".to_string()));
    assert_eq!(base_url(&client("ftp://h")).map_err(|e| e.exit), Err(EXIT_USAGE));
    assert_eq!(base_url(&client("localhost:8000")).map_err(|e| e.exit), Err(EXIT_USAGE));
}

#[test]
fn run_states_give_distinct_exit_codes() {
    assert_eq!(exit_for(&json!({"status": "succeeded"})), 0);
    assert_eq!(exit_for(&json!({"status": "failed"})), EXIT_FAILED);
    assert_eq!(exit_for(&json!({"status": "cancelled"})), EXIT_CANCELLED);
    assert_eq!(exit_for(&json!({"status": "running"})), EXIT_STILL_RUNNING);
    assert_eq!(exit_for(&json!({})), EXIT_STILL_RUNNING);
}

#[test]
fn problems_read_as_one_line() {
    let p = json!({"title": "Validation failed", "code": "PLINTH_004", "detail": "bad input",
        "errors": [{"pointer": "/input/seconds", "message": "is required"}]});
    assert_eq!(describe_problem(422, &p), "422 Validation failed (PLINTH_004): bad input; /input/seconds: is required");
    assert_eq!(describe_problem(502, &Value::Null), "502: (no JSON body)");
    let repeated = json!({"title": "Validation failed", "code": "PLINTH_004", "detail": "/input/seconds: is required",
        "errors": [{"pointer": "/input/seconds", "message": "is required"}]});
    assert_eq!(describe_problem(422, &repeated), "422 Validation failed (PLINTH_004): /input/seconds: is required");
    assert_eq!(describe_problem(404, &json!({"title": "Not found", "code": "PLINTH_012"})), "404 Not found (PLINTH_012)");
}

#[test]
fn tables_pad_columns() {
    let t = table(&["A", "LONGER"], &[vec!["wide cell".into(), "x".into()]]);
    assert_eq!(t, "A          LONGER\nwide cell  x\n");
}

#[test]
fn runs_render_for_people() {
    let page = json!({"runs": [{"run_id": "01A", "function": "echo", "status": "failed", "attempt": 3, "max_attempts": 3,
        "created_at": "2026-01-01T00:00:00Z", "error": {"code": "PLINTH_020", "message": "exit 1"}}], "next_cursor": "abc"});
    let t = run_table(&page);
    assert!(t.contains("01A") && t.contains("3/3") && t.contains("PLINTH_020") && t.ends_with("more: --cursor abc\n"), "{t}");
    assert_eq!(run_table(&json!({"runs": []})), "no runs\n");
    let d = run_detail(&json!({"run_id": "01A", "status": "succeeded", "attempt": 1, "max_attempts": 1, "output": {"x": 1}}));
    assert!(
        d.contains("status         succeeded") && d.contains("output         {\"x\":1}") && d.contains("started_at     -"),
        "{d}"
    );
    let logs = json!({"logs": [{"attempt": 1, "timestamp": "t", "text": "hello"}]});
    assert_eq!(log_lines(&logs), "#1 t hello\n");
    assert_eq!(log_lines(&json!({"logs": []})), "no log lines\n");
}

#[test]
fn a_held_run_says_why_in_words() {
    let held = json!({"run_id": "01A", "status": "queued", "flow_key": "t-1",
        "held_by": {"rule": "concurrency", "key": "t-1", "limit": 1, "running": 1, "ahead": 2}});
    let d = run_detail(&held);
    assert!(d.contains("flow_key       \"t-1\""), "{d}");
    assert!(d.contains("held_by        concurrency: key \"t-1\" at its limit 1 (1 running, 2 ahead)"), "{d}");
    let delayed = json!({"run_id": "01B", "status": "queued", "held_by": {"rule": "delay", "until": "2026-12-02T00:00:00Z"}});
    assert!(run_detail(&delayed).contains("held_by        delay: may start at 2026-12-02T00:00:00Z"));
    let odd = json!({"run_id": "01C", "status": "queued", "held_by": {"rule": "throttle"}});
    assert!(run_detail(&odd).contains("held_by        throttle\n"));
    assert!(!run_detail(&json!({"run_id": "01D"})).contains("held_by"), "no held_by line when nothing holds it");
}

#[test]
fn an_api_key_becomes_a_sensitive_bearer_header() {
    let h = bearer_headers(Some("k-123")).expect("headers");
    let v = h.get("authorization").expect("authorization");
    assert_eq!(v.to_str().ok(), Some("Bearer k-123"));
    assert!(v.is_sensitive());
    assert!(bearer_headers(None).expect("none").is_empty());
    assert!(bearer_headers(Some("bad\nkey")).is_err());
}
