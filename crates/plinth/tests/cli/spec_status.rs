//! `plinth spec status` through the binary: against a live Plinth serving the example, against
//! a server that is not Plinth and lacks metrics, and the inputs it refuses.

use crate::harness::{Served, plinth};
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn hello() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hello/component.yaml"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes the generated specification of the example into `dir/SPEC.md`.
fn spec(dir: &Path) {
    let config = hello();
    let out = plinth(&["spec", "generate", "--config", config.to_str().expect("utf-8"), "--output", "SPEC.md"], &[], dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// An axum app on a free port, served by its own runtime for as long as this lives.
struct TestServer {
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn serve(app: Router) -> TestServer {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    rt.spawn(async move { axum::serve(listener, app).await.expect("serve") });
    TestServer { url, _rt: rt }
}

#[test]
fn a_generated_spec_against_plinth_is_complete_and_coverage_comes_from_lcov() {
    let dir = tempfile::tempdir().expect("tempdir");
    spec(dir.path());
    std::fs::write(dir.path().join("lcov.info"), "SF:a.rs\nLF:200\nLH:170\nend_of_record\n").expect("write");
    let server = Served::start(&hello(), &[], dir.path());
    let url = server.url("");
    let out = plinth(&["spec", "status", "--spec", "SPEC.md", "--url", &url, "--lcov", "lcov.info"], &[], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for line in [
        "| Requirement | Current Status | 1.0 Target | Owner |",
        "| CLI flags documented | Complete | Complete | platform-team |",
        "| Env vars documented | Complete | Complete | platform-team |",
        "| Metrics standardized | Complete | Complete | platform-team |",
        "| Python API typed | N/A | Complete | platform-team |",
        "| Test coverage | 85.0% | 80%+ | platform-team |",
        "| Error codes defined | Complete | Complete | platform-team |",
        "| Health checks implemented | Complete | Complete | platform-team |",
    ] {
        assert!(table.lines().any(|l| l == line), "no line {line:?} in\n{table}");
    }
    assert!(table.contains("(`hello` 0.1.0 served by Plinth "), "{table}");

    let out = plinth(&["spec", "status", "--spec", "SPEC.md", "--url", &url, "--format", "json"], &[], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let body: Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = body["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[4]["status"], "Not Measured", "no --lcov: coverage is not measured");
    assert_eq!(rows[5]["measured"].as_str().map(|m| m.contains("`GET /errors` catalog")), Some(true), "{}", rows[5]);
}

#[test]
fn a_server_that_is_not_plinth_and_lacks_metrics_is_reported_as_such() {
    let app = Router::new()
        .route("/health", get(|| async { axum::Json(json!({"status": "healthy", "component": "orders", "version": "2"})) }))
        .route("/ready", get(|| async { axum::Json(json!({"status": "ready"})) }))
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                [("content-type", "application/problem+json")],
                r#"{"status":404,"code":"ORD_404"}"#,
            )
        });
    let server = serve(app);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("SPEC.md"), "# orders - 1.0 Component Specification\n\nServes `/health` and `/ready`.\n")
        .expect("write");
    let out = plinth(&["spec", "status", "--spec", "SPEC.md", "--url", &server.url], &[], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for line in [
        "| CLI flags documented | Not Measured | Complete | unassigned |",
        "| Env vars documented | Not Measured | Complete | unassigned |",
        "| Metrics standardized | Not Started | Complete | unassigned |",
        "| Error codes defined | Not Started | Complete | unassigned |",
        "| Health checks implemented | In Progress | Complete | unassigned |",
    ] {
        assert!(table.lines().any(|l| l == line), "no line {line:?} in\n{table}");
    }
    assert!(table.contains("`GET /metrics` answered 404"), "{table}");
    assert!(table.contains("not a Plinth server"), "{table}");
    assert!(table.contains("error code `ORD_404` is not in the document"), "{table}");
    assert!(table.contains("`GET /health` lists no dependency checks under `checks`"), "{table}");
}

#[test]
fn a_url_that_refuses_connections_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    spec(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}");
    let out = plinth(&["spec", "status", "--spec", "SPEC.md", "--url", &url], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("cannot reach {url}")) && stderr.contains("is the component running"), "{stderr}");
    assert!(out.stdout.is_empty());
    let out = plinth(&["spec", "status", "--spec", "SPEC.md", "--url", "localhost:8000"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not an http:// or https:// URL"));
}

#[test]
fn bad_lcov_files_and_unreadable_specs_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    spec(dir.path());
    let unused = "http://127.0.0.1:9";
    std::fs::write(dir.path().join("words.info"), "this is not coverage\n").expect("write");
    let out = plinth(&["spec", "status", "--spec", "SPEC.md", "--url", unused, "--lcov", "words.info"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("words.info: no `LF:`/`LH:` line counts: not an lcov tracefile"), "{}", text(&out.stderr));
    std::fs::write(dir.path().join("bad.info"), "SF:a\nLF:3\nLH:4\nend_of_record\n").expect("write");
    let out = plinth(&["spec", "status", "--spec", "SPEC.md", "--url", unused, "--lcov", "bad.info"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bad.info: line 4: the record ending here hits 4 lines of 3"), "{}", text(&out.stderr));
    let out = plinth(&["spec", "status", "--spec", "SPEC.md", "--url", unused, "--lcov", "none.info"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("none.info: cannot read the lcov file"));
    let out = plinth(&["spec", "status", "--spec", "MISSING.md", "--url", unused], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("MISSING.md: cannot read the specification"));
    let out = plinth(&["spec", "status", "--spec", "SPEC.md"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2), "--url is required");
}
