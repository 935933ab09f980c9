//! `plinth check` against Plinth's own server, and against nothing at all.

use crate::harness::{Served, component_dir, plinth};
use serde_json::Value;

/// A function with an input schema, so `run.schema_violation` runs too.
const COMPONENT: &str = "\
component: {name: check-test, version: '1'}
functions:
  - name: echo
    handler: {command: {argv: [cat]}}
    input_schema: {type: object, properties: {n: {type: integer}}, required: [n]}
    policy: {retries: {max_attempts: 1}}
  - name: other
    handler: {command: {argv: [cat]}}
  - name: waits
    steps: true
    handler: {rust: flow}
";

/// `plinth check ARGS`: (exit code, stdout, stderr).
pub(crate) fn check(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = plinth(&[&["check"], args].concat(), &[], dir.path());
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The `results` of a `--format json` report.
pub(crate) fn results(stdout: &str) -> Vec<Value> {
    let report: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    report["results"].as_array().expect("results").clone()
}

#[test]
fn plinths_own_server_passes_every_check() {
    // A rate limit the other checks stay under (a burst of 200), which the probe then finds.
    let (dir, config) = component_dir(COMPONENT);
    let limited = ["--database-url", "sqlite://runs.db", "--rate-limit", "20", "--rate-burst", "200"];
    let s = Served::start(&config, &limited, dir.path());
    let url = s.url("");
    let run = ["--function", "echo", "--input", r#"{"n":1}"#];
    let steps = ["--steps-function", "waits", "--steps-input", r#"{"steps":1,"sleep_ms":300}"#];
    let (code, out, err) =
        check(&[&[url.as_str()], &run[..], &steps[..], &["--rate-limit-probe", "1000", "--format", "json"]].concat());
    let all = results(&out);
    assert_eq!(all.len(), 33, "every check reported: {out}");
    for r in &all {
        assert_eq!(r["outcome"], "pass", "{r}");
    }
    assert_eq!(code, 0, "{err}");

    // The table says the same, on a server without a rate limit, where the probe is skipped
    // unless asked for; a trailing slash on the URL is fine.
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://runs.db"], dir.path());
    let (code, table, _) = check(&[&[format!("{}/", s.url("")).as_str()], &run[..]].concat());
    assert_eq!(code, 0, "{table}");
    assert!(table.starts_with("CHECK") && table.contains("29 passed, 0 failed, 4 skipped"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("steps.waits") && l.contains("--steps-function")), "{table}");
    // A step function that waits for an event: the check sends it.
    let wait = ["--steps-function", "waits", "--steps-input", r#"{"steps":0,"wait_event":"check/go","key":"k1"}"#];
    let (code, out, _) = check(
        &[&[s.url("").as_str()], &wait[..], &["--only", "steps.waits,steps.wakes,steps.records", "--format", "json"]].concat(),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(results(&out).iter().filter(|r| r["outcome"] == "pass").count(), 3, "{out}");
    // A function that never waits fails steps.waits, and the others are skipped, naming it.
    let (code, out, _) =
        check(&[s.url("").as_str(), "--steps-function", "other", "--only", "steps.waits,steps.wakes", "--format", "json"]);
    assert_eq!(code, 1, "{out}");
    let r = results(&out);
    assert_eq!((r[0]["outcome"].as_str(), r[1]["outcome"].as_str()), (Some("fail"), Some("skip")), "{out}");
    assert!(table.lines().any(|l| l.starts_with("rate_limit.retry_after") && l.contains("SKIP")), "{table}");
    // Probing a server without a limit fails, saying so.
    let (code, out, _) = check(&[&s.url(""), "--only", "rate_limit.retry_after", "--rate-limit-probe", "30", "--format", "json"]);
    assert_eq!(code, 1, "{out}");
    let got = results(&out)[0]["got"].as_str().expect("got").to_string();
    assert!(got.starts_with("30 answers, none 429; the last was GET /functions: 200"), "{got}");
}

#[test]
fn a_body_limit_above_the_large_body_fails_and_a_larger_body_passes() {
    // The server takes 64 KiB: a 32 KiB body is not over it (the function it names is unknown,
    // so 404), a 128 KiB one is.
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://runs.db", "--body-limit", "65536"], dir.path());
    let only = ["--only", "run.body_too_large", "--format", "json"];
    let (code, out, _) = check(&[&[s.url("").as_str(), "--large-body", "32768"], &only[..]].concat());
    assert_eq!(code, 1, "{out}");
    let r = &results(&out)[0];
    assert!(r["expected"].as_str().is_some_and(|e| e.starts_with("POST /run with a 32 KiB JSON body: 413")), "{r}");
    assert!(r["got"].as_str().is_some_and(|g| g.starts_with("POST /run: 404 application/problem+json")), "{r}");
    let (code, out, _) = check(&[&[s.url("").as_str(), "--large-body", "131072"], &only[..]].concat());
    assert_eq!(code, 0, "{out}");
    assert_eq!(results(&out)[0]["outcome"], "pass", "{out}");
    let (code, _, err) = check(&[&s.url(""), "--large-body", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--large-body must be more than 0"), "{err}");
}

#[test]
fn without_a_function_the_run_checks_are_skipped_saying_why() {
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://runs.db"], dir.path());
    let (code, out, _) = check(&[&s.url(""), "--format", "json"]);
    assert_eq!(code, 0, "skips are not failures: {out}");
    let all = results(&out);
    let why = |id: &str| all.iter().find(|r| r["id"] == id).map(|r| r["why"].clone()).expect("reported");
    assert_eq!(why("run.accepted"), "the component has 3 functions (echo, other, waits); pass --function");
    assert_eq!(why("run.location"), "depends on run.accepted, which was skipped");
    assert_eq!(why("cancel.queued"), "depends on run.accepted, which was skipped");
    // A fresh server has no run series yet, and no run was made here to create them.
    assert!(why("metrics.names").as_str().is_some_and(|w| w.starts_with("missing plinth_runs_total")), "{out}");
    assert!(all.iter().filter(|r| r["outcome"] != "skip").all(|r| r["outcome"] == "pass"), "{out}");

    // A function without an input schema: the schema check is skipped, the rest pass.
    let (code, out, _) = check(&[&s.url(""), "--function", "other", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    for r in results(&out) {
        match r["id"].as_str() {
            Some("run.schema_violation") => {
                assert_eq!(r["why"], "the function has no input schema (per GET /functions)", "{r}");
            }
            Some("rate_limit.retry_after") => {
                assert!(r["why"].as_str().is_some_and(|w| w.contains("only with --rate-limit-probe N")), "{r}");
            }
            Some(id) if id.starts_with("steps.") => assert_eq!(r["outcome"], "skip", "without --steps-function: {r}"),
            _ => assert_eq!(r["outcome"], "pass", "{r}"),
        }
    }
}

#[test]
fn only_and_skip_select_checks() {
    let (dir, config) = component_dir(COMPONENT);
    let s = Served::start(&config, &["--database-url", "sqlite://runs.db"], dir.path());
    let (code, out, _) = check(&[
        &s.url(""),
        "--function",
        "echo",
        "--input",
        r#"{"n":1}"#,
        "--only",
        "run.location,health.checks",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let ids: Vec<Value> = results(&out).iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, ["health.checks", "run.location"], "what they need runs, unreported");
    let (_, out, _) = check(&[&s.url(""), "--skip", "run.accepted,metrics.names", "--format", "json"]);
    let ids: Vec<Value> = results(&out).iter().map(|r| r["id"].clone()).collect();
    assert!(!ids.contains(&"run.accepted".into()) && !ids.contains(&"metrics.names".into()) && ids.len() == 31, "{out}");
}

#[test]
fn usage_errors_and_an_unreachable_server_exit_2() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let (code, out, err) = check(&[&format!("http://{closed}")]);
    assert_eq!(code, 2, "{out}");
    assert!(out.is_empty(), "no report: {out}");
    assert!(err.contains(&format!("cannot reach http://{closed}")) && err.contains("refused"), "{err}");

    let (code, _, err) = check(&["localhost:8000"]);
    assert_eq!(code, 2);
    assert!(err.contains("must start with http:// or https://"), "{err}");
    let (code, _, err) = check(&["http://127.0.0.1:1", "--only", "health.status,nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no check has the id `nope`") && err.contains("openapi.present"), "{err}");
    let (code, _, err) = check(&["http://127.0.0.1:1", "--input", "{oops"]);
    assert_eq!(code, 2);
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = check(&["http://127.0.0.1:1", "--timeout", "0s"]);
    assert_eq!(code, 2);
    assert!(err.contains("--timeout"), "{err}");
}
