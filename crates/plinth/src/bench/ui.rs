//! The dashboard's cost, on a server of its own: `--ui-history` runs put in the store (each
//! started by an event, all of them ended, their inputs spread over 1,000 customers), then the
//! time to render the overview, the first page of runs, a page filtered on an input field and
//! a run with 100 steps, and the weight of a page with its assets.

use super::load::{Client, Progress};
use super::server::{Server, ServerOptions};
use super::stats;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Issue 13's targets.
const TARGET_LIST_MS: f64 = 50.0;
const TARGET_RUN_MS: f64 = 20.0;
const TARGET_WEIGHT_KB: f64 = 150.0;
/// Events in each `POST /events` of the fill.
const PER_REQUEST: usize = 1000;
/// Requests sent before the fill waits for their runs to end.
const SLICE: usize = 20;

/// What to measure.
pub(crate) struct Settings {
    pub(crate) history: usize,
    pub(crate) concurrency: usize,
    pub(crate) samples: usize,
}

/// Puts `n` runs in the store through events of 1,000 each, a slice of [`SLICE`] requests at a
/// time, each slice waited for until its runs have ended: the store holds history, not a
/// backlog (a backlog of a million is issue 16's measure, not this one's).
async fn fill(client: &Client, n: usize, concurrency: usize, progress: &mut Progress) -> Result<(), String> {
    let (ok_before, other_before) = client.finished().await?;
    let requests = n.div_ceil(PER_REQUEST);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut sent = 0u64;
    while sent < (requests * PER_REQUEST) as u64 {
        let slice_end = (next.load(Ordering::Relaxed) + SLICE).min(requests);
        let mut tasks = Vec::new();
        for _ in 0..concurrency.clamp(1, 8) {
            let (client, next) = (client.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let r = next.fetch_add(1, Ordering::Relaxed);
                    if r >= slice_end {
                        next.fetch_min(slice_end, Ordering::Relaxed);
                        return Ok::<(), String>(());
                    }
                    let events: Vec<Value> = (r * PER_REQUEST..(r + 1) * PER_REQUEST)
                        .map(|i| json!({"name": "bench/run.started", "data": {"customer": format!("c-{}", i % 1000), "n": i}}))
                        .collect();
                    client.send_events(Value::Array(events).to_string()).await?;
                }
            }));
        }
        for t in tasks {
            t.await.map_err(|e| format!("a filler failed: {e}"))??;
        }
        sent = (slice_end * PER_REQUEST) as u64;
        loop {
            let (ok, other) = client.finished().await?;
            let ended = (ok - ok_before) + (other - other_before);
            if ended >= sent {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("dashboard: only {ended} of {sent} runs ended within an hour"));
            }
            progress.update(&format!("bench: dashboard: {sent} runs sent, {ended} ended"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    progress.done(&format!("bench: dashboard: {sent} runs in the store"));
    Ok(())
}

/// `samples` GETs of `path` one after another, after one to warm up: the latencies (micros)
/// and the last body's size.
async fn time_page(client: &Client, path: &str, samples: usize) -> Result<(Vec<u64>, usize), String> {
    let (status, body) = client.get_text(path).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {}", body.chars().take(300).collect::<String>()));
    }
    let mut micros = Vec::with_capacity(samples);
    let mut size = body.len();
    for _ in 0..samples.max(1) {
        let t = Instant::now();
        let (_, body) = client.get_text(path).await?;
        micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
        size = body.len();
    }
    Ok((micros, size))
}

/// The dashboard's figures with `s.history` runs in the store.
pub(crate) async fn measure(opts: &ServerOptions, s: &Settings, progress: &mut Progress) -> Result<(Value, Vec<Value>), String> {
    let server = Server::start(opts, Duration::from_secs(30))?;
    let client = Client::new(std::slice::from_ref(&server.addr), s.concurrency)?;
    client.ready(Duration::from_secs(10)).await?;
    let started = Instant::now();
    fill(&client, s.history, s.concurrency, progress).await?;
    let fill_seconds = started.elapsed().as_secs_f64();
    let steps_id = client.submit_input("http_steps100", &json!({})).await?;
    let run = client.wait_run(&steps_id, 60).await?;
    if run.get("status").and_then(Value::as_str) != Some("succeeded") {
        return Err(format!("the 100-step run {steps_id} did not succeed: {run}"));
    }
    let pages = [
        ("overview", "/ui".to_string()),
        ("runs_first_page", "/ui/runs".to_string()),
        ("runs_by_status", "/ui/runs?status=succeeded".to_string()),
        ("runs_by_input_field", "/ui/runs?function=on_event&field=data.customer&equals=c-7".to_string()),
        ("run_with_100_steps", format!("/ui/runs/{steps_id}")),
    ];
    let mut report = serde_json::Map::new();
    let mut p50 = std::collections::HashMap::new();
    let mut overview_bytes = 0;
    for (name, path) in &pages {
        let (micros, size) = time_page(&client, path, s.samples).await?;
        let summary = stats::summarize(&micros);
        p50.insert(*name, summary.as_ref().map(|s| s.p50_ms));
        if *name == "overview" {
            overview_bytes = size;
        }
        report.insert((*name).to_string(), json!({"path": path, "bytes": size, "latency": summary}));
        progress.done(&format!("bench: dashboard: {name} timed"));
    }
    let mut asset_bytes = 0;
    for asset in ["/ui/assets/plinth.css", "/ui/assets/plinth.js"] {
        asset_bytes += client.get_text(asset).await?.1.len();
    }
    drop(server);
    #[allow(clippy::cast_precision_loss)]
    let weight_kb = (overview_bytes + asset_bytes) as f64 / 1024.0;
    report.insert("history".into(), json!(s.history));
    report.insert("fill_seconds".into(), json!(stats::round3(fill_seconds)));
    report.insert("overview_with_assets_kb".into(), json!(stats::round3(weight_kb)));
    let get = |n: &str| p50.get(n).copied().flatten();
    let targets = vec![
        super::target("dashboard overview p50 ms", "<=", TARGET_LIST_MS, get("overview")),
        super::target("dashboard first page of runs p50 ms", "<=", TARGET_LIST_MS, get("runs_first_page")),
        super::target("dashboard run with 100 steps p50 ms", "<=", TARGET_RUN_MS, get("run_with_100_steps")),
        super::target("dashboard overview with its assets KB", "<=", TARGET_WEIGHT_KB, Some(weight_kb)),
    ];
    Ok((Value::Object(report), targets))
}
