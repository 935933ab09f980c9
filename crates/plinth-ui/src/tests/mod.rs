//! Router tests of every page: status codes, what each shows, escaping, access; no socket, on
//! a temporary SQLite store, through the same composition `plinth serve` uses.

mod access;
mod overview;
mod pages;

use crate::router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use plinth_core::component::Component;
use plinth_core::metrics::Metrics;
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, NewRun, Trigger};
use plinth_server::{AppState, Readiness};
use plinth_store::sqlite::{SqliteStore, Synchronous};
use plinth_store::{ClaimRequest, FinishRequest, Store};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

const COMPONENT: &str = r#"
component: {name: shop, version: 1.0.0}
functions:
  - name: echo
    description: Gives its input back.
    handler: {command: {argv: [cat, --secret-flag]}}
    triggers: [{event: order/created}, {cron: "0 3 * * *", timezone: Europe/Paris}]
  - name: lanes
    handler: {http: {url: "https://user:pw@api.example/hook?token=s3cret"}}
    policy: {concurrency: {limit: 1, key: input.tenant}}
    input_schema: {type: object, required: [tenant]}
"#;

/// What signs the test dashboards' sessions.
pub(super) const SECRET: &[u8] = b"a test secret of at least 32 bytes!";
const READ_KEY: &str = "reader-key-0123456789abcdef0123";
const WRITE_KEY: &str = "writer-key-0123456789abcdef0123";

struct Harness {
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    harness_of(COMPONENT)
}

fn harness_of(yaml: &str) -> Harness {
    let component = Component::parse(yaml, "test.yaml", "test.yaml".into(), ".".into()).expect("component");
    let auth = if component.file.auth.is_some() {
        let env = |name: &str| match name {
            "READ_KEY" => Some(READ_KEY.to_string()),
            "WRITE_KEY" => Some(WRITE_KEY.to_string()),
            "POST_KEY" => Some("poster-key-0123456789abcdef01234".to_string()),
            _ => None,
        };
        Some(Arc::new(plinth_server::Auth::from_component(&component, env).expect("auth resolves").expect("auth")))
    } else {
        None
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db"), Synchronous::Off).expect("store"));
    let readiness = Arc::new(Readiness::default());
    readiness.ready();
    let live = Arc::new(plinth_core::component::Live::new(component));
    let state = Arc::new(AppState {
        store,
        inngest: Arc::new(plinth_server::apps::InngestApps::new(live.clone())),
        component: live,
        metrics: Arc::new(Metrics::new("plinth", "shop")),
        wake: Arc::new(tokio::sync::Notify::new()),
        starter: None,
        readiness,
        body_limit: 64 * 1024,
        auth,
        rate_limit: None,
        event_dedup_window: std::time::Duration::from_secs(3600),
        run_tokens: None,
        nats: None,
        inngest_event_key: None,
    });
    Harness { state, _dir: dir }
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> Page {
        let app = plinth_server::router_with(self.state.clone(), "/ui", router(self.state.clone(), "/ui", Some(SECRET)));
        let resp = app.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        Page { status, headers, body: String::from_utf8_lossy(&bytes).to_string() }
    }

    async fn get(&self, uri: &str) -> Page {
        self.send(Request::get(uri).body(Body::empty()).expect("request")).await
    }

    async fn get_with(&self, uri: &str, key: &str) -> Page {
        self.send(Request::get(uri).header("x-api-key", key).body(Body::empty()).expect("request")).await
    }

    /// A queued run of `function` with `input`, its id.
    async fn queued(&self, function: &str, input: Value) -> String {
        let component = self.state.component.get();
        let spec = component.function(function).expect("function").1;
        let run = NewRun::of(spec, input, Trigger::Api, "corr-1", now_micros());
        let id = run.run_id.clone();
        self.state.store.enqueue(run).await.expect("enqueue");
        id
    }

    /// A run of `echo` that succeeded with `output`, its id.
    async fn succeeded(&self, input: Value, output: Value) -> String {
        self.ended(input, Finish::Succeeded(output)).await
    }

    /// A run of `echo` that ended as `finish` says, its id.
    async fn ended(&self, input: Value, finish: Finish) -> String {
        let id = self.queued("echo", input).await;
        let now = now_micros();
        let claim = ClaimRequest {
            owner: "w".into(),
            now,
            lease_until: now + 60_000_000,
            wants: vec![("echo".into(), 10)],
            limit: 10,
            limits: Arc::default(),
        };
        let claimed = self.state.store.claim(claim).await.expect("claim");
        let run = claimed.runs.iter().find(|r| r.run_id == id).expect("claimed");
        let fin = FinishRequest {
            run_id: id.clone(),
            owner: "w".into(),
            attempt: run.attempt,
            finish,
            now: now_micros(),
            duration: std::time::Duration::from_millis(5),
        };
        assert!(self.state.store.finish(fin).await.expect("finish"));
        id
    }
}

fn csp(page: &Page) -> &str {
    page.headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default()
}
