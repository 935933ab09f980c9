//! Idempotency under concurrency: many identical requests at once make exactly one run.

use super::harness;
use axum::body::Body;
use axum::http::Request;
use plinth_store::ListFilter;
use std::collections::HashSet;

fn keyed(body: &str, key: &str) -> Request<Body> {
    Request::post("/run")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_identical_requests_make_one_run() {
    let h = std::sync::Arc::new(harness());
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move { h.send(keyed(r#"{"function":"echo","input":{"n":1}}"#, "one-key")).await }));
    }
    let mut ids = HashSet::new();
    let mut fresh = 0;
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status.as_u16(), 202, "{}", r.json);
        ids.insert(r.json["run_id"].as_str().expect("run_id").to_string());
        if r.headers.get("idempotent-replayed").is_none() {
            fresh += 1;
        }
    }
    assert_eq!(ids.len(), 1, "one run id for every answer");
    assert_eq!(fresh, 1, "exactly one answer created the run, the others replayed it");
    let page = h.state.store.list(ListFilter { limit: 100, ..ListFilter::default() }).await.expect("list");
    assert_eq!(page.runs.len(), 1, "one run stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_different_requests_with_one_key_make_one_run_and_refuse_the_rest() {
    let h = std::sync::Arc::new(harness());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let h = h.clone();
        let body = format!(r#"{{"function":"echo","input":{{"n":{}}}}}"#, i % 2);
        tasks.push(tokio::spawn(async move { h.send(keyed(&body, "shared-key")).await }));
    }
    let (mut accepted, mut refused) = (HashSet::new(), 0);
    for t in tasks {
        let r = t.await.expect("task");
        match r.status.as_u16() {
            202 => {
                accepted.insert(r.json["run_id"].as_str().expect("run_id").to_string());
            }
            422 => {
                assert_eq!(r.json["code"], "PLINTH_015", "{}", r.json);
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.json),
        }
    }
    assert_eq!(accepted.len(), 1, "one run for the key");
    assert_eq!(refused, 100, "every request with the other body is refused");
}

#[tokio::test]
async fn different_keys_make_different_runs() {
    let h = harness();
    let a = h.send(keyed(r#"{"function":"echo","input":{}}"#, "key-a")).await;
    let b = h.send(keyed(r#"{"function":"echo","input":{}}"#, "key-b")).await;
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (202, 202));
    assert_ne!(a.json["run_id"], b.json["run_id"]);
}
