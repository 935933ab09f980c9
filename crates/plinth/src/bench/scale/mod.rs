//! Flat at scale (issue 16): every figure is taken on an empty store, then again with
//! `--backlog` runs queued (due, behind one full concurrency key) and `--history` finished runs
//! kept, each as a ratio that should stay within 1.5x; then `POST /run`'s p99 while the pruner
//! deletes `--prune-runs` old runs. The disk is checked before anything is written, the store is
//! filled with copies of real runs while no server runs, and the bytes a finished run takes are
//! reported. Five servers of its own, the first three on one store:
//! 1. empty: pickup and paced `POST /run`; then the claim, timed through the store;
//! 2. filled (retention far away): the same figures, then the reads, sent in turn to it and to a
//!    twin of the empty store (a store of its own, given the same runs as 1 was), so both sides
//!    of each read meet the same moments of the machine;
//! 3. filled, with a retention that makes the old runs prunable: `POST /run` while they go;
//! 4. on an empty store of its own, holding the key as 1 did: the same paced `POST /run` for as
//!    long as 3 took.

mod fill;
mod pruning;

use super::load::{self, Client, Progress};
use super::server::{Server, ServerOptions};
use super::stats;
use fill::Place;
use plinth_store::copies::RunCopies;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Issue 16: each figure with the tables full within this factor of the same on an empty store.
const TARGET_RATIO: f64 = 1.5;
/// The function whose runs are queued (one at a time per `input.k`), and the key they wait on.
const HELD: &str = "hold";
const HOLD_INPUT: &str = r#"{"k":"busy","ms":600000}"#;
/// The function timed beside the backlog.
const FREE: &str = "noop";
/// The longest the pruning phase waits for the old runs to go.
const PRUNE_DEADLINE: Duration = Duration::from_secs(1800);
const DAY_MICROS: i64 = 86_400_000_000;

/// What to measure.
pub(crate) struct Settings {
    pub(crate) backlog: u64,
    pub(crate) history: u64,
    pub(crate) prune: u64,
    pub(crate) rate: f64,
    pub(crate) samples: usize,
    pub(crate) concurrency: usize,
}

/// The figures taken on each side.
struct Figures {
    pickup: Vec<u64>,
    paced: load::Round,
    reads: Value,
}

/// Gives a store's first server what the empty side holds when it is measured: one run of
/// [`HELD`] holding its key and [`super::reads::BASE_QUEUE`] queued behind it.
async fn hold_the_key(client: &Client) -> Result<(), String> {
    let input: Value = serde_json::from_str(HOLD_INPUT).map_err(|e| e.to_string())?;
    for _ in 0..=super::reads::BASE_QUEUE {
        client.submit_input(HELD, &input).await?;
    }
    Ok(())
}

/// The pickup and paced `POST /run` of one side; its reads are timed apart, in turn with the
/// other side's (`reads: Null` until then).
async fn figures(client: &Client, s: &Settings, tag: &str, progress: &mut Progress) -> Result<Figures, String> {
    // Why the round trip, not `created_at` to `started_at`: a run started as it is stored
    // (decision 0019) has the two equal, so that gap is 0 on both sides and its ratio says
    // nothing; the round trip from `POST /run` to the client seeing the run's end does.
    let pickup = load::pickup(client, s.samples, progress).await?.roundtrip_micros;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let runs = (s.rate * 5.0) as usize;
    let load = load::Load {
        function: FREE,
        runs: runs.max(100),
        concurrency: s.concurrency,
        rate: Some(s.rate),
        keys: 0,
        idempotent: false,
    };
    let paced = load::round(client, load, &format!("scale ({tag}): paced POST /run"), progress).await?;
    Ok(Figures { pickup, paced, reads: Value::Null })
}

fn summary(f: &Figures, claims: &[u64]) -> Value {
    json!({
        "idle_pickup": stats::summarize(&f.pickup),
        "paced_post_run": stats::summarize(&f.paced.post_micros),
        "claim": stats::summarize(claims),
        "reads": f.reads,
    })
}

/// A run id of `function` with `status`, from the server.
async fn some_run(client: &Client, function: &str, status: &str) -> Result<String, String> {
    let page = client.get_json(&format!("/runs?function={function}&status={status}&limit=1")).await?;
    page["runs"][0]["run_id"].as_str().map(str::to_string).ok_or_else(|| format!("no {status} run of `{function}`: {page}"))
}

fn place(opts: &ServerOptions) -> Place {
    match &opts.postgres {
        Some((url, schema)) => Place::Postgres { url: url.clone(), schema: schema.clone() },
        None => Place::Sqlite(opts.dir.join("bench.db")),
    }
}

/// Checks, before anything is written, that the store's disk can hold the runs asked for: the
/// free space seen (where) and the bytes estimated.
pub(crate) async fn preflight(opts: &ServerOptions, s: &Settings) -> Result<(Option<(String, u64)>, u64), String> {
    let per_run = if opts.postgres.is_some() { fill::BYTES_PER_RUN_POSTGRES } else { fill::BYTES_PER_RUN_SQLITE };
    std::fs::create_dir_all(&opts.dir).map_err(|e| format!("cannot create {}: {e}", opts.dir.display()))?;
    let free = fill::free_bytes(&place(opts)).await?;
    let needed = fill::check_room(s.backlog.saturating_add(s.history), per_run, free.as_ref())?;
    Ok((free, needed))
}

/// The whole measure; `opts` is a server of its own (its folder, its schema).
pub(crate) async fn measure(opts: &ServerOptions, s: &Settings, progress: &mut Progress) -> Result<(Value, Vec<Value>), String> {
    let place = place(opts);
    let (free, needed) = preflight(opts, s).await?;
    let prune = s.prune.min(s.history);

    // 1. The empty store.
    let far = ServerOptions { serve_args: vec!["--retention".into(), "400days".into()], ..opts.clone() };
    let server = Server::start(&far, Duration::from_secs(60))?;
    let client = Client::new(std::slice::from_ref(&server.addr), s.concurrency)?;
    client.ready(Duration::from_secs(10)).await?;
    hold_the_key(&client).await?;
    let mut empty = figures(&client, s, "empty", progress).await?;
    let finished = some_run(&client, FREE, "succeeded").await?;
    let queued = some_run(&client, HELD, "queued").await?;
    // Why: a run of `hold` holds its key for ten minutes; the server is killed, not stopped.
    drop(server);
    let empty_claims = fill::claim_cost(&place, FREE, HELD, s.samples).await?;
    progress.done("bench: scale: the empty store measured");

    // The fill: old runs first (pruned first), then recent ones, then the backlog. Their ids are
    // run ids of 1970 (prefixes 000001-000003), so they sort before every run a server makes.
    let before = fill::store_bytes(&place).await?;
    let now = plinth_core::timefmt::now_micros();
    let hour = 3_600_000_000_i64;
    // Why: a history arrives over hours; copies bunched in a second would all sit in the
    // overview's last hour and its per-minute roll-up would read millions of them.
    let spread = |over: i64, count: u64| (over / i64::try_from(count.max(1)).unwrap_or(i64::MAX)).max(1);
    let base = RunCopies {
        template: finished,
        first: 0,
        count: prune,
        prefix: "000001".into(),
        at: 0,
        finished_at: 0,
        step: 1,
        input: None,
    };
    // Old: finished over a day, a month ago; past a day's retention (the third server's).
    let at = now - 30 * DAY_MICROS;
    let old = RunCopies { at, finished_at: at + 1_000, step: spread(DAY_MICROS, prune), ..base.clone() };
    let mut fill_seconds = fill::copy(&place, old.clone(), progress).await?;
    // Kept: finished over the 19 hours before the last hour; inside every retention used here.
    let count = s.history - prune;
    let (at, step) = (now - 20 * hour, spread(19 * hour, count));
    let kept = RunCopies { count, prefix: "000002".into(), at, finished_at: at + 1_000, step, ..base };
    fill_seconds += fill::copy(&place, kept, progress).await?;
    let after_history = fill::store_bytes(&place).await?;
    let backlog = RunCopies {
        template: queued,
        first: 0,
        count: s.backlog,
        prefix: "000003".into(),
        at: now - hour,
        finished_at: 0,
        step: spread(hour, s.backlog),
        input: Some(HOLD_INPUT.into()),
    };
    fill_seconds += fill::copy(&place, backlog, progress).await?;
    let after = fill::store_bytes(&place).await?;
    fill::settle(&place, progress).await?;
    progress.done(&format!("bench: scale: {} finished and {} queued runs written in {fill_seconds:.1} s", s.history, s.backlog));
    let full_claims = fill::claim_cost(&place, FREE, HELD, s.samples).await?;

    // 2. The full store, its reads in turn with the empty store's twin. Why a twin: read one
    // after the other (the empty store, the fill, the full store), the newest run of the
    // function read 1.19 and 1.73 times the empty store's in two runs of one build (session
    // 44), while read in turn in the flow part it stayed within 1.36; and the empty store
    // itself is full by now.
    let (twin_opts, twin) = twin(&far, s, progress).await?;
    let server = Server::start(&far, Duration::from_secs(120))?;
    let client = Client::new(std::slice::from_ref(&server.addr), s.concurrency)?;
    client.ready(Duration::from_secs(30)).await?;
    let mut full = figures(&client, s, "full", progress).await?;
    let both = super::reads::time_each(&[&twin.1, &client], HELD, s.samples).await?;
    [empty.reads, full.reads] =
        both.try_into().map_err(|_| "the reads of two servers gave another count of reports".to_string())?;
    drop((server, twin));
    if twin_opts.postgres.is_none() {
        let _ = std::fs::remove_dir_all(&twin_opts.dir);
    }
    progress.done("bench: scale: the full store measured");

    // 3. The pruner at work.
    let pruning = if prune > 0 { Some(pruning::measure(opts, s, &old, progress).await?) } else { None };

    let (report, targets) = compare(&empty, &full, &empty_claims, &full_claims, pruning.as_ref(), s);
    #[allow(clippy::cast_precision_loss)]
    let per_finished = (s.history > 0).then(|| after_history.saturating_sub(before) as f64 / s.history as f64);
    let disk = json!({
        "free_bytes": free.as_ref().map(|f| f.1),
        "checked_in": free.as_ref().map(|f| f.0.clone()),
        "needed_bytes_estimate": needed,
        "store_bytes_empty": before,
        "store_bytes_full": after,
        "bytes_per_finished_run": per_finished.map(stats::round3),
    });
    let mut report = report;
    if let Value::Object(map) = &mut report {
        map.insert("backlog".into(), json!(s.backlog));
        map.insert("history".into(), json!(s.history));
        map.insert("fill_seconds".into(), json!(stats::round3(fill_seconds)));
        map.insert("disk".into(), disk);
    }
    Ok((report, targets))
}

/// A server on an empty store of its own (schema `<schema>_scale_twin`), given what the empty
/// store held when it was measured: the held key and its queue, the pickups and the paced round.
async fn twin(far: &ServerOptions, s: &Settings, progress: &mut Progress) -> Result<(ServerOptions, (Server, Client)), String> {
    let opts = far.own_store("twin", "twin");
    let server = Server::start(&opts, Duration::from_secs(60))?;
    let client = Client::new(std::slice::from_ref(&server.addr), s.concurrency)?;
    client.ready(Duration::from_secs(10)).await?;
    hold_the_key(&client).await?;
    figures(&client, s, "empty twin", progress).await?;
    Ok((opts, (server, client)))
}

fn p(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

/// The report's figures side by side, their ratios and targets.
fn compare(
    empty: &Figures,
    full: &Figures,
    empty_claims: &[u64],
    full_claims: &[u64],
    pruning: Option<&pruning::Pruning>,
    s: &Settings,
) -> (Value, Vec<Value>) {
    let (e, f) = (summary(empty, empty_claims), summary(full, full_claims));
    let what = format!("with {} queued and {} finished runs over an empty store", s.backlog, s.history);
    let mut ratios = Map::new();
    let mut targets = Vec::new();
    let mut add = |name: &str, pointer: &str| {
        let ratio = p(&e, pointer).zip(p(&f, pointer)).map(|(a, b)| stats::round3(b / a.max(1e-6)));
        ratios.insert(name.to_string(), json!(ratio));
        targets.push(super::target(&format!("{name} {what}"), "<=", TARGET_RATIO, ratio));
    };
    add("POST /run p99 (paced)", "/paced_post_run/p99_ms");
    add("idle pickup p50 (POST /run to the end seen)", "/idle_pickup/p50_ms");
    add("claim p50", "/claim/p50_ms");
    for (read, _) in super::reads::reads("", "") {
        add(&format!("{read} p50"), &format!("/reads/{read}/latency/p50_ms"));
    }
    let prune = pruning.map(|pr| {
        let (report, ratio) = pruning::report(pr);
        ratios.insert("POST /run p99 while pruning".into(), json!(ratio));
        let name = format!("POST /run p99 while the pruner deletes {} runs over as long on an empty store", pr.runs);
        targets.push(super::target(&name, "<=", TARGET_RATIO, ratio));
        report
    });
    let report = json!({
        "paced_rate": s.rate,
        "empty": e,
        "full": f,
        "ratios": ratios,
        "pruning": prune,
    });
    (report, targets)
}
