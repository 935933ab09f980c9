//! The steps part of `plinth bench`: three-step in-process workflows per second, five-step
//! workflows through a local HTTP handler per second, sleep wake-up lateness, and, with
//! `--waiting` runs parked on other events, event-to-resume latency, `POST /events` latency
//! against an empty store, and the memory the waiting runs take.

use super::load::{self, Client, Progress};
use super::{server, stats};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The targets on a 2-core machine, SQLite with synchronous=full.
const TARGET_IN_PROCESS_PER_SECOND: f64 = 3000.0;
const TARGET_HTTP_PER_SECOND: f64 = 1000.0;
const TARGET_WAKE_P99_MS: f64 = 50.0;
const TARGET_RESUME_P50_MS: f64 = 5.0;
const TARGET_WAITING_RSS_MIB: f64 = 10.0;

/// Settings of the steps part.
pub(crate) struct Settings {
    pub(crate) runs: usize,
    pub(crate) concurrency: usize,
    pub(crate) samples: usize,
    pub(crate) waiting: usize,
    pub(crate) server_pid: u32,
    pub(crate) idle_rss: Option<f64>,
}

fn micros(v: &Value) -> Option<i64> {
    v.as_str().and_then(|t| plinth_core::timefmt::parse_rfc3339(t).ok())
}

async fn steps_of(client: &Client, id: &str) -> Result<Vec<Value>, String> {
    let body = client.get_json(&format!("/runs/{id}/steps")).await?;
    Ok(body["steps"].as_array().cloned().unwrap_or_default())
}

fn step<'a>(steps: &'a [Value], id: &str) -> Result<&'a Value, String> {
    steps.iter().find(|s| s["id"] == id).ok_or_else(|| format!("no step `{id}` in {steps:?}"))
}

/// Starts `n` runs of `steps_wait` with `input(i)` from a few connections; their ids.
async fn start_many(
    client: &Client,
    n: usize,
    concurrency: usize,
    input: impl Fn(usize) -> Value,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(concurrency.max(1)) {
        let inputs: Vec<Value> = chunk.iter().map(|i| input(*i)).collect();
        let calls = inputs.iter().map(|v| client.submit_input("steps_wait", v));
        for r in futures_util::future::join_all(calls).await {
            ids.push(r?);
        }
    }
    Ok(ids)
}

/// Wake lateness of `samples` one-second sleeps: the sleep step's end minus its due time.
async fn wake_lateness(client: &Client, s: &Settings, progress: &mut Progress) -> Result<Vec<u64>, String> {
    let ids = start_many(client, s.samples, s.concurrency, |_| json!({"steps": 0, "sleep_ms": 1000})).await?;
    let mut late = Vec::with_capacity(ids.len());
    for id in &ids {
        let run = client.wait_run(id, 30).await?;
        if run["status"] != "succeeded" {
            return Err(format!("a sleeping run did not succeed: {run}"));
        }
        let steps = steps_of(client, id).await?;
        let nap = step(&steps, "nap")?;
        let (Some(start), Some(end)) = (micros(&nap["started_at"]), micros(&nap["finished_at"])) else {
            return Err(format!("the sleep step has no times: {nap}"));
        };
        late.push(u64::try_from(end - start - 1_000_000).unwrap_or(0));
    }
    progress.done(&format!("bench: wake lateness of {} one-second sleeps", ids.len()));
    Ok(late)
}

/// `samples` sequential `POST /events` of an event nobody waits for; their latencies.
async fn post_latency(client: &Client, samples: usize) -> Result<Vec<u64>, String> {
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let started = Instant::now();
        client.send_events(json!({"name": "bench/nobody.waits", "data": {"i": i}}).to_string()).await?;
        out.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    Ok(out)
}

/// Event to resume: the waiting step's end (the event stored) to the next step's start.
async fn event_to_resume(client: &Client, samples: usize, progress: &mut Progress) -> Result<Vec<u64>, String> {
    let mut gaps = Vec::with_capacity(samples);
    for i in 0..samples {
        let key = format!("wake-{i}");
        let id = client.submit_input("steps_wait", &json!({"steps": 0, "wait_event": "bench/wake", "key": key})).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get_json(&format!("/runs/{id}")).await?["status"] != "waiting" {
            if Instant::now() > deadline {
                return Err(format!("run {id} never waited"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        client.send_events(json!({"name": "bench/wake", "data": {"key": key}}).to_string()).await?;
        let run = client.wait_run(&id, 10).await?;
        if run["status"] != "succeeded" {
            return Err(format!("a woken run did not succeed: {run}"));
        }
        let steps = steps_of(client, &id).await?;
        let (Some(stored), Some(resumed)) =
            (micros(&step(&steps, "wait")?["finished_at"]), micros(&step(&steps, "after")?["started_at"]))
        else {
            return Err(format!("steps without times: {steps:?}"));
        };
        gaps.push(u64::try_from(resumed - stored).unwrap_or(0));
        progress.update(&format!("bench: event to resume {}/{samples}", i + 1));
    }
    progress.done(&format!("bench: event to resume, {samples} samples"));
    Ok(gaps)
}

fn p(summary: Option<&stats::Summary>, f: fn(&stats::Summary) -> f64) -> Option<f64> {
    summary.map(f)
}

/// The whole steps part: its report and its targets.
pub(crate) async fn measure(client: &Client, s: &Settings, progress: &mut Progress) -> Result<(Value, Vec<Value>), String> {
    let in_process = load::round(
        client,
        load::Load { function: "steps3", runs: s.runs, concurrency: s.concurrency, rate: None, keys: 0, idempotent: false },
        "three-step in-process workflows",
        progress,
    )
    .await?;
    let http = load::round(
        client,
        load::Load { function: "http_steps5", runs: s.runs, concurrency: s.concurrency, rate: None, keys: 0, idempotent: false },
        "five-step HTTP workflows",
        progress,
    )
    .await?;
    let late = stats::summarize(&wake_lateness(client, s, progress).await?);
    let empty_post = stats::summarize(&post_latency(client, s.samples).await?);
    let (mut parked, mut before) = (None, None);
    if s.waiting > 0 {
        // The server is idle here too, after the loads above: what parking adds is measured from
        // this reading (the growth since start-up, which includes what the allocator kept from
        // those loads, is reported beside it).
        tokio::time::sleep(Duration::from_secs(2)).await;
        before = server::memory_mib(s.server_pid, "VmRSS");
        let started = Instant::now();
        start_many(
            client,
            s.waiting,
            s.concurrency,
            |i| json!({"steps": 0, "wait_event": "bench/other", "key": format!("k{i}")}),
        )
        .await?;
        load::settled(client, "parking runs", progress).await?;
        progress.done(&format!(
            "bench: {} runs wait on other events ({:.1}s to park)",
            s.waiting,
            started.elapsed().as_secs_f64()
        ));
        // Lets the engine drop what the parking load held before reading memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        parked = Some(server::memory_mib(s.server_pid, "VmRSS"));
    }
    let loaded_post = stats::summarize(&post_latency(client, s.samples).await?);
    let resume = stats::summarize(&event_to_resume(client, s.samples, progress).await?);
    let rate = |r: &load::Round| {
        #[allow(clippy::cast_precision_loss)]
        let v = r.accepted as f64 / r.elapsed.as_secs_f64().max(1e-9);
        stats::round3(v)
    };
    let (in_rate, http_rate) = (rate(&in_process), rate(&http));
    let ratio = match (empty_post.as_ref(), loaded_post.as_ref()) {
        (Some(a), Some(b)) if a.p50_ms > 0.0 => Some(stats::round3(b.p50_ms / a.p50_ms)),
        _ => None,
    };
    let growth = |from: Option<f64>| match (parked.flatten(), from) {
        (Some(p), Some(i)) => Some(stats::round3(p - i)),
        _ => None,
    };
    let (rss_growth, since_start) = (growth(before), growth(s.idle_rss));
    let targets = vec![
        super::target("three-step in-process workflows/s", ">=", TARGET_IN_PROCESS_PER_SECOND, Some(in_rate)),
        super::target("five-step HTTP-handler workflows/s", ">=", TARGET_HTTP_PER_SECOND, Some(http_rate)),
        super::target("sleep wake-up lateness p99 ms", "<=", TARGET_WAKE_P99_MS, p(late.as_ref(), |x| x.p99_ms)),
        super::target(
            "event-to-resume p50 ms, with the waiting runs parked",
            "<=",
            TARGET_RESUME_P50_MS,
            p(resume.as_ref(), |x| x.p50_ms),
        ),
        super::target(
            "RSS growth MiB from parking the waiting runs (idle before, idle after)",
            "<=",
            TARGET_WAITING_RSS_MIB,
            rss_growth,
        ),
    ];
    let report = json!({
        "in_process_three_steps": {"runs": in_process.accepted, "workflows_per_second": in_rate, "not_succeeded": in_process.not_succeeded},
        "http_five_steps": {"runs": http.accepted, "workflows_per_second": http_rate, "not_succeeded": http.not_succeeded},
        "sleep_wake_lateness": late,
        "waiting_runs": s.waiting,
        "event_to_resume": resume,
        "post_events_empty": empty_post,
        "post_events_with_waiting": loaded_post,
        "post_events_p50_ratio": ratio,
        "rss_mib_with_waiting": parked.flatten().map(stats::round3),
        "rss_mib_before_parking": before.map(stats::round3),
        "rss_growth_mib": rss_growth,
        "rss_growth_since_start_mib": since_start,
    });
    Ok((report, targets))
}
