//! The spans of a step function: one per finished step under the attempt that ran it, one per
//! wait (sleep, wait_for_event) under the run's request, all in the client's trace even when
//! `plinth serve` is SIGKILLed during the sleep and started again; an attempt that ran on a
//! node killed mid-run continues the same trace on the next one; a run an event starts is in
//! the trace of the request that sent the event.

use super::{CLIENT, Got, check_catalog, receiver, spans_until};
use crate::harness::{Served, client, component_dir, send, wait_status};
use serde_json::json;
use std::time::{Duration, Instant};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

const COMPONENT: &str = "component: {name: traced, version: '1'}\n\
functions:\n\
\x20 - name: flow\n\
\x20   steps: true\n\
\x20   handler: {rust: flow}\n\
\x20 - name: nap\n\
\x20   handler: {rust: sleep}\n\
\x20 - name: shipped\n\
\x20   handler: {rust: sleep}\n\
\x20   triggers: [{event: shop/order.created}]\n";

fn serve(dir: &std::path::Path, config: &std::path::Path, endpoint: &str) -> Served {
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "50")];
    let args = ["serve", "--config", config.to_str().expect("utf-8"), "--port", "0", "--lease", "1s"];
    Served::spawn(&args, &env, dir)
}

fn named<'a>(spans: &'a [Got], name: &str) -> Vec<&'a Got> {
    spans.iter().filter(|g| g.name == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_and_waits_have_spans_in_the_request_trace_across_a_restart() {
    let (endpoint, r) = receiver().await;
    let (dir, config) = component_dir(COMPONENT);
    let s = serve(dir.path(), &config, &endpoint);
    let c = client();
    let input = json!({"steps": 2, "sleep_ms": 1500, "wait_event": "test/go", "key": "k"});
    let (code, body) =
        send(c.post(s.url("/run")).header("traceparent", CLIENT).json(&json!({"function": "flow", "input": input}))).await;
    assert_eq!(code, 202, "{body}");
    let id = body["run_id"].as_str().expect("id").to_string();
    // The first attempt's spans are out before the kill: it ran the steps and went to sleep.
    spans_until(&r, "the first attempt", |g| named(g, "step s1").len() == 1 && !named(g, "process flow").is_empty()).await;
    s.kill9();
    let s = serve(dir.path(), &config, &endpoint);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = send(c.get(s.url(&format!("/runs/{id}")))).await;
        if run["waiting_for"].to_string().contains("test/go") {
            break;
        }
        assert!(Instant::now() < deadline, "the run never waited for its event: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, sent) = send(c.post(s.url("/events")).json(&json!({"name": "test/go", "data": {"key": "k"}}))).await;
    assert_eq!(code, 202, "{sent}");
    wait_status(&c, &s, &id, "succeeded").await;
    let spans = spans_until(&r, "every step and wait", |g| {
        ["step s0", "step s1", "sleep nap", "wait_for_event wait", "step after"].iter().all(|n| named(g, n).len() == 1)
            && named(g, "process flow").len() >= 3
    })
    .await;
    check_catalog(&spans);
    let enqueue = named(&spans, "enqueue flow")[0];
    let attempts = named(&spans, "process flow");
    for g in spans.iter().filter(|g| g.attr("run_id").is_some_and(|v| v.contains(&id))) {
        assert_eq!(g.trace, TRACE, "every span of the run is in the client's trace: {g:?}");
    }
    for name in ["step s0", "step s1", "step after"] {
        let step = named(&spans, name)[0];
        assert!(attempts.iter().any(|a| a.id == step.parent), "{name} under an attempt: {step:?}");
        assert!(step.attr("outcome").is_some_and(|v| v.contains("succeeded")), "{step:?}");
    }
    for name in ["sleep nap", "wait_for_event wait"] {
        let wait = named(&spans, name)[0];
        assert_eq!(wait.parent, enqueue.id, "{name} beside the attempts, under the enqueue: {wait:?}");
        assert!(wait.attr("step_op").is_some(), "{wait:?}");
    }
    s.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_on_the_next_node_after_a_kill_continues_the_trace() {
    let (endpoint, r) = receiver().await;
    let (dir, config) = component_dir(COMPONENT);
    let s = serve(dir.path(), &config, &endpoint);
    let c = client();
    let (code, body) =
        send(c.post(s.url("/run")).header("traceparent", CLIENT).json(&json!({"function": "nap", "input": {"ms": 1500}}))).await;
    assert_eq!(code, 202, "{body}");
    let id = body["run_id"].as_str().expect("id").to_string();
    wait_status(&c, &s, &id, "running").await;
    spans_until(&r, "the request's spans", |g| !named(g, "enqueue nap").is_empty()).await;
    s.kill9();
    let s = serve(dir.path(), &config, &endpoint);
    let run = wait_status(&c, &s, &id, "succeeded").await;
    assert!(run["attempt"].as_u64().is_some_and(|a| a >= 2), "the attempt after the kill: {run}");
    let spans = spans_until(&r, "the attempt after the kill", |g| !named(g, "process nap").is_empty()).await;
    let after = named(&spans, "process nap")[0];
    assert_eq!(after.trace, TRACE, "{after:?}");
    let enqueue = named(&spans, "enqueue nap")[0];
    assert_eq!(after.parent, enqueue.id, "the stored context is the parent on any node: {after:?}");
    s.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_an_event_starts_continues_the_events_request() {
    let (endpoint, r) = receiver().await;
    let (dir, config) = component_dir(COMPONENT);
    let s = serve(dir.path(), &config, &endpoint);
    let c = client();
    let event = json!({"name": "shop/order.created", "data": {"ms": 1}});
    let (code, sent) = send(c.post(s.url("/events")).header("traceparent", CLIENT).json(&event)).await;
    assert_eq!(code, 202, "{sent}");
    let id = sent["run_ids"][0][0].as_str().expect("the run it started").to_string();
    let spans = spans_until(&r, "the event's request and its run", |g| {
        !named(g, "POST /events").is_empty() && !named(g, "process shipped").is_empty()
    })
    .await;
    let request = named(&spans, "POST /events")[0];
    let attempt = named(&spans, "process shipped")[0];
    assert_eq!((request.trace.as_str(), attempt.trace.as_str()), (TRACE, TRACE), "{spans:#?}");
    assert_eq!(attempt.parent, request.id, "the run's attempt under the event's request: {attempt:?}");
    assert!(attempt.attr("run_id").is_some_and(|v| v.contains(&id)), "{attempt:?} {sent}");
    // An invalid traceparent on the event starts a trace of its own, with no error.
    let (code, sent) = send(c.post(s.url("/events")).header("traceparent", "00-zz").json(&event)).await;
    assert_eq!(code, 202, "{sent}");
    spans_until(&r, "the second run", |g| named(g, "process shipped").len() == 2).await;
    s.kill9();
}
