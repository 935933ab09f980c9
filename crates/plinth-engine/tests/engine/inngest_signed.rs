//! Calls of an Inngest function with a signing key set, against a local app that checks the
//! request's signature as the SDK does: signed calls and a signed answer succeed; an answer that
//! is unsigned or signed over other bytes is refused (PLINTH_033); an app refusing the signature
//! rejects the run; an unsigned 502 from a proxy is retried like any 502; a signed answer that
//! breaks the protocol fails with its code.

use crate::harness::{Harness, code, config};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use plinth_core::RunStatus;
use plinth_engine::EngineConfig;
use plinth_inngest::sign::SigningKey;
use serde_json::json;
use std::sync::{Arc, Mutex};

const KEY: &str = "signkey-test-00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn key() -> SigningKey {
    SigningKey::parse(KEY).expect("key")
}

/// Whether each request's signature held, in order.
#[derive(Clone, Default)]
struct Checked(Arc<Mutex<Vec<bool>>>);

/// The app's answer, signed as the SDK signs it: HMAC of the raw body then `t`.
fn signed_answer(status: StatusCode, body: &str, signed_body: &str) -> Response {
    let t = 1_700_000_000;
    // Why: an answer's MAC is over its raw bytes and a request's over their canonical form;
    // the bodies here are already canonical, so both are the same HMAC.
    let header = key().sign_request(signed_body.as_bytes(), t).expect("sign");
    (status, [("x-inngest-signature", header), ("content-type", "application/json".into())], body.to_string()).into_response()
}

async fn app(State(checked): State<Checked>, Path(mode): Path<String>, headers: HeaderMap, body: String) -> Response {
    let sent = headers.get("x-inngest-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let t = sent.split('&').find_map(|p| p.strip_prefix("t=")).and_then(|t| t.parse::<i64>().ok()).unwrap_or(0);
    let holds = key().sign_request(body.as_bytes(), t).is_ok_and(|expected| expected == sent);
    checked.0.lock().expect("checked").push(holds);
    if !holds || mode == "refuse" {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "signature verification failed"}))).into_response();
    }
    let done = "{\"done\":true}";
    match mode.as_str() {
        "good" => signed_answer(StatusCode::OK, done, done),
        "unsigned" => (StatusCode::OK, done).into_response(),
        "tampered" => signed_answer(StatusCode::OK, "{\"done\":false}", done),
        "proxy" => (StatusCode::BAD_GATEWAY, [("x-inngest-no-retry", "true")], "bad gateway").into_response(),
        "broken" => signed_answer(StatusCode::PARTIAL_CONTENT, "{\"op\":\"StepRun\"}", "{\"op\":\"StepRun\"}"),
        "gone" => {
            // The app did not reach the step the call targets (its hashed id, any).
            let gone = "[{\"id\":\"4ee7f6b4d93a9ac1a3c9f7cc6b3d6c4b5a4e1c4d\",\"op\":\"StepNotFound\"}]";
            signed_answer(StatusCode::PARTIAL_CONTENT, gone, gone)
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve() -> (String, Checked) {
    let checked = Checked::default();
    let router = Router::new().route("/{mode}", post(app)).with_state(checked.clone());
    let base = crate::harness::serve_app(router).await;
    (base, checked)
}

fn inngest_fn(name: &str, base: &str, mode: &str) -> String {
    format!(
        "  - name: {name}\n    steps: true\n    handler: {{inngest: {{url: '{base}/{mode}?fnId=app-{name}&stepId=step'}}}}\n    \
         policy: {{retries: {{max_attempts: 2, backoff: {{initial: 10ms, max: 20ms}}}}, timeout: 5s}}\n"
    )
}

fn signing() -> EngineConfig {
    EngineConfig { inngest_signing: Some(Arc::new(key())), ..config() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_calls_with_signed_answers_succeed() {
    let (base, checked) = serve().await;
    let h = Harness::started(&inngest_fn("good", &base, "good"), |_| {}, signing());
    let id = h.enqueue("good", json!({"name": "app/thing.done", "data": {"n": 1.5, "big": 12345678901234567890u64}})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.output, Some(json!({"done": true})));
    assert_eq!(*checked.0.lock().expect("checked"), [true], "the app found Plinth's signature good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_unsigned_or_signed_over_other_bytes_are_not_acted_on() {
    let (base, _) = serve().await;
    let functions = [inngest_fn("unsigned", &base, "unsigned"), inngest_fn("tampered", &base, "tampered")].concat();
    let h = Harness::started(&functions, |_| {}, signing());
    for (name, why) in [("unsigned", "not signed"), ("tampered", "does not verify")] {
        let id = h.enqueue(name, json!({"name": "app/x", "data": {}})).await;
        let run = h.wait_terminal(&id).await;
        assert_eq!((run.status, code(&run)), (RunStatus::Failed, "PLINTH_033"), "{name}: {run:#?}");
        let error = run.error.as_ref().expect("error");
        assert!(error.message.contains(why) && !error.retryable, "{name}: {error:?}");
        assert_eq!(run.attempt, 1, "{name}: not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_refusing_the_signature_rejects_the_run_and_a_proxys_502_is_retried() {
    let (base, checked) = serve().await;
    let functions = [inngest_fn("refuse", &base, "refuse"), inngest_fn("proxy", &base, "proxy")].concat();
    let other = SigningKey::parse(&"ab".repeat(32)).expect("key");
    let h = Harness::started(&functions, |_| {}, signing());
    let id = h.enqueue("refuse", json!({"name": "app/x", "data": {}})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!((run.status, code(&run)), (RunStatus::Failed, "PLINTH_027"), "{run:#?}");
    let message = &run.error.as_ref().expect("error").message;
    assert!(message.contains("refused Plinth's signed call (401)") && message.contains("signing_key_env"), "{message}");

    let id = h.enqueue("proxy", json!({"name": "app/x", "data": {}})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(
        (run.status, code(&run), run.attempt),
        (RunStatus::Failed, "PLINTH_020", 2),
        "retried despite the header: {run:#?}"
    );
    assert!(checked.0.lock().expect("checked").iter().all(|held| *held));

    // A node holding another key: the app refuses every call.
    let h = Harness::started(
        &inngest_fn("good", &base, "good"),
        |_| {},
        EngineConfig { inngest_signing: Some(Arc::new(other)), ..config() },
    );
    let id = h.enqueue("good", json!({"name": "app/x", "data": {}})).await;
    let run = h.wait_terminal(&id).await;
    assert_eq!(code(&run), "PLINTH_027", "{run:#?}");
    assert_eq!(checked.0.lock().expect("checked").last(), Some(&false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_answer_that_breaks_the_protocol_fails_with_its_code() {
    let (base, _) = serve().await;
    let functions = [inngest_fn("broken", &base, "broken"), inngest_fn("gone", &base, "gone")].concat();
    let h = Harness::started(&functions, |_| {}, signing());
    for (name, expected) in [("broken", "PLINTH_050"), ("gone", "PLINTH_058")] {
        let id = h.enqueue(name, json!({"name": "app/x", "data": {}})).await;
        let run = h.wait_terminal(&id).await;
        assert_eq!((run.status, code(&run)), (RunStatus::Failed, expected), "{name}: {run:#?}");
    }
}
