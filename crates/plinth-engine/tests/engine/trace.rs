//! The trace a run was accepted in reaches its handlers: an HTTP handler's `traceparent` and a
//! command's `TRACEPARENT` carry the stored trace id with a new parent id on every attempt; a
//! run accepted without one gets the trace its run id names. The `tracestate` stored with it
//! rides along (`tracestate`, `TRACESTATE`), and nothing of the kind without one.

use crate::harness::{Harness, command_fn, config};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use plinth_core::RunStatus;
use plinth_store::Enqueued;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const SENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Each request's `traceparent`, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

async fn endpoint(State(seen): State<Seen>, headers: HeaderMap) -> axum::Json<Value> {
    let tp = headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let ts = headers.get("tracestate").and_then(|v| v.to_str().ok());
    seen.0.lock().expect("seen").push(ts.map_or(tp.clone(), |ts| format!("{tp} {ts}")));
    axum::Json(json!("ok"))
}

async fn serve() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new().route("/", post(endpoint)).with_state(seen.clone());
    let base = crate::harness::serve_app(app).await;
    (format!("{base}/"), seen)
}

const STATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

/// Enqueues a run of `function` carrying `traceparent` (and, with it, [`STATE`]); its id.
async fn enqueue_traced(h: &Harness, function: &str, traceparent: Option<&str>) -> String {
    let mut run = h.new_run(function, json!({}), plinth_core::timefmt::now_micros());
    run.traceparent = traceparent.map(str::to_string);
    run.tracestate = traceparent.map(|_| STATE.to_string());
    let Enqueued::Created(run) = h.store.enqueue(run).await.expect("enqueue") else { panic!("created") };
    if let Some(engine) = &h.engine {
        engine.waker().notify_one();
    }
    run.run_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_handler_continues_the_stored_trace() {
    let (url, seen) = serve().await;
    let functions = format!("  - name: web\n    handler:\n      http: {{url: '{url}'}}\n");
    let h = Harness::started(&functions, |_| {}, config());
    let traced = enqueue_traced(&h, "web", Some(SENT)).await;
    assert_eq!(h.wait_terminal(&traced).await.status, RunStatus::Succeeded);
    let plain = enqueue_traced(&h, "web", None).await;
    assert_eq!(h.wait_terminal(&plain).await.status, RunStatus::Succeeded);
    let seen = seen.0.lock().expect("seen").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{seen:?}");
    assert!(seen[0].ends_with(&format!("-01 {STATE}")), "the tracestate rides along: {seen:?}");
    assert!(!seen[1].contains(' '), "no tracestate without a stored one: {seen:?}");
    assert_ne!(&seen[0][36..52], "00f067aa0ba902b7", "a parent id of the attempt's own");
    assert_eq!(&seen[1][3..35], &plinth_core::ids::traceparent(&plain)[3..35], "a run without a trace: its run id's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_gets_the_trace_in_its_environment() {
    let script = r#"printf '"%s|%s|%s"' "$TRACEPARENT" "${TRACESTATE-unset}" "$PLINTH_RUN_ID""#;
    let h = Harness::started(&command_fn("cmd", &["sh", "-c", script], ""), |_| {}, config());
    let id = enqueue_traced(&h, "cmd", Some(SENT)).await;
    let run = h.wait_terminal(&id).await;
    let got = run.output.as_ref().and_then(Value::as_str).unwrap_or_else(|| panic!("{run:#?}"));
    let parts: Vec<&str> = got.split('|').collect();
    assert!(parts[0].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && parts[0] != SENT, "{got}");
    assert_eq!(parts[1..], [STATE, id.as_str()], "TRACESTATE as stored: {got}");
    let plain = enqueue_traced(&h, "cmd", None).await;
    let run = h.wait_terminal(&plain).await;
    let got = run.output.as_ref().and_then(Value::as_str).unwrap_or_else(|| panic!("{run:#?}"));
    assert!(got.contains("|unset|"), "no TRACESTATE without one: {got}");
    let stored = h.get(&id).await;
    assert_eq!(stored.traceparent.as_deref(), Some(SENT), "the stored trace stays as accepted");
}
