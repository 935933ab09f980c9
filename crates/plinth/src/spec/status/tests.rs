use super::lcov::{Coverage, parse};
use super::live::{Answer, Live};
use super::measure::{State, mentions, metric_names};
use super::*;
use plinth_core::Code;
use serde_json::Value;

fn answer(status: u16, body: &str) -> Result<Answer, String> {
    Ok(Answer { status, location: None, body: body.as_bytes().to_vec() })
}

/// What a Plinth server serving hello answers.
fn plinth_live() -> Live {
    let metrics = plinth_core::metrics::Metrics::new("plinth", "hello");
    metrics.observe_request("GET", "/health", 200, 0.001);
    metrics.error("NotReady");
    metrics.run_finished("echo", "succeeded", 0.1);
    metrics.in_flight("echo", 0);
    metrics.set_queue_depth("echo", 0);
    let catalog: Vec<Value> = Code::ALL.iter().map(|c| json!({"code": c.as_str()})).collect();
    Live {
        url: "http://127.0.0.1:8000".into(),
        health: answer(200, &json!({"status": "healthy", "component": "hello", "version": "0.1.0", "plinth_version": plinth_core::VERSION, "checks": {"database": {"status": "ok"}}}).to_string()),
        ready: answer(200, r#"{"status":"ready"}"#),
        metrics: answer(200, &metrics.render()),
        functions: answer(200, r#"{"component":{"name":"hello","owner":"platform-team"},"functions":[]}"#),
        errors: answer(200, &json!({"errors": catalog}).to_string()),
        provoked: Vec::new(),
    }
}

/// A server that is not Plinth: `/health` without checks or version, no `/metrics`, errors
/// without codes but one with.
fn other_live() -> Live {
    Live {
        url: "http://127.0.0.1:9".into(),
        health: answer(200, r#"{"status":"healthy"}"#),
        ready: answer(404, "Not Found"),
        metrics: answer(404, "Not Found"),
        functions: answer(404, ""),
        errors: answer(404, ""),
        provoked: vec![
            answer(404, r#"{"detail":"no"}"#),
            answer(400, r#"{"code":"SVC_003"}"#),
            Err("POST /run: no answer".into()),
        ],
    }
}

fn hello_doc() -> String {
    let path = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hello/component.yaml"));
    crate::spec::generate::new_document(&plinth_core::Component::load(&path).expect("hello"))
}

fn find<'a>(rows: &'a [Row], requirement: &str) -> &'a Row {
    rows.iter().find(|r| r.requirement == requirement).unwrap_or_else(|| panic!("no row {requirement}"))
}

#[test]
fn a_generated_document_against_plinth_is_complete() {
    let rows = rows(&hello_doc(), &plinth_live(), None, "plinth");
    let names: Vec<&str> = rows.iter().map(|r| r.requirement).collect();
    assert_eq!(
        names,
        [
            "CLI flags documented",
            "Env vars documented",
            "Metrics standardized",
            "Python API typed",
            "Test coverage",
            "Error codes defined",
            "Health checks implemented"
        ]
    );
    for r in &rows {
        match r.requirement {
            "Python API typed" => assert_eq!(r.status, State::NotApplicable),
            "Test coverage" => assert_eq!((r.status, r.current.as_str()), (State::NotMeasured, "not measured")),
            _ => assert_eq!((r.status, &r.missing), (State::Complete, &Vec::<String>::new()), "{r:?}"),
        }
        assert_eq!(r.owner, "platform-team", "the owner comes from GET /functions when the doc names none");
    }
}

#[test]
fn what_the_document_lacks_is_listed() {
    let doc = hello_doc()
        .replace("`--lease`", "`--lease-time`")
        .replace("`PLINTH_WORKERS`", "workers")
        .replace("plinth_queue_depth", "queue");
    let doc = doc.replace("`PLINTH_004`", "four");
    let rows = rows(&doc, &plinth_live(), None, "plinth");
    let flags = find(&rows, "CLI flags documented");
    assert_eq!(
        (flags.status, flags.missing.clone()),
        (State::InProgress, vec!["flag `--lease` is not in the document".to_string()])
    );
    let env = find(&rows, "Env vars documented");
    assert_eq!(env.missing, ["variable `PLINTH_WORKERS` is not in the document"]);
    let metrics = find(&rows, "Metrics standardized");
    assert_eq!(
        (metrics.status, metrics.missing.clone()),
        (State::InProgress, vec!["metric `plinth_queue_depth` is exposed but not in the document".to_string()])
    );
    let errors = find(&rows, "Error codes defined");
    assert_eq!(errors.missing, ["error code `PLINTH_004` is not in the document"]);
    let health = find(&rows, "Health checks implemented");
    assert_eq!(health.status, State::Complete);
    let bare = rows_of("# Nothing here\n", &plinth_live());
    assert_eq!(find(&bare, "CLI flags documented").status, State::NotStarted);
    let health = find(&bare, "Health checks implemented");
    assert!(health.missing.contains(&"`/ready` is not in the document".to_string()), "{health:?}");
    assert!(health.missing.contains(&"the health check `database` is not in the document".to_string()), "{health:?}");
}

fn rows_of(doc: &str, live: &Live) -> Vec<Row> {
    rows(doc, live, None, "plinth")
}

#[test]
fn a_server_that_is_not_plinth_is_measured_where_it_can_be() {
    let rows = rows_of(&hello_doc(), &other_live());
    let flags = find(&rows, "CLI flags documented");
    assert_eq!(flags.status, State::NotMeasured);
    assert!(flags.missing[0].contains("not a Plinth server"), "{flags:?}");
    assert_eq!(find(&rows, "Env vars documented").status, State::NotMeasured);
    let metrics = find(&rows, "Metrics standardized");
    assert_eq!(
        (metrics.status, metrics.missing.clone()),
        (State::NotStarted, vec!["`GET /metrics` answered 404 with a body that is not JSON".to_string()])
    );
    let errors = find(&rows, "Error codes defined");
    assert_eq!(
        (errors.status, errors.missing.clone()),
        (State::NotStarted, vec!["error code `SVC_003` is not in the document".to_string()])
    );
    assert!(errors.measured.contains("3 error answers provoked"), "{errors:?}");
    let health = find(&rows, "Health checks implemented");
    assert_eq!(health.status, State::InProgress);
    assert!(health.missing[0].contains("no dependency checks"), "{health:?}");
    assert!(health.missing[1].contains("`GET /ready` answered 404"), "{health:?}");
    assert_eq!(find(&rows, "Test coverage").owner, "unassigned");
    let mut silent = other_live();
    silent.provoked = vec![answer(404, "{}")];
    silent.health = Err("GET /health: no answer: timed out".into());
    let rows = rows_of("", &silent);
    let errors = find(&rows, "Error codes defined");
    assert!(errors.missing[0].contains("carry no `code`"), "{errors:?}");
    let health = find(&rows, "Health checks implemented");
    assert_eq!(health.status, State::NotStarted);
    assert!(health.missing[0].starts_with("GET /health: no answer"), "{health:?}");
}

#[test]
fn owners_come_from_the_documents_own_table() {
    let doc = "## 1.0 Standardization Status\n\n| Requirement | Current Status | 1.0 Target | Owner |\n|---|---|---|---|\n\
               | CLI flags documented | Complete | Complete | Ana |\n| Env vars documented | ... | Complete | {Name} |\n";
    let rows = rows_of(doc, &plinth_live());
    assert_eq!(find(&rows, "CLI flags documented").owner, "Ana");
    assert_eq!(find(&rows, "Env vars documented").owner, "platform-team", "a placeholder owner is not an owner");
}

#[test]
fn metric_names_are_read_as_queries_write_them() {
    let text = "# TYPE a_requests counter\na_requests_total{x=\"1\"} 2\n# TYPE a_seconds histogram\na_seconds_bucket{le=\"1\"} 1\n\
                a_seconds_sum 1\n# TYPE b_total counter\n# TYPE c info\nuntyped_thing 3\n# EOF\n";
    let names: Vec<String> = metric_names(text).into_iter().collect();
    assert_eq!(names, ["a_requests_total", "a_seconds", "b_total", "c_info", "untyped_thing"]);
    assert!(metric_names("").is_empty());
}

#[test]
fn mentions_are_whole_words() {
    assert!(mentions("use `--port` here", "--port"));
    assert!(!mentions("use `--port-range` here", "--port"));
    assert!(!mentions("plinth_runs_total_x", "plinth_runs_total"));
    assert!(mentions("PLINTH_PORT.", "PLINTH_PORT"));
    assert!(!mentions("MY_PLINTH_PORT", "PLINTH_PORT"));
}

#[test]
fn lcov_totals_are_summed_and_bad_files_refused() {
    let good = "TN:\nSF:a.rs\nDA:1,1\nLF:10\nLH:9\nend_of_record\nSF:b.rs\nLF:10\nLH:7\nend_of_record\n";
    let c = parse(good).expect("lcov");
    assert_eq!(c, Coverage { found: 20, hit: 16 });
    assert!((c.percent() - 80.0).abs() < 1e-9);
    assert!(parse("").is_err_and(|e| e.contains("not an lcov tracefile")));
    assert!(parse("# Title\n\nsome words\n").is_err_and(|e| e.contains("not an lcov tracefile")));
    assert!(parse("SF:a\nLF:ten\nLH:1\nend_of_record\n").is_err_and(|e| e.contains("line 2: `LF:ten` is not a count")));
    assert!(parse("SF:a\nLF:1\nLH:2\nend_of_record\n").is_err_and(|e| e.contains("line 4") && e.contains("LH > LF")));
    assert!(parse("SF:a\nLF:1\nend_of_record\n").is_err_and(|e| e.contains("line 2: an `LF` without an `LH`")));
    assert!(parse("SF:a\nLF:1\nLH:1\n").is_err_and(|e| e.contains("no `end_of_record`")));
}

#[test]
fn coverage_rows_follow_the_80_percent_target() {
    let row = |found, hit| measure::coverage(Some(&Coverage { found, hit }));
    let full = row(100, 85);
    assert_eq!((full.status, full.current.as_str(), full.target), (State::Complete, "85.0%", "80%+"));
    let half = row(200, 100);
    assert_eq!(half.status, State::InProgress);
    assert_eq!(half.missing, ["100 of 200 lines are not covered; 80% needs 60 more"]);
    assert_eq!(row(10, 0).status, State::NotStarted);
    assert_eq!(row(0, 0).current, "0.0%");
}

#[test]
fn the_table_is_ready_to_paste_and_json_has_every_row() {
    let live = plinth_live();
    let rows = rows(&hello_doc(), &live, Some(&Coverage { found: 10, hit: 9 }), "plinth");
    let text = markdown(&rows, &live, Path::new("SPEC.md"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "| Requirement | Current Status | 1.0 Target | Owner |");
    assert_eq!(lines[2], "| CLI flags documented | Complete | Complete | platform-team |");
    assert_eq!(lines[6], "| Test coverage | 90.0% | 80%+ | platform-team |");
    assert!(text.contains("served by Plinth") && text.contains("- **Metrics standardized** ("), "{text}");
    let body: Value = serde_json::from_str(&json(&rows, &live, Path::new("SPEC.md"))).expect("json");
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(7));
    assert_eq!(body["rows"][3]["status"], "N/A");
    assert_eq!(body["server"]["plinth_version"], plinth_core::VERSION);
}

#[test]
fn labelled_metrics_without_series_yet_are_noted_not_missing() {
    let mut fresh = plinth_live();
    fresh.metrics = answer(200, &plinth_core::metrics::Metrics::new("plinth", "hello").render());
    let rows = rows_of(&hello_doc(), &fresh);
    let metrics = find(&rows, "Metrics standardized");
    assert_eq!((metrics.status, metrics.missing.clone()), (State::Complete, Vec::<String>::new()), "{metrics:?}");
    assert!(metrics.notes[0].contains("`plinth_runs_total`") && metrics.notes[0].contains("no series before its first event"));
    let rows = rows_of(&hello_doc().replace("plinth_runs_total", "runs"), &fresh);
    let metrics = find(&rows, "Metrics standardized");
    assert_eq!(metrics.status, State::InProgress);
    assert_eq!(metrics.missing, ["the contract's `plinth_runs_total` not in the document (nor exposed yet)"]);
    let mut renamed = plinth_live();
    renamed.metrics = answer(200, "# TYPE svc_requests counter\nsvc_requests_total 1\n");
    let metrics = find(&rows_of(&hello_doc(), &renamed), "Metrics standardized").clone();
    assert_eq!(metrics.status, State::NotStarted);
    assert!(metrics.missing[0].contains("`svc_requests_total` is exposed but not in the document"), "{metrics:?}");
    assert!(metrics.missing[1].contains("`plinth_uptime_seconds`"), "{metrics:?}");
}
