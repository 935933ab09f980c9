//! Router tests through `oneshot`, with no socket, on a temporary SQLite store.

mod errors;
mod idempotency;
mod runs;

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
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("db"), Synchronous::Off).expect("store"));
    let component = Component::parse(yaml, "test.yaml", PathBuf::from("test.yaml"), PathBuf::from(".")).expect("component");
    let readiness = Arc::new(Readiness::default());
    readiness.ready();
    let store: Arc<dyn Store> = sqlite.clone();
    let state = Arc::new(AppState {
        store,
        component: Arc::new(component),
        metrics: Arc::new(Metrics::new("plinth", "hello")),
        wake: Arc::new(tokio::sync::Notify::new()),
        readiness,
        body_limit: 4096,
    });
    Harness { state, sqlite, _dir: dir }
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
