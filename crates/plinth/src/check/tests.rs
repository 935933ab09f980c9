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
        large_body: 1024,
        rate_limit_probe: None,
        steps_function: None,
        steps_input: json!({}),
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

#[test]
fn every_new_check_is_known_and_the_late_ones_depend_on_a_run() {
    for id in ["runs.list", "runs.logs", "run.body_too_large", "run.unsupported_media_type", "rate_limit.retry_after"] {
        assert!(known(id), "{id}");
    }
    assert_eq!(deps("runs.list"), ["run.accepted"]);
    assert_eq!(deps("runs.logs"), ["run.accepted"]);
    assert!(deps("rate_limit.retry_after").is_empty() && deps("run.body_too_large").is_empty());
    let o = opts(&["runs.logs"], &[]);
    assert!(wanted(&o, "run.accepted") && !wanted(&o, "run.tracked_to_terminal"));
}

#[test]
fn padded_bodies_have_the_size_asked_for_and_name_no_function() {
    use super::limits::{padded_body, size};
    for len in [0, 10, 100, 65_537] {
        let body = padded_body(len);
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["function"], super::errors::NO_SUCH_FUNCTION);
        assert_eq!(body.len(), len.max(padded_body(0).len()), "{len}");
    }
    assert_eq!(
        (size(8 * 1024 * 1024), size(32 * 1024), size(1500), size(0)),
        ("8 MiB".into(), "32 KiB".into(), "1500 bytes".into(), "0 bytes".into())
    );
}

#[test]
fn retry_after_is_seconds_or_an_http_date() {
    use super::limits::retry_after_valid;
    for good in ["0", "1", " 120 ", "Sun, 06 Nov 1994 08:49:37 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"] {
        assert!(retry_after_valid(good), "{good}");
    }
    for bad in [
        "",
        "-1",
        "1.5",
        "soon",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 CET",
        "Sun, 32 Nov 1994 08:49:37 GMT",
    ] {
        assert!(!retry_after_valid(bad), "{bad}");
    }
}

#[test]
fn run_pages_need_runs_with_ids_and_a_cursor_field() {
    use super::listing::{encode, page_form};
    let page = json!({"runs": [{"run_id": "a"}], "next_cursor": "a"});
    assert_eq!(page_form(&page, 1), Ok((vec![json!({"run_id": "a"})], Some("a".to_string()))));
    assert_eq!(page_form(&json!({"runs": [], "next_cursor": null}), 1), Ok((vec![], None)));
    let fails = |body: serde_json::Value, limit| page_form(&body, limit).expect_err("refused");
    assert_eq!(fails(json!({"runs": [{"run_id": "a"}]}), 1), "no next_cursor field (null on the last page)");
    assert_eq!(fails(json!({"next_cursor": null}), 1), "runs: missing");
    assert_eq!(fails(json!({"runs": {}, "next_cursor": null}), 1), "runs: not an array");
    assert_eq!(fails(json!({"runs": [{"run_id": "a"}, {"run_id": "b"}], "next_cursor": null}), 1), "2 runs on a page of limit=1");
    assert!(fails(json!({"runs": [{"id": "a"}], "next_cursor": null}), 1).starts_with("a run without a run_id"));
    assert_eq!(fails(json!({"runs": [], "next_cursor": 5}), 1), "next_cursor: 5");
    assert_eq!(fails(json!({"runs": [], "next_cursor": ""}), 1), "next_cursor: \"\"");
    assert_eq!(encode("01JD-x_y.z~"), "01JD-x_y.z~");
    assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
}

#[test]
fn early_answers_are_parsed_by_length_chunks_or_close() {
    use super::early::{dechunk, parse};
    let head = "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/problem+json\r\nContent-Length: 5\r\n\r\n";
    let (status, headers, body) = parse(format!("{head}{{\"a\"}}").as_bytes(), false).expect("parses").expect("complete");
    assert_eq!((status, body.as_slice()), (413, b"{\"a\"}".as_slice()));
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
    assert_eq!(parse(format!("{head}{{\"").as_bytes(), false), Ok(None), "two bytes short");
    assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Le", false), Ok(None), "head not ended");
    let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 400 Bad\r\n\r\nclose-ended";
    assert_eq!(parse(interim, false), Ok(None), "no length: it ends with the connection");
    assert_eq!(parse(interim, true).expect("parses").map(|(s, _, b)| (s, b)), Some((400, b"close-ended".to_vec())));
    let chunked = b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
    assert_eq!(parse(chunked, false).expect("parses").map(|(s, _, b)| (s, b)), Some((429, b"abcde".to_vec())));
    assert_eq!(dechunk(b"3\r\nabc\r\n"), Ok(None), "no last chunk yet");
    assert_eq!(dechunk(b"zz\r\n"), Err("a chunk size that is not hexadecimal: zz".to_string()));
    assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n", true).expect_err("not HTTP").starts_with("not an HTTP answer"));
    assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true).is_err());
}

#[test]
fn flow_rules_are_held_to_the_contracts_shape() {
    use super::flow::malformed;
    assert_eq!(malformed(&json!({})), None, "no flow rules is fine");
    assert_eq!(malformed(&json!({"concurrency": 4})), None);
    assert_eq!(malformed(&json!({"concurrency": {"limit": 2, "key": "input.tenant"}})), None);
    assert_eq!(malformed(&json!({"throttle": {"limit": 10, "period": "1s", "burst": 1}})), None);
    assert!(malformed(&json!({"concurrency": 0})).is_some_and(|w| w.contains("concurrency")));
    assert!(malformed(&json!({"concurrency": {"limit": 2, "key": 7}})).is_some());
    assert!(malformed(&json!({"throttle": {"limit": 10, "period": 1, "burst": 1}})).is_some_and(|w| w.contains("throttle")));
    assert!(malformed(&json!({"throttle": {"limit": 10, "period": "1s"}})).is_some(), "burst is shown");
    assert_eq!(malformed(&json!({"rate_limit": {"limit": 5, "period": "1h", "key": "input.c"}})), None);
    assert!(malformed(&json!({"rate_limit": {"limit": 0, "period": "1h"}})).is_some_and(|w| w.contains("rate_limit")));
    assert_eq!(malformed(&json!({"debounce": {"period": "1s", "max_wait": "30s"}})), None);
    assert!(malformed(&json!({"debounce": {"period": 1}})).is_some_and(|w| w.contains("debounce")));
    assert_eq!(malformed(&json!({"singleton": {"mode": "cancel"}})), None);
    assert!(malformed(&json!({"singleton": {"mode": "replace"}})).is_some_and(|w| w.contains("singleton")));
    assert_eq!(malformed(&json!({"timeouts": {"start": "10s", "finish": "1m"}, "cancel_on": [{"event": "a/b"}]})), None);
    assert!(malformed(&json!({"timeouts": {"start": 10}})).is_some_and(|w| w.contains("timeouts")));
    assert!(malformed(&json!({"cancel_on": [{"if": "true"}]})).is_some_and(|w| w.contains("cancel_on")), "an event is named");
    assert!(malformed(&json!({"cancel_on": {"event": "a/b"}})).is_some(), "a list");
    assert_eq!(malformed(&json!({"batch": {"max_size": 10, "timeout": "5s", "key": "event.data.c"}})), None);
    assert!(malformed(&json!({"batch": {"max_size": 0, "timeout": "5s"}})).is_some_and(|w| w.contains("batch")));
    assert_eq!(malformed(&json!({"priority": "input.vip ? 60 : 0"})), None);
    assert!(malformed(&json!({"priority": 60})).is_some_and(|w| w.contains("priority")));
}
