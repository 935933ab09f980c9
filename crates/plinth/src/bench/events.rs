//! The events part of `plinth bench`: `POST /events` throughput with arrays of 1,000 events
//! (stored only, and each starting a run), event-to-handler-start latency on an idle server, and
//! the lateness of a schedule's ticks.

use super::load::{Client, Progress, gap_micros};
use super::stats;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Events in each `POST /events` of the throughput rounds.
pub(crate) const PER_REQUEST: usize = 1000;

/// The targets on a 2-core machine, SQLite with synchronous=full.
pub(crate) const TARGET_STORED_PER_SECOND: f64 = 100_000.0;
pub(crate) const TARGET_WITH_RUNS_PER_SECOND: f64 = 8_000.0;
pub(crate) const TARGET_EVENT_TO_START_P50_MS: f64 = 2.0;
pub(crate) const TARGET_TICK_LATENESS_P99_MS: f64 = 50.0;

/// One request's body: `PER_REQUEST` events named `name`, numbered from `first`.
fn batch(name: &str, first: usize) -> String {
    let events: Vec<Value> = (first..first + PER_REQUEST).map(|i| json!({"name": name, "data": {"n": i}})).collect();
    Value::Array(events).to_string()
}

/// What a throughput round measured.
pub(crate) struct Throughput {
    pub(crate) events: usize,
    /// First request to the last 202.
    pub(crate) ingest: Duration,
    /// First request to the last run ended (the same as `ingest` when no run is started).
    pub(crate) end_to_end: Duration,
    pub(crate) post_micros: Vec<u64>,
}

impl Throughput {
    pub(crate) fn report(&self) -> Value {
        #[allow(clippy::cast_precision_loss)]
        let rate = |d: Duration| stats::round3(self.events as f64 / d.as_secs_f64().max(1e-9));
        json!({
            "events": self.events,
            "events_per_request": PER_REQUEST,
            "ingested_per_second": rate(self.ingest),
            "end_to_end_per_second": rate(self.end_to_end),
            "seconds": stats::round3(self.end_to_end.as_secs_f64()),
            "post_events": stats::summarize(&self.post_micros),
        })
    }

    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn end_to_end_rate(&self) -> f64 {
        self.events as f64 / self.end_to_end.as_secs_f64().max(1e-9)
    }
}

/// Sends `events` events named `name` in arrays of [`PER_REQUEST`] from `concurrency`
/// connections; when each starts a run, waits until all of them ended.
pub(crate) async fn throughput(
    client: &Client,
    name: &'static str,
    events: usize,
    concurrency: usize,
    starts_runs: bool,
    progress: &mut Progress,
) -> Result<Throughput, String> {
    let requests = events.div_ceil(PER_REQUEST);
    let (ok_before, other_before) = client.finished().await?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.clamp(1, requests.max(1)) {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return Ok::<_, String>(latencies);
                }
                let body = batch(name, i * PER_REQUEST);
                let t = Instant::now();
                client.send_events(body).await?;
                latencies.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
        }));
    }
    let mut post_micros = Vec::with_capacity(requests);
    for t in tasks {
        post_micros.extend(t.await.map_err(|e| format!("an events task failed: {e}"))??);
    }
    let ingest = start.elapsed();
    let sent = requests * PER_REQUEST;
    let label = if starts_runs { "events starting runs" } else { "events stored" };
    if starts_runs {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (ok, other) = client.finished().await?;
            let ended = (ok - ok_before) + (other - other_before);
            if ended >= sent as u64 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("{label}: only {ended} of {sent} runs ended within 300s"));
            }
            progress.update(&format!("bench: {label}: {sent} sent, {ended} runs ended"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let end_to_end = start.elapsed();
    progress.done(&format!("bench: {label}: {sent} events in {:.2}s", end_to_end.as_secs_f64()));
    Ok(Throughput { events: sent, ingest, end_to_end, post_micros })
}

/// Event-to-start on an idle server: one event at a time, each starting one run; the gap from
/// the run's `created_at` (when the event was accepted) to its `started_at` (its attempt
/// begun: 0 for a run stored started, decision 0035), and the round trip from sending the
/// event to the (no-op) run seen ended, which includes every write in between.
pub(crate) async fn event_to_start(
    client: &Client,
    samples: usize,
    progress: &mut Progress,
) -> Result<(Vec<u64>, Vec<u64>), String> {
    let (mut gaps, mut trips) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for i in 0..samples {
        // Lets the dispatcher go back to sleep, so each sample starts from idle.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = std::time::Instant::now();
        let answer = client.send_events(json!({"name": "bench/run.started", "data": {"sample": i}}).to_string()).await?;
        let run_id = answer["run_ids"][0][0].as_str().ok_or_else(|| format!("the event started no run: {answer}"))?;
        let run = client.wait_run(run_id, 10).await?;
        trips.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
        gaps.push(gap_micros(&run, "created_at", "started_at")?);
        progress.update(&format!("bench: event to start {}/{samples}", i + 1));
    }
    progress.done(&format!("bench: event to start, {samples} samples"));
    Ok((gaps, trips))
}

/// The lateness of the schedule's ticks (`created_at` minus `scheduled_at`) scheduled at or
/// after `since` (micros), from `GET /runs?trigger=cron`.
pub(crate) async fn tick_lateness(client: &Client, since: i64) -> Result<Vec<u64>, String> {
    let page = client.get_json("/runs?trigger=cron&limit=500").await?;
    let mut late = Vec::new();
    for run in page["runs"].as_array().into_iter().flatten() {
        let scheduled =
            run["trigger"]["scheduled_at"].as_str().ok_or_else(|| format!("a cron run without scheduled_at: {run}"))?;
        let scheduled = plinth_core::timefmt::parse_rfc3339(scheduled)?;
        let created = run["created_at"].as_str().map(plinth_core::timefmt::parse_rfc3339).transpose()?.unwrap_or(scheduled);
        if scheduled >= since {
            late.push(u64::try_from(created - scheduled).unwrap_or(0));
        }
    }
    Ok(late)
}

/// Settings of the events part.
pub(crate) struct Settings {
    pub(crate) events: usize,
    pub(crate) concurrency: usize,
    pub(crate) samples: usize,
    pub(crate) tick_seconds: u64,
    /// When the bench began (micros): ticks since then were scheduled while the server was loaded.
    pub(crate) bench_started: i64,
}

/// The whole events part: its report and its targets.
pub(crate) async fn measure(client: &Client, s: &Settings, progress: &mut Progress) -> Result<(Value, Vec<Value>), String> {
    let stored = throughput(client, "bench/no.listener", s.events, s.concurrency, false, progress).await?;
    let with_runs = throughput(client, "bench/run.started", s.events, s.concurrency, true, progress).await?;
    // Why: the round above is over once its attempts are counted ended, which is before their
    // ends are written; the idle samples wait for those writes (an end written behind them
    // read as a 1 to 2 s outlier of the first sample on PostgreSQL, session 37).
    super::load::settled(client, "events starting runs", progress).await?;
    let (to_start, to_end) = event_to_start(client, s.samples, progress).await?;
    let idle_since = plinth_core::timefmt::now_micros();
    progress.done(&format!("bench: watching the every-second schedule on the idle server for {}s", s.tick_seconds));
    tokio::time::sleep(Duration::from_secs(s.tick_seconds)).await;
    let idle_ticks = tick_lateness(client, idle_since).await?;
    let all_ticks = tick_lateness(client, s.bench_started).await?;
    let to_start = stats::summarize(&to_start);
    let idle = stats::summarize(&idle_ticks);
    #[allow(clippy::cast_precision_loss)]
    let stored_rate = stored.events as f64 / stored.ingest.as_secs_f64().max(1e-9);
    let report = json!({
        "stored_no_trigger": stored.report(),
        "each_starting_a_run": with_runs.report(),
        "event_to_start": to_start,
        "event_to_run_ended": stats::summarize(&to_end),
        "tick_lateness_idle": idle,
        "tick_lateness_whole_bench": stats::summarize(&all_ticks),
    });
    let targets = vec![
        super::target("events/s stored, arrays of 1,000, no trigger", ">=", TARGET_STORED_PER_SECOND, Some(stored_rate)),
        super::target(
            "events/s each starting a run (stored to every run ended)",
            ">=",
            TARGET_WITH_RUNS_PER_SECOND,
            Some(with_runs.end_to_end_rate()),
        ),
        super::target(
            "event-to-start p50 ms on an idle server (created_at to started_at; 0 when started as stored)",
            "<=",
            TARGET_EVENT_TO_START_P50_MS,
            to_start.map(|t| t.p50_ms),
        ),
        super::target("cron tick lateness p99 ms (idle)", "<=", TARGET_TICK_LATENESS_P99_MS, idle.map(|t| t.p99_ms)),
    ];
    Ok((report, targets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_holds_numbered_events_of_one_name() {
        let body: Value = serde_json::from_str(&batch("bench/x.y", 2000)).expect("JSON");
        let events = body.as_array().expect("array");
        assert_eq!(events.len(), PER_REQUEST);
        assert_eq!(events[0], json!({"name": "bench/x.y", "data": {"n": 2000}}));
        assert_eq!(events[999]["data"]["n"], 2999);
    }

    #[test]
    fn throughput_reports_both_rates() {
        let t = Throughput {
            events: 10_000,
            ingest: Duration::from_millis(100),
            end_to_end: Duration::from_millis(500),
            post_micros: vec![2000; 10],
        };
        let r = t.report();
        assert_eq!(r["ingested_per_second"], json!(100_000.0));
        assert_eq!(r["end_to_end_per_second"], json!(20_000.0));
        assert!((t.end_to_end_rate() - 20_000.0).abs() < 1e-6);
        assert_eq!(r["post_events"]["p50_ms"], json!(2.0));
    }
}
