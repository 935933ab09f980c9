//! Router tests through `oneshot`, with no socket, on a temporary SQLite store.

mod auth;
mod errors;
mod events;
mod flow;
mod fuzz;
mod idempotency;
mod inngest;
mod jwt;
mod limits;
mod openapi;
mod register;
mod runs;
mod start_events;
mod start_now;

use crate::{AppState, Readiness, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use plinth_core::component::Component;
use plinth_core::metrics::Metrics;
use plinth_store::Store;
use plinth_store::sqlite::{SqliteStore, Synchronous};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

const COMPONENT: &str = r#"
component: {name: hello, version: 1.2.3}
functions:
  - name: echo
    handler: {command: {argv: [cat]}}
  - name: resize
    handler: {rust: noop}
    input_schema:
      type: object
      properties: {width: {type: integer, minimum: 1}}
      required: [width]
"#;

pub(crate) struct Harness {
    pub(crate) state: Arc<AppState>,
    pub(crate) sqlite: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

pub(crate) fn harness_with(yaml: &str) -> Harness {
    let component = Component::parse(yaml, "test.yaml", PathBuf::from("test.yaml"), PathBuf::from(".")).expect("component");
    harness_of(component, None)
}

/// Test keys and secrets (`tests/fixtures`).
pub(crate) fn fixtures() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The test component with `auth` (the YAML of the `auth:` section's body) and the variables
/// `env`; relative files are looked up in `tests/fixtures`.
pub(crate) fn harness_with_auth(auth: &str, env: &[(&str, &str)]) -> Harness {
    let yaml = format!("{COMPONENT}auth:\n{auth}");
    let fixtures = fixtures();
    let component = Component::parse(&yaml, "test.yaml", fixtures.join("test.yaml"), fixtures).expect("component");
    let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_string());
    let auth = crate::Auth::from_component(&component, lookup).expect("auth resolves").expect("auth configured");
    harness_of(component, Some(Arc::new(auth)))
}

fn harness_of(component: Component, auth: Option<Arc<crate::Auth>>) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("db"), Synchronous::Off).expect("store"));
    let readiness = Arc::new(Readiness::default());
    readiness.ready();
    let store: Arc<dyn Store> = sqlite.clone();
    let live = Arc::new(plinth_core::component::Live::new(component));
    let state = Arc::new(AppState {
        store,
        inngest: Arc::new(crate::apps::InngestApps::new(live.clone())),
        component: live,
        metrics: Arc::new(Metrics::new("plinth", "hello")),
        wake: Arc::new(tokio::sync::Notify::new()),
        starter: None,
        readiness,
        body_limit: 4096,
        auth,
        rate_limit: None,
        event_dedup_window: std::time::Duration::from_secs(24 * 3600),
        run_tokens: Some(Arc::new(plinth_core::tokens::RunTokens::default())),
        nats: None,
        inngest_event_key: None,
    });
    Harness { state, sqlite, _dir: dir }
}

/// The test component with a rate limit of `per_second` requests and `burst` at once.
pub(crate) fn harness_with_rate(per_second: u32, burst: u32) -> Harness {
    let mut h = harness();
    let mut state = Arc::try_unwrap(h.state).unwrap_or_else(|_| panic!("the state is not shared yet"));
    let nz = |n: u32| std::num::NonZeroU32::new(n).expect("not zero");
    state.rate_limit = Some(Arc::new(crate::RateLimit::new(nz(per_second), nz(burst))));
    h.state = Arc::new(state);
    h
}

pub(crate) fn harness() -> Harness {
    harness_with(COMPONENT)
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) json: Value,
}

impl Harness {
    pub(crate) async fn send(&self, req: Request<Body>) -> Reply {
        let resp = router(self.state.clone()).oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).to_string()));
        Reply { status, headers, json }
    }

    pub(crate) async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).expect("request")).await
    }

    pub(crate) async fn post_json(&self, uri: &str, body: &str) -> Reply {
        self.send(
            Request::post(uri).header("content-type", "application/json").body(Body::from(body.to_string())).expect("request"),
        )
        .await
    }

    pub(crate) async fn submit(&self, body: &str) -> String {
        let r = self.post_json("/run", body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
        r.json["run_id"].as_str().expect("run_id").to_string()
    }
}

pub(crate) fn assert_problem(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.json);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.json["code"], code, "{}", r.json);
    assert_eq!(r.json["status"], status);
    assert_eq!(r.json["type"], format!("/errors/{code}"));
    assert!(r.json["correlation_id"].as_str().is_some_and(|c| !c.is_empty()), "{}", r.json);
}
