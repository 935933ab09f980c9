//! `/openapi.json`: a structurally valid OpenAPI 3.1 document that covers every route of the
//! router, and real answers of the router that validate against the schema it gives for them.

use super::*;
use plinth_core::timefmt::now_micros;
use plinth_core::{Finish, RunError};
use plinth_store::{ClaimRequest, FinishRequest, LogLine};
use serde_json::json;
use std::time::Duration;

async fn document(h: &Harness) -> Value {
    let r = h.get("/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(r.headers["content-type"].to_str().is_ok_and(|c| c.starts_with("application/json")));
    r.json
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(obj) => {
            for (k, x) in obj {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// `schema` as a standalone JSON Schema (2020-12, the dialect of OpenAPI 3.1) whose
/// `#/components/schemas/...` references resolve to the document's components.
fn standalone(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let rewrite = |v: &Value| -> Value {
        let text = v.to_string().replace("\"#/components/schemas/", "\"#/$defs/");
        serde_json::from_str(&text).expect("json")
    };
    let mut root = json!({"allOf": [rewrite(schema)]});
    root["$defs"] = rewrite(&doc["components"]["schemas"]);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .expect("a valid JSON Schema")
}

/// The documented answer to `method path` with `status`: its content type and schema.
fn answer<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> Option<(&'a str, &'a Value)> {
    let content = doc["paths"].get(path)?.get(method)?["responses"].get(status.to_string())?["content"].as_object()?;
    let (content_type, media) = content.iter().next()?;
    Some((content_type.as_str(), &media["schema"]))
}

/// Asserts `reply` (an answer to `method path`) is documented and matches its schema.
fn check(doc: &Value, method: &str, path: &str, reply: &Reply) {
    let status = reply.status.as_u16();
    let (content_type, schema) =
        answer(doc, method, path, status).unwrap_or_else(|| panic!("{method} {path} {status} is not documented"));
    let sent = reply.headers["content-type"].to_str().expect("ascii");
    assert!(sent.starts_with(content_type), "{method} {path} {status}: sent {sent}, documented {content_type}");
    let validator = standalone(doc, schema);
    let errors: Vec<String> = validator.iter_errors(&reply.json).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status} does not match its schema: {errors:?}\n{}", reply.json);
}

fn valid(doc: &Value, method: &str, path: &str, status: u16, body: &Value) -> bool {
    let (_, schema) = answer(doc, method, path, status).expect("documented");
    standalone(doc, schema).is_valid(body)
}

/// Claims the oldest queued run as worker `w`.
async fn claim(h: &Harness) -> (String, u32) {
    let now = now_micros();
    let wants = vec![("echo".into(), 10), ("resize".into(), 10)];
    let claimed = h.state.store.claim(ClaimRequest {
        owner: "w".into(),
        now,
        lease_until: now + 10_000_000,
        wants,
        limit: 1,
        limits: Default::default(),
    });
    let run = claimed.await.expect("claim").runs.pop().expect("a queued run");
    (run.run_id, run.attempt)
}

async fn finish(h: &Harness, (run_id, attempt): (String, u32), finish: Finish) {
    let req = FinishRequest { run_id, owner: "w".into(), attempt, finish, now: now_micros(), duration: Duration::from_millis(3) };
    assert!(h.state.store.finish(req).await.expect("finish"));
}

#[tokio::test]
async fn the_document_is_openapi_3_1_named_after_the_component() {
    let h = harness();
    let doc = document(&h).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "hello");
    assert_eq!(doc["info"]["version"], "1.2.3");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20, "the schemas are shared through references: {all:?}");
    for r in all {
        let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
        assert!(target.is_some(), "{r} does not resolve");
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    let required: Vec<&str> = problem["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    for field in ["type", "title", "status", "detail", "code", "correlation_id"] {
        assert!(required.contains(&field), "{field} is not required in {problem}");
    }
    assert!(problem["properties"]["errors"]["items"].is_object(), "{problem}");
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().expect("an operationId");
            assert!(operation_ids.insert(id), "{method} {path}: operationId {id} is used twice");
            let responses = op["responses"].as_object().expect("responses");
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} documents no success");
            for (status, r) in responses.iter().filter(|(s, _)| s.starts_with('4') || s.starts_with('5')) {
                let is_probe = matches!(path.as_str(), "/health" | "/ready") && status == "503";
                // Why: Inngest's event API answers in the shape its SDKs read, not problem+json.
                let is_inngest = (path == crate::routes::inngest::PATH || path == crate::routes::inngest::register::PATH)
                    && status != "429"
                    && status != "431";
                if !is_probe && !is_inngest {
                    assert!(r["content"].get("application/problem+json").is_some(), "{method} {path} {status}: {r}");
                }
            }
        }
    }
}

/// The `.route("PATH", METHOD(...))` lines of `lib.rs`: the router's own list.
fn router_routes() -> Vec<(String, String)> {
    let source = include_str!("../lib.rs");
    let mut routes = Vec::new();
    for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let rest = &line[".route(\"".len()..];
        let (path, rest) = rest.split_once('"').expect("a quoted path");
        let handlers = rest.trim_start_matches(',').trim();
        for method in ["get", "post", "put", "delete", "patch"] {
            if handlers.starts_with(&format!("{method}(")) || handlers.contains(&format!(".{method}(")) {
                routes.push((path.to_string(), method.to_string()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_of_the_router_is_in_the_document_and_back() {
    let h = harness();
    let doc = document(&h).await;
    let routes = router_routes();
    assert!(routes.len() >= 12, "{routes:?}");
    for (path, method) in &routes {
        assert!(doc["paths"][path.as_str()].get(method.as_str()).is_some(), "{method} {path} is routed but not documented");
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            assert!(routes.contains(&(path.clone(), method.clone())), "{method} {path} is documented but not routed");
            let uri = path.replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV").replace("{code}", "PLINTH_004");
            let req = Request::builder().method(method.to_uppercase().as_str()).uri(&uri).body(Body::empty()).expect("req");
            let r = h.send(req).await;
            assert!(!matches!(r.json["code"].as_str(), Some("PLINTH_012" | "PLINTH_013")), "{method} {uri}: {}", r.json);
            if r.headers["content-type"] != "application/openmetrics-text; version=1.0.0; charset=utf-8" {
                check(&doc, method, path, &r);
            }
        }
    }
    assert!(doc["paths"].get("/nope").is_none());
    assert_problem(&h.get("/nope").await, 404, "PLINTH_012");
}

#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    let h = harness();
    let doc = document(&h).await;
    let accepted = h.post_json("/run", r#"{"function":"resize","input":{"width":3},"priority":5}"#).await;
    check(&doc, "post", "/run", &accepted);
    let id = accepted.json["run_id"].as_str().expect("id").to_string();
    let queued = h.get(&format!("/runs/{id}")).await;
    assert_eq!(queued.json["status"], "queued");
    check(&doc, "get", "/runs/{id}", &queued);

    let claimed = claim(&h).await;
    let line = |seq, text: &str| LogLine { seq, ts: now_micros(), line: text.to_string() };
    let lines = vec![line(0, "plain text"), line(1, r#"{"level":"info","msg":"structured"}"#)];
    h.state.store.append_logs(&id, claimed.1, lines).await.expect("logs");
    let running = h.get(&format!("/runs/{id}")).await;
    assert_eq!(running.json["status"], "running");
    check(&doc, "get", "/runs/{id}", &running);
    finish(&h, claimed, Finish::Succeeded(json!({"area": 9}))).await;
    let done = h.get(&format!("/runs/{id}?wait=1")).await;
    assert_eq!(done.json["status"], "succeeded");
    assert!(done.json["attempts"][0]["finished_at"].is_string(), "{}", done.json);
    check(&doc, "get", "/runs/{id}", &done);
    let logs = h.get(&format!("/runs/{id}/logs")).await;
    assert_eq!(logs.json["logs"][1]["json"]["msg"], "structured");
    check(&doc, "get", "/runs/{id}/logs", &logs);

    let failing = h.submit(r#"{"function":"echo","input":[1,2]}"#).await;
    let attempt = claim(&h).await;
    finish(&h, attempt, Finish::Failed(RunError::new(plinth_core::Code::HandlerFailed, "exit 1"))).await;
    let failed = h.get(&format!("/runs/{failing}")).await;
    assert_eq!(failed.json["error"]["code"], "PLINTH_020");
    check(&doc, "get", "/runs/{id}", &failed);
    let queued = h.submit(r#"{"function":"echo","delay_seconds":60}"#).await;
    check(&doc, "post", "/runs/{id}/cancel", &h.post_json(&format!("/runs/{queued}/cancel"), "").await);
    check(&doc, "post", "/runs/{id}/cancel", &h.post_json(&format!("/runs/{queued}/cancel"), "").await);

    let page = h.get("/runs?limit=2").await;
    assert!(page.json["next_cursor"].is_string(), "{}", page.json);
    check(&doc, "get", "/runs", &page);
    let last = h.get(&format!("/runs?cursor={}", page.json["next_cursor"].as_str().expect("cursor"))).await;
    assert!(last.json["next_cursor"].is_null());
    check(&doc, "get", "/runs", &last);
    for (path, uri) in [("/health", "/health"), ("/ready", "/ready"), ("/functions", "/functions"), ("/errors", "/errors")] {
        check(&doc, "get", path, &h.get(uri).await);
    }
    check(&doc, "get", "/errors/{code}", &h.get("/errors/PLINTH_004").await);
    h.state.readiness.draining();
    check(&doc, "get", "/ready", &h.get("/ready").await);
}

#[tokio::test]
async fn problem_answers_match_the_problem_schema() {
    let h = harness();
    let doc = document(&h).await;
    let text = |body: &str| Request::post("/run").header("content-type", "text/plain").body(Body::from(body.to_string()));
    let cases = [
        h.post_json("/run", "{not json").await,
        h.post_json("/run", r#"{"function":"nope"}"#).await,
        h.post_json("/run", &format!(r#"{{"function":"echo","input":"{}"}}"#, "x".repeat(5000))).await,
        h.send(text("{}").expect("request")).await,
        h.post_json("/run", r#"{"function":"echo","priority":"high","extra":1}"#).await,
    ];
    let statuses: Vec<u16> = cases.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [400, 404, 413, 415, 422]);
    assert!(cases[4].json["errors"].as_array().is_some_and(|e| e.len() == 2), "{}", cases[4].json);
    for r in &cases {
        check(&doc, "post", "/run", r);
    }
    check(&doc, "get", "/runs", &h.get("/runs?limit=0").await);
    check(&doc, "get", "/runs/{id}", &h.get("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV").await);
    check(&doc, "get", "/runs/{id}", &h.get("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=soon").await);
    check(&doc, "get", "/runs/{id}/logs", &h.get("/runs/nope/logs").await);
    check(&doc, "get", "/errors/{code}", &h.get("/errors/PLINTH_999").await);
    // Path segments that are not UTF-8 get a problem too, not the framework's plain text.
    assert_problem(&h.get("/runs/%FF").await, 404, "PLINTH_006");
    check(&doc, "get", "/runs/{id}", &h.get("/runs/%FF%FE?wait=1").await);
    check(&doc, "get", "/runs/{id}/logs", &h.get("/runs/%FF/logs").await);
    check(&doc, "post", "/runs/{id}/cancel", &h.post_json("/runs/%C3%28/cancel", "").await);
    assert_problem(&h.get("/errors/%FF").await, 404, "PLINTH_016");
}

#[tokio::test]
async fn the_schemas_refuse_what_is_never_sent() {
    let h = harness();
    let doc = document(&h).await;
    let id = h.submit(r#"{"function":"echo"}"#).await;
    let run = h.get(&format!("/runs/{id}")).await.json;
    assert!(valid(&doc, "get", "/runs/{id}", 200, &run));
    let mutations: [(&str, Value); 5] = [
        ("/status", json!("bogus")),
        ("/created_at", json!(1_700_000_000)),
        ("/started_at", json!("yesterday")),
        ("/attempt", json!(-1)),
        ("/error", json!({"code": "E1", "message": "m", "retryable": false})),
    ];
    for (pointer, value) in mutations {
        let mut bad = run.clone();
        *bad.pointer_mut(pointer).expect("field") = value;
        assert!(!valid(&doc, "get", "/runs/{id}", 200, &bad), "{pointer} accepted: {bad}");
    }
    let mut no_run_id = run.clone();
    no_run_id.as_object_mut().expect("object").remove("run_id");
    assert!(!valid(&doc, "get", "/runs/{id}", 200, &no_run_id));
    let problem = h.get("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV").await.json;
    assert!(valid(&doc, "get", "/runs/{id}", 404, &problem));
    let mut no_code = problem.clone();
    no_code.as_object_mut().expect("object").remove("code");
    assert!(!valid(&doc, "get", "/runs/{id}", 404, &no_code));
    assert!(!valid(&doc, "get", "/runs/{id}", 404, &json!({"error": "not found"})));
    assert!(answer(&doc, "get", "/runs/{id}", 418).is_none());
    assert!(answer(&doc, "delete", "/runs/{id}", 200).is_none());
    assert!(answer(&doc, "get", "/nope", 200).is_none());
}

#[tokio::test]
async fn the_request_schema_accepts_what_the_server_accepts() {
    let h = harness();
    let doc = document(&h).await;
    let schema = standalone(&doc, &doc["paths"]["/run"]["post"]["requestBody"]["content"]["application/json"]["schema"]);
    let bodies = [
        json!({"function": "echo"}),
        json!({"function": "echo", "input": [1], "priority": -1000, "delay_seconds": 0.5, "idempotency_key": "k 1"}),
        json!({"function": "echo", "priority": null, "idempotency_key": null}),
        json!({"function": "resize", "input": {"width": 3}}),
        json!({"function": "resize", "input": {"width": 0}}),
        json!({"function": "resize"}),
        json!({"function": "nope"}),
        json!({"function": "echo", "priority": 1001}),
        json!({"function": "echo", "priority": "high"}),
        json!({"function": "echo", "delay_seconds": -1}),
        json!({"function": "echo", "idempotency_key": ""}),
        json!({"function": "echo", "idempotency_key": "k".repeat(256)}),
        json!({"function": "echo", "extra": true}),
        json!({"input": {}}),
        json!([1]),
    ];
    for body in bodies {
        let accepted = h.post_json("/run", &body.to_string()).await.status == StatusCode::ACCEPTED;
        assert_eq!(schema.is_valid(&body), accepted, "{body}: the server accepted it: {accepted}");
    }
    let single = harness_with("component: {name: one, version: '1'}\nfunctions:\n  - name: only\n    handler: {rust: noop}\n");
    let doc = document(&single).await;
    let schema = standalone(&doc, &doc["paths"]["/run"]["post"]["requestBody"]["content"]["application/json"]["schema"]);
    assert!(schema.is_valid(&json!({})) && schema.is_valid(&json!({"function": "only"})));
    assert!(!schema.is_valid(&json!({"function": "other"})));
    // An input schema with references stays in `GET /functions`: copied, they would dangle.
    let referencing = "component: {name: one, version: '1'}\nfunctions:\n  - name: only\n    handler: {rust: noop}\n    \
        input_schema: {$defs: {w: {type: integer}}, type: object, properties: {width: {$ref: '#/$defs/w'}}}\n";
    let doc = document(&harness_with(referencing)).await;
    let variant = &doc["paths"]["/run"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0];
    assert!(variant["properties"].get("input").is_none(), "{variant}");
    assert!(variant["description"].as_str().is_some_and(|d| d.contains("GET /functions")), "{variant}");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.iter().all(|r| r.starts_with("#/components/")), "{all:?}");
}

#[tokio::test]
async fn access_control_is_documented_per_route() {
    let digest = "0".repeat(64);
    let h = harness_with_auth(&format!("  api_keys:\n    - {{name: k, sha256: {digest}, scopes: [runs:write]}}\n"), &[]);
    let doc = document(&h).await;
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["name"], "X-API-Key");
    assert_eq!(doc["paths"]["/run"]["post"]["security"][0]["api_key"][0], "runs:write");
    assert_eq!(doc["paths"]["/runs"]["get"]["security"][1]["bearer"][0], "runs:read");
    for path in ["/health", "/openapi.json", "/errors/{code}"] {
        assert_eq!(doc["paths"][path]["get"]["security"], json!([]), "{path} is public");
    }
    let refused = h.post_json("/run", r#"{"function":"echo"}"#).await;
    assert_problem(&refused, 401, "PLINTH_030");
    check(&doc, "post", "/run", &refused);
    assert!(answer(&doc, "get", "/health", 401).is_none());
    let in_query = h.get("/health?api_key=x").await;
    assert_problem(&in_query, 400, "PLINTH_032");
    check(&doc, "get", "/health", &in_query);
    let open = harness();
    assert!(document(&open).await["paths"]["/run"]["post"].get("security").is_none());
}

#[tokio::test]
async fn the_document_written_without_a_server_is_the_one_served() {
    let open = harness();
    assert_eq!(crate::openapi_document(&open.state.component.get()), document(&open).await);
    let digest = "0".repeat(64);
    let guarded = harness_with_auth(
        &format!("  api_keys:\n    - {{name: k, sha256: {digest}, scopes: [admin]}}\n  public: [/health]\n"),
        &[],
    );
    let written = crate::openapi_document(&guarded.state.component.get());
    assert_eq!(written, document(&guarded).await, "no secret is needed to say what each route needs");
    assert_eq!(written["paths"]["/ready"]["get"]["security"][0]["api_key"], json!([]), "/ready is not public here");
}
