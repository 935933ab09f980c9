//! Health, readiness, metadata endpoints and error answers.

use super::*;

#[tokio::test]
async fn health_and_ready_when_all_is_well() {
    let h = harness();
    let r = h.get("/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "healthy");
    assert_eq!(r.json["component"], "hello");
    assert_eq!(r.json["version"], "1.2.3");
    assert_eq!(r.json["checks"]["database"]["status"], "ok");
    let r = h.get("/ready").await;
    assert_eq!((r.status, r.json["status"].clone()), (StatusCode::OK, Value::from("ready")));
}

#[tokio::test]
async fn read_only_database_makes_health_fail_and_run_503() {
    let h = harness();
    h.sqlite.debug_pragma("PRAGMA query_only = 1").await.expect("pragma");
    let r = h.get("/health").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json["status"], "unhealthy");
    assert_eq!(r.json["checks"]["database"]["status"], "failing");
    let r = h.get("/ready").await;
    assert_eq!((r.status.as_u16(), r.json["reason"].clone()), (503, Value::from("database")));
    let r = h.post_json("/run", r#"{"function":"echo"}"#).await;
    assert_problem(&r, 503, "PLINTH_002");
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn full_disk_is_a_503_not_a_500() {
    let h = harness();
    h.sqlite.debug_pragma("PRAGMA max_page_count = 1").await.expect("pragma");
    let big = format!(r#"{{"function":"echo","input":{{"x":"{}"}}}}"#, "y".repeat(3000));
    let mut refused = None;
    for _ in 0..200 {
        let r = h.post_json("/run", &big).await;
        assert!(r.status == StatusCode::ACCEPTED || r.status == StatusCode::SERVICE_UNAVAILABLE, "{}", r.json);
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the database filled up");
    assert_problem(&r, 503, "PLINTH_002");
    let health = h.get("/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "health says so: {}", health.json);
    assert_eq!(health.json["checks"]["database"]["status"], "failing");
    assert!(health.json["checks"]["database"]["error"].as_str().is_some_and(|e| e.contains("full")), "{}", health.json);
    h.sqlite.debug_pragma("PRAGMA max_page_count = 1073741823").await.expect("room again");
    assert_eq!(h.get("/health").await.status, StatusCode::OK, "and recovers with the room");
}

#[tokio::test]
async fn ready_reports_draining_and_starting() {
    let h = harness();
    h.state.readiness.draining();
    let r = h.get("/ready").await;
    assert_eq!((r.status.as_u16(), r.json["reason"].clone()), (503, Value::from("draining")));
    h.state.readiness.starting();
    assert_eq!(h.get("/ready").await.json["reason"], "starting");
}

#[tokio::test]
async fn functions_lists_kinds_schemas_and_policies() {
    let h = harness();
    let r = h.get("/functions").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["component"]["name"], "hello");
    assert_eq!(r.json["functions"][0]["handler"], "command");
    assert_eq!(r.json["functions"][1]["handler"], "rust");
    assert_eq!(r.json["functions"][1]["input_schema"]["required"][0], "width");
    assert_eq!(r.json["functions"][0]["policy"]["retries"]["max_attempts"], 3);
    assert!(r.json["functions"][0].get("argv").is_none());
}

#[tokio::test]
async fn error_catalog_entries() {
    let h = harness();
    let r = h.get("/errors/PLINTH_004").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["name"], "ValidationFailed");
    assert_eq!(r.json["http_status"], 422);
    assert!(r.json["action"].as_str().is_some_and(|a| !a.is_empty()));
    assert_problem(&h.get("/errors/PLINTH_999").await, 404, "PLINTH_016");
    assert_problem(&h.get("/errors/nonsense").await, 404, "PLINTH_016");
    let all = h.get("/errors").await;
    assert_eq!(all.json["errors"].as_array().map(Vec::len), Some(plinth_core::Code::ALL.len()));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problems() {
    let h = harness();
    assert_problem(&h.get("/nope").await, 404, "PLINTH_012");
    let r = h.send(Request::delete("/run").body(Body::empty()).expect("request")).await;
    assert_problem(&r, 405, "PLINTH_013");
    let r = h.post_json("/health", "{}").await;
    assert_problem(&r, 405, "PLINTH_013");
}

#[tokio::test]
async fn correlation_id_is_taken_echoed_or_made() {
    let h = harness();
    let req = Request::get("/health").header("x-correlation-id", "abc-123").body(Body::empty()).expect("request");
    assert_eq!(h.send(req).await.headers["x-correlation-id"], "abc-123");
    let req = Request::get("/health").header("x-request-id", "req-9").body(Body::empty()).expect("request");
    assert_eq!(h.send(req).await.headers["x-correlation-id"], "req-9");
    let req = Request::get("/health").header("x-correlation-id", "bad id with spaces").body(Body::empty()).expect("request");
    let made = h.send(req).await.headers["x-correlation-id"].to_str().expect("ascii").to_string();
    assert!(!made.contains(' ') && !made.is_empty());
    let req = Request::post("/run")
        .header("content-type", "application/json")
        .header("x-correlation-id", "trace-7")
        .body(Body::from(r#"{"function":"echo"}"#))
        .expect("request");
    let r = h.send(req).await;
    assert_eq!(r.json["correlation_id"], "trace-7");
    let run = h.get(&format!("/runs/{}", r.json["run_id"].as_str().expect("id"))).await;
    assert_eq!(run.json["correlation_id"], "trace-7");
}

#[tokio::test]
async fn metrics_expose_contract_names() {
    let h = harness();
    h.submit(r#"{"function":"echo"}"#).await;
    let _ = h.get("/nope").await;
    let r = h.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.json.as_str().expect("text").to_string();
    for name in
        ["plinth_requests_total", "plinth_queue_depth", "plinth_build_info", "plinth_uptime_seconds", "plinth_errors_total"]
    {
        assert!(text.contains(name), "{name} missing");
    }
    assert!(text.contains(r#"plinth_queue_depth{component="hello",function="echo"} 1"#), "{text}");
    assert!(text.contains(r#"error_type="RouteNotFound""#), "{text}");
}
