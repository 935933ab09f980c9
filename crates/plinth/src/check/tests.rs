use super::errors::{code_shaped, violating_input};
use super::probes::{exposition, metric_names};
use super::report::{json, junit, table, xml_escape};
use super::*;
use serde_json::json;

fn opts(only: &[&str], skip: &[&str]) -> CheckOptions {
    CheckOptions {
        url: "http://x".into(),
        function: None,
        input: json!({}),
        only: only.iter().map(|s| (*s).to_string()).collect(),
        skip: skip.iter().map(|s| (*s).to_string()).collect(),
        timeout: Duration::from_secs(1),
        metrics_prefix: "plinth".into(),
        api_key: None,
    }
}

#[test]
fn only_runs_what_the_selected_checks_need() {
    let o = opts(&["run.location"], &[]);
    assert!(selected(&o, "run.location") && !selected(&o, "run.accepted"));
    assert!(wanted(&o, "run.accepted"), "run.location needs run.accepted");
    assert!(!wanted(&o, "health.status"));
    let o = opts(&[], &["metrics.exposed"]);
    assert!(!selected(&o, "metrics.exposed") && wanted(&o, "metrics.exposed"), "metrics.names still needs it");
    let o = opts(&[], &["metrics.exposed", "metrics.names"]);
    assert!(!wanted(&o, "metrics.exposed"));
    assert!(known("openapi.present") && !known("openapi"));
    assert!(CHECKS.iter().all(|(_, deps)| deps.iter().all(|d| known(d))), "every dependency is a check");
}

#[test]
fn code_shapes() {
    assert!(code_shaped("PLINTH_004") && code_shaped("APP_1"));
    for bad in ["plinth_004", "PLINTH004", "PLINTH_", "_004", "PLINTH_00a", "PLI-NTH_004", ""] {
        assert!(!code_shaped(bad), "{bad}");
    }
}

#[test]
fn violating_inputs_break_the_schema() {
    assert_eq!(violating_input(&json!({"type": "object"})), Some(json!(true)));
    assert_eq!(violating_input(&json!({"type": ["boolean", "string"]})), Some(json!([])));
    assert_eq!(violating_input(&json!({"required": ["a"]})), Some(json!({})));
    assert_eq!(violating_input(&json!({"properties": {"a": {}}})), None, "nothing to break");
    let all = json!({"type": ["boolean", "string", "array", "object", "number", "null"]});
    assert_eq!(violating_input(&all), None);
}

#[test]
fn prometheus_text_is_parsed_and_bad_lines_named() {
    let text = "# HELP a_total x\n# TYPE a_total counter\na_total{x=\"1 }\"} 3\nb 1.5e3 1700000000\nc +Inf\n";
    assert_eq!(exposition(text), Ok(vec!["a_total", "b", "c"]));
    assert_eq!(exposition("<html><body>hi</body></html>"), Err("<html><body>hi</body></html>".to_string()));
    assert!(exposition("a_total{x=\"1\"}").is_err(), "no value");
    assert!(exposition("9lives 1").is_err());
    assert!(exposition("a one").is_err());
}

#[test]
fn metric_names_accept_samples_and_typed_families() {
    let names = super::probes::required_metrics("p");
    let mut text = String::new();
    for n in &names {
        if n.ends_with("duration_seconds") {
            text.push_str(&format!("{n}_bucket{{le=\"1\"}} 1\n"));
        } else if let Some(family) = n.strip_suffix("_total") {
            text.push_str(&format!("# TYPE {family} counter\n"));
        } else {
            text.push_str(&format!("{n} 1\n"));
        }
    }
    assert_eq!(metric_names(&text, "p"), Ok(()));
    let without: String =
        text.lines().filter(|l| !l.contains("queue_depth") && !l.contains("p_errors")).map(|l| format!("{l}\n")).collect();
    match metric_names(&without, "p") {
        Err(Outcome::Fail { got, .. }) => assert_eq!(got, "missing p_errors_total, p_queue_depth"),
        other => panic!("{other:?}"),
    }
    assert!(metric_names(&text, "plinth").is_err(), "another prefix");
}

fn sample() -> Vec<CheckResult> {
    vec![
        CheckResult { id: "health.status", outcome: Outcome::Pass, elapsed_ms: 3 },
        CheckResult {
            id: "errors.problem_json",
            outcome: Outcome::fail("<problem> & \"json\"", "200 text/html: <html>\u{1}'x'"),
            elapsed_ms: 12,
        },
        CheckResult { id: "cancel.queued", outcome: Outcome::skip("no delay_seconds <here>"), elapsed_ms: 0 },
    ]
}

#[test]
fn table_lists_each_check_and_a_summary() {
    let t = table(&sample(), Duration::from_millis(1500));
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("CHECK") && lines[0].contains("RESULT") && lines[0].ends_with("DETAIL"), "{t}");
    assert!(lines[1].starts_with("health.status") && lines[1].contains("PASS"), "{t}");
    assert!(lines[2].contains("FAIL") && lines[2].contains("expected <problem>"), "{t}");
    assert!(lines[3].contains("SKIP") && lines[3].contains("no delay_seconds"), "{t}");
    assert_eq!(lines[4], "1 passed, 1 failed, 1 skipped in 1.50s");
    assert_eq!(table(&[], Duration::ZERO), "no checks selected\n0 passed, 0 failed, 0 skipped in 0.00s\n");
}

#[test]
fn json_has_every_field() {
    let v: serde_json::Value = serde_json::from_str(&json("http://x", &sample(), Duration::from_millis(7))).expect("JSON");
    assert_eq!(v["results"][0], json!({"id": "health.status", "outcome": "pass", "elapsed_ms": 3}));
    assert_eq!(v["results"][1]["got"], "200 text/html: <html>\u{1}'x'");
    assert_eq!(v["results"][2]["why"], "no delay_seconds <here>");
    assert_eq!(v["summary"], json!({"passed": 1, "failed": 1, "skipped": 1, "elapsed_ms": 7}));
}

#[test]
fn junit_escapes_what_came_back() {
    assert_eq!(xml_escape("a<b>&\"c\"'\u{0}\u{1b}\n"), "a&lt;b&gt;&amp;&quot;c&quot;&apos;\u{FFFD}\u{FFFD}\n");
    let x = junit("http://x?a=1&b=2", &sample(), Duration::from_millis(20));
    assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"), "{x}");
    assert!(x.contains(r#"tests="3" failures="1" errors="0" skipped="1""#), "{x}");
    assert!(x.contains(r#"name="plinth check http://x?a=1&amp;b=2""#), "{x}");
    assert!(x.contains(r#"<testcase classname="plinth.check.health" name="health.status" time="0.003"/>"#), "{x}");
    assert!(x.contains("got: 200 text/html: &lt;html&gt;\u{FFFD}&apos;x&apos;</failure>"), "{x}");
    assert!(x.contains(r#"<skipped message="no delay_seconds &lt;here&gt;"/>"#), "{x}");
    assert!(!x.contains('\u{1}'));
    assert!(x.ends_with("</testsuite>\n</testsuites>\n"));
}
