//! The cost of access control on `POST /run`: the same paced load against a fresh server
//! without auth and a fresh server that checks an API key on every request.

use super::load::{self, Client, Progress};
use super::server::{Server, ServerOptions};
use super::stats;
use serde_json::{Value, json};
use std::time::Duration;

/// A key long enough for the server's checks; only this benchmark's child servers know it.
const KEY: &str = "bench-key-not-a-secret-0123456789";

async fn paced(opts: &ServerOptions, runs: usize, concurrency: usize, rate: f64, label: &str) -> Result<Value, String> {
    let mut progress = Progress::new();
    let server = Server::start(opts, Duration::from_secs(30))?;
    let mut client = Client::new(std::slice::from_ref(&server.addr), concurrency)?;
    if opts.api_key.is_some() {
        client = client.with_key(KEY);
    }
    client.ready(Duration::from_secs(10)).await?;
    let round = load::round(
        &client,
        load::Load { function: "noop", runs, concurrency, rate: Some(rate), keys: 0, idempotent: false },
        label,
        &mut progress,
    )
    .await;
    server.stop(Duration::from_secs(30))?;
    let round = round?;
    if round.rejected > 0 {
        return Err(format!("{label}: {} submissions were refused", round.rejected));
    }
    Ok(json!(stats::summarize(&round.post_micros)))
}

/// Paced rounds on fresh servers, alternating without and with a key (A B A B, so warm-up and
/// drift fall on both), and the ratios of the medians of their p50 and p99.
pub(crate) async fn compare(base: &ServerOptions, runs: usize, concurrency: usize, rate: f64) -> Result<Value, String> {
    const PAIRS: usize = 2;
    let mut without = Vec::new();
    let mut with = Vec::new();
    for pair in 0..PAIRS {
        let plain = ServerOptions { dir: base.dir.join(format!("no-auth-{pair}")), api_key: None, ..base.clone() };
        let keyed = ServerOptions { dir: base.dir.join(format!("auth-{pair}")), api_key: Some(KEY.to_string()), ..base.clone() };
        let n = pair + 1;
        without.push(paced(&plain, runs, concurrency, rate, &format!("auth comparison {n}/{PAIRS}: without a key")).await?);
        with.push(paced(&keyed, runs, concurrency, rate, &format!("auth comparison {n}/{PAIRS}: with an API key")).await?);
    }
    Ok(json!({
        "rate": rate,
        "runs_per_round": runs,
        "rounds_without_auth": without,
        "rounds_with_api_key": with,
        "median_p50_ms": {"without": stats::median_at(&without, "/p50_ms"), "with": stats::median_at(&with, "/p50_ms")},
        "median_p99_ms": {"without": stats::median_at(&without, "/p99_ms"), "with": stats::median_at(&with, "/p99_ms")},
        "p50_ratio": stats::ratio_at(&with, &without, "/p50_ms"),
        "p99_ratio": stats::ratio_at(&with, &without, "/p99_ms"),
    }))
}
