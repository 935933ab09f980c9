//! Messages become events (one each, deduplicated by id), bad ones are terminated and counted,
//! run ends are published, and NATS being down makes the component degraded, not dead.

use crate::harness::{Served, client, component_dir, send};
use crate::server::{Nats, available, free_port};
use async_nats::jetstream;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub(crate) fn component(url: &str, stream: &str) -> String {
    format!(
        "component: {{name: shop, version: '1'}}\n\
         events:\n  nats:\n    url: {url}\n    stream: {stream}\n    subjects: ['shop.>']\n    durable: plinth-{stream}\n    publish: {{subject_prefix: ends}}\n\
         functions:\n  - name: receipt\n    handler: {{rust: noop}}\n    triggers: [{{event: shop/order.paid}}]\n"
    )
}

/// Waits until `/health` says `want` for the NATS check.
pub(crate) async fn nats_health(c: &reqwest::Client, s: &Served, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, health) = send(c.get(s.url("/health"))).await;
        if health["checks"]["nats"]["status"] == want {
            return health;
        }
        assert!(Instant::now() < deadline, "the NATS check is not {want} within {within:?}: {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event stored, through every page.
pub(crate) async fn all_events(c: &reqwest::Client, s: &Served) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = s.url("/events?limit=500");
        if let Some(cur) = &cursor {
            url.push_str(&format!("&cursor={cur}"));
        }
        let (status, page) = send(c.get(url)).await;
        assert_eq!(status, 200, "{page}");
        out.extend(page["events"].as_array().expect("events").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

async fn metric(c: &reqwest::Client, s: &Served, needle: &str) -> f64 {
    let text = c.get(s.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines().find(|l| l.contains(needle)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_become_events_bad_ones_are_terminated_and_run_ends_are_published() {
    if !available() {
        return;
    }
    let (dir, config) = component_dir("");
    let nats = Nats::start_on(free_port(), dir.path());
    std::fs::write(&config, component(&nats.url(), "BRIDGE")).expect("component");
    let s = Served::start(&config, &["--database-url", "sqlite://db"], dir.path());
    let c = client();
    nats_health(&c, &s, "ok", Duration::from_secs(15)).await;
    let nc = async_nats::connect(nats.url()).await.expect("connect");
    let mut ends = nc.subscribe("ends.>").await.expect("subscribe");
    let js = jetstream::new(nc.clone());
    let publish = |subject: &'static str, body: Vec<u8>| {
        let js = js.clone();
        async move { js.publish(subject, body.into()).await.expect("publish").await.expect("stored") }
    };
    publish("shop.order.paid", br#"{"name":"shop/order.paid","data":{"order":"o-1"},"id":"m-1"}"#.to_vec()).await;
    publish("shop.order.paid", br#"{"order":"o-2"}"#.to_vec()).await;
    publish("shop.order.paid", b"not json at all".to_vec()).await;
    publish("shop.order.paid", b"[1, 2, 3]".to_vec()).await;
    publish("shop.order.paid", br#"{"name":"Not An Event"}"#.to_vec()).await;
    let mut big = br#"{"name":"shop/order.paid","data":{"blob":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    big.extend(br#""}}"#);
    publish("shop.order.paid", big).await;
    publish("shop.order.paid", br#"{"name":"shop/order.paid","data":{"order":"o-1 again"},"id":"m-1"}"#.to_vec()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = js.get_stream("BRIDGE").await.expect("stream");
    loop {
        let info = stream.consumer_info("plinth-BRIDGE").await.expect("consumer info");
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "messages still pending: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = all_events(&c, &s).await;
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().expect("id")).collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), 2, "two good messages, one of them sent twice: {events:?}");
    assert!(ids.contains(&"m-1") && ids.iter().any(|id| id.starts_with("nats-BRIDGE-")), "{ids:?}");
    let plain = events.iter().find(|e| e["id"] != "m-1").expect("the plain body");
    assert_eq!((plain["name"].as_str(), &plain["data"]), (Some("shop/order.paid"), &json!({"order": "o-2"})));
    assert_eq!(metric(&c, &s, "error_type=\"NatsBadMessage\"").await, 4.0, "not JSON, an array, a bad name, 10 MB");
    let info = stream.consumer_info("plinth-BRIDGE").await.expect("consumer info");
    assert_eq!(info.num_redelivered, 0, "bad messages are terminated, never redelivered");
    let (_, runs) = send(c.get(s.url("/runs?trigger=event"))).await;
    assert_eq!(runs["runs"].as_array().expect("runs").len(), 2);
    for _ in 0..2 {
        let msg = tokio::time::timeout(Duration::from_secs(10), ends.next()).await.expect("an end within 10s").expect("message");
        assert_eq!(msg.subject.as_str(), "ends.shop.run.succeeded");
        let summary: Value = serde_json::from_slice(&msg.payload).expect("JSON");
        assert_eq!((summary["function"].as_str(), summary["status"].as_str()), (Some("receipt"), Some("succeeded")));
        assert_eq!(summary["trigger"]["type"], "event");
        assert!(summary.get("input").is_none() && summary.get("output").is_none(), "no payloads: {summary}");
    }
    let logs = s.logs();
    let bad = logs.iter().filter(|l| l["message"] == "NATS message is not an event; terminated").count();
    assert_eq!(bad, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_at_start_is_degraded_then_recovers_by_itself() {
    if !available() {
        return;
    }
    let (dir, config) = component_dir("");
    let port = free_port();
    std::fs::write(&config, component(&format!("nats://127.0.0.1:{port}"), "LATE")).expect("component");
    let s = Served::start(&config, &["--database-url", "sqlite://db"], dir.path());
    let c = client();
    let health = nats_health(&c, &s, "failing", Duration::from_secs(5)).await;
    assert_eq!(health["status"], "degraded");
    let (ready, _) = send(c.get(s.url("/ready"))).await;
    assert_eq!(ready, 200, "HTTP still serves");
    let (sent, body) = send(c.post(s.url("/events")).json(&json!({"name": "shop/order.paid", "id": "http-1"}))).await;
    assert_eq!(sent, 202, "HTTP events work without NATS: {body}");
    let nats = Nats::start_on(port, dir.path());
    let health = nats_health(&c, &s, "ok", Duration::from_secs(20)).await;
    assert_eq!(health["status"], "healthy");
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("connect"));
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    let body = br#"{"id":"late-1"}"#.to_vec().into();
    js.publish_with_headers("shop.order.paid", headers, body).await.expect("publish").await.expect("stored");
    let deadline = Instant::now() + Duration::from_secs(10);
    while all_events(&c, &s).await.len() < 2 {
        assert!(Instant::now() < deadline, "the message did not become an event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = all_events(&c, &s).await;
    let late = events.iter().find(|e| e["id"] != "http-1").unwrap_or_else(|| panic!("the NATS event: {events:?}"));
    let (_, runs) = send(c.get(s.url(&format!("/runs?event_id={}", late["id"].as_str().unwrap_or(""))))).await;
    assert_eq!(
        runs["runs"][0]["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "the message's trace reaches its runs: {runs}"
    );
}

#[test]
fn an_unset_nats_url_variable_stops_start_up() {
    let (dir, config) = component_dir(&component("${PLINTH_TEST_UNSET_NATS_URL}", "X"));
    let out = crate::harness::plinth(&["serve", "--config", config.to_str().expect("utf-8"), "--port", "0"], &[], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("events.nats.url") && stderr.contains("PLINTH_001"), "{stderr}");
}
