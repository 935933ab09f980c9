//! Driving the server over HTTP: idle pickup samples and rounds of load at a fixed concurrency.

use plinth_core::timefmt::parse_rfc3339;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub(crate) use super::client::Client;
use super::stats;

/// Progress on stderr: one rewritten line on a terminal, a line every two seconds otherwise.
pub(crate) struct Progress {
    tty: bool,
    last: Option<Instant>,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self { tty: std::io::stderr().is_terminal(), last: None }
    }

    pub(crate) fn update(&mut self, message: &str) {
        if self.tty {
            eprint!("\r\x1b[2K{message}");
            let _ = std::io::stderr().flush();
        } else if self.last.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
            eprintln!("{message}");
            self.last = Some(Instant::now());
        }
    }

    pub(crate) fn done(&mut self, message: &str) {
        if self.tty {
            eprintln!("\r\x1b[2K{message}");
        } else {
            eprintln!("{message}");
        }
        self.last = None;
    }
}

/// Micros between two RFC 3339 fields of a run.
pub(crate) fn gap_micros(run: &Value, from: &str, to: &str) -> Result<u64, String> {
    let field = |name: &str| -> Result<i64, String> {
        let text = run.get(name).and_then(Value::as_str).ok_or_else(|| format!("the run has no `{name}`: {run}"))?;
        parse_rfc3339(text)
    };
    u64::try_from(field(to)? - field(from)?).map_err(|_| format!("`{to}` is before `{from}` in {run}"))
}

/// Idle pickup: one run at a time on a quiet server.
pub(crate) struct Pickup {
    /// `created_at` (before the 202) to `started_at` (the handler is called), by the server's clock.
    pub(crate) server_micros: Vec<u64>,
    /// `POST /run` sent to the terminal run received by the client, the whole round trip.
    pub(crate) roundtrip_micros: Vec<u64>,
}

pub(crate) async fn pickup(client: &Client, samples: usize, progress: &mut Progress) -> Result<Pickup, String> {
    let mut out = Pickup { server_micros: Vec::with_capacity(samples), roundtrip_micros: Vec::with_capacity(samples) };
    for i in 0..samples {
        // Lets the dispatcher go back to sleep, so each sample starts from idle.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        let id = client.submit("noop").await?;
        let run = client.wait_run(&id, 10).await?;
        let roundtrip = t0.elapsed();
        if run.get("status").and_then(Value::as_str) != Some("succeeded") {
            return Err(format!("pickup run {id} did not succeed: {run}"));
        }
        out.server_micros.push(gap_micros(&run, "created_at", "started_at")?);
        out.roundtrip_micros.push(u64::try_from(roundtrip.as_micros()).unwrap_or(u64::MAX));
        progress.update(&format!("bench: idle pickup {}/{samples}", i + 1));
    }
    progress.done(&format!("bench: idle pickup, {samples} samples"));
    Ok(out)
}

/// One round of load.
pub(crate) struct Round {
    pub(crate) accepted: usize,
    pub(crate) rejected: usize,
    pub(crate) not_succeeded: u64,
    /// First POST to the last run ended.
    pub(crate) elapsed: Duration,
    /// First POST to the last 202.
    pub(crate) submit_elapsed: Duration,
    pub(crate) post_micros: Vec<u64>,
    /// On PostgreSQL, the server's write-ahead log written during the round over its runs
    /// (the whole database server's, so anything else it did then counts too).
    pub(crate) wal_bytes_per_run: Option<f64>,
}

/// How a round submits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Load {
    pub(crate) function: &'static str,
    pub(crate) runs: usize,
    pub(crate) concurrency: usize,
    /// Submissions per second; `None` submits as fast as the connections allow (closed loop).
    pub(crate) rate: Option<f64>,
    /// Run `i` gets the input `{"k": "k{i % keys}"}`; 0: the empty input.
    pub(crate) keys: usize,
    /// Each submission carries an `Idempotency-Key` of its own (with the empty input).
    pub(crate) idempotent: bool,
}

/// Submits `runs` no-op runs from `concurrency` connections, then waits until all have ended.
///
/// With a rate, submission `i` is due at `start + i / rate` and its latency counts from that
/// moment, so a server that falls behind shows it (no coordinated omission).
pub(crate) async fn round(client: &Client, load: Load, label: &str, progress: &mut Progress) -> Result<Round, String> {
    let Load { function, runs, concurrency, rate, keys, idempotent } = load;
    // Why: keys unique to this round, so no submission replays a run of an earlier round.
    let tag = plinth_core::ids::new_run_id();
    let (ok_before, other_before) = client.finished().await?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (client, next, tag) = (client.clone(), next.clone(), tag.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut rejected = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= runs {
                    break;
                }
                #[allow(clippy::cast_precision_loss)]
                let t = match rate {
                    Some(r) => {
                        let due = start + Duration::from_secs_f64(i as f64 / r);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let submitted = if idempotent {
                    client.submit_keyed(function, Some(&format!("{tag}-{i}"))).await
                } else if keys == 0 {
                    client.submit(function).await
                } else {
                    client.submit_input(function, &serde_json::json!({"k": format!("k{}", i % keys)})).await
                };
                match submitted {
                    Ok(_) => latencies.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)),
                    Err(e) => rejected.push(e),
                }
            }
            (latencies, rejected)
        }));
    }
    let mut post_micros = Vec::with_capacity(runs);
    let mut rejected = Vec::new();
    for t in tasks {
        let (l, r) = t.await.map_err(|e| format!("a load task failed: {e}"))?;
        post_micros.extend(l);
        rejected.extend(r);
    }
    let submit_elapsed = start.elapsed();
    if let Some(first) = rejected.first() {
        progress.done(&format!("bench: {label}: {} submissions failed, the first: {first}", rejected.len()));
    }
    let accepted = post_micros.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (ok, other) = client.finished().await?;
        let ended = (ok - ok_before) + (other - other_before);
        #[allow(clippy::cast_possible_truncation)]
        if ended >= accepted as u64 {
            let elapsed = start.elapsed();
            progress.done(&format!("bench: {label}: {accepted} runs ended in {:.2}s", elapsed.as_secs_f64()));
            return Ok(Round {
                accepted,
                rejected: rejected.len(),
                not_succeeded: other - other_before,
                elapsed,
                submit_elapsed,
                post_micros,
                wal_bytes_per_run: None,
            });
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{label}: only {ended} of {accepted} runs ended within 120s after the last submission; {}",
                unended(client, function).await
            ));
        }
        progress.update(&format!("bench: {label}: {accepted} submitted, {ended} ended"));
        // Why: each poll reads /metrics, which counts the queue; polling faster would load the
        // server under test with our own measuring.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `rounds` closed-loop rounds of `runs` no-op runs from `concurrency` connections; on
/// PostgreSQL (`database_url`), each with the log it wrote per run.
pub(crate) async fn closed_rounds(
    client: &Client,
    (runs, concurrency, rounds): (usize, usize, usize),
    database_url: Option<&str>,
    progress: &mut Progress,
) -> Result<Vec<Round>, String> {
    let mut out = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let label = format!("round {}/{rounds}", r + 1);
        let load = Load { function: "noop", runs, concurrency, rate: None, keys: 0, idempotent: false };
        let before = wal_position(database_url, progress).await;
        let mut round = round(client, load, &label, progress).await?;
        round.wal_bytes_per_run = wal_per_run(before, wal_position(database_url, progress).await, round.accepted);
        out.push(round);
    }
    Ok(out)
}

async fn wal_position(database_url: Option<&str>, progress: &mut Progress) -> Option<u64> {
    match plinth_store::postgres::wal_position(database_url?).await {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            progress.done(&format!("bench: could not read the log's position: {e}"));
            None
        }
    }
}

/// The log written between two positions, per run; none without both or without runs.
pub(crate) fn wal_per_run(before: Option<u64>, after: Option<u64>, runs: usize) -> Option<f64> {
    let written = after?.checked_sub(before?)?;
    #[allow(clippy::cast_precision_loss)]
    (runs > 0).then(|| stats::round3(written as f64 / runs as f64))
}

/// The statuses a round's missing runs could be in, as the list of runs reads them.
const UNENDED: [&str; 3] = ["queued", "running", "waiting"];

/// What the store holds of `function`'s runs that have not ended, for a round that timed out:
/// the bench counts ends from `/metrics`, so this tells a run stuck in the store from an end
/// the metrics missed. Never fails: what it could not read says so.
async fn unended(client: &Client, function: &str) -> String {
    let mut pages = Vec::with_capacity(UNENDED.len());
    for status in UNENDED {
        let page = client.get_json(&format!("/runs?function={function}&status={status}&limit=100")).await;
        pages.push((status, page.unwrap_or_else(Value::String)));
    }
    let first = pages.iter().find_map(|(_, page)| page["runs"][0]["run_id"].as_str().map(str::to_string));
    let run = match first {
        Some(id) => Some(client.get_json(&format!("/runs/{id}")).await.unwrap_or_else(Value::String)),
        None => None,
    };
    describe_unended(function, &pages, run.as_ref())
}

/// The sentence of [`unended`]: how many runs of each status (100 reads "100 or more"), and
/// the first such run as the server answers it, cut to 600 characters.
fn describe_unended(function: &str, pages: &[(&str, Value)], first: Option<&Value>) -> String {
    let counts: Vec<String> = pages
        .iter()
        .map(|(status, page)| match page["runs"].as_array() {
            Some(runs) if runs.len() >= 100 => format!("{status} 100 or more"),
            Some(runs) => format!("{status} {}", runs.len()),
            None => format!("{status} unknown ({})", page.as_str().unwrap_or("no list of runs")),
        })
        .collect();
    let mut out = format!("the store has, of {function}: {}", counts.join(", "));
    match first {
        Some(run) => {
            let text = run.to_string();
            let cut: String = text.chars().take(600).collect();
            out += &format!("; the first: {cut}{}", if cut.len() < text.len() { "..." } else { "" });
        }
        None => out += "; none of them unended: the missing ends are the metrics'",
    }
    out
}

/// Waits until no run is queued or running (every started run waits or ended), as the store
/// says: an attempt is counted in `plinth_runs_total` before its end is written.
pub(crate) async fn settled(client: &Client, label: &str, progress: &mut Progress) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let queued = client.get_json("/runs?status=queued&limit=1").await?;
        let running = client.get_json("/runs?status=running&limit=1").await?;
        if queued["runs"].as_array().is_some_and(Vec::is_empty) && running["runs"].as_array().is_some_and(Vec::is_empty) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{label}: runs still queued or running after 600s"));
        }
        progress.update(&format!("bench: {label}: waiting for the runs to end or park"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::finished_from_metrics;
    use super::*;
    use serde_json::json;

    #[test]
    fn a_timed_out_round_tells_what_the_store_holds() {
        let pages = [
            ("queued", json!({"runs": [], "next_cursor": null})),
            ("running", json!({"runs": [{"run_id": "r1"}, {"run_id": "r2"}]})),
            ("waiting", json!({"runs": vec![json!({"run_id": "w"}); 100]})),
        ];
        let run = json!({"run_id": "r1", "status": "running", "attempt": 1});
        assert_eq!(
            describe_unended("f", &pages, Some(&run)),
            "the store has, of f: queued 0, running 2, waiting 100 or more; \
             the first: {\"attempt\":1,\"run_id\":\"r1\",\"status\":\"running\"}"
        );
    }

    #[test]
    fn a_timed_out_round_with_nothing_unended_blames_the_metrics() {
        let empty = json!({"runs": []});
        let pages = [("queued", empty.clone()), ("running", empty.clone()), ("waiting", empty)];
        assert_eq!(
            describe_unended("f", &pages, None),
            "the store has, of f: queued 0, running 0, waiting 0; none of them unended: the missing ends are the metrics'"
        );
    }

    #[test]
    fn a_timed_out_round_says_what_it_could_not_read() {
        let pages = [("queued", Value::String("GET /runs: connection refused".into())), ("running", json!({"error": "x"}))];
        let long = json!({"run_id": "r", "output": "x".repeat(1_000)});
        let said = describe_unended("f", &pages, Some(&long));
        assert!(said.starts_with(
            "the store has, of f: queued unknown (GET /runs: connection refused), running unknown (no list of runs); the first: "
        ));
        assert!(said.ends_with("..."), "a long run is cut: {said}");
        assert!(said.len() < 800, "{}", said.len());
    }

    #[test]
    fn finished_runs_are_summed_from_metrics() {
        let text = "# HELP plinth_runs Run attempts ended, by outcome\n\
            plinth_runs_total{component=\"bench\",function=\"noop\",status=\"succeeded\"} 12\n\
            plinth_runs_total{component=\"bench\",function=\"other\",status=\"succeeded\"} 3\n\
            plinth_runs_total{component=\"bench\",function=\"noop\",status=\"failed\"} 2\n\
            plinth_requests_total{component=\"bench\",status=\"202\"} 99\n";
        assert_eq!(finished_from_metrics(text, "plinth"), (15, 2));
    }

    #[test]
    fn attempts_that_are_not_ends_are_not_counted() {
        let text = "plinth_runs_total{component=\"bench\",function=\"steps3\",status=\"released\"} 752\n\
            plinth_runs_total{component=\"bench\",function=\"noop\",status=\"retrying\"} 7\n\
            plinth_runs_total{component=\"bench\",function=\"noop\",status=\"cancelled\"} 1\n\
            plinth_runs_total{component=\"bench\",function=\"steps3\",status=\"succeeded\"} 5\n";
        assert_eq!(finished_from_metrics(text, "plinth"), (5, 1), "a release or a retry is not an end");
    }

    #[test]
    fn metrics_without_runs_count_nothing() {
        assert_eq!(finished_from_metrics("", "plinth"), (0, 0));
        let ticks = "plinth_runs_total{component=\"b\",function=\"tick\",status=\"succeeded\"} 9\n";
        assert_eq!(finished_from_metrics(ticks, "plinth"), (0, 0), "scheduled runs are not the load's");
        assert_eq!(finished_from_metrics("plinth_runs_total{status=\"succeeded\"} NaNx\n", "plinth"), (0, 0));
        assert_eq!(finished_from_metrics("other_runs_total{status=\"succeeded\"} 4\n", "plinth"), (0, 0));
    }

    #[test]
    fn the_log_a_round_wrote_is_divided_by_its_runs() {
        assert_eq!(wal_per_run(Some(1_000), Some(5_500), 2), Some(2250.0));
        assert_eq!(wal_per_run(Some(7), Some(7), 3), Some(0.0), "a round that wrote nothing");
    }

    #[test]
    fn no_log_figure_without_both_positions_runs_or_order() {
        assert_eq!(wal_per_run(None, Some(5), 1), None, "SQLite, or the first read failed");
        assert_eq!(wal_per_run(Some(5), None, 1), None, "the second read failed");
        assert_eq!(wal_per_run(Some(1), Some(9), 0), None, "no run: no division by zero");
        assert_eq!(wal_per_run(Some(9), Some(1), 4), None, "a position that went back (another server) is no figure");
    }

    #[test]
    fn gaps_are_measured_between_timestamps() {
        let run = json!({"created_at": "2026-01-01T00:00:00.000100Z", "started_at": "2026-01-01T00:00:00.001600Z"});
        assert_eq!(gap_micros(&run, "created_at", "started_at"), Ok(1500));
    }

    #[test]
    fn missing_or_reversed_timestamps_are_errors() {
        let run = json!({"created_at": "2026-01-01T00:00:01Z", "started_at": "2026-01-01T00:00:00Z"});
        assert!(gap_micros(&run, "created_at", "started_at").is_err_and(|e| e.contains("before")));
        assert!(gap_micros(&json!({"created_at": "2026-01-01T00:00:01Z"}), "created_at", "started_at").is_err());
        assert!(gap_micros(&json!({"created_at": "yesterday", "started_at": "x"}), "created_at", "started_at").is_err());
    }
}
