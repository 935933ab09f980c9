//! Access in the browser: signing in with a key, a wrong key refused, a read-only key that
//! sees no buttons.

use crate::browser::{Browser, available, post};
use crate::harness::Served;
use fantoccini::Locator;
use serde_json::json;

const READER: &str = "reader-key-0123456789abcdef0123";
const WRITER: &str = "writer-key-0123456789abcdef0123";

fn serve(dir: &std::path::Path) -> Served {
    let yaml = "component: {name: guarded, version: 1.0.0}\nfunctions:\n  - name: echo\n    handler: {command: {argv: [sleep, '30']}}\n\
                auth:\n  api_keys:\n    - {name: reader, from_env: READ_KEY, scopes: [runs:read]}\n    - {name: writer, from_env: WRITE_KEY, scopes: [admin]}\n";
    std::fs::write(dir.join("component.yaml"), yaml).expect("write the component");
    let config = dir.join("component.yaml");
    let config = config.to_str().expect("utf-8");
    Served::spawn(
        &[
            "serve",
            "--config",
            config,
            "--port",
            "0",
            "--database-url",
            "sqlite://runs.db",
            "--log-level",
            "warn,plinth::serve=info",
        ],
        &[("READ_KEY", READER), ("WRITE_KEY", WRITER)],
        dir,
    )
}

async fn sign_in(b: &Browser, s: &Served, key: &str) {
    b.goto(&s.url("/ui/login")).await;
    b.client.find(Locator::Css("input[name=credential]")).await.expect("the key field").send_keys(key).await.expect("type");
    b.client.find(Locator::Css("form button.primary")).await.expect("sign in").click().await.expect("click");
}

#[tokio::test]
async fn signing_in_works_with_a_key_and_a_wrong_key_is_refused() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve(dir.path());
    let b = Browser::start().await;
    b.goto(&s.url("/ui")).await;
    b.wait_text("Sign in", 10).await;
    assert!(b.client.current_url().await.expect("url").path().ends_with("/ui/login"), "sent to sign in");
    sign_in(&b, &s, "not-a-key-0123456789abcdef01234").await;
    b.wait_text("not valid", 10).await;
    let refused = b.console_errors().await;
    assert!(refused.iter().all(|e| e.contains("401")), "only the refusal itself: {refused:?}");
    sign_in(&b, &s, WRITER).await;
    b.wait_text("Functions", 10).await;
    assert!(b.text("#signed-in").await.contains("writer"));
    assert_eq!(b.console_errors().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_read_only_key_sees_no_buttons() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve(dir.path());
    let run = post(&s.url("/run"), &json!({"function": "echo"}), Some(WRITER)).await;
    let id = run["run_id"].as_str().expect("id").to_string();
    let b = Browser::start().await;
    sign_in(&b, &s, READER).await;
    b.wait_text("read only", 10).await;
    b.goto(&s.url(&format!("/ui/runs/{id}"))).await;
    b.wait_text(&id, 10).await;
    assert!(!b.has("#cancel").await && !b.has("#rerun").await, "no action buttons for runs:read");
}
