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
    let mut client = Client::new(&server.addr, concurrency)?;
    if opts.api_key.is_some() {
        client = client.with_key(KEY);
    }
    client.ready(Duration::from_secs(10)).await?;
    let round =
        load::round(&client, load::Load { function: "noop", runs, concurrency, rate: Some(rate) }, label, &mut progress).await;
    server.stop(Duration::from_secs(30))?;
    let round = round?;
    if round.rejected > 0 {
        return Err(format!("{label}: {} submissions were refused", round.rejected));
    }
    Ok(json!(stats::summarize(&round.post_micros)))
}

/// Both rounds and the ratios of their p50 and p99.
pub(crate) async fn compare(base: &ServerOptions, runs: usize, concurrency: usize, rate: f64) -> Result<Value, String> {
    let plain = ServerOptions { dir: base.dir.join("no-auth"), api_key: None, ..base.clone() };
    let keyed = ServerOptions { dir: base.dir.join("auth"), api_key: Some(KEY.to_string()), ..base.clone() };
    let without = paced(&plain, runs, concurrency, rate, "auth comparison: without a key").await?;
    let with = paced(&keyed, runs, concurrency, rate, "auth comparison: with an API key").await?;
    let ratio = |p: &str| {
        let (a, b) = (with.pointer(p).and_then(Value::as_f64)?, without.pointer(p).and_then(Value::as_f64)?);
        (b > 0.0).then(|| stats::round3(a / b))
    };
    Ok(json!({
        "rate": rate,
        "runs": runs,
        "post_run_without_auth": without,
        "post_run_with_api_key": with,
        "p50_ratio": ratio("/p50_ms"),
        "p99_ratio": ratio("/p99_ms"),
    }))
}
