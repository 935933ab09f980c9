//! HTTP handlers against a local axum endpoint: output, retries by status, rejection, bad
//! bodies, timeouts, an unreachable URL, headers sent, and a cancel that aborts the request.

use crate::harness::{Harness, code, config, outcomes};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use plinth_core::RunStatus;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FAST_RETRIES: &str = "{retries: {max_attempts: 3, backoff: {initial: 10ms, max: 20ms}}, timeout: 5s}";

/// What the endpoint saw: each request's headers and body.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().expect("seen").len()
    }
    fn get(&self, i: usize) -> (HeaderMap, Value) {
        self.0.lock().expect("seen")[i].clone()
    }
}

async fn endpoint(
    State(seen): State<Seen>,
    axum::extract::Path(mode): axum::extract::Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    seen.0.lock().expect("seen").push((headers, body.clone()));
    match mode.as_str() {
        "ok" => axum::Json(json!({"echo": body["input"], "attempt": body["attempt"]})).into_response(),
        "empty" => StatusCode::NO_CONTENT.into_response(),
        "busy" => (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response(),
        "flaky" if body["attempt"] == 1 => (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
        "flaky" => axum::Json(json!("second time lucky")).into_response(),
        "reject" => (StatusCode::UNPROCESSABLE_ENTITY, "{\"detail\":\"no such customer\"}").into_response(),
        "html" => (StatusCode::OK, "<html>hello</html>").into_response(),
        "redirect" => (StatusCode::FOUND, [("location", "http://elsewhere.invalid/")]).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves the endpoint on a free port; its base URL and what it saw.
async fn serve() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new().route("/{mode}", post(endpoint)).with_state(seen.clone());
    let base = crate::harness::serve_app(app).await;
    (base, seen)
}

fn http_fn(name: &str, url: &str, extra: &str, policy: &str) -> String {
    format!("  - name: {name}\n    handler:\n      http: {{url: '{url}'{extra}}}\n    policy: {policy}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_answer_is_the_output_and_the_request_carries_the_run() {
    let (base, seen) = serve().await;
    let functions = [
        http_fn("ok", &format!("{base}/ok"), ", headers: {X-Team: platform}", FAST_RETRIES),
        http_fn("empty", &format!("{base}/empty"), "", FAST_RETRIES),
    ]
    .concat();
    let h = Harness::started(&functions, |_| {}, config());
    let id = h.enqueue("ok", json!({"n": 7})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"echo": {"n": 7}, "attempt": 1})));
    let (headers, body) = seen.get(0);
    assert_eq!(body, json!({"run_id": id, "function": "ok", "attempt": 1, "input": {"n": 7}}));
    assert_eq!(headers.get("x-correlation-id").and_then(|v| v.to_str().ok()), Some("corr-ok"));
    assert_eq!(headers.get("x-team").and_then(|v| v.to_str().ok()), Some("platform"));
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    let trace = headers.get("traceparent").and_then(|v| v.to_str().ok()).expect("traceparent").to_string();
    assert!(trace.starts_with("00-") && trace.len() == 55, "{trace}");
    let logs = h.logs(&id).await;
    assert!(logs.iter().any(|l| l.line.line.contains("answered 200")), "{logs:?}");

    let empty = h.enqueue("empty", json!({})).await;
    let run = h.wait_terminal(&empty).await;
    assert_eq!((run.status, run.output), (RunStatus::Succeeded, Some(Value::Null)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_statuses_are_retried_by_policy() {
    let (base, seen) = serve().await;
    let functions = [
        http_fn("busy", &format!("{base}/busy"), "", FAST_RETRIES),
        http_fn("flaky", &format!("{base}/flaky"), "", FAST_RETRIES),
    ]
    .concat();
    let h = Harness::started(&functions, |_| {}, config());
    let busy = h.enqueue("busy", json!({})).await;
    let run = h.wait_terminal(&busy).await;
    assert_eq!((run.status, code(&run)), (RunStatus::Failed, "PLINTH_020"), "{run:#?}");
    assert_eq!(outcomes(&run), ["retrying", "retrying", "failed"]);
    assert!(run.error.as_ref().is_some_and(|e| e.message.contains("503") && e.message.contains("try later")), "{run:#?}");

    let flaky = h.enqueue("flaky", json!({})).await;
    let run = h.wait_terminal(&flaky).await;
    assert_eq!((run.status, run.output.clone()), (RunStatus::Succeeded, Some(json!("second time lucky"))), "{run:#?}");
    assert_eq!(seen.count(), 5, "3 for busy, 2 for flaky");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_fails_at_once_and_bad_bodies_fail() {
    let (base, seen) = serve().await;
    let functions = [
        http_fn("reject", &format!("{base}/reject"), "", FAST_RETRIES),
        http_fn("html", &format!("{base}/html"), "", FAST_RETRIES),
        http_fn("redirect", &format!("{base}/redirect"), "", FAST_RETRIES),
    ]
    .concat();
    let h = Harness::started(&functions, |_| {}, config());
    let reject = h.enqueue("reject", json!({})).await;
    let run = h.wait_terminal(&reject).await;
    assert_eq!((run.status, code(&run), run.attempt), (RunStatus::Failed, "PLINTH_027", 1), "{run:#?}");
    assert!(run.error.as_ref().is_some_and(|e| e.message.contains("422") && e.message.contains("no such customer")));
    for name in ["html", "redirect"] {
        let id = h.enqueue(name, json!({})).await;
        let run = h.wait_terminal(&id).await;
        assert_eq!((run.status, code(&run), run.attempt), (RunStatus::Failed, "PLINTH_029", 1), "{name}: {run:#?}");
    }
    assert_eq!(seen.count(), 3, "none of them is retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_url_and_a_slow_answer_fail_retryably() {
    let (base, _seen) = serve().await;
    // Why: a port bound and dropped at once is very likely closed for the test's few seconds.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let functions = [
        http_fn("down", &format!("http://{closed}/x"), "", "{retries: {max_attempts: 2, backoff: {initial: 10ms, max: 20ms}}}"),
        http_fn("tls", &format!("{}/ok", base.replace("http://", "https://")), "", "{retries: {max_attempts: 1}}"),
        http_fn(
            "slow",
            &format!("{base}/slow"),
            ", timeout: 300ms",
            "{retries: {max_attempts: 2, backoff: {initial: 10ms, max: 20ms}}, timeout: 10s}",
        ),
    ]
    .concat();
    let h = Harness::started(&functions, |_| {}, config());
    let down = h.enqueue("down", json!({})).await;
    let slow = h.enqueue("slow", json!({})).await;
    let run = h.wait_terminal(&down).await;
    assert_eq!((run.status, code(&run)), (RunStatus::Failed, "PLINTH_028"), "{run:#?}");
    assert_eq!(outcomes(&run), ["retrying", "failed"]);
    let tls = h.enqueue("tls", json!({})).await;
    let run = h.wait_terminal(&tls).await;
    assert_eq!(
        (run.status, code(&run)),
        (RunStatus::Failed, "PLINTH_028"),
        "https to a plain-HTTP port fails the handshake: {run:#?}"
    );
    let run = h.wait_terminal(&slow).await;
    assert_eq!((run.status, code(&run)), (RunStatus::Failed, "PLINTH_021"), "{run:#?}");
    assert!(run.error.as_ref().is_some_and(|e| e.message.contains("300ms")), "the handler's own timeout wins: {run:#?}");
    assert_eq!(outcomes(&run), ["retrying", "failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_aborts_the_request_and_sends_no_other() {
    let (base, seen) = serve().await;
    let h = Harness::started(&http_fn("slow", &format!("{base}/slow"), "", FAST_RETRIES), |_| {}, config());
    let id = h.enqueue("slow", json!({})).await;
    h.wait_running(&id).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while seen.count() == 0 {
        assert!(std::time::Instant::now() < deadline, "the request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.store.cancel(&id, plinth_core::timefmt::now_micros()).await.expect("cancel");
    let run = h.wait_terminal(&id).await;
    assert_eq!((run.status, code(&run)), (RunStatus::Cancelled, "PLINTH_024"), "{run:#?}");
    assert!(h.idle().await, "the attempt ended");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.count(), 1, "no request after the cancel");
}

#[test]
fn an_unset_header_variable_stops_start_up() {
    let functions =
        http_fn("f", "http://127.0.0.1:9/x", ", headers: {Authorization: 'Bearer ${PLINTH_TEST_SURELY_UNSET_VAR}'}", "{}");
    let h = Harness::new(&functions);
    let err =
        plinth_engine::Engine::check_handlers(&h.component, &plinth_engine::Handlers::builtin()).expect_err("unset variable");
    let text = err.to_string();
    assert!(text.contains("functions[0].handler.http.headers") && text.contains("PLINTH_TEST_SURELY_UNSET_VAR"), "{text}");
}
