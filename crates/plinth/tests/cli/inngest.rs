//! Inngest's event API against the real `inngest` Python SDK (pinned, in a virtual environment
//! made under `target/` on first use): an unchanged sender's events reach Plinth and start runs.

use crate::harness::{Served, client, component_dir, python3_available, send};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The example app's pinned packages (the SDK, FastAPI, uvicorn, structlog): what the tests hold
/// Plinth to.
pub(crate) const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/inngest-fastapi/requirements.txt");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cli/fixtures/inngest_send.py");
/// Held while the environment is checked and made: tests run side by side, and two `venv`s
/// made at once in one folder fail ("File exists", seen in CI).
static MAKING: Mutex<()> = Mutex::new(());

/// The virtual environment's python with the packages installed, made once per set of pins;
/// `None` (a loud skip, a failure under `CI=true`) when it cannot be made.
pub(crate) fn sdk_python() -> Option<PathBuf> {
    if !python3_available("Inngest's SDK against Plinth") {
        return None;
    }
    let venv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/inngest-venv"));
    let python = venv.join("bin/python");
    let pins = std::fs::read_to_string(REQUIREMENTS).expect("the example's requirements.txt");
    let tag: String = pins.split_whitespace().collect::<Vec<_>>().join("+").replace(['=', '/'], "_");
    let ready = venv.join(format!("{tag}.ok"));
    // Why: a panic under the lock (a failed install in CI) should not show as a poisoned lock
    // in every later test; the marker is written last, so they try again.
    let _making = MAKING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !ready.exists() {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success())
            && Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS])
                .status()
                .is_ok_and(|s| s.success());
        if !made {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must test Inngest's SDK: could not install {pins}");
            eprintln!("SKIPPED: could not make a virtual environment with {pins}");
            return None;
        }
        std::fs::write(&ready, "").expect("mark the environment made");
    }
    Some(python)
}

/// Sends `events` with the SDK's client in dev mode (`INNGEST_DEV`).
pub(crate) fn sdk_send(python: &PathBuf, plinth: &str, key: &str, events: &Value) -> (bool, String, String) {
    sdk_send_in(python, ("INNGEST_DEV", plinth), key, events)
}

/// Sends `events` with the SDK's client in production mode (`INNGEST_BASE_URL`).
pub(crate) fn sdk_send_production(python: &PathBuf, plinth: &str, key: &str, events: &Value) -> (bool, String, String) {
    sdk_send_in(python, ("INNGEST_BASE_URL", plinth), key, events)
}

fn sdk_send_in(python: &PathBuf, (var, plinth): (&str, &str), key: &str, events: &Value) -> (bool, String, String) {
    let out = Command::new(python)
        .arg(SCRIPT)
        .arg(key)
        .arg(events.to_string())
        .env_remove("INNGEST_DEV")
        .env(var, plinth)
        .env_remove("INNGEST_EVENT_KEY")
        .output()
        .expect("run the SDK's script");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

const COMPONENT: &str = "component: {name: shop, version: 0.1.0}
inngest: {event_key_env: SHOP_EVENT_KEY}
functions:
  - name: receipt
    handler: {command: {argv: [cat]}}
    triggers: [{event: shop/order.created}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_events_start_runs_and_its_errors_are_the_sdks() {
    let Some(python) = sdk_python() else { return };
    let (dir, config) = component_dir(COMPONENT);
    let config = config.to_str().expect("utf-8").to_string();
    let s = Served::spawn(&["serve", "--config", &config, "--port", "0"], &[("SHOP_EVENT_KEY", "shop-key-1")], dir.path());
    let base = s.url("");
    let events = json!([{"name": "shop/order.created", "data": {"n": 1}, "id": "order-1"}, {"name": "shop/order.created", "data": {"n": 2}}]);
    let (ok, out, err) = sdk_send(&python, &base, "shop-key-1", &events);
    assert!(ok, "the SDK sent: {err}");
    let ids: Vec<String> = serde_json::from_str(out.trim()).expect("the ids the SDK returned");
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], "order-1");
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = send(c.get(s.url("/runs?trigger=event&status=succeeded"))).await;
        let runs = page["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() == 2 {
            let inputs: Vec<Value> = runs.iter().map(|r| r["input"]["data"]["n"].clone()).collect();
            assert!(inputs.contains(&json!(1)) && inputs.contains(&json!(2)), "{inputs:?}");
            break;
        }
        assert!(Instant::now() < deadline, "two runs did not succeed: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (ok, _, err) = sdk_send(&python, &base, "wrong-key", &events);
    assert!(!ok && err.contains("Event key not found"), "a wrong key is the SDK's error: {err}");
    let (ok, _, err) = sdk_send(&python, &base, "shop-key-1", &json!([{"name": "Shop Order", "data": {}}]));
    assert!(!ok && err.contains("name"), "a bad name is the SDK's error: {err}");
    let (_, page) = send(c.get(s.url("/events"))).await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(2), "nothing more was stored: {page}");
}

#[test]
fn a_missing_or_misnamed_event_key_stops_start_up() {
    let (dir, config) = component_dir(COMPONENT);
    let config = config.to_str().expect("utf-8");
    let out = crate::harness::plinth(&["serve", "--config", config, "--port", "0"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("inngest.event_key_env") && err.contains("SHOP_EVENT_KEY") && err.contains("PLINTH_001"), "{err}");
    let (dir, config) = component_dir(&COMPONENT.replace("SHOP_EVENT_KEY", "shop key"));
    let out = crate::harness::plinth(&["serve", "--config", config.to_str().expect("utf-8"), "--port", "0"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inngest.event_key_env"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_missing_or_invalid_signing_key_stops_start_up_and_sync_without_showing_it() {
    let text = COMPONENT
        .replace("{event_key_env: SHOP_EVENT_KEY}", "{signing_key_env: SHOP_SIGNING_KEY, apps: ['http://127.0.0.1:9/x']}");
    let (dir, config) = component_dir(&text);
    let config = config.to_str().expect("utf-8");
    for args in [&["serve", "--config", config, "--port", "0"][..], &["inngest", "sync", "--config", config][..]] {
        let out = crate::harness::plinth(args, &[], dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("inngest.signing_key_env") && err.contains("SHOP_SIGNING_KEY") && err.contains("PLINTH_001"),
            "{err}"
        );
        let bad = "signkey-prod-not-hex-at-all-secret";
        let out = crate::harness::plinth(args, &[("SHOP_SIGNING_KEY", bad)], dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("hex digits") && err.contains("PLINTH_001") && !err.contains(bad), "{err}");
    }
}
