//! Flow control through the API: keys stored at `POST /run`, `held_by` on queued runs, and
//! `GET /functions/{name}/keys`.

use super::{Harness, assert_problem, harness_with};
use axum::http::StatusCode;
use plinth_core::timefmt::now_micros;
use plinth_store::ClaimRequest;
use std::collections::HashMap;
use std::sync::Arc;

const COMPONENT: &str = r#"
component: {name: shop, version: '1'}
functions:
  - name: charge
    handler: {rust: noop}
    policy: {concurrency: {limit: 1, key: input.tenant}}
  - name: global
    handler: {rust: noop}
    policy: {concurrency: 2}
  - name: free
    handler: {rust: noop}
  - name: paced
    handler: {rust: noop}
    policy: {throttle: {limit: 1, period: 1h, key: input.account}}
  - name: limited
    handler: {rust: noop}
    policy: {rate_limit: {limit: 1, period: 1h, key: input.customer}}
  - name: typing
    handler: {rust: echo}
    policy: {debounce: {period: 1h, max_wait: 2h, key: input.user}}
  - name: once
    handler: {rust: noop}
    policy: {singleton: {key: input.order}}
  - name: latest
    handler: {rust: noop}
    policy: {singleton: {mode: cancel}}
  - name: ranked
    handler: {rust: noop}
    policy: {priority: "input.plan == 'enterprise' ? 120 : (input.plan == 'bulk' ? -60 : 0)"}
  - name: notify
    handler: {rust: noop}
    policy: {rate_limit: {limit: 1, period: 1h, key: event.data.customer}}
    triggers: [{event: shop/order.placed}]
"#;

/// Claims as a worker would, with the component's limits.
async fn claim(h: &Harness, function: &str, n: u32) -> Vec<plinth_core::Run> {
    let now = now_micros();
    let limits: HashMap<String, plinth_store::FlowLimit> = h
        .state
        .component
        .get()
        .file
        .functions
        .iter()
        .filter_map(|f| plinth_store::FlowLimit::of(&f.policy).map(|l| (f.name.clone(), l)))
        .collect();
    let req = ClaimRequest {
        owner: "w".into(),
        now,
        lease_until: now + 30_000_000,
        wants: vec![(function.into(), n)],
        limit: n,
        limits: Arc::new(limits),
    };
    h.state.store.claim(req).await.expect("claim").runs
}

#[tokio::test]
async fn a_run_held_by_its_key_says_so() {
    let h = harness_with(COMPONENT);
    let first = h.submit(r#"{"function":"charge","input":{"tenant":"t-1"}}"#).await;
    let second = h.submit(r#"{"function":"charge","input":{"tenant":"t-1"}}"#).await;
    let third = h.submit(r#"{"function":"charge","input":{"tenant":"t-1"}}"#).await;
    let other = h.submit(r#"{"function":"charge","input":{"tenant":"t-2"}}"#).await;
    let r = h.get(&format!("/runs/{first}")).await;
    assert_eq!(r.json["flow_key"], "t-1", "{}", r.json);
    assert!(r.json.get("held_by").is_none(), "the first run of a free key is not held: {}", r.json);

    let running = claim(&h, "charge", 10).await;
    let started: Vec<&str> = running.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(started.len(), 2, "one run per tenant: {started:?}");
    assert!(started.contains(&first.as_str()) && started.contains(&other.as_str()));

    let r = h.get(&format!("/runs/{third}")).await;
    assert_eq!(r.json["status"], "queued");
    let held = &r.json["held_by"];
    assert_eq!(held["rule"], "concurrency", "{}", r.json);
    assert_eq!(held["key"], "t-1");
    assert_eq!((held["limit"].as_u64(), held["running"].as_u64(), held["ahead"].as_u64()), (Some(1), Some(1), Some(1)));
    let r = h.get(&format!("/runs/{second}")).await;
    assert_eq!(r.json["held_by"]["ahead"], 0, "{}", r.json);
    let r = h.get(&format!("/runs/{first}")).await;
    assert!(r.json.get("held_by").is_none(), "a running run is not held: {}", r.json);
}

#[tokio::test]
async fn delayed_runs_say_until_when_and_unlimited_runs_have_no_key() {
    let h = harness_with(COMPONENT);
    let id = h.submit(r#"{"function":"free","input":{},"delay_seconds":60}"#).await;
    let r = h.get(&format!("/runs/{id}")).await;
    assert_eq!(r.json["held_by"]["rule"], "delay", "{}", r.json);
    assert!(r.json["held_by"]["until"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", r.json);
    assert!(r.json.get("flow_key").is_none(), "a function without a limit stores no key: {}", r.json);

    let g = h.submit(r#"{"function":"global","input":{}}"#).await;
    let r = h.get(&format!("/runs/{g}")).await;
    assert_eq!(r.json["flow_key"], "", "a limit without a key is one shared key: {}", r.json);
}

#[tokio::test]
async fn a_key_that_fails_falls_back_to_the_shared_key() {
    let h = harness_with(COMPONENT);
    let missing = h.submit(r#"{"function":"charge","input":{"no_tenant":1}}"#).await;
    let map = h.submit(r#"{"function":"charge","input":{"tenant":{"a":1}}}"#).await;
    for id in [missing, map] {
        let r = h.get(&format!("/runs/{id}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json["flow_key"], "", "{}", r.json);
    }
    let number = h.submit(r#"{"function":"charge","input":{"tenant":42}}"#).await;
    assert_eq!(h.get(&format!("/runs/{number}")).await.json["flow_key"], "42");
}

#[tokio::test]
async fn keys_list_the_busiest_first_and_page() {
    let h = harness_with(COMPONENT);
    for tenant in ["a", "b", "b", "b", "c", "c"] {
        h.submit(&format!(r#"{{"function":"charge","input":{{"tenant":"{tenant}"}}}}"#)).await;
    }
    claim(&h, "charge", 10).await;
    let r = h.get("/functions/charge/keys?limit=2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!((r.json["limit"].as_u64(), r.json["key"].as_str()), (Some(1), Some("input.tenant")));
    let keys = r.json["keys"].as_array().expect("keys");
    let got: Vec<(&str, u64, u64)> = keys
        .iter()
        .map(|k| (k["key"].as_str().unwrap_or("?"), k["queued"].as_u64().unwrap_or(99), k["running"].as_u64().unwrap_or(99)))
        .collect();
    assert_eq!(got, vec![("b", 2, 1), ("c", 1, 1)], "{}", r.json);
    assert!(keys[0]["oldest_queued_age_seconds"].as_f64().is_some_and(|a| a >= 0.0));
    let cursor = r.json["next_cursor"].as_str().expect("a next page");
    let r = h.get(&format!("/functions/charge/keys?limit=2&cursor={cursor}")).await;
    let keys = r.json["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["key"], "a");
    assert!(keys[0].get("oldest_queued_at").is_none(), "a key with nothing queued has no oldest run: {}", r.json);
    assert!(r.json.get("next_cursor").is_none());

    let r = h.get("/functions/free/keys").await;
    assert_eq!(r.json["keys"], serde_json::json!([]), "a function without a limit has no keys");
    assert!(r.json.get("limit").is_none());
}

#[tokio::test]
async fn keys_refuse_unknown_functions_and_bad_queries() {
    let h = harness_with(COMPONENT);
    assert_problem(&h.get("/functions/nope/keys").await, 404, "PLINTH_005");
    assert_problem(&h.get("/functions/charge/keys?limit=0").await, 400, "PLINTH_014");
    assert_problem(&h.get("/functions/charge/keys?cursor=abc").await, 400, "PLINTH_014");
    assert_problem(&h.get("/functions/charge/keys?page=2").await, 400, "PLINTH_014");
}

#[tokio::test]
async fn a_run_held_by_a_throttle_says_when_it_may_start() {
    let h = harness_with(COMPONENT);
    let first = h.submit(r#"{"function":"paced","input":{"account":"a-1"}}"#).await;
    let second = h.submit(r#"{"function":"paced","input":{"account":"a-1"}}"#).await;
    let other = h.submit(r#"{"function":"paced","input":{"account":"a-2"}}"#).await;
    assert_eq!(h.get(&format!("/runs/{first}")).await.json["flow_key"], "a-1");
    let started: Vec<String> = claim(&h, "paced", 10).await.into_iter().map(|r| r.run_id).collect();
    assert_eq!(started.len(), 2, "one start per account: {started:?}");
    assert!(started.contains(&first) && started.contains(&other));
    assert!(claim(&h, "paced", 10).await.is_empty(), "the next start of a-1 is an hour away");
    let r = h.get(&format!("/runs/{second}")).await;
    let held = &r.json["held_by"];
    assert_eq!((held["rule"].as_str(), held["key"].as_str(), held["limit"].as_u64()), (Some("throttle"), Some("a-1"), Some(1)));
    assert_eq!(held["ahead"], 0);
    let until = plinth_core::timefmt::parse_rfc3339(held["until"].as_str().expect("until")).expect("a time");
    let hour = 3_600_000_000;
    assert!((until - now_micros() - hour).abs() < 60_000_000, "it may start about an hour from now: {}", r.json);
    let keys = h.get("/functions/paced/keys").await;
    assert_eq!(keys.json["key"], "input.account", "{}", keys.json);
}

#[test]
fn held_runs_are_split_between_the_rules() {
    use crate::routes::flow::held;
    use plinth_core::flow::Gcra;
    use plinth_store::{FlowLimit, LaneRoom};
    let lane = |running, due, tat| LaneRoom { key: "k".into(), running, due, tat };
    let both = FlowLimit { concurrency: Some(2), throttle: Some(Gcra { interval: 1_000_000, burst: 1, limit: 1 }) };
    assert_eq!(both.cap(), 2, "counting a lane up to its concurrency limit is enough");
    assert_eq!(held(&both, 5, &[lane(2, 2, 0)], 10), (5, 0), "a full key holds every due run by concurrency");
    assert_eq!(held(&both, 5, &[lane(0, 2, 0)], 10), (3, 1), "two places, one start admitted");
    assert_eq!(held(&both, 1, &[lane(1, 1, 20)], 10), (0, 1), "the throttle's next start has not come");
    assert_eq!(held(&both, 7, &[lane(2, 2, 0), lane(0, 2, 0)], 10), (5, 1), "lanes add up: 5 past their places, 1 throttled");
    let concurrency = FlowLimit { concurrency: Some(3), throttle: None };
    assert_eq!(held(&concurrency, 2, &[lane(0, 2, 0)], 10), (0, 0), "room for all");
    assert_eq!(held(&concurrency, 0, &[lane(3, 0, 0)], 10), (0, 0), "nothing due, nothing held");
    assert_eq!(held(&concurrency, 0, &[], 10), (0, 0), "no lane, nothing held");
    assert_eq!(held(&concurrency, 4, &[], 10), (4, 0), "due runs of keys not looked at count as held");
    let throttle = FlowLimit { concurrency: None, throttle: Some(Gcra { interval: 1_000_000, burst: 3, limit: 1 }) };
    assert_eq!(throttle.cap(), 3, "without a concurrency limit, the burst");
    assert_eq!(
        held(&throttle, 1_000_000, &[lane(0, 3, 0)], 10),
        (0, 999_997),
        "a million due in one key: three start, the rest wait"
    );
    assert_eq!(held(&throttle, 10, &[lane(0, 3, 20_000_000)], 10), (0, 10), "a key whose time is far ahead starts none");
}

#[tokio::test]
async fn metrics_show_the_queue_and_what_holds_it() {
    let h = harness_with(COMPONENT);
    for _ in 0..3 {
        h.submit(r#"{"function":"charge","input":{"tenant":"t-1"}}"#).await;
    }
    h.submit(r#"{"function":"free","input":{},"delay_seconds":60}"#).await;
    claim(&h, "charge", 10).await;
    let text = h.get("/metrics").await.json.as_str().expect("text").to_string();
    for line in [
        r#"plinth_queue_depth{component="hello",function="charge"} 2"#,
        r#"plinth_runs_held{component="hello",function="charge",rule="concurrency"} 2"#,
        r#"plinth_runs_held{component="hello",function="charge",rule="throttle"} 0"#,
        r#"plinth_runs_held{component="hello",function="free",rule="scheduled"} 1"#,
        r#"plinth_queue_oldest_seconds{component="hello",function="free"} 0.0"#,
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    assert!(text.contains(r#"plinth_queue_oldest_seconds{component="hello",function="charge"} "#), "{text}");
}

#[tokio::test]
async fn a_rate_limit_answers_429_with_retry_after_and_events_say_why() {
    let h = harness_with(COMPONENT);
    h.submit(r#"{"function":"limited","input":{"customer":"c-1"}}"#).await;
    let r = h.post_json("/run", r#"{"function":"limited","input":{"customer":"c-1"}}"#).await;
    assert_problem(&r, 429, "PLINTH_044");
    let wait: u64 = r.headers["retry-after"].to_str().ok().and_then(|v| v.parse().ok()).expect("Retry-After in seconds");
    assert!((1..=3600).contains(&wait), "the window's end, in whole seconds: {wait}");
    h.submit(r#"{"function":"limited","input":{"customer":"c-2"}}"#).await;

    let first = h.post_json("/events", r#"{"name":"shop/order.placed","data":{"customer":"c-9"}}"#).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    assert_eq!(first.json["run_ids"][0].as_array().map(Vec::len), Some(1), "{}", first.json);
    let second = h.post_json("/events", r#"{"name":"shop/order.placed","data":{"customer":"c-9"}}"#).await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "an event past the limit is still stored: {}", second.json);
    assert_eq!(second.json["run_ids"][0], serde_json::json!([]), "{}", second.json);
    let id = second.json["event_ids"][0].as_str().expect("event id");
    let shown = h.get(&format!("/events/{id}")).await;
    let reasons = shown.json["skipped"].to_string();
    assert!(reasons.contains("notify") && reasons.contains("rate_limit"), "{}", shown.json);
}

#[tokio::test]
async fn a_debounced_run_is_fed_by_later_requests_of_its_key() {
    let h = harness_with(COMPONENT);
    let first = h.submit(r#"{"function":"typing","input":{"user":"u-1","text":"h"}}"#).await;
    let second = h.submit(r#"{"function":"typing","input":{"user":"u-1","text":"hi"}}"#).await;
    assert_eq!(first, second, "the second request fed the queued run");
    let other = h.submit(r#"{"function":"typing","input":{"user":"u-2","text":"yo"}}"#).await;
    assert_ne!(other, first);
    let r = h.get(&format!("/runs/{first}")).await;
    assert_eq!(r.json["input"]["text"], "hi", "the last input: {}", r.json);
    assert_eq!(r.json["held_by"]["rule"], "debounce", "{}", r.json);
    let until = plinth_core::timefmt::parse_rfc3339(r.json["held_by"]["until"].as_str().expect("until")).expect("a time");
    assert!((until - now_micros() - 3_600_000_000).abs() < 60_000_000, "an hour after the last request: {}", r.json);
    assert!(claim(&h, "typing", 10).await.is_empty(), "nothing starts before the period is over");
}

#[tokio::test]
async fn a_singleton_refuses_a_second_run_or_cancels_the_first() {
    let h = harness_with(COMPONENT);
    let first = h.submit(r#"{"function":"once","input":{"order":"o-1"}}"#).await;
    let r = h.post_json("/run", r#"{"function":"once","input":{"order":"o-1"}}"#).await;
    assert_problem(&r, 409, "PLINTH_045");
    assert!(r.json["detail"].as_str().is_some_and(|d| d.contains(&first)), "the detail names the run: {}", r.json);
    h.submit(r#"{"function":"once","input":{"order":"o-2"}}"#).await;

    let old = h.submit(r#"{"function":"latest","input":{"v":1}}"#).await;
    let new = h.submit(r#"{"function":"latest","input":{"v":2}}"#).await;
    assert_eq!(h.get(&format!("/runs/{old}")).await.json["status"], "cancelled");
    assert_eq!(h.get(&format!("/runs/{new}")).await.json["status"], "queued");
}

#[tokio::test]
async fn a_priority_factor_moves_a_run_in_its_queue() {
    let h = harness_with(COMPONENT);
    let free = h.submit(r#"{"function":"ranked","input":{"plan":"free"}}"#).await;
    let bulk = h.submit(r#"{"function":"ranked","input":{"plan":"bulk"}}"#).await;
    let paid = h.submit(r#"{"function":"ranked","input":{"plan":"enterprise"}}"#).await;
    let odd = h.submit(r#"{"function":"ranked","input":{"plan":7}}"#).await;
    let delayed = h.submit(r#"{"function":"ranked","input":{"plan":"enterprise"},"delay_seconds":3600}"#).await;
    let held = h.get(&format!("/runs/{bulk}")).await;
    assert_eq!(held.json["held_by"]["rule"], "delay", "a negative factor delays even an idle queue: {}", held.json);
    let mut order = Vec::new();
    for _ in 0..4 {
        order.extend(claim(&h, "ranked", 1).await.into_iter().map(|r| r.run_id));
    }
    assert_eq!(order, [paid, free, odd], "enterprise first, then by arrival; bulk waits its minute, a delay holds");
    let later = h.get(&format!("/runs/{delayed}")).await;
    assert_eq!(later.json["status"], "queued", "a positive factor never breaks a delay: {}", later.json);
}
