//! A throttle, black-box on SQLite: 200 runs of `throttle: {limit: 20, period: 1s, burst: 5}`
//! sent at once start over about ten seconds, never more than 20 + 5 in any one-second window.

use crate::harness::{Served, client, send};
use plinth_core::timefmt::parse_rfc3339;
use serde_json::json;

const RUNS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_spreads_two_hundred_runs_over_ten_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("component.yaml");
    std::fs::write(
        &config,
        "component: {name: paced, version: 0.1.0, owner: tests}\n\
         functions:\n\
         \x20 - name: call\n\
         \x20   handler: {rust: noop}\n\
         \x20   policy: {throttle: {limit: 20, period: 1s, burst: 5}}\n",
    )
    .expect("component.yaml");
    let served = Served::start(&config, &["--workers", "16", "--log-level", "warn,plinth::serve=info"], dir.path());
    let c = client();
    let mut ids = Vec::new();
    for _ in 0..RUNS {
        let (code, body) = send(c.post(served.url("/run")).json(&json!({"function": "call", "input": {}}))).await;
        assert_eq!(code, 202, "{body}");
        ids.push(body["run_id"].as_str().expect("run_id").to_string());
    }
    let (_, held) = send(c.get(served.url(&format!("/runs/{}", ids[RUNS - 1])))).await;
    assert_eq!(held["held_by"]["rule"], "throttle", "the last run waits for the throttle: {held}");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let starts = loop {
        let (_, page) = send(c.get(served.url("/runs?function=call&status=succeeded&limit=500"))).await;
        let runs = page["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() == RUNS {
            let mut starts: Vec<i64> =
                runs.iter().map(|r| parse_rfc3339(r["started_at"].as_str().expect("started_at")).expect("a time")).collect();
            starts.sort_unstable();
            break starts;
        }
        assert!(std::time::Instant::now() < deadline, "{} of {RUNS} runs succeeded within 60s", runs.len());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let most = starts.iter().map(|s| starts.iter().filter(|t| **t >= *s && **t < s + 1_000_000).count()).max().unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let span = (starts[RUNS - 1] - starts[0]) as f64 / 1e6;
    eprintln!("throttle: {RUNS} runs started over {span:.2}s, at most {most} in any one-second window");
    assert!(most <= 25, "{most} runs started within one second (limit 20 + burst 5)");
    // Why: after the burst of 5, 195 starts one every 50 ms take 9.7 s at the least.
    assert!(span >= 9.5, "the starts were spread over {span:.2}s only");
    served.kill9();
}
