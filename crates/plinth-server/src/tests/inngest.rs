//! `POST /e/{event_key}`: Inngest's event API.

use super::*;
use serde_json::json;

const APP: &str = r#"
component: {name: shop, version: '1'}
functions:
  - name: receipt
    handler: {rust: noop}
    triggers: [{event: shop/order.created}]
"#;

fn with_key(h: Harness, key: Option<&str>) -> Harness {
    let mut state = Arc::try_unwrap(h.state).unwrap_or_else(|_| panic!("the state is not shared yet"));
    state.inngest_event_key = key.map(str::to_string);
    Harness { state: Arc::new(state), sqlite: h.sqlite, _dir: h._dir }
}

#[tokio::test]
async fn events_from_the_sdk_are_stored_and_start_runs() {
    let h = harness_with(APP);
    // As inngest-py 0.5 sends them: always an array, `ts` in milliseconds, `id` only when set.
    let body = r#"[{"name":"shop/order.created","data":{"amount":5},"id":"order-1","ts":1796306559154},
                   {"name":"shop/order.created","data":{},"ts":0,"user":{"id":"u"},"v":"1"}]"#;
    let r = h.post_json("/e/NO_EVENT_KEY_SET", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["status"], 200);
    let ids = r.json["ids"].as_array().expect("ids").clone();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], "order-1", "the sender's id is the event's id");
    let stored = h.get(&format!("/events/{}", ids[1].as_str().expect("id"))).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.json);
    assert!(stored.json["ts"].as_i64().is_some_and(|t| t > 1_700_000_000_000), "a zero ts is now: {}", stored.json);
    let runs = h.get("/runs?trigger=event").await;
    assert_eq!(runs.json["runs"].as_array().map(Vec::len), Some(2), "each event started its run");
    let again = h.post_json("/e/any", r#"{"name":"shop/order.created","data":{},"id":"order-1"}"#).await;
    assert_eq!((again.status, again.json["ids"].clone()), (StatusCode::OK, json!(["order-1"])), "one object works too");
    let runs = h.get("/runs?trigger=event").await;
    assert_eq!(runs.json["runs"].as_array().map(Vec::len), Some(2), "an id seen before starts nothing again");
}

#[tokio::test]
async fn bad_events_are_refused_in_the_sdks_shape() {
    let h = harness_with(APP);
    let not_json = h.post_json("/e/k", "{oops").await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!((not_json.json["status"].clone(), not_json.json["ids"].clone()), (json!(400), json!([])));
    assert!(not_json.json["error"].as_str().is_some_and(|e| e.contains("not JSON")), "{}", not_json.json);
    let bad_name = h.post_json("/e/k", r#"[{"name":"Not An Event","data":{}}]"#).await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
    assert!(bad_name.json["error"].as_str().is_some_and(|e| e.contains("/0/name") && e.contains("PLINTH_")), "{}", bad_name.json);
    let reserved = h.post_json("/e/k", r#"[{"name":"inngest/function.failed","data":{}}]"#).await;
    assert_eq!(reserved.status, StatusCode::BAD_REQUEST);
    assert!(reserved.json["error"].as_str().is_some_and(|e| e.contains("Inngest keeps")), "{}", reserved.json);
    let not_event = h.post_json("/e/k", "[42]").await;
    assert_eq!(not_event.status, StatusCode::BAD_REQUEST, "{}", not_event.json);
    assert_eq!(h.get("/events").await.json["events"].as_array().map(Vec::len), Some(0), "nothing was stored");
}

#[tokio::test]
async fn the_event_key_is_checked_when_one_is_set() {
    let h = with_key(harness_with(APP), Some("evt-key-123"));
    let wrong = h.post_json("/e/other", r#"[{"name":"shop/order.created","data":{}}]"#).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json["error"], "Event key not found");
    let right = h.post_json("/e/evt-key-123", r#"[{"name":"shop/order.created","data":{}}]"#).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.json);
}

#[tokio::test]
async fn with_auth_and_no_event_key_every_key_is_refused() {
    let h = harness_with_auth(
        "  api_keys:\n    - {name: ci, from_env: CI_KEY, scopes: [admin]}\n",
        &[("CI_KEY", "ci-key-0123456789abcdef0123456789")],
    );
    let r = h.post_json("/e/whatever", r#"[{"name":"hello/x.y","data":{}}]"#).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.json);
    assert!(r.json["error"].as_str().is_some_and(|e| e.contains("inngest.event_key_env")), "{}", r.json);
    let h = with_key(h, Some("evt-key-123"));
    let r = h.post_json("/e/evt-key-123", r#"[{"name":"hello/x.y","data":{}}]"#).await;
    assert_eq!(r.status, StatusCode::OK, "the event key is the credential, not an API key: {}", r.json);
}
