//! Access control with API keys: scopes per route, public routes, credentials in the query.

use super::*;
use axum::Json;
use axum::routing::get;
use plinth_store::ListFilter;
use serde_json::json;
use sha2::{Digest, Sha256};

pub(crate) const WRITER: &str = "writer-key-0123456789";
const READER: &str = "reader-key-0123456789";
const ROOT: &str = "root-key-0123456789abc";

fn keys_yaml(public: Option<&str>) -> String {
    let root_digest: String = Sha256::digest(ROOT.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let mut yaml = format!(
        "  api_keys:\n    - {{name: writer, from_env: WRITER_KEY, scopes: [runs:write]}}\n    - {{name: reader, from_env: READER_KEY, scopes: [runs:read]}}\n    - {{name: root, sha256: {root_digest}, scopes: [admin]}}\n"
    );
    if let Some(p) = public {
        yaml.push_str(&format!("  public: {p}\n"));
    }
    yaml
}

fn keyed_with(public: Option<&str>) -> Harness {
    harness_with_auth(&keys_yaml(public), &[("WRITER_KEY", WRITER), ("READER_KEY", READER)])
}

fn keyed() -> Harness {
    keyed_with(None)
}

/// A request with an optional `(header, value)` credential and an optional JSON body.
pub(crate) fn req(method: &str, uri: &str, credential: Option<(&str, &str)>, body: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some((name, value)) = credential {
        b = b.header(name, value);
    }
    match body {
        Some(body) => b.header("content-type", "application/json").body(Body::from(body.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("request")
}

pub(crate) fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

/// Sends `req` with a credential given as an owned header value.
pub(crate) async fn send_as(h: &Harness, method: &str, uri: &str, cred: Option<(&str, String)>, body: Option<&str>) -> Reply {
    h.send(req(method, uri, cred.as_ref().map(|(n, v)| (*n, v.as_str())), body)).await
}

const ECHO: &str = r#"{"function":"echo","input":{"n":1}}"#;

async fn stored_runs(h: &Harness) -> usize {
    h.state.store.list(ListFilter { limit: 100, ..ListFilter::default() }).await.expect("list").runs.len()
}

/// Answers `GET /runs` with the principal the middleware put in the request.
pub(crate) async fn whoami(h: &Harness, cred: Option<(&str, String)>) -> Reply {
    let app = axum::Router::new()
        .route(
            "/runs",
            get(|axum::Extension(p): axum::Extension<crate::auth::Principal>| async move {
                Json(json!({"name": p.name, "scopes": p.scopes, "kind": format!("{:?}", p.kind)}))
            }),
        )
        .layer({
            let state = h.state.clone();
            crate::check::Check::new(move |req: &mut axum::extract::Request| crate::auth::enforce(&state, req))
        });
    let resp = app.oneshot(req("GET", "/runs", cred.as_ref().map(|(n, v)| (*n, v.as_str())), None)).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Reply { status, headers, json: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

#[tokio::test]
async fn keys_with_the_right_scope_are_let_through() {
    let h = keyed();
    let r = send_as(&h, "POST", "/run", bearer(WRITER), Some(ECHO)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let id = r.json["run_id"].as_str().expect("run_id").to_string();
    for uri in [format!("/runs/{id}"), "/runs".into(), format!("/runs/{id}/logs"), "/functions".into()] {
        let r = h.send(req("GET", &uri, Some(("x-api-key", READER)), None)).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.json);
    }
    let r = h.send(req("POST", &format!("/runs/{id}/cancel"), Some(("authorization", &format!("bearer {WRITER}"))), None)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "the scheme is case-insensitive: {}", r.json);
}

#[tokio::test]
async fn missing_credentials_are_401_with_a_challenge() {
    let h = keyed();
    let r = h.post_json("/run", ECHO).await;
    assert_problem(&r, 401, "PLINTH_030");
    assert_eq!(r.headers["www-authenticate"], r#"Bearer realm="plinth""#);
    assert_eq!(stored_runs(&h).await, 0, "nothing was enqueued");
    assert_problem(&h.get("/runs").await, 401, "PLINTH_030");
    assert_problem(&h.get("/functions").await, 401, "PLINTH_030");
    assert_problem(&h.get("/nope").await, 401, "PLINTH_030");
    let metrics = h.get("/metrics").await.json.as_str().expect("text").to_string();
    assert!(metrics.contains(r#"error_type="Unauthenticated""#), "{metrics}");
}

#[tokio::test]
async fn unknown_and_malformed_credentials_are_401() {
    let h = keyed();
    let cases: Vec<(&str, String)> = vec![
        ("authorization", "Bearer not-a-known-key-012345".into()),
        ("authorization", format!("Bearer {}", WRITER.to_ascii_uppercase())),
        ("authorization", format!("Basic {WRITER}")),
        ("authorization", "Bearer ".into()),
        ("authorization", WRITER.into()),
        ("x-api-key", "not-a-known-key-012345".into()),
        ("x-api-key", format!("{WRITER}x")),
    ];
    for (name, value) in cases {
        let r = send_as(&h, "POST", "/run", Some((name, value.clone())), Some(ECHO)).await;
        assert_problem(&r, 401, "PLINTH_030");
        assert_eq!(r.headers["www-authenticate"], r#"Bearer realm="plinth", error="invalid_token""#, "{name}: {value}");
        let detail = r.json["detail"].as_str().expect("detail");
        assert!(!detail.contains("not-a-known-key") && !detail.to_ascii_lowercase().contains(WRITER), "echoed: {detail}");
    }
    let both = Request::post("/run")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {WRITER}"))
        .header("x-api-key", WRITER)
        .body(Body::from(ECHO))
        .expect("request");
    assert_problem(&h.send(both).await, 401, "PLINTH_030");
    let twice = Request::get("/runs").header("x-api-key", READER).header("x-api-key", "other-key-0123456789").body(Body::empty());
    assert_problem(&h.send(twice.expect("request")).await, 401, "PLINTH_030");
    assert_eq!(stored_runs(&h).await, 0);
}

#[tokio::test]
async fn keys_without_the_scope_are_403() {
    let h = keyed();
    let r = h.send(req("POST", "/run", Some(("x-api-key", READER)), Some(ECHO))).await;
    assert_problem(&r, 403, "PLINTH_031");
    assert!(r.json["detail"].as_str().expect("detail").contains("runs:write"), "{}", r.json);
    assert_eq!(r.headers["www-authenticate"], r#"Bearer realm="plinth", error="insufficient_scope", scope="runs:write""#);
    assert_eq!(stored_runs(&h).await, 0, "nothing was enqueued");
    let id = h.submit_as(WRITER).await;
    for uri in ["/runs".to_string(), format!("/runs/{id}"), format!("/runs/{id}/logs"), "/functions".into()] {
        let r = h.send(req("GET", &uri, Some(("x-api-key", WRITER)), None)).await;
        assert_problem(&r, 403, "PLINTH_031");
        assert!(r.json["detail"].as_str().expect("detail").contains("runs:read"), "{uri}: {}", r.json);
    }
    let r = h.send(req("POST", &format!("/runs/{id}/cancel"), Some(("x-api-key", READER)), None)).await;
    assert_problem(&r, 403, "PLINTH_031");
    let run = h.send(req("GET", &format!("/runs/{id}"), Some(("x-api-key", READER)), None)).await;
    assert_eq!(run.json["status"], "queued", "the refused cancel changed nothing");
}

#[tokio::test]
async fn admin_is_let_in_everywhere() {
    let h = keyed();
    let root = || Some(("x-api-key", ROOT));
    let r = h.send(req("POST", "/run", root(), Some(ECHO))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let id = r.json["run_id"].as_str().expect("run_id").to_string();
    for uri in [format!("/runs/{id}"), "/runs".into(), format!("/runs/{id}/logs"), "/functions".into(), "/health".into()] {
        assert_eq!(h.send(req("GET", &uri, root(), None)).await.status, StatusCode::OK, "{uri}");
    }
    assert_eq!(h.send(req("POST", &format!("/runs/{id}/cancel"), root(), None)).await.status, StatusCode::ACCEPTED);
    assert_problem(&h.send(req("GET", "/nope", root(), None)).await, 404, "PLINTH_012");
}

#[tokio::test]
async fn credentials_in_the_query_are_refused_even_with_a_valid_header() {
    let h = keyed();
    let r = h.send(req("GET", &format!("/runs?api_key={READER}"), Some(("x-api-key", READER)), None)).await;
    assert_problem(&r, 400, "PLINTH_032");
    assert!(!r.json["detail"].as_str().expect("detail").contains(READER), "{}", r.json);
    let r = h.send(req("POST", &format!("/run?access_token={WRITER}"), Some(("x-api-key", WRITER)), Some(ECHO))).await;
    assert_problem(&r, 400, "PLINTH_032");
    assert_eq!(stored_runs(&h).await, 0, "nothing was enqueued");
    for uri in ["/health?token=x", "/errors?Key=1", "/nope?apikey=1", "/runs?limit=1&api%5Fkey=x"] {
        assert_problem(&h.get(uri).await, 400, "PLINTH_032");
    }
    let fine = h.send(req("GET", "/runs?limit=1", Some(("x-api-key", READER)), None)).await;
    assert_eq!(fine.status, StatusCode::OK, "other parameters pass: {}", fine.json);
}

#[tokio::test]
async fn public_routes_need_no_credentials() {
    let h = keyed();
    for uri in ["/health", "/ready", "/metrics", "/errors", "/errors/PLINTH_030"] {
        assert_eq!(h.get(uri).await.status, StatusCode::OK, "{uri}");
        let r = h.send(req("GET", uri, Some(("x-api-key", "not-a-known-key-012345")), None)).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: a bad credential on a public route is ignored");
    }
    assert_eq!(h.get("/errors/PLINTH_031").await.json["http_status"], 403);
}

#[tokio::test]
async fn an_empty_public_list_closes_health_but_not_the_catalog() {
    let h = keyed_with(Some("[]"));
    for uri in ["/health", "/ready", "/metrics"] {
        assert_problem(&h.get(uri).await, 401, "PLINTH_030");
        assert_eq!(h.send(req("GET", uri, Some(("x-api-key", READER)), None)).await.status, StatusCode::OK, "{uri}");
    }
    assert_eq!(h.get("/errors/PLINTH_030").await.status, StatusCode::OK);
    let open = keyed_with(Some("[/health, /functions]"));
    assert_eq!(open.get("/functions").await.status, StatusCode::OK, "a listed route opens");
    assert_problem(&open.get("/metrics").await, 401, "PLINTH_030");
}

#[tokio::test]
async fn without_auth_everything_stays_open() {
    let h = harness();
    assert_eq!(h.post_json("/run", ECHO).await.status, StatusCode::ACCEPTED);
    assert_eq!(h.get("/health?token=x").await.status, StatusCode::OK, "no auth, no query check");
    assert_eq!(h.get("/runs").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_principal_reaches_the_handlers() {
    let h = keyed();
    let r = whoami(&h, Some(("x-api-key", READER.to_string()))).await;
    assert_eq!(r.json, json!({"name": "reader", "scopes": ["runs:read"], "kind": "ApiKey"}));
    let r = whoami(&h, bearer(ROOT)).await;
    assert_eq!(r.json["name"], "root");
    assert_eq!(whoami(&h, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(whoami(&h, bearer(WRITER)).await.status, StatusCode::FORBIDDEN);
}

impl Harness {
    async fn submit_as(&self, key: &str) -> String {
        let r = self.send(req("POST", "/run", Some(("x-api-key", key)), Some(ECHO))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
        r.json["run_id"].as_str().expect("run_id").to_string()
    }
}

#[tokio::test]
async fn sending_events_needs_events_write_and_reading_them_runs_read() {
    let h = keyed();
    let event = Some(r#"{"name":"a/b"}"#);
    let bearer = |k: &str| format!("Bearer {k}");
    let writer = bearer(WRITER);
    let r = h.send(req("POST", "/events", Some(("authorization", &writer)), event)).await;
    assert_problem(&r, 403, "PLINTH_031");
    assert!(r.json["detail"].as_str().expect("detail").contains("events:write"), "{}", r.json);
    assert_problem(&h.send(req("POST", "/events", None, event)).await, 401, "PLINTH_030");
    let root = bearer(ROOT);
    let sent = h.send(req("POST", "/events", Some(("authorization", &root)), event)).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "admin covers events:write");
    let reader = bearer(READER);
    assert_eq!(h.send(req("GET", "/events", Some(("authorization", &reader)), None)).await.status, StatusCode::OK);
    assert_problem(&h.send(req("GET", "/events", Some(("authorization", &writer)), None)).await, 403, "PLINTH_031");
}

#[tokio::test]
async fn a_run_token_sends_events_while_its_attempt_runs_and_nothing_else() {
    let h = keyed();
    let tokens = h.state.run_tokens.clone().expect("tokens");
    let guard = tokens.issue("01JD0000000000000000000000");
    let token = guard.secret().to_string();
    let event = Some(r#"{"name":"a/from.handler"}"#);
    for credential in [("authorization", format!("Bearer {token}")), ("x-api-key", token.clone())] {
        let r = h.send(req("POST", "/events", Some((credential.0, &credential.1)), event)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    }
    let bearer = format!("Bearer {token}");
    assert_problem(&h.send(req("GET", "/runs", Some(("authorization", &bearer)), None)).await, 403, "PLINTH_031");
    assert_problem(&h.send(req("POST", "/run", Some(("authorization", &bearer)), Some("{}"))).await, 403, "PLINTH_031");
    drop(guard);
    assert_problem(&h.send(req("POST", "/events", Some(("authorization", &bearer)), event)).await, 401, "PLINTH_030");
    let forged = "Bearer plinth-run-00000000000000000000000000000000000000000";
    assert_problem(&h.send(req("POST", "/events", Some(("authorization", forged)), event)).await, 401, "PLINTH_030");
}
