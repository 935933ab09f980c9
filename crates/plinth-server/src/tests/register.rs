//! `POST /fn/register`: an Inngest app's functions become the component's.

use super::*;
use serde_json::json;

const APP: &str = r#"
component: {name: shop, version: '1'}
functions:
  - name: receipt
    handler: {rust: noop}
    triggers: [{event: shop/order.created}]
"#;

/// What inngest 0.5.19 (Python) registers for two functions using every option it has.
fn fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("../../../plinth-inngest/fixtures/register.json")).expect("JSON")
}

fn names(r: &Reply) -> Vec<String> {
    r.json["functions"].as_array().expect("functions").iter().map(|f| f["name"].as_str().unwrap_or("").to_string()).collect()
}

#[tokio::test]
async fn an_apps_functions_are_served_at_once_and_replaced_on_the_next_registration() {
    let h = harness_with(APP);
    let r = h.post_json("/fn/register", &fixture().to_string()).await;
    assert_eq!((r.status, r.json.clone()), (StatusCode::OK, json!({"ok": true, "modified": true})));
    let fns = h.get("/functions").await;
    assert_eq!(names(&fns), ["receipt", "shop-order-flow", "shop-nightly"], "the file's own first");
    let flow = &fns.json["functions"][1];
    assert_eq!(flow["handler"], "inngest");
    assert_eq!(flow["policy"]["throttle"]["limit"], 5);
    let again = h.post_json("/fn/register", &fixture().to_string()).await;
    assert_eq!(again.json, json!({"ok": true, "modified": false}), "the same functions: nothing changed");

    let mut fewer = fixture();
    fewer["functions"].as_array_mut().expect("list").truncate(1);
    let r = h.post_json("/fn/register", &fewer.to_string()).await;
    assert_eq!(r.json["modified"], true);
    assert_eq!(names(&h.get("/functions").await), ["receipt", "shop-order-flow"], "the app's new list replaces its old one");
    let run = h
        .post_json("/run", r#"{"function": "shop-order-flow", "input": {"name": "shop/order.created", "data": {"total": 20}}}"#)
        .await;
    assert_eq!(run.status, StatusCode::ACCEPTED, "a registered function takes runs: {}", run.json);
    assert_eq!(h.state.inngest.registered(), vec![("shop".to_string(), vec!["shop-order-flow".to_string()])]);
}

#[tokio::test]
async fn a_registration_that_cannot_be_served_changes_nothing_and_says_why() {
    let h = harness_with(APP);
    let mut scoped = fixture();
    scoped["functions"][0]["concurrency"][0]["scope"] = json!("account");
    let r = h.post_json("/fn/register", &scoped.to_string()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let error = r.json["error"].as_str().expect("error");
    assert!(error.contains("functions[0].concurrency[0].scope") && error.contains("app `shop`"), "{error}");

    let mut taken = fixture();
    taken["functions"][0]["id"] = json!("receipt");
    let r = h.post_json("/fn/register", &taken.to_string()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["error"].as_str().is_some_and(|e| e.contains("receipt") && e.contains("twice")), "{}", r.json);

    let r = h.post_json("/fn/register", "{not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["error"].is_string());
    let r = h.post_json("/fn/register", r#"{"appname": "shop", "url": "http://a/x", "functions": [], "extra": 1}"#).await;
    assert!(r.json["error"].as_str().is_some_and(|e| e.contains("extra")), "an unknown field is named: {}", r.json);
    assert_eq!(names(&h.get("/functions").await), ["receipt"], "nothing was added");
}

#[tokio::test]
async fn with_access_control_an_app_cannot_register_without_a_signing_key() {
    let h = harness_with_auth(
        "  api_keys:\n    - {name: ops, from_env: OPS_KEY, scopes: [admin]}\n",
        &[("OPS_KEY", "ops-key-0123456789")],
    );
    let r = h.post_json("/fn/register", &fixture().to_string()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.json["error"].as_str().is_some_and(|e| e.contains("signing key")), "{}", r.json);
}

const SIGNING_KEY: &str = "signkey-prod-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// `h` with the apps' signing key set.
fn signed(mut h: Harness) -> Harness {
    let mut state = Arc::try_unwrap(h.state).unwrap_or_else(|_| panic!("the state is not shared yet"));
    let key = plinth_inngest::sign::SigningKey::parse(SIGNING_KEY).expect("key");
    state.inngest = Arc::new(crate::apps::InngestApps::new(state.component.clone()).with_signing(Some(Arc::new(key))));
    h.state = Arc::new(state);
    h
}

async fn register_with(h: &Harness, authorization: Option<&str>) -> Reply {
    let mut req = Request::post("/fn/register").header("content-type", "application/json");
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    h.send(req.body(Body::from(fixture().to_string())).expect("request")).await
}

#[tokio::test]
async fn with_a_signing_key_an_app_registers_with_its_bearer_hash_even_with_access_control() {
    let auth = "  api_keys:\n    - {name: ops, from_env: OPS_KEY, scopes: [admin]}\n";
    let h = signed(harness_with_auth(auth, &[("OPS_KEY", "ops-key-0123456789")]));
    // The SDK's own hash of the key (inngest 0.5.19, transforms.hash_signing_key).
    let r = register_with(&h, Some("Bearer 4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837")).await;
    assert_eq!((r.status, r.json), (StatusCode::OK, json!({"ok": true, "modified": true})));
    assert_eq!(h.state.inngest.registered()[0].0, "shop");
}

#[tokio::test]
async fn with_a_signing_key_a_registration_without_it_or_with_another_is_refused() {
    let h = signed(harness_with(APP));
    let r = register_with(&h, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.json["error"].as_str().is_some_and(|e| e.contains("no Authorization header")), "{}", r.json);
    let other = plinth_inngest::sign::SigningKey::parse(&"ab".repeat(32)).expect("key");
    let r = register_with(&h, Some(&other.bearer())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.json["error"].as_str().is_some_and(|e| e.contains("does not carry")), "{}", r.json);
    let r = register_with(&h, Some(&format!("Bearer {SIGNING_KEY}"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the key itself is not its hash");
    assert!(h.state.inngest.registered().is_empty(), "nothing was registered");
    assert_eq!(names(&h.get("/functions").await), ["receipt"]);
}

#[tokio::test]
async fn listed_apps_make_health_degraded_until_synced() {
    let yaml = format!("{APP}inngest: {{apps: ['http://127.0.0.1:9/api/inngest']}}\n");
    let h = harness_with(&yaml);
    let health = h.get("/health").await;
    assert_eq!((health.status, health.json["status"].as_str()), (StatusCode::OK, Some("degraded")));
    assert!(health.json["checks"]["inngest"]["error"].as_str().is_some_and(|e| e.contains("not synced yet")), "{}", health.json);
    h.state.inngest.synced("http://127.0.0.1:9/api/inngest", crate::apps::SyncState::Failed("connection refused".into()));
    let health = h.get("/health").await;
    assert!(health.json["checks"]["inngest"]["error"].as_str().is_some_and(|e| e.contains("connection refused")));
    h.state.inngest.synced("http://127.0.0.1:9/api/inngest", crate::apps::SyncState::Synced);
    let health = h.get("/health").await;
    assert_eq!(
        (health.json["status"].as_str(), health.json["checks"]["inngest"]["status"].as_str()),
        (Some("healthy"), Some("ok"))
    );
    assert!(h.get("/health").await.json["checks"].get("inngest").is_some());
    assert!(harness_with(APP).get("/health").await.json["checks"].get("inngest").is_none(), "no apps listed, no check");
}
