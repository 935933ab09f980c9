//! The example app in production mode (the real Inngest Python SDK, no `INNGEST_DEV`): it
//! checks the signature of every request and signs its answers; it registers with the Bearer
//! hash of its key. With the same key on both sides, an order runs to its end; with another
//! key, each side refuses the other.

use crate::harness::{Served, client, send, wait_status};
use crate::inngest::{sdk_python, sdk_send_production};
use crate::inngest_app::{App, free_port, until, waiting_for_approval};
use serde_json::{Value, json};
use std::path::PathBuf;

const APP_KEY: &str = "signkey-prod-1f2e3d4c5b6a79880f1e2d3c4b5a69788f9e0d1c2b3a4958677f8e9d0c1b2a39";
const OTHER_KEY: &str = "signkey-prod-aaaabbbbccccddddeeeeffff00001111aaaabbbbccccddddeeeeffff00001111";
const EVENT_KEY: &str = "shop-event-key-1";

/// The example's component-signed.yaml on the given ports.
fn signed_component(plinth_port: u16, app_port: u16) -> (tempfile::TempDir, PathBuf) {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/inngest-fastapi/component-signed.yaml"))
            .expect("the example's component-signed.yaml");
    let text =
        text.replace("port: 8000", &format!("port: {plinth_port}")).replace("127.0.0.1:8001", &format!("127.0.0.1:{app_port}"));
    crate::harness::component_dir(&text)
}

async fn inngest_check(c: &reqwest::Client, s: &Served) -> Value {
    let (_, h) = send(c.get(s.url("/health"))).await;
    h["checks"]["inngest"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_app_runs_on_plinth_holding_the_same_signing_key() {
    let Some(python) = sdk_python() else { return };
    let (plinth_port, app_port) = (free_port(), free_port());
    let (dir, config) = signed_component(plinth_port, app_port);
    let env = [("SHOP_SIGNING_KEY", APP_KEY), ("SHOP_EVENT_KEY", EVENT_KEY)];
    let s = Served::spawn(&["serve", "--config", config.to_str().expect("utf-8")], &env, dir.path());
    let app = App::start_production(&python, app_port, &s.url(""), APP_KEY);
    let c = client();
    until("the app is synced", 40, || async {
        let check = inngest_check(&c, &s).await;
        (check["status"] == "ok").then_some(check)
    })
    .await;
    let (ok, _, err) = sdk_send_production(
        &python,
        &s.url(""),
        EVENT_KEY,
        &json!([{"name": "shop/order.created", "data": {"order": "o-p", "note": "café ✓", "n": 1.0}}]),
    );
    assert!(ok, "the SDK sent the event in production mode: {err}");
    let id = waiting_for_approval(&c, &s, "o-p").await;
    let approved = json!([{"name": "shop/order.approved", "data": {"order": "o-p", "by": "cy"}}]);
    let (ok, _, err) = sdk_send_production(&python, &s.url(""), EVENT_KEY, &approved);
    assert!(ok, "{err}");
    let run = wait_status(&c, &s, &id, "succeeded").await;
    assert_eq!((run["output"]["by"].as_str(), run["output"]["parcel"]["parcel"].as_str()), (Some("cy"), Some("P-o-p")), "{run}");
    assert_eq!(app.reserved("o-p"), 1);
    let (ok, _, err) = sdk_send_production(&python, &s.url(""), "not-the-key", &approved);
    assert!(!ok && err.contains("Event key not found"), "a wrong event key is refused: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_signing_key_is_refused_both_ways() {
    let Some(python) = sdk_python() else { return };
    let (plinth_port, app_port) = (free_port(), free_port());
    let (dir, config) = signed_component(plinth_port, app_port);
    let config = config.to_str().expect("utf-8").to_string();
    let env = [("SHOP_SIGNING_KEY", OTHER_KEY), ("SHOP_EVENT_KEY", EVENT_KEY)];
    let s = Served::spawn(&["serve", "--config", &config], &env, dir.path());
    let _app = App::start_production(&python, app_port, &s.url(""), APP_KEY);
    let c = client();

    // The app registers with the hash of its own key: Plinth refuses it, and health says why.
    let check = until("the sync is refused", 40, || async {
        let check = inngest_check(&c, &s).await;
        check["error"].as_str().is_some_and(|e| e.contains("Bearer hash")).then_some(check)
    })
    .await;
    assert_eq!(check["status"], "failing", "{check}");
    let out = crate::harness::plinth(&["inngest", "sync", "--config", &config], &env, dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("not synced") && text.contains("Bearer hash"), "{text}");
    let (_, fns) = send(c.get(s.url("/functions"))).await;
    assert!(!fns.to_string().contains("shop-ship"), "nothing of the app is served: {fns}");

    // Served anyway (registered with Plinth's own key), its calls are refused by the app.
    let key = plinth_inngest::sign::SigningKey::parse(OTHER_KEY).expect("key");
    let url = format!("http://127.0.0.1:{app_port}/api/inngest?fnId=shop-ship&stepId=step");
    let registration = json!({"appname": "shop", "url": format!("http://127.0.0.1:{app_port}/api/inngest"), "functions": [
        {"id": "shop-ship", "name": "ship", "triggers": [{"event": "shop/shipping.requested"}],
         "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http", "url": url}}}}]});
    let (code, answer) = send(c.post(s.url("/fn/register")).header("authorization", key.bearer()).json(&registration)).await;
    assert_eq!((code, answer["ok"].as_bool()), (200, Some(true)), "{answer}");
    let (code, started) = send(
        c.post(s.url("/run"))
            .json(&json!({"function": "shop-ship", "input": {"name": "shop/shipping.requested", "data": {"order": "o-w"}}})),
    )
    .await;
    assert_eq!(code, 202, "{started}");
    let id = started["run_id"].as_str().expect("id");
    let run = wait_status(&c, &s, id, "failed").await;
    assert_eq!(run["error"]["code"], "PLINTH_027", "{run}");
    let message = run["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("refused Plinth's signed call (401)"), "{message}");
}
