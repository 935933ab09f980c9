//! `plinth check` against servers that are not Plinth: one that follows the contract in part
//! (tiny axum apps with known deviations), one that answers HTML, one that answers slowly, one
//! that redirects.

use crate::check::{check, results};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An axum app served on a free port by its own runtime, for as long as this lives.
struct TestServer {
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn serve(app: Router) -> TestServer {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    rt.spawn(async move { axum::serve(listener, app).await.expect("serve") });
    TestServer { url, _rt: rt }
}

#[derive(Default)]
struct Runs {
    next: AtomicU64,
    known: Mutex<BTreeMap<String, Value>>,
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `POST /run` done in part: no idempotency (a key is ignored), `delay_seconds` refused as an
/// unknown field, errors as plain JSON without problem fields or codes, and a 500 on malformed JSON.
async fn submit(State(runs): State<Arc<Runs>>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_answer(StatusCode::INTERNAL_SERVER_ERROR, json!({"detail": "Internal Server Error"}));
    };
    if req.get("delay_seconds").is_some() {
        return json_answer(StatusCode::UNPROCESSABLE_ENTITY, json!({"detail": "unknown field delay_seconds"}));
    }
    if req["function"] != "greet" {
        return json_answer(StatusCode::NOT_FOUND, json!({"detail": "no such function"}));
    }
    if !req["input"]["name"].is_string() {
        let errors = json!([{"pointer": "/input/name", "message": "required"}]);
        return json_answer(StatusCode::UNPROCESSABLE_ENTITY, json!({"detail": "invalid input", "errors": errors}));
    }
    let id = format!("run-{}", runs.next.fetch_add(1, Ordering::SeqCst));
    runs.known.lock().expect("runs").insert(id.clone(), json!({"run_id": id, "status": "succeeded", "output": "hi"}));
    let status_url = format!("/runs/{id}");
    let body = json!({"run_id": id, "function": "greet", "status": "queued", "status_url": status_url});
    (StatusCode::ACCEPTED, [(header::LOCATION, status_url)], axum::Json(body)).into_response()
}

async fn show(State(runs): State<Arc<Runs>>, Path(id): Path<String>) -> Response {
    match runs.known.lock().expect("runs").get(&id) {
        Some(run) => axum::Json(run.clone()).into_response(),
        // A framework's default answer: text/plain.
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

/// Follows the contract in part. Deviations: `/health` without `checks`; 500 on malformed JSON;
/// errors that are not problem+json and have no `code`; no X-Correlation-ID echo; `/metrics`
/// with two of the required names; no idempotency; no `delay_seconds`; no `/openapi.json`; no
/// `GET /runs` nor `/runs/{id}/logs`; axum's own plain-text 413 over its 2 MB default body limit;
/// no Content-Type check (a text/plain body is read as JSON).
fn partial() -> Router {
    Router::new()
        .route("/health", get(|| async { axum::Json(json!({"status": "healthy", "component": "partial", "version": "1"})) }))
        .route("/ready", get(|| async { axum::Json(json!({"status": "ready"})) }))
        .route(
            "/functions",
            get(|| async {
                axum::Json(json!({"functions": [{"name": "greet", "input_schema": {"type": "object", "required": ["name"]}}]}))
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                let text =
                    "# TYPE plinth_requests_total counter\nplinth_requests_total{route=\"/run\"} 3\nplinth_uptime_seconds 5.5\n";
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
            }),
        )
        .route("/run", post(submit))
        .route("/runs/{id}", get(show))
        .with_state(Arc::new(Runs::default()))
}

fn by_outcome(all: &[Value], outcome: &str) -> Vec<String> {
    all.iter().filter(|r| r["outcome"] == outcome).map(|r| r["id"].as_str().expect("id").to_string()).collect()
}

fn got(all: &[Value], id: &str) -> String {
    all.iter().find(|r| r["id"] == id).and_then(|r| r["got"].as_str()).unwrap_or_else(|| panic!("{id} has no got")).to_string()
}

#[test]
fn a_partial_server_fails_exactly_its_deviations() {
    let server = serve(partial());
    let (code, out, err) = check(&[&server.url, "--function", "greet", "--input", r#"{"name":"ada"}"#, "--format", "json"]);
    assert_eq!(code, 1, "{err}");
    let all = results(&out);
    assert_eq!(
        by_outcome(&all, "fail"),
        [
            "health.checks",
            "run.malformed_json",
            "errors.problem_json",
            "errors.code",
            "correlation.echo",
            "metrics.names",
            "idempotency.replay",
            "idempotency.mismatch",
            "openapi.present",
            "runs.list",
            "runs.logs",
            "run.body_too_large",
            "run.unsupported_media_type",
        ],
        "{out}"
    );
    assert_eq!(
        by_outcome(&all, "pass"),
        [
            "health.status",
            "ready.status",
            "run.accepted",
            "run.location",
            "run.tracked_to_terminal",
            "run.unknown_function",
            "run.schema_violation",
            "metrics.exposed",
            "flow.policy",
        ],
        "{out}"
    );
    assert_eq!(
        by_outcome(&all, "skip"),
        [
            "cancel.queued",
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
    assert!(got(&all, "run.malformed_json").starts_with("POST /run: 500 application/json"), "{out}");
    assert!(got(&all, "errors.problem_json").contains("500 application/json"), "{out}");
    assert!(got(&all, "correlation.echo").contains("without X-Correlation-ID"), "{out}");
    assert!(got(&all, "openapi.present").starts_with("GET /openapi.json: 404"), "{out}");
    assert!(got(&all, "idempotency.replay").starts_with("a new run"), "{out}");
    assert_eq!(got(&all, "runs.list"), "GET /runs?limit=1: 404 no content-type: (empty body)", "{out}");
    assert!(got(&all, "runs.logs").starts_with("GET /runs/run-0/logs: 404"), "{out}");
    assert!(got(&all, "run.unsupported_media_type").starts_with("POST /run: 404 application/json"), "{out}");
    let missing = got(&all, "metrics.names");
    assert!(missing.contains("plinth_errors_total") && !missing.contains("plinth_uptime_seconds"), "{missing}");
    let skip = all.iter().find(|r| r["id"] == "cancel.queued").expect("cancel.queued");
    assert!(skip["why"].as_str().is_some_and(|w| w.contains("delay_seconds")), "{skip}");
}

#[test]
fn an_html_server_fails_with_what_came_back_in_every_format() {
    let html = "<html><body><h1>Welcome to nginx!</h1> & more</body></html>";
    let server = serve(Router::new().fallback(any(move || async move { ([(header::CONTENT_TYPE, "text/html")], html) })));
    let (code, out, _) = check(&[&server.url, "--format", "json"]);
    assert_eq!(code, 1);
    let all = results(&out);
    assert!(by_outcome(&all, "pass").is_empty(), "{out}");
    assert_eq!(got(&all, "health.status"), format!("GET /health: 200 text/html: {html}"));
    assert!(got(&all, "metrics.exposed").contains("text/html"), "{out}");
    assert_eq!(got(&all, "run.accepted"), format!("POST /run: 200 text/html: {html}"));

    let (code, table, _) = check(&[&server.url]);
    assert_eq!(code, 1);
    assert!(
        table.lines().any(|l| l.starts_with("health.status") && l.contains("FAIL") && l.contains("Welcome to nginx")),
        "{table}"
    );
    assert!(table.lines().last().is_some_and(|l| l.starts_with("0 passed,")), "{table}");

    let (code, xml, _) = check(&[&server.url, "--format", "junit"]);
    assert_eq!(code, 1);
    well_formed(&xml);
    assert!(xml.contains("&lt;html&gt;&lt;body&gt;&lt;h1&gt;Welcome to nginx!&lt;/h1&gt; &amp; more"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 33, "{xml}");
    assert!(xml.contains(r#"failures="16""#) && xml.matches("<failure ").count() == 16, "{xml}");
}

/// A small well-formedness check: tags balance, and text holds no raw `<` or stray `&`.
fn well_formed(xml: &str) {
    let body = xml.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n").expect("XML declaration");
    let mut open: Vec<&str> = Vec::new();
    let mut rest = body;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        let entities = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"];
        for (i, _) in text.match_indices('&') {
            assert!(entities.iter().any(|e| text[i..].starts_with(e)), "stray & in {text:?}");
        }
        let gt = rest[lt..].find('>').expect("tag closes") + lt;
        let tag = &rest[lt + 1..gt];
        assert!(!tag.contains('<'), "raw < inside a tag: {tag}");
        assert_eq!(tag.matches('"').count() % 2, 0, "attribute quotes balance: {tag}");
        let name = tag.trim_start_matches('/').split([' ', '/']).next().expect("name");
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(closing), "mismatched </{closing}>");
        } else if !tag.ends_with('/') {
            open.push(name);
        }
        rest = &rest[gt + 1..];
    }
    assert!(open.is_empty() && rest.trim().is_empty(), "unclosed {open:?}");
}

#[test]
fn a_slow_server_fails_each_check_on_its_timeout() {
    let server = serve(Router::new().fallback(any(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        axum::Json(json!({"status": "healthy"}))
    })));
    let (code, out, err) =
        check(&[&server.url, "--timeout", "300ms", "--only", "health.status,ready.status", "--format", "json"]);
    assert_eq!(code, 1, "slow is not unreachable: {err}");
    let all = results(&out);
    assert_eq!(by_outcome(&all, "fail"), ["health.status", "ready.status"], "{out}");
    for r in &all {
        assert_eq!(r["got"], "timed out after 300ms", "{r}");
        assert!(r["elapsed_ms"].as_u64().is_some_and(|ms| ms < 5000), "cut at the timeout: {r}");
    }
}

#[test]
fn a_redirecting_server_is_reported_not_followed() {
    // Where it points answers every check: following it would pass against another server.
    let target = serve(partial());
    let to = format!("{}/elsewhere", target.url);
    let server = serve(Router::new().fallback(any(move || {
        let to = to.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)], "") }
    })));
    let (code, out, _) = check(&[&server.url, "--format", "json"]);
    assert_eq!(code, 1);
    let all = results(&out);
    assert!(by_outcome(&all, "pass").is_empty(), "{out}");
    let health = got(&all, "health.status");
    assert_eq!(
        health,
        format!(
            "GET /health: 307 redirect to {}/elsewhere (not followed: point plinth check at the component's own URL)",
            target.url
        )
    );
    assert!(got(&all, "run.accepted").starts_with("POST /run: 307 redirect to"), "{out}");
}

#[test]
fn an_unhealthy_server_fails_health_and_skips_what_depends_on_it() {
    // /health answers 503 unhealthy: health fails, its checks are skipped naming it, and a
    // 503 not_ready with a reason is a valid /ready.
    let server = serve(
        Router::new()
            .route(
                "/health",
                get(|| async { json_answer(StatusCode::SERVICE_UNAVAILABLE, json!({"status": "unhealthy", "checks": {}})) }),
            )
            .route(
                "/ready",
                get(|| async {
                    json_answer(StatusCode::SERVICE_UNAVAILABLE, json!({"status": "not_ready", "reason": "database"}))
                }),
            ),
    );
    let (code, out, _) = check(&[&server.url, "--only", "health.status,health.checks,ready.status", "--format", "json"]);
    assert_eq!(code, 1);
    let all = results(&out);
    assert_eq!(
        (by_outcome(&all, "fail"), by_outcome(&all, "pass")),
        (vec!["health.status".to_string()], vec!["ready.status".to_string()])
    );
    assert_eq!(all[1]["why"], "depends on health.status, which failed");
}
