//! The cost of exporting spans: the same rounds against a fresh server without export and a
//! fresh server exporting every span over OTLP/HTTP to a local receiver that reads each request
//! and discards it: closed-loop throughput (runs ended per second) and paced `POST /run` latency.

use super::load::{self, Client, Progress};
use super::server::{Server, ServerOptions};
use super::stats;
use axum::body::Bytes;
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The receiver: its traces URL and the bytes it has read. It runs on a thread and runtime of
/// its own, because stopping a server blocks the benchmark's thread while the server sends its
/// last spans.
fn receiver() -> Result<(String, Arc<AtomicU64>), String> {
    let bytes = Arc::new(AtomicU64::new(0));
    let count = bytes.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("the OTLP receiver: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                post(move |body: Bytes| {
                    let count = count.clone();
                    async move {
                        count.fetch_add(body.len() as u64, Ordering::Relaxed);
                        ""
                    }
                }),
            );
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = axum::serve(listener, app).await;
            }
        });
    });
    Ok((format!("http://{addr}/v1/traces"), bytes))
}

/// One closed-loop round and one paced round on a fresh server: runs/s and the paced summary.
async fn rounds(opts: &ServerOptions, runs: usize, concurrency: usize, rate: f64, label: &str) -> Result<Value, String> {
    let mut progress = Progress::new();
    let server = Server::start(opts, Duration::from_secs(30))?;
    let client = Client::new(std::slice::from_ref(&server.addr), concurrency)?;
    client.ready(Duration::from_secs(10)).await?;
    let closed = load::Load { function: "noop", runs, concurrency, rate: None, keys: 0, idempotent: false };
    let open = load::round(&client, closed, &format!("{label}, closed loop"), &mut progress).await;
    let paced = load::Load { rate: Some(rate), ..closed };
    let paced = load::round(&client, paced, &format!("{label}, paced"), &mut progress).await;
    server.stop(Duration::from_secs(30))?;
    let (open, paced) = (open?, paced?);
    if open.rejected + paced.rejected > 0 {
        return Err(format!("{label}: {} submissions were refused", open.rejected + paced.rejected));
    }
    #[allow(clippy::cast_precision_loss)]
    let per_second = open.accepted as f64 / open.elapsed.as_secs_f64().max(1e-9);
    Ok(json!({"runs_per_second": stats::round3(per_second), "paced": stats::summarize(&paced.post_micros)}))
}

/// Rounds on fresh servers, alternating without and with export (A B A B), and the ratios of
/// their medians.
pub(crate) async fn compare(base: &ServerOptions, runs: usize, concurrency: usize, rate: f64) -> Result<Value, String> {
    const PAIRS: usize = 2;
    let (endpoint, received) = receiver()?;
    let mut off = Vec::new();
    let mut on = Vec::new();
    for pair in 0..PAIRS {
        let plain = ServerOptions { dir: base.dir.join(format!("no-otlp-{pair}")), otlp: None, ..base.clone() };
        let traced = ServerOptions { dir: base.dir.join(format!("otlp-{pair}")), otlp: Some(endpoint.clone()), ..base.clone() };
        let n = pair + 1;
        off.push(rounds(&plain, runs, concurrency, rate, &format!("export comparison {n}/{PAIRS}: off")).await?);
        on.push(rounds(&traced, runs, concurrency, rate, &format!("export comparison {n}/{PAIRS}: on")).await?);
    }
    Ok(json!({
        "runs_per_round": runs,
        "rate": rate,
        "receiver_bytes": received.load(Ordering::Relaxed),
        "rounds_off": off,
        "rounds_on": on,
        "median_runs_per_second": {"off": stats::median_at(&off, "/runs_per_second"), "on": stats::median_at(&on, "/runs_per_second")},
        "median_paced_p99_ms": {"off": stats::median_at(&off, "/paced/p99_ms"), "on": stats::median_at(&on, "/paced/p99_ms")},
        "throughput_ratio": stats::ratio_at(&on, &off, "/runs_per_second"),
        "p99_ratio": stats::ratio_at(&on, &off, "/paced/p99_ms"),
    }))
}
