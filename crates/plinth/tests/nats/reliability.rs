//! 10,000 messages while the consuming node is SIGKILLed and restarted and while nats-server is
//! restarted: every message becomes exactly one event, and each event starts exactly one run.

use crate::bridge::{all_events, component, nats_health};
use crate::harness::{Served, client, send};
use crate::server::{Nats, available, free_port};
use async_nats::jetstream;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MESSAGES: usize = 10_000;

async fn wait_published(published: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while published.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "only {} of {n} published", published.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_through_a_sigkill_and_a_nats_restart_become_one_event_each() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nats = Nats::start_on(free_port(), dir.path());
    let config = dir.path().join("component.yaml");
    std::fs::write(&config, component(&nats.url(), "RELIABLE")).expect("component");
    let serve = |dir: &std::path::Path| Served::start(&config, &["--database-url", "sqlite://db"], dir);
    let first = serve(dir.path());
    let c = client();
    nats_health(&c, &first, "ok", Duration::from_secs(15)).await;

    let published = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let (published, url) = (published.clone(), nats.url());
        tokio::spawn(async move {
            let nc = async_nats::ConnectOptions::new().retry_on_initial_connect().connect(url).await.expect("connect");
            let js = jetstream::new(nc);
            for i in 0..MESSAGES {
                let body = json!({"name": "shop/order.paid", "id": format!("msg-{i}"), "data": {"i": i}}).to_string();
                // Why: while nats-server restarts a publish fails; sent again, a message may be
                // stored twice in the stream, and Plinth must still make one event of it.
                loop {
                    let stored = async { js.publish("shop.order.paid", body.clone().into()).await?.await.map_err(Into::into) };
                    let stored: Result<_, async_nats::Error> =
                        tokio::time::timeout(Duration::from_secs(5), stored).await.unwrap_or_else(|_| Err("timed out".into()));
                    if stored.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                published.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    wait_published(&published, 3_000).await;
    first.kill9();
    let second = serve(dir.path());
    wait_published(&published, 6_000).await;
    nats.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart();
    publisher.await.expect("publisher");

    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("connect"));
    let stream = js.get_stream("RELIABLE").await.expect("stream");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let info = stream.consumer_info("plinth-RELIABLE").await.expect("consumer info");
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "messages still pending after 120s: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = all_events(&c, &second).await;
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().expect("id")).collect();
    assert_eq!(events.len(), MESSAGES, "one event per message, none twice");
    assert_eq!(ids.len(), MESSAGES);
    assert!((0..MESSAGES).all(|i| ids.contains(format!("msg-{i}").as_str())), "every message arrived");
    for e in &events {
        assert_eq!(e["run_ids"].as_array().map(Vec::len), Some(1), "each event started one run: {e}");
    }
    let mut runs = 0;
    let mut started_by = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = second.url("/runs?trigger=event&limit=500");
        if let Some(cur) = &cursor {
            url.push_str(&format!("&cursor={cur}"));
        }
        let (_, page) = send(c.get(url)).await;
        for r in page["runs"].as_array().expect("runs") {
            runs += 1;
            started_by.insert(r["trigger"]["event_id"].as_str().expect("event id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!((runs, started_by.len()), (MESSAGES, MESSAGES), "one run per event");
    eprintln!("nats reliability: {MESSAGES} messages, {runs} runs, one node SIGKILLed, nats-server restarted");
}
