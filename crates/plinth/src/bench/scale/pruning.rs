//! `POST /run` while the pruner deletes the old runs, against the same paced load for as long on
//! an empty store of its own. Why as long: the tail of a minute of rounds meets the machine's
//! stalls (a slow flush of the disk, another tenant) more often than the tail of the empty
//! store's five-second round does, so a ratio of the two leaned against the pruner whatever it
//! did (docs/scaling.md, session 31). Rounds of the same size on both sides, one after the other.

use super::super::load::{self, Client, Progress};
use super::super::server::{Server, ServerOptions};
use super::super::stats;
use super::{FREE, PRUNE_DEADLINE, Settings};
use plinth_store::copies::RunCopies;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// What `POST /run` paid while the pruner worked, and for as long on an empty store.
pub(super) struct Pruning {
    /// The latencies from the moment the first old run is gone until the last is.
    pub(super) during: Vec<u64>,
    pub(super) seconds: f64,
    pub(super) runs: u64,
    /// The latencies of the same rounds for as long on an empty store.
    pub(super) empty: Vec<u64>,
    pub(super) empty_seconds: f64,
}

async fn gone(client: &Client, id: &str) -> Result<bool, String> {
    let (status, _) = client.get_text(&format!("/runs/{id}")).await?;
    Ok(status == 404)
}

/// Paced rounds of two seconds' worth of runs, one after the other, until `stop` says so (it is
/// asked after each round, so at least one round runs); every accepted `POST /run`'s latency.
async fn rounds_until(
    client: &Client,
    s: &Settings,
    label: &str,
    progress: &mut Progress,
    mut stop: impl AsyncFnMut() -> Result<bool, String>,
) -> Result<Vec<u64>, String> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let runs = ((s.rate * 2.0) as usize).max(50);
    let mut post_micros = Vec::new();
    loop {
        let load =
            load::Load { function: FREE, runs, concurrency: s.concurrency, rate: Some(s.rate), keys: 0, idempotent: false };
        post_micros.extend(load::round(client, load, label, progress).await?.post_micros);
        if stop().await? {
            return Ok(post_micros);
        }
    }
}

/// Both sides: first the pruner at work on the full store (`opts`), then an empty store.
pub(super) async fn measure(
    opts: &ServerOptions,
    s: &Settings,
    old: &RunCopies,
    progress: &mut Progress,
) -> Result<Pruning, String> {
    // Why: the pruner passes every tenth of the shortest window; a one-minute idempotency window
    // makes that six seconds, and a day's retention spares every run but the old copies.
    let args = ["--retention", "1day", "--idempotency-window", "1m"].map(str::to_string).to_vec();
    let server = Server::start(&ServerOptions { serve_args: args, ..opts.clone() }, Duration::from_secs(120))?;
    let client = Client::new(std::slice::from_ref(&server.addr), s.concurrency)?;
    client.ready(Duration::from_secs(30)).await?;
    let (first, last) = (old.id(old.first), old.id(old.first + old.count - 1));
    let deadline = Instant::now() + PRUNE_DEADLINE;
    while !gone(&client, &first).await? {
        if Instant::now() > deadline {
            return Err("the pruner never started on the old runs".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let during = rounds_until(&client, s, "scale: paced POST /run while the pruner works", progress, async || {
        if Instant::now() > deadline {
            return Err(format!("the pruner did not delete {} old runs within {PRUNE_DEADLINE:?}", old.count));
        }
        gone(&client, &last).await
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    drop(server);
    progress.done(&format!("bench: scale: {} old runs pruned in {seconds:.1} s", old.count));

    let base = opts.own_store("base", "base");
    let server = Server::start(&base, Duration::from_secs(60))?;
    let client = Client::new(std::slice::from_ref(&server.addr), s.concurrency)?;
    client.ready(Duration::from_secs(30)).await?;
    // Why: the pruning side's store holds the backlog behind a full key, which every claim of
    // that node looks at; the empty side holds that key and a short queue, as the empty store
    // of the other figures does, so the ratio weighs the old runs and the pruner, not the key.
    super::hold_the_key(&client).await?;
    let started = Instant::now();
    let label = format!("scale: paced POST /run for {seconds:.0} s on an empty store");
    let empty = rounds_until(&client, s, &label, progress, async || Ok(started.elapsed().as_secs_f64() >= seconds)).await?;
    let empty_seconds = started.elapsed().as_secs_f64();
    drop(server);
    // Why: its schema goes with the benchmark's others; its folder here, as it is no longer used.
    if base.postgres.is_none() {
        let _ = std::fs::remove_dir_all(&base.dir);
    }
    Ok(Pruning { during, seconds, runs: old.count, empty, empty_seconds })
}

/// The report of both sides, and the ratio of their p99s (`None` when a side has no latency).
pub(super) fn report(pr: &Pruning) -> (Value, Option<f64>) {
    let (during, empty) = (stats::summarize(&pr.during), stats::summarize(&pr.empty));
    let ratio = during.zip(empty).map(|(d, e)| stats::round3(d.p99_ms / e.p99_ms.max(1e-6)));
    #[allow(clippy::cast_precision_loss)]
    let rate = pr.runs as f64 / pr.seconds.max(1e-9);
    let report = json!({
        "runs": pr.runs,
        "seconds": stats::round3(pr.seconds),
        "runs_per_second": stats::round3(rate),
        "paced_post_run": during,
        "empty_store_seconds": stats::round3(pr.empty_seconds),
        "empty_store_paced_post_run": empty,
        "p99_ratio": ratio,
    });
    (report, ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pruning(during: Vec<u64>, empty: Vec<u64>) -> Pruning {
        Pruning { during, seconds: 10.0, runs: 1000, empty, empty_seconds: 10.5 }
    }

    #[test]
    fn the_ratio_reads_the_two_sides_of_equal_length() {
        let (shown, ratio) = report(&pruning((1..=100).map(|i| i * 100).collect(), (1..=100).map(|i| i * 50).collect()));
        assert_eq!(ratio, Some(2.0), "9.9 ms against 4.95 ms");
        assert_eq!(shown["runs_per_second"], 100.0);
        assert_eq!(shown["paced_post_run"]["samples"], 100);
        assert_eq!(shown["empty_store_paced_post_run"]["p99_ms"], 4.95);
        assert_eq!(shown["empty_store_seconds"], 10.5);
        assert_eq!(shown["p99_ratio"], 2.0);
    }

    #[test]
    fn a_side_without_latencies_gives_no_ratio() {
        let (shown, ratio) = report(&pruning(vec![1000, 2000], Vec::new()));
        assert_eq!(ratio, None);
        assert_eq!(shown["empty_store_paced_post_run"], Value::Null);
        assert_eq!(shown["p99_ratio"], Value::Null);
        assert_eq!(report(&pruning(Vec::new(), vec![1000])).1, None, "nor without the pruning side");
    }

    #[test]
    fn an_instant_empty_side_does_not_divide_by_zero() {
        let (_, ratio) = report(&pruning(vec![1000], vec![0]));
        assert!(ratio.is_some_and(f64::is_finite), "{ratio:?}");
    }
}
