//! The paced rounds: `POST /run` latency at a set load rather than at full speed. Why several:
//! on a shared two-core machine one round's p99 moved from 9.7 to 63 ms between starts of one
//! build (docs/scaling.md, session 30), so the target reads the median of the rounds' p99s, as
//! the closed loop's target reads the median of its rounds; each round is reported too, with
//! what a probe of the disk's flushes saw meanwhile (`flush.rs`).

use super::flush::Probe;
use super::load::{self, Client, Progress};
use super::report::round_report;
use super::stats;
use serde_json::{Value, json};
use std::path::Path;

/// Runs `rounds` paced rounds, each of `size.0` no-op runs submitted at `rate` per second from
/// `size.1` connections, one after the other; none when `rate` is 0. Each round's report holds
/// the latencies of the disk's flushes in `probe_dir` during it (`disk_flush`).
pub(crate) async fn rounds(
    client: &Client,
    size: (usize, usize),
    (rate, rounds): (u32, usize),
    probe_dir: &Path,
    progress: &mut Progress,
) -> Result<Vec<Value>, String> {
    let (runs, concurrency) = size;
    let mut out = Vec::new();
    if rate == 0 {
        return Ok(out);
    }
    for r in 0..rounds {
        let load = load::Load { function: "noop", runs, concurrency, rate: Some(f64::from(rate)), keys: 0, idempotent: false };
        let label = format!("paced round {}/{rounds} at {rate} runs/s", r + 1);
        let probe = Probe::start(probe_dir)?;
        let round = load::round(client, load, &label, progress).await;
        let flushes = probe.finish().await?;
        let mut report = round_report(&round?);
        if let Value::Object(map) = &mut report {
            map.insert("disk_flush".into(), json!(stats::summarize(&flushes)));
        }
        out.push(report);
    }
    Ok(out)
}

/// The paced part of the report: the rate asked, each round, and the medians of the rounds
/// that have the figure; `None` when no round ran.
pub(crate) fn report(rounds: &[Value], rate: u32) -> Option<Value> {
    if rounds.is_empty() {
        return None;
    }
    Some(json!({
        "target_runs_per_second": rate,
        "rounds": rounds,
        "median_post_run_p50_ms": stats::median_at(rounds, "/post_run/p50_ms"),
        "median_post_run_p99_ms": stats::median_at(rounds, "/post_run/p99_ms"),
        "median_runs_per_second": stats::median_at(rounds, "/runs_per_second"),
        "median_disk_flush_p99_ms": stats::median_at(rounds, "/disk_flush/p99_ms"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(p99: f64, rps: f64) -> Value {
        json!({"runs_per_second": rps, "post_run": {"p50_ms": p99 / 4.0, "p99_ms": p99}, "disk_flush": {"p99_ms": p99 / 10.0}})
    }

    #[test]
    fn the_report_gives_each_round_and_the_medians() {
        let rounds = [round(12.0, 4990.0), round(9.0, 4995.0), round(30.0, 4980.0)];
        let r = report(&rounds, 5000).expect("a report");
        assert_eq!(r["target_runs_per_second"], 5000);
        assert_eq!(r["rounds"].as_array().map(Vec::len), Some(3));
        assert_eq!(r["median_post_run_p99_ms"], json!(12.0), "the middle round, not the best");
        assert_eq!(r["median_post_run_p50_ms"], json!(3.0));
        assert_eq!(r["median_runs_per_second"], json!(4990.0));
        assert_eq!(r["median_disk_flush_p99_ms"], json!(1.2), "the disk's flushes, by the same rule");
    }

    #[test]
    fn no_round_no_report() {
        assert_eq!(report(&[], 5000), None);
    }

    #[test]
    fn a_round_without_latencies_is_left_out_of_the_medians() {
        // A round where every submission was refused has no `post_run` summary.
        let rounds = [round(8.0, 100.0), json!({"runs_per_second": 0.0, "post_run": null}), round(20.0, 100.0)];
        let r = report(&rounds, 100).expect("a report");
        assert_eq!(r["median_post_run_p99_ms"], json!(8.0), "the lower middle of the two that have it");
        assert_eq!(r["rounds"].as_array().map(Vec::len), Some(3), "every round is still reported");
    }
}
