//! Spans exported over OTLP/HTTP to a receiver inside the test (an axum server decoding the
//! protobuf `ExportTraceServiceRequest` with the protocol's own types): one trace from the
//! client's request through each attempt to the handler's call, a retried run's attempts in
//! that trace; a receiver that is down or failing changes nothing for clients and its lost
//! spans are counted, a slow one fills a bounded queue whose drops are counted; an invalid
//! endpoint stops start-up. [`steps`]: the spans of steps and waits, across a restart and a
//! killed node.

mod steps;

use crate::harness::{Served, client, component_dir, send, wait_status};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One received span.
#[derive(Clone, Debug)]
pub(crate) struct Got {
    name: String,
    trace: String,
    id: String,
    parent: String,
    kind: i32,
    attributes: Vec<(String, String)>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
    /// The status the receiver answers with.
    status: Arc<Mutex<u16>>,
    /// How long it takes to answer.
    delay: Arc<Mutex<Duration>>,
}

async fn traces(State(r): State<Receiver>, body: Bytes) -> StatusCode {
    let delay = *r.delay.lock().expect("delay");
    tokio::time::sleep(delay).await;
    let status = *r.status.lock().expect("status");
    if status != 200 {
        return StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let Ok(req) = ExportTraceServiceRequest::decode(body) else { return StatusCode::BAD_REQUEST };
    let mut spans = r.spans.lock().expect("spans");
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            for s in ss.spans {
                let attributes = s
                    .attributes
                    .iter()
                    .map(|kv| {
                        let v = kv.value.as_ref().and_then(|v| v.value.as_ref()).map(|v| format!("{v:?}")).unwrap_or_default();
                        (kv.key.clone(), v)
                    })
                    .collect();
                spans.push(Got {
                    name: s.name,
                    trace: hex(&s.trace_id),
                    id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    kind: s.kind,
                    attributes,
                });
            }
        }
    }
    StatusCode::OK
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) async fn receiver() -> (String, Receiver) {
    let r = Receiver { status: Arc::new(Mutex::new(200)), ..Receiver::default() };
    let app = Router::new().route("/v1/traces", post(traces)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), r)
}

/// An HTTP handler failing its first `fails` calls; the `traceparent` of each call.
async fn handler(fails: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/",
            post(move |State(seen): State<Arc<Mutex<Vec<String>>>>, headers: HeaderMap| async move {
                let tp = headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let mut seen = seen.lock().expect("seen");
                seen.push(tp);
                if seen.len() <= fails { (StatusCode::SERVICE_UNAVAILABLE, "later") } else { (StatusCode::OK, "\"done\"") }
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}/"), seen)
}

pub(crate) fn component(url: &str) -> String {
    format!(
        "component: {{name: traced, version: '1'}}\nfunctions:\n  - name: web\n    handler:\n      http: {{url: '{url}'}}\n    \
         policy: {{retries: {{max_attempts: 3, backoff: {{initial: 10ms, max: 20ms}}}}}}\n"
    )
}

/// The value of the sample `series` (name and labels) on `/metrics`, 0 when absent.
pub(crate) async fn sample(c: &reqwest::Client, s: &Served, series: &str) -> f64 {
    let text = c.get(s.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines().find_map(|l| l.strip_prefix(series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// Waits until the sample `series` is above zero.
pub(crate) async fn sample_rises(c: &reqwest::Client, s: &Served, series: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = sample(c, s, series).await;
        if v > 0.0 {
            return v;
        }
        assert!(Instant::now() < deadline, "{series} stayed at 0");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks every span against the catalog the specification's Tracing section is written from:
/// its kind and the fixed words of its name, and each attribute it carries.
pub(crate) fn check_catalog(spans: &[Got]) {
    let kinds = [("internal", 1), ("server", 2), ("client", 3), ("producer", 4), ("consumer", 5)];
    for g in spans {
        let d = plinth_core::trace::SPANS
            .iter()
            .find(|d| {
                let words: Vec<&str> = g.name.splitn(d.name.split(' ').count(), ' ').collect();
                kinds.iter().any(|(k, n)| *k == d.kind && *n == g.kind)
                    && words.len() == d.name.split(' ').count()
                    && d.name.split(' ').zip(&words).all(|(p, w)| p.starts_with('{') || p == *w)
            })
            .unwrap_or_else(|| panic!("a span the catalog does not list: {g:?}"));
        for (k, _) in &g.attributes {
            // Why: the bridge is told to add nothing of its own (code location, thread, target,
            // busy/idle time), so every attribute is one the catalog names.
            assert!(d.attributes.contains(&k.as_str()), "`{k}` of {g:?} is not in the catalog");
        }
    }
}

pub(crate) async fn spans_until(r: &Receiver, what: &str, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = r.spans.lock().expect("spans").clone();
        if done(&spans) {
            return spans;
        }
        assert!(Instant::now() < deadline, "{what}: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_the_request_through_each_attempt_to_the_handler() {
    let (endpoint, r) = receiver().await;
    let (url, seen) = handler(2).await;
    let (dir, config) = component_dir(&component(&url));
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let s = Served::spawn(&["serve", "--config", config.to_str().expect("utf-8"), "--port", "0"], &env, dir.path());
    let c = client();
    let (code, body) = send(
        c.post(s.url("/run"))
            .header("traceparent", CLIENT)
            .header("tracestate", "rojo=1")
            .json(&json!({"function": "web", "input": {}})),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let id = body["run_id"].as_str().expect("id").to_string();
    let done = wait_status(&c, &s, &id, "succeeded").await;
    assert_eq!(done["tracestate"], "rojo=1", "the client's tracestate is kept through the spans: {done}");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let spans = spans_until(&r, "the request, three attempts and three calls", |spans| {
        spans.iter().filter(|g| g.trace == trace && g.name == "process web").count() == 3
            && spans.iter().filter(|g| g.trace == trace && g.name == "POST").count() == 3
    })
    .await;
    check_catalog(&spans);
    let server = spans.iter().find(|g| g.name == "POST /run").unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!((server.trace.as_str(), server.parent.as_str(), server.kind), (trace, "00f067aa0ba902b7", 2), "server span");
    assert_eq!(server.attr("http.response.status_code"), Some("IntValue(202)"), "an integer, as the conventions ask: {server:?}");
    let enqueue = spans.iter().find(|g| g.name == "enqueue web").unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!((enqueue.parent.as_str(), enqueue.kind), (server.id.as_str(), 4), "the enqueue under the request");
    let attempts: Vec<&Got> = spans.iter().filter(|g| g.name == "process web").collect();
    for a in &attempts {
        assert_eq!((a.trace.as_str(), a.parent.as_str(), a.kind), (trace, enqueue.id.as_str(), 5), "attempt under the enqueue");
        assert_eq!(a.attr("run_id").map(|v| v.contains(&id)), Some(true), "{a:?}");
    }
    let calls: Vec<&Got> = spans.iter().filter(|g| g.name == "POST").collect();
    for call in &calls {
        assert!(attempts.iter().any(|a| a.id == call.parent), "each call under an attempt: {call:?}");
        assert_eq!(call.kind, 3, "client");
    }
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 3);
    for tp in &seen {
        assert!(calls.iter().any(|c| tp == &format!("00-{trace}-{}-01", c.id)), "the handler got its call's span: {tp}");
    }
    assert!(!body.to_string().contains("otel"), "nothing of the span in the answer");
    sample_rises(&c, &s, r#"plinth_spans_exported_total{component="traced"} "#).await;
    let lost = sample(&c, &s, r#"plinth_spans_dropped_total{component="traced",reason="export_failed"} "#).await;
    assert!(lost.abs() < f64::EPSILON, "nothing lost on a healthy receiver: {lost}");
    let logs = s.logs();
    assert!(logs.iter().all(|l| l.get("otel.name").is_none() && l.get("http.route").is_none()), "logs keep their own fields");
    let started: Vec<&Value> = logs.iter().filter(|l| l["message"] == "attempt started").collect();
    assert_eq!(started.len(), 3, "{logs:?}");
    for l in started {
        assert_eq!(l["trace_id"], trace, "{l}");
        assert!(attempts.iter().any(|a| l["span_id"] == a.id.as_str()), "the attempt's span id: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_or_failing_changes_nothing_for_clients() {
    let (url, _) = handler(0).await;
    let (dir, config) = component_dir(&component(&url));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let (failing, r) = receiver().await;
    *r.status.lock().expect("status") = 500;
    for endpoint in [closed.as_str(), failing.as_str()] {
        let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "50")];
        let s = Served::spawn(&["serve", "--config", config.to_str().expect("utf-8"), "--port", "0"], &env, dir.path());
        let c = client();
        for _ in 0..5 {
            let (code, body) =
                send(c.post(s.url("/run")).header("traceparent", "garbage").json(&json!({"function": "web"}))).await;
            assert_eq!(code, 202, "{body}");
            wait_status(&c, &s, body["run_id"].as_str().expect("id"), "succeeded").await;
        }
        let (code, _) = send(c.get(s.url("/health"))).await;
        assert_eq!(code, 200, "{endpoint}");
        sample_rises(&c, &s, r#"plinth_spans_dropped_total{component="traced",reason="export_failed"} "#).await;
    }
    assert!(r.spans.lock().expect("spans").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_loses_counted_spans_and_holds_nothing_up() {
    let (url, _) = handler(0).await;
    let (dir, config) = component_dir(&component(&url));
    let (endpoint, r) = receiver().await;
    *r.delay.lock().expect("delay") = Duration::from_secs(2);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
    ];
    let s = Served::spawn(&["serve", "--config", config.to_str().expect("utf-8"), "--port", "0"], &env, dir.path());
    let c = client();
    let mut ids = Vec::new();
    for _ in 0..40 {
        let (code, body) = send(c.post(s.url("/run")).json(&json!({"function": "web"}))).await;
        assert_eq!(code, 202, "{body}");
        ids.push(body["run_id"].as_str().expect("id").to_string());
    }
    for id in &ids {
        wait_status(&c, &s, id, "succeeded").await;
    }
    let full = sample_rises(&c, &s, r#"plinth_spans_dropped_total{component="traced",reason="queue_full"} "#).await;
    // 40 requests, enqueues, attempts and calls make 160 spans; a queue of 8 behind a receiver
    // taking 2 s a batch cannot hold most of them.
    assert!(full >= 40.0, "most spans dropped and counted: {full}");
    // Once the receiver answers again, what was admitted arrives.
    *r.delay.lock().expect("delay") = Duration::ZERO;
    spans_until(&r, "the admitted spans", |spans| !spans.is_empty()).await;
}

#[test]
fn an_invalid_endpoint_stops_start_up() {
    let (dir, config) = component_dir(&component("http://127.0.0.1:9/"));
    let config = config.to_str().expect("utf-8");
    for (var, value) in [("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"), ("PLINTH_OTLP_ENDPOINT", "ftp://collector")] {
        let out = crate::harness::plinth(&["serve", "--config", config, "--port", "0"], &[(var, value)], dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        assert!(err.contains("otlp_endpoint") && err.contains("PLINTH_001"), "{var}: {err}");
    }
    let out =
        crate::harness::plinth(&["config", "--config", config], &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")], dir.path());
    let text: Value = Value::String(String::from_utf8_lossy(&out.stdout).to_string());
    assert!(text.as_str().is_some_and(|t| t.contains("http://c:4318/v1/traces")), "{text}");
    // `plinth config` names the variable the endpoint came from.
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/t"),
        ("PLINTH_OTLP_ENDPOINT", "http://c:4318"),
    ] {
        let out = crate::harness::plinth(&["config", "--config", config], &[(var, value)], dir.path());
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.starts_with("otlp_endpoint")).unwrap_or_default();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.get(1..3), Some(&["env", var][..]), "{var}: {line}");
    }
}
