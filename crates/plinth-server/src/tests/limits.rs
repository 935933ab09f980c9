//! Limits: JSON depth, headers, per-function queue length, per-client rate.

use super::{assert_problem, harness, harness_with, harness_with_rate};
use axum::body::Body;
use axum::http::{Request, StatusCode};

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn json_nesting_is_bounded() {
    let h = harness();
    // The request object and its input add one level each around the input's own nesting.
    let ok = h.post_json("/run", &format!(r#"{{"function":"echo","input":{{"a":{}}}}}"#, nested(62))).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.json);
    let deep = h.post_json("/run", &format!(r#"{{"function":"echo","input":{{"a":{}}}}}"#, nested(63))).await;
    assert_problem(&deep, 400, "PLINTH_042");
    let very_deep = h.post_json("/run", &nested(2000)).await;
    assert_problem(&very_deep, 400, "PLINTH_042");
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_refused() {
    let h = harness();
    let mut req = Request::get("/functions");
    for i in 0..10 {
        req = req.header(format!("x-h-{i}"), "v");
    }
    assert_eq!(h.send(req.body(Body::empty()).expect("request")).await.status, StatusCode::OK);
    let mut req = Request::get("/functions");
    for i in 0..65 {
        req = req.header(format!("x-h-{i}"), "v");
    }
    assert_problem(&h.send(req.body(Body::empty()).expect("request")).await, 431, "PLINTH_043");
    let big = Request::get("/functions").header("x-big", "b".repeat(17 * 1024)).body(Body::empty()).expect("request");
    assert_problem(&h.send(big).await, 431, "PLINTH_043");
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let h = harness_with(
        "component: {name: q, version: '1'}\nfunctions:\n  - name: echo\n    handler: {command: {argv: [cat]}}\n    policy: {max_queued: 2}\n  - name: other\n    handler: {command: {argv: [cat]}}\n",
    );
    for _ in 0..2 {
        h.submit(r#"{"function":"echo"}"#).await;
    }
    let full = h.post_json("/run", r#"{"function":"echo"}"#).await;
    assert_problem(&full, 429, "PLINTH_040");
    assert_eq!(full.headers["retry-after"], "1");
    assert!(full.json["detail"].as_str().is_some_and(|d| d.contains("echo") && d.contains('2')), "{}", full.json);
    h.submit(r#"{"function":"other"}"#).await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_but_probes_pass() {
    let h = harness_with_rate(1, 2);
    assert_eq!(h.get("/functions").await.status, StatusCode::OK);
    assert_eq!(h.get("/functions").await.status, StatusCode::OK);
    let limited = h.get("/functions").await;
    assert_problem(&limited, 429, "PLINTH_041");
    let wait: u64 = limited.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    for path in ["/health", "/ready", "/metrics"] {
        assert_ne!(h.get(path).await.status, StatusCode::TOO_MANY_REQUESTS, "{path} is never limited");
    }
}

#[tokio::test]
async fn without_a_rate_limit_nothing_is_limited() {
    let h = harness();
    for _ in 0..50 {
        assert_eq!(h.get("/functions").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn each_principal_has_its_own_bucket() {
    let auth =
        "  api_keys:\n    - {name: one, from_env: ONE, scopes: [admin]}\n    - {name: two, from_env: TWO, scopes: [admin]}\n";
    let mut h = super::harness_with_auth(auth, &[("ONE", "first-key-0123456789"), ("TWO", "second-key-0123456789")]);
    let mut state = std::sync::Arc::try_unwrap(h.state).unwrap_or_else(|_| panic!("not shared yet"));
    let nz = |n| std::num::NonZeroU32::new(n).expect("not zero");
    state.rate_limit = Some(std::sync::Arc::new(crate::RateLimit::new(nz(1), nz(1))));
    h.state = std::sync::Arc::new(state);
    let as_key = |key: &str| Request::get("/functions").header("x-api-key", key).body(Body::empty()).expect("request");
    assert_eq!(h.send(as_key("first-key-0123456789")).await.status, StatusCode::OK);
    assert_problem(&h.send(as_key("first-key-0123456789")).await, 429, "PLINTH_041");
    assert_eq!(h.send(as_key("second-key-0123456789")).await.status, StatusCode::OK, "another key is counted apart");
    assert_eq!(h.state.rate_limit.as_ref().map(|l| l.clients()), Some(2));
}
