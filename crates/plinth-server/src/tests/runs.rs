//! `POST /run` and the `/runs` endpoints.

use super::*;
use plinth_core::Finish;
use plinth_core::timefmt::now_micros;
use plinth_store::{ClaimRequest, FinishRequest};
use std::time::Duration;

#[tokio::test]
async fn submit_answers_202_with_location_and_stores_the_run() {
    let h = harness();
    let r = h.post_json("/run", r#"{"function":"resize","input":{"width":3}}"#).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.json["run_id"].as_str().expect("id");
    assert_eq!(r.headers["location"], format!("/runs/{id}"));
    assert_eq!(r.json["status"], "queued");
    assert_eq!(r.json["status_url"], format!("/runs/{id}"));
    let run = h.get(&format!("/runs/{id}")).await;
    assert_eq!(run.status, StatusCode::OK);
    assert_eq!(run.json["input"]["width"], 3);
    assert_eq!(run.headers["retry-after"], "1");
}

#[tokio::test]
async fn submit_rejects_bad_bodies() {
    let h = harness();
    assert_problem(&h.post_json("/run", "{not json").await, 400, "PLINTH_003");
    assert_problem(&h.post_json("/run", "[1]").await, 422, "PLINTH_004");
    let r = h.send(Request::post("/run").header("content-type", "text/plain").body(Body::from("{}")).expect("req")).await;
    assert_problem(&r, 415, "PLINTH_008");
    let r = h.send(Request::post("/run").body(Body::from("{}")).expect("req")).await;
    assert_problem(&r, 415, "PLINTH_008");
    let big = format!(r#"{{"function":"echo","input":"{}"}}"#, "x".repeat(5000));
    assert_problem(&h.post_json("/run", &big).await, 413, "PLINTH_007");
}

#[tokio::test]
async fn submit_validates_function_and_schema() {
    let h = harness();
    assert_problem(&h.post_json("/run", r#"{"function":"nope"}"#).await, 404, "PLINTH_005");
    assert_problem(&h.post_json("/run", r#"{"input":{}}"#).await, 422, "PLINTH_011");
    let r = h.post_json("/run", r#"{"function":"resize","input":{"width":"wide"}}"#).await;
    assert_problem(&r, 422, "PLINTH_004");
    assert_eq!(r.json["errors"][0]["pointer"], "/input/width");
    let r = h.post_json("/run", r#"{"function":"resize","input":{"width":0}}"#).await;
    assert_eq!(r.json["errors"][0]["pointer"], "/input/width");
    let r = h.post_json("/run", r#"{"function":"echo","priority":"high"}"#).await;
    assert_eq!(r.json["errors"][0]["pointer"], "/priority");
}

#[tokio::test]
async fn single_function_components_need_no_name() {
    let h = harness_with("component: {name: one, version: '1'}\nfunctions:\n  - name: only\n    handler: {rust: noop}\n");
    let r = h.post_json("/run", "{}").await;
    assert_eq!((r.status, r.json["function"].clone()), (StatusCode::ACCEPTED, Value::from("only")));
}

#[tokio::test]
async fn idempotency_replays_and_refuses_mismatches() {
    let h = harness();
    let first = h.post_json("/run", r#"{"function":"echo","input":{"a":1},"idempotency_key":"k1"}"#).await;
    let req = Request::post("/run")
        .header("content-type", "application/json")
        .header("idempotency-key", "k1")
        .body(Body::from(r#"{"function":"echo","input":{"a":1}}"#))
        .expect("req");
    let again = h.send(req).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json["run_id"], first.json["run_id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let other = h.post_json("/run", r#"{"function":"echo","input":{"a":2},"idempotency_key":"k1"}"#).await;
    assert_problem(&other, 422, "PLINTH_015");
    let long = format!(r#"{{"function":"echo","idempotency_key":"{}"}}"#, "k".repeat(256));
    assert_problem(&h.post_json("/run", &long).await, 422, "PLINTH_004");
}

#[tokio::test]
async fn unknown_and_malformed_run_ids_are_404() {
    let h = harness();
    assert_problem(&h.get("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV").await, 404, "PLINTH_006");
    assert_problem(&h.get("/runs/not-an-id").await, 404, "PLINTH_006");
    assert_problem(&h.get("/runs/not-an-id/logs").await, 404, "PLINTH_006");
    assert_problem(&h.get("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV/logs").await, 404, "PLINTH_006");
    assert_problem(&h.post_json("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel", "").await, 404, "PLINTH_006");
}

#[tokio::test]
async fn wait_returns_when_the_run_finishes() {
    let h = harness();
    let id = h.submit(r#"{"function":"echo","input":{"v":1}}"#).await;
    let store = h.state.store.clone();
    let finisher = tokio::spawn({
        let id = id.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = now_micros();
            let req = ClaimRequest {
                owner: "w".into(),
                now,
                lease_until: now + 10_000_000,
                wants: vec![("echo".into(), 1)],
                limit: 1,
                limits: Default::default(),
            };
            let claimed = store.claim(req).await.expect("claim");
            assert_eq!(claimed.runs.len(), 1);
            let fin = FinishRequest {
                run_id: id,
                owner: "w".into(),
                attempt: 1,
                finish: Finish::Succeeded(serde_json::json!({"v": 1})),
                now: now_micros(),
                duration: Duration::from_millis(1),
            };
            assert!(store.finish(fin).await.expect("finish"));
        }
    });
    let started = std::time::Instant::now();
    let r = h.get(&format!("/runs/{id}?wait=10")).await;
    assert_eq!(r.json["status"], "succeeded", "{}", r.json);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!r.headers.contains_key("retry-after"));
    finisher.await.expect("finisher");
    let r = h.get(&format!("/runs/{id}?wait=0.1")).await;
    assert_eq!(r.json["output"]["v"], 1);
}

#[tokio::test]
async fn wait_times_out_and_rejects_bad_values() {
    let h = harness();
    let id = h.submit(r#"{"function":"echo"}"#).await;
    let r = h.get(&format!("/runs/{id}?wait=0.2")).await;
    assert_eq!(r.json["status"], "queued");
    assert_eq!(h.state.store.notifier().waiting(), 0);
    assert_problem(&h.get(&format!("/runs/{id}?wait=61")).await, 400, "PLINTH_014");
    assert_problem(&h.get(&format!("/runs/{id}?wait=soon")).await, 400, "PLINTH_014");
    assert_problem(&h.get(&format!("/runs/{id}?color=red")).await, 400, "PLINTH_014");
    let unknown = h.get("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=5").await;
    assert_problem(&unknown, 404, "PLINTH_006");
    assert_eq!(h.state.store.notifier().waiting(), 0, "a wait for a run that is not there leaves no waiter behind");
}

#[tokio::test]
async fn list_filters_and_pages() {
    let h = harness();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(h.submit(&format!(r#"{{"function":"echo","input":{{"i":{i}}}}}"#)).await);
    }
    h.submit(r#"{"function":"resize","input":{"width":1}}"#).await;
    let mut seen = Vec::new();
    let mut uri = "/runs?function=echo&limit=2".to_string();
    loop {
        let r = h.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK);
        seen.extend(r.json["runs"].as_array().expect("runs").iter().map(|x| x["run_id"].as_str().expect("id").to_string()));
        match r.json["next_cursor"].as_str() {
            Some(c) => uri = format!("/runs?function=echo&limit=2&cursor={c}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    assert_eq!(h.get("/runs?status=queued").await.json["runs"].as_array().map(Vec::len), Some(6));
    assert_eq!(h.get("/runs?status=failed").await.json["runs"].as_array().map(Vec::len), Some(0));
    for bad in [
        "/runs?limit=0",
        "/runs?limit=501",
        "/runs?status=done",
        "/runs?cursor=zzz",
        "/runs?created_after=yesterday",
        "/runs?x=1",
    ] {
        assert_problem(&h.get(bad).await, 400, "PLINTH_014");
    }
}

#[tokio::test]
async fn cancel_queued_then_conflict() {
    let h = harness();
    let id = h.submit(r#"{"function":"echo"}"#).await;
    let r = h.post_json(&format!("/runs/{id}/cancel"), "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json["status"], "cancelled");
    assert_eq!(r.json["error"]["code"], "PLINTH_024");
    assert_problem(&h.post_json(&format!("/runs/{id}/cancel"), "").await, 409, "PLINTH_009");
    let logs = h.get(&format!("/runs/{id}/logs")).await;
    assert_eq!(logs.status, StatusCode::OK);
    assert_eq!(logs.json["logs"].as_array().map(Vec::len), Some(0));
}

async fn submit_traced(h: &Harness, traceparent: &str) -> Reply {
    submit_with_state(h, traceparent, "").await
}

async fn submit_with_state(h: &Harness, traceparent: &str, tracestate: &str) -> Reply {
    let req = Request::post("/run")
        .header("content-type", "application/json")
        .header("traceparent", traceparent)
        .header("tracestate", tracestate)
        .body(Body::from(r#"{"function":"echo","input":{}}"#))
        .expect("req");
    h.send(req).await
}

#[tokio::test]
async fn a_clients_traceparent_is_stored_on_the_run() {
    let h = harness();
    let r = submit_traced(&h, "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let run = h.get(&format!("/runs/{}", r.json["run_id"].as_str().expect("id"))).await;
    assert_eq!(run.json["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "{}", run.json);
}

#[tokio::test]
async fn an_invalid_or_missing_traceparent_is_no_error_and_stores_nothing() {
    let h = harness();
    for sent in ["junk", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""] {
        let r = submit_traced(&h, sent).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{sent}: {}", r.json);
        let run = h.get(&format!("/runs/{}", r.json["run_id"].as_str().expect("id"))).await;
        assert!(run.json.get("traceparent").is_none(), "{sent}: {}", run.json);
    }
    let plain = h.post_json("/run", r#"{"function":"echo","input":{}}"#).await;
    let run = h.get(&format!("/runs/{}", plain.json["run_id"].as_str().expect("id"))).await;
    assert!(run.json.get("traceparent").is_none());
}

#[tokio::test]
async fn a_valid_tracestate_is_stored_with_a_valid_traceparent_only() {
    let h = harness();
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = submit_with_state(&h, valid, "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let run = h.get(&format!("/runs/{}", r.json["run_id"].as_str().expect("id"))).await;
    assert_eq!(run.json["tracestate"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "{}", run.json);
    for (parent, state) in [(valid, "Bad Key=1"), (valid, "a=1,a=2"), ("junk", "rojo=1")] {
        let r = submit_with_state(&h, parent, state).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{state}: {}", r.json);
        let run = h.get(&format!("/runs/{}", r.json["run_id"].as_str().expect("id"))).await;
        assert!(run.json.get("tracestate").is_none(), "{parent} {state}: {}", run.json);
    }
}
