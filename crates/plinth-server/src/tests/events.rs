//! `POST /events`, `GET /events`, `GET /events/{id}`, and the runs events start.

use super::*;
use serde_json::json;

const SHOP: &str = r#"
component: {name: shop, version: '1'}
functions:
  - name: receipt
    handler: {rust: noop}
    triggers: [{event: shop/order.paid, if: 'event.data.amount > 100'}]
  - name: ledger
    handler: {rust: noop}
    triggers: [{event: shop/order.paid}, {event: shop/order.refunded}]
  - name: nightly
    handler: {rust: noop}
    triggers: [{cron: '0 3 * * *', timezone: Europe/Berlin}]
"#;

fn ids(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|x| x.as_str().expect("id").to_string()).collect()
}

#[tokio::test]
async fn one_event_fans_out_to_every_matching_function() {
    let h = harness_with(SHOP);
    let r = h.post_json("/events", r#"{"name":"shop/order.paid","data":{"amount":150},"id":"o-1"}"#).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(r.json["event_ids"], json!(["o-1"]));
    let runs = ids(&r.json["run_ids"][0]);
    assert_eq!(runs.len(), 2, "receipt and ledger");
    let run = h.get(&format!("/runs/{}", runs[0])).await;
    assert_eq!(run.json["function"], "receipt");
    assert_eq!(run.json["trigger"], json!({"type": "event", "event_id": "o-1"}));
    assert_eq!(run.json["input"]["data"]["amount"], 150);
    assert_eq!(run.json["input"]["name"], "shop/order.paid");
    let listed = h.get("/runs?event_id=o-1").await;
    assert_eq!(listed.json["runs"].as_array().expect("runs").len(), 2);
    let by_trigger = h.get("/runs?trigger=event").await;
    assert_eq!(by_trigger.json["runs"].as_array().expect("runs").len(), 2);
    assert!(h.get("/runs?trigger=api").await.json["runs"].as_array().expect("runs").is_empty());
    let shown = h.get("/events/o-1").await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(ids(&shown.json["run_ids"]), runs);
    assert_eq!(shown.json["skipped"], json!([]));
    assert_eq!(shown.json["data"], json!({"amount": 150}));
}

#[tokio::test]
async fn a_false_or_failing_condition_is_recorded_as_skipped() {
    let h = harness_with(SHOP);
    let r = h
        .post_json(
            "/events",
            r#"[{"name":"shop/order.paid","data":{"amount":5},"id":"small"},
        {"name":"shop/order.paid","data":{"amount":"lots"},"id":"odd"},
        {"name":"shop/nobody.listens","id":"quiet"}]"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(r.json["event_ids"], json!(["small", "odd", "quiet"]));
    assert_eq!(r.json["run_ids"][0].as_array().expect("runs").len(), 1, "ledger only");
    assert_eq!(r.json["run_ids"][2], json!([]), "nobody listens, stored all the same");
    let small = h.get("/events/small").await;
    assert_eq!(small.json["skipped"][0]["function"], "receipt");
    assert!(small.json["skipped"][0]["reason"].as_str().expect("reason").contains("was false"));
    let odd = h.get("/events/odd").await;
    assert!(odd.json["skipped"][0]["reason"].as_str().expect("reason").contains("failed"), "{}", odd.json);
    assert_eq!(h.get("/events/quiet").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_repeated_id_starts_nothing_and_answers_the_first_ids() {
    let h = harness_with(SHOP);
    let body = r#"{"name":"shop/order.refunded","id":"r-1"}"#;
    let first = h.post_json("/events", body).await;
    let again = h.post_json("/events", body).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json, first.json, "the same ids, no new run");
    assert_eq!(h.get("/runs").await.json["runs"].as_array().expect("runs").len(), 1);
    assert_eq!(h.get("/events").await.json["events"].as_array().expect("events").len(), 1);
}

#[tokio::test]
async fn invalid_events_refuse_the_whole_request() {
    let h = harness_with(SHOP);
    let r = h.post_json("/events", r#"[{"name":"shop/order.paid"},{"name":"Bad Name"},{"name":"a/b","data":[1]}]"#).await;
    assert_problem(&r, 422, "PLINTH_004");
    let pointers: Vec<&str> =
        r.json["errors"].as_array().expect("errors").iter().map(|e| e["pointer"].as_str().expect("p")).collect();
    assert_eq!(pointers, ["/1/name", "/2/data"]);
    assert!(h.get("/events").await.json["events"].as_array().expect("events").is_empty(), "nothing stored");
    assert!(h.get("/runs").await.json["runs"].as_array().expect("runs").is_empty(), "no run started");
    assert_problem(&h.post_json("/events", "[]").await, 422, "PLINTH_004");
    assert_problem(&h.post_json("/events", r#"{"name":"a/b","ts":"soon"}"#).await, 422, "PLINTH_004");
    let dup = h.post_json("/events", r#"[{"name":"a/b","id":"x"},{"name":"a/b","id":"x"}]"#).await;
    assert_eq!(dup.json["errors"][0]["pointer"], "/1/id");
    let long = format!(r#"{{"name":"a/b","id":"{}"}}"#, "x".repeat(129));
    assert_problem(&h.post_json("/events", &long).await, 422, "PLINTH_004");
    assert_problem(&h.post_json("/events", "{nope").await, 400, "PLINTH_003");
    let big = format!(r#"{{"name":"a/b","data":{{"x":"{}"}}}}"#, "x".repeat(5000));
    assert_problem(&h.post_json("/events", &big).await, 413, "PLINTH_007");
    let r = h.send(Request::post("/events").header("content-type", "text/plain").body(Body::from("{}")).expect("req")).await;
    assert_problem(&r, 415, "PLINTH_008");
}

#[tokio::test]
async fn over_a_thousand_events_are_refused() {
    let h = harness_with(SHOP);
    let mut state = Arc::try_unwrap(h.state).unwrap_or_else(|_| panic!("not shared yet"));
    state.body_limit = 1 << 20;
    let h = Harness { state: Arc::new(state), ..h };
    let many = |n: usize| serde_json::to_string(&vec![json!({"name": "a/b"}); n]).expect("json");
    assert_problem(&h.post_json("/events", &many(1001)).await, 422, "PLINTH_004");
    let r = h.post_json("/events", &many(1000)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(r.json["event_ids"].as_array().expect("ids").len(), 1000);
}

#[tokio::test]
async fn events_list_filters_and_pages() {
    let h = harness_with(SHOP);
    for i in 0..5 {
        let name = if i % 2 == 0 { "a/even" } else { "a/odd" };
        h.post_json("/events", &format!(r#"{{"name":"{name}","id":"e{i}"}}"#)).await;
    }
    let page = h.get("/events?limit=2").await;
    assert_eq!(page.status, StatusCode::OK);
    let got: Vec<&str> = page.json["events"].as_array().expect("events").iter().map(|e| e["id"].as_str().expect("id")).collect();
    assert_eq!(got, ["e4", "e3"]);
    let cursor = page.json["next_cursor"].as_str().expect("more pages");
    let next = h.get(&format!("/events?limit=2&cursor={cursor}")).await;
    assert_eq!(next.json["events"][0]["id"], "e2");
    assert_eq!(h.get("/events?name=a/even").await.json["events"].as_array().expect("events").len(), 3);
    assert_eq!(h.get("/events?since=2999-01-01T00:00:00Z").await.json["events"], json!([]));
    assert_problem(&h.get("/events?limit=0").await, 400, "PLINTH_014");
    assert_problem(&h.get("/events?since=yesterday").await, 400, "PLINTH_014");
    assert_problem(&h.get("/events?cursor=nope").await, 400, "PLINTH_014");
    assert_problem(&h.get("/events?colour=red").await, 400, "PLINTH_014");
    assert_problem(&h.get("/events/unknown").await, 404, "PLINTH_017");
    assert_problem(&h.get("/runs?trigger=magic").await, 400, "PLINTH_014");
}

#[tokio::test]
async fn functions_show_triggers_and_the_next_tick() {
    let h = harness_with(SHOP);
    let r = h.get("/functions").await;
    let fns = r.json["functions"].as_array().expect("functions");
    assert_eq!(fns[0]["triggers"], json!([{"event": "shop/order.paid", "if": "event.data.amount > 100"}]));
    assert!(fns[0].get("schedule").is_none());
    let nightly = &fns[2];
    assert_eq!(nightly["triggers"][0]["timezone"], "Europe/Berlin");
    let next = nightly["schedule"]["next_at"].as_str().expect("next tick");
    let at = plinth_core::timefmt::parse_rfc3339(next).expect("RFC 3339");
    assert!(at > plinth_core::timefmt::now_micros(), "{next} is in the future");
    assert!(
        next.ends_with(":00:00Z") && (next.contains("T01:") || next.contains("T02:")),
        "03:00 Berlin is 01:00 or 02:00 UTC: {next}"
    );
    assert_eq!(nightly["schedule"]["last_at"], Value::Null);
}

#[tokio::test]
async fn a_failing_nats_bridge_makes_the_component_degraded_not_dead() {
    let h = harness_with(SHOP);
    let nats = Arc::new(plinth_core::health::DependencyHealth::new("nats"));
    let mut state = Arc::try_unwrap(h.state).unwrap_or_else(|_| panic!("not shared yet"));
    state.nats = Some(nats.clone());
    let h = Harness { state: Arc::new(state), ..h };
    nats.failing("not connected to NATS (Disconnected); reconnecting");
    let r = h.get("/health").await;
    assert_eq!(r.status, StatusCode::OK, "degraded is still alive");
    assert_eq!(r.json["status"], "degraded");
    assert_eq!(r.json["checks"]["nats"]["status"], "failing");
    assert!(r.json["checks"]["nats"]["error"].as_str().expect("why").contains("reconnecting"));
    assert_eq!(h.get("/ready").await.status, StatusCode::OK, "ready: HTTP events still work");
    let sent = h.post_json("/events", r#"{"name":"shop/order.refunded"}"#).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "events over HTTP still work");
    nats.ok();
    let r = h.get("/health").await;
    assert_eq!((r.json["status"].as_str(), r.json["checks"]["nats"]["status"].as_str()), (Some("healthy"), Some("ok")));
    let plain = harness_with(SHOP).get("/health").await;
    assert!(plain.json["checks"].get("nats").is_none(), "no bridge, no check: {}", plain.json);
}

#[tokio::test]
async fn a_condition_that_divides_by_zero_or_reads_a_missing_field_is_no_match() {
    let h = harness_with(
        "component: {name: shop, version: '1'}\nfunctions:\n  - name: ratio\n    handler: {rust: noop}\n    \
         triggers: [{event: shop/order.paid, if: 'event.data.amount / event.data.count > 1'}]\n",
    );
    let r = h
        .post_json(
            "/events",
            r#"[{"name":"shop/order.paid","id":"zero","data":{"amount":5,"count":0}},
        {"name":"shop/order.paid","id":"missing","data":{"amount":5}},
        {"name":"shop/order.paid","id":"fine","data":{"amount":5,"count":2}}]"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(r.json["run_ids"], json!([[], [], r.json["run_ids"][2].clone()]));
    assert_eq!(r.json["run_ids"][2].as_array().map(Vec::len), Some(1), "5 / 2 > 1 starts a run");
    for id in ["zero", "missing"] {
        let e = h.get(&format!("/events/{id}")).await;
        let reason = e.json["skipped"][0]["reason"].as_str().expect("reason");
        assert!(reason.contains("failed:"), "{id}: {reason}");
    }
}

#[tokio::test]
async fn the_runs_an_event_starts_continue_the_requests_trace() {
    let h = harness_with(SHOP);
    let send = |tp: &'static str, id: &'static str| {
        Request::post("/events")
            .header("content-type", "application/json")
            .header("traceparent", tp)
            .body(Body::from(format!(r#"{{"name":"shop/order.paid","data":{{"amount":150}},"id":"{id}"}}"#)))
            .expect("req")
    };
    let r = h.send(send("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "t-1")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    for id in ids(&r.json["run_ids"][0]) {
        let run = h.get(&format!("/runs/{id}")).await;
        assert_eq!(run.json["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "{}", run.json);
    }
    let r = h.send(send("00-zz-b7ad6b7169203331-01", "t-2")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "an invalid traceparent is no error: {}", r.json);
    let run = h.get(&format!("/runs/{}", ids(&r.json["run_ids"][0])[0])).await;
    assert!(run.json.get("traceparent").is_none(), "{}", run.json);
}
