//! `plinth check URL`: the component contract (`CONTRACT.md`) checked against any server, in
//! any language. Every check has a stable id and ends pass, fail (what was expected, what came
//! back) or skip (why). A check that needs another one's result is skipped when that one did
//! not pass, naming it.
//!
//! Each deviation is meant to fail one check: the `run.*` error checks look at the status code
//! (400, 404, 422 with pointers), the `errors.*` checks at the form of every error answer
//! (`application/problem+json`, `type`/`title`/`status`, a `code`). Redirects are not followed:
//! a contract URL that redirects is reported with where it points, so a user learns that the
//! URL given is not the component's (a load balancer's login page, http→https) instead of
//! passing against something else.
//!
//! The groups (probes, runs, error answers, limits; after `run.accepted`, idempotency and cancel)
//! run at once, checks inside a group in order; `metrics.names` runs after them, when the others'
//! requests and runs have made the labelled series exist, and `rate_limit.retry_after` (only with
//! `--rate-limit-probe`) last, since its burst may leave the client limited. Each check has its
//! own `--timeout`.

mod early;
mod errors;
mod events;
mod flow;
mod http;
mod limits;
mod listing;
mod probes;
mod report;
mod runs;
mod steps;

use crate::cli::{CheckArgs, CheckFormat};
use http::Ctx;
use serde_json::{Value, json};
use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Every check, in the order they are reported, with the checks each one needs.
pub(crate) const CHECKS: &[(&str, &[&str])] = &[
    ("health.status", &[]),
    ("health.checks", &["health.status"]),
    ("ready.status", &[]),
    ("run.accepted", &[]),
    ("run.location", &["run.accepted"]),
    ("run.tracked_to_terminal", &["run.accepted"]),
    ("run.malformed_json", &[]),
    ("run.unknown_function", &[]),
    ("run.schema_violation", &[]),
    ("errors.problem_json", &[]),
    ("errors.code", &[]),
    ("correlation.echo", &[]),
    ("metrics.exposed", &[]),
    ("metrics.names", &["metrics.exposed"]),
    ("idempotency.replay", &["run.accepted"]),
    ("idempotency.mismatch", &["run.accepted"]),
    ("cancel.queued", &["run.accepted"]),
    ("openapi.present", &[]),
    ("runs.list", &["run.accepted"]),
    ("runs.logs", &["run.accepted"]),
    ("run.body_too_large", &[]),
    ("run.unsupported_media_type", &[]),
    ("events.accepted", &[]),
    ("events.dedup", &["events.accepted"]),
    ("events.invalid_422", &["events.accepted"]),
    ("events.list", &["events.accepted"]),
    ("steps.waits", &[]),
    ("steps.wakes", &["steps.waits"]),
    ("steps.records", &["steps.wakes"]),
    ("rate_limit.retry_after", &[]),
    ("flow.policy", &[]),
    ("flow.held_by", &[]),
    ("flow.keys", &[]),
];

/// What to check and how.
#[derive(Debug, Clone)]
pub(crate) struct CheckOptions {
    /// The server's base URL, without a trailing slash.
    pub(crate) url: String,
    /// The function the run checks submit to; `None` asks `GET /functions`.
    pub(crate) function: Option<String>,
    /// The input of the runs submitted.
    pub(crate) input: Value,
    /// Only these ids (empty: all).
    pub(crate) only: Vec<String>,
    /// Not these ids.
    pub(crate) skip: Vec<String>,
    /// How long each check may take.
    pub(crate) timeout: Duration,
    /// The metric name prefix (`plinth` by default; the contract lets a component change it).
    pub(crate) metrics_prefix: String,
    /// A bearer credential sent on every request.
    pub(crate) api_key: Option<String>,
    /// The size of the body `run.body_too_large` sends, in bytes.
    pub(crate) large_body: usize,
    /// How many requests `rate_limit.retry_after` may send looking for a 429; `None` skips it.
    pub(crate) rate_limit_probe: Option<u32>,
    /// The step function the `steps.*` checks run; `None` skips them.
    pub(crate) steps_function: Option<String>,
    /// The input of its run.
    pub(crate) steps_input: Value,
}

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pass,
    Fail { expected: String, got: String },
    Skip { why: String },
}

impl Outcome {
    pub(crate) fn fail(expected: impl Into<String>, got: impl Into<String>) -> Self {
        Self::Fail { expected: expected.into(), got: got.into() }
    }

    pub(crate) fn skip(why: impl Into<String>) -> Self {
        Self::Skip { why: why.into() }
    }

    pub(crate) fn word(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail { .. } => "fail",
            Self::Skip { .. } => "skip",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckResult {
    pub(crate) id: &'static str,
    pub(crate) outcome: Outcome,
    pub(crate) elapsed_ms: u64,
}

/// Whether `id` names a check.
pub(crate) fn known(id: &str) -> bool {
    CHECKS.iter().any(|(c, _)| *c == id)
}

fn deps(id: &str) -> &'static [&'static str] {
    CHECKS.iter().find(|(c, _)| *c == id).map_or(&[], |(_, d)| d)
}

/// Whether `id` was asked for by `--only`/`--skip`.
fn selected(opts: &CheckOptions, id: &str) -> bool {
    (opts.only.is_empty() || opts.only.iter().any(|o| o == id)) && !opts.skip.iter().any(|s| s == id)
}

/// Whether `id` must run: selected, or needed by a selected check.
fn wanted(opts: &CheckOptions, id: &str) -> bool {
    selected(opts, id) || CHECKS.iter().any(|(c, d)| d.contains(&id) && wanted(opts, c))
}

/// The checks of one group, run in order.
pub(crate) struct Group<'a> {
    pub(crate) ctx: &'a Ctx,
    results: Vec<CheckResult>,
}

impl<'a> Group<'a> {
    fn new(ctx: &'a Ctx) -> Self {
        Self { ctx, results: Vec::new() }
    }

    /// Runs `check` as `id` (unless not wanted, or a check it needs did not pass) within the
    /// timeout; its `Ok` value is handed to the checks that need it.
    pub(crate) async fn step<T>(&mut self, id: &'static str, check: impl Future<Output = Result<T, Outcome>>) -> Option<T> {
        if !wanted(&self.ctx.opts, id) {
            return None;
        }
        if let Some(why) = self.blocked(id) {
            self.results.push(CheckResult { id, outcome: Outcome::skip(why), elapsed_ms: 0 });
            return None;
        }
        let started = Instant::now();
        let timeout = self.ctx.opts.timeout;
        let (outcome, value) = match tokio::time::timeout(timeout, check).await {
            Ok(Ok(v)) => (Outcome::Pass, Some(v)),
            Ok(Err(o)) => (o, None),
            Err(_) => (
                Outcome::fail(
                    format!("an answer within the per-check timeout ({})", plinth_core::DurationSpec(timeout)),
                    format!("timed out after {}", plinth_core::DurationSpec(timeout)),
                ),
                None,
            ),
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.results.push(CheckResult { id, outcome, elapsed_ms });
        value
    }

    /// Why `id` cannot run: a check it needs did not pass.
    fn blocked(&self, id: &str) -> Option<String> {
        deps(id).iter().find_map(|dep| match self.results.iter().find(|r| r.id == *dep).map(|r| &r.outcome) {
            Some(Outcome::Pass) => None,
            Some(Outcome::Fail { .. }) => Some(format!("depends on {dep}, which failed")),
            Some(Outcome::Skip { .. }) => Some(format!("depends on {dep}, which was skipped")),
            None => Some(format!("depends on {dep}, which did not run")),
        })
    }
}

/// Runs the selected checks against `opts.url`; results in the order of [`CHECKS`].
pub(crate) async fn run_checks(opts: &CheckOptions) -> Vec<CheckResult> {
    let ctx = match Ctx::new(opts.clone()).await {
        Ok(ctx) => ctx,
        Err(e) => {
            let outcome = Outcome::fail("an HTTP client", e);
            return CHECKS
                .iter()
                .filter(|(id, _)| selected(opts, id))
                .map(|(id, _)| CheckResult { id, outcome: outcome.clone(), elapsed_ms: 0 })
                .collect();
        }
    };
    let (probes, runs, errors, limited, events, steps, flow) = tokio::join!(
        probes::group(Group::new(&ctx)),
        runs::group(Group::new(&ctx)),
        errors::group(Group::new(&ctx)),
        limits::group(Group::new(&ctx)),
        events::group(Group::new(&ctx)),
        steps::group(Group::new(&ctx)),
        flow::group(Group::new(&ctx))
    );
    let ran = runs.iter().any(|r| r.id == "run.tracked_to_terminal" && r.outcome == Outcome::Pass);
    let names = probes::names(Group { ctx: &ctx, results: probes.results.clone() }, ran).await;
    let rate = limits::rate_limit(Group::new(&ctx)).await;
    let mut all: Vec<CheckResult> = probes.results;
    let groups = runs
        .into_iter()
        .chain(errors.results)
        .chain(limited.results)
        .chain(events.results)
        .chain(steps.results)
        .chain(flow.results);
    for r in groups.chain(names.results).chain(rate.results) {
        if !all.iter().any(|a| a.id == r.id) {
            all.push(r);
        }
    }
    all.retain(|r| selected(opts, r.id));
    all.sort_by_key(|r| CHECKS.iter().position(|(id, _)| *id == r.id));
    all
}

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// `plinth check URL`.
pub(crate) fn main(args: &CheckArgs) -> ExitCode {
    match main_inner(args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("plinth: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn main_inner(args: &CheckArgs) -> Result<u8, String> {
    let url = args.url.trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("URL `{}` must start with http:// or https://", args.url));
    }
    for id in args.only.iter().chain(&args.skip) {
        if !known(id) {
            let ids: Vec<&str> = CHECKS.iter().map(|(c, _)| *c).collect();
            return Err(format!("no check has the id `{id}`; known: {}", ids.join(", ")));
        }
    }
    if args.timeout.is_zero() {
        return Err("--timeout must be more than 0".into());
    }
    if args.large_body == 0 {
        return Err("--large-body must be more than 0 bytes".into());
    }
    if args.rate_limit_probe == Some(0) {
        return Err("--rate-limit-probe must be more than 0 requests (leave it out to skip rate_limit.retry_after)".into());
    }
    let input = crate::client::read_input(args.input.as_deref()).map_err(|f| f.message)?;
    let steps_input = match &args.steps_input {
        Some(text) => crate::client::read_input(Some(text)).map_err(|f| f.message)?,
        None => json!({}),
    };
    let opts = CheckOptions {
        url,
        function: args.function.clone(),
        input,
        only: args.only.clone(),
        skip: args.skip.clone(),
        timeout: args.timeout,
        metrics_prefix: args.metrics_prefix.clone(),
        api_key: args.api_key.clone(),
        large_body: args.large_body,
        rate_limit_probe: args.rate_limit_probe,
        steps_function: args.steps_function.clone(),
        steps_input,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let started = Instant::now();
    let results = rt.block_on(async {
        http::reachable(&opts).await?;
        Ok::<_, String>(run_checks(&opts).await)
    })?;
    let elapsed = started.elapsed();
    let text = match args.format {
        CheckFormat::Table => report::table(&results, elapsed),
        CheckFormat::Json => report::json(&opts.url, &results, elapsed),
        CheckFormat::Junit => report::junit(&opts.url, &results, elapsed),
    };
    print!("{text}");
    Ok(if results.iter().any(|r| matches!(r.outcome, Outcome::Fail { .. })) { EXIT_FAILED } else { 0 })
}

#[cfg(test)]
mod tests;
