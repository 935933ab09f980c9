//! `POST /run` and tracking: accepted, located, followed to its end, listed, its logs;
//! idempotency; cancel.

use super::http::{Answer, Ctx};
use super::listing;
use super::{CheckResult, Group, Outcome};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A run id no server has: a well-formed ULID (the zero one).
pub(crate) const MISSING_RUN: &str = "00000000000000000000000000";

const TERMINAL: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// An accepted run.
pub(crate) struct Accepted {
    run_id: String,
    /// Where the server says the run is tracked (Location, else `status_url`), when it says.
    location: Option<String>,
    body: Value,
}

/// `run.accepted` first; then, at once, the run followed (location, end), idempotency and cancel.
pub(super) async fn group(mut g: Group<'_>) -> Vec<CheckResult> {
    let ctx = g.ctx;
    let accepted = g.step("run.accepted", accept(ctx)).await;
    let seeded = || Group { ctx, results: g.results.clone() };
    let (i, c) = (idempotency(seeded()), cancel(seeded()));
    let (t, i, c) = tokio::join!(tracking(g, accepted.as_ref()), i, c);
    let mut all = t.results;
    for r in i.results.into_iter().chain(c.results) {
        if !all.iter().any(|a| a.id == r.id) {
            all.push(r);
        }
    }
    all
}

async fn tracking<'a>(mut g: Group<'a>, accepted: Option<&Accepted>) -> Group<'a> {
    let ctx = g.ctx;
    let at = g
        .step("run.location", async {
            match accepted {
                Some(a) => locate(ctx, a).await,
                None => Err(Outcome::skip("no run")),
            }
        })
        .await;
    g.step("run.tracked_to_terminal", async {
        match accepted {
            Some(a) => follow(ctx, at.as_deref().unwrap_or(&format!("/runs/{}", a.run_id)), &a.run_id).await,
            None => Err(Outcome::skip("no run")),
        }
    })
    .await;
    g.step("runs.list", async {
        match accepted {
            Some(a) => listing::list(ctx, &a.run_id, a.function(ctx).await.as_deref()).await,
            None => Err(Outcome::skip("no run")),
        }
    })
    .await;
    g.step("runs.logs", async {
        match accepted {
            Some(a) => listing::logs(ctx, &a.run_id).await,
            None => Err(Outcome::skip("no run")),
        }
    })
    .await;
    g
}

impl Accepted {
    /// The run's function: as `POST /run` answered, else as the run checks named it.
    async fn function(&self, ctx: &Ctx) -> Option<String> {
        match self.body["function"].as_str() {
            Some(f) => Some(f.to_string()),
            None => ctx.resolved().await.function.clone().ok().flatten(),
        }
    }
}

/// Submits a run; `Ok` with the answer when it is 202 with a run id.
async fn submit(ctx: &Ctx, body: &Value, headers: &[(&str, &str)]) -> Result<(Answer, String), Outcome> {
    let expected = r#"POST /run: 202 with {"run_id":...}"#;
    let a = ctx.post_json("/run", body, headers).await?;
    a.expect_status(&[202], expected)?;
    let json = a.expect_json(expected)?;
    match json["run_id"].as_str().filter(|id| !id.is_empty()) {
        Some(id) => Ok((a, id.to_string())),
        None => Err(Outcome::fail(expected, a.got())),
    }
}

async fn accept(ctx: &Ctx) -> Result<Accepted, Outcome> {
    let body = ctx.run_request(&[]).await?;
    let (a, run_id) = submit(ctx, &body, &[]).await?;
    let json = a.json().unwrap_or_default();
    let location = a.header("location").map(str::to_string).or_else(|| json["status_url"].as_str().map(str::to_string));
    Ok(Accepted { run_id, location, body: json })
}

/// The run's tracking URL (resolved), after checking it shows the run.
async fn locate(ctx: &Ctx, a: &Accepted) -> Result<String, Outcome> {
    let expected = format!("a Location header (or status_url) pointing at /runs/{}", a.run_id);
    let Some(location) = &a.location else {
        return Err(Outcome::fail(expected, format!("no Location header and no status_url in {}", a.body)));
    };
    let url = ctx.location(location).map_err(|e| Outcome::fail(&expected, e))?;
    if !url.path().ends_with(&format!("/runs/{}", a.run_id)) {
        return Err(Outcome::fail(expected, format!("Location: {location}")));
    }
    let shown = ctx.get(url.as_str()).await?;
    let run = shown.expect_json(&expected)?;
    if shown.status != 200 || run["run_id"] != a.run_id.as_str() {
        return Err(Outcome::fail(format!("GET {location}: 200 with the run {}", a.run_id), shown.got()));
    }
    Ok(url.to_string())
}

/// Follows the run at `at` until it ends: long-polls with `?wait=` while the server takes it,
/// else polls.
async fn follow(ctx: &Ctx, at: &str, id: &str) -> Result<(), Outcome> {
    let started = Instant::now();
    let deadline = started + ctx.opts.timeout;
    let mut long_poll = true;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let url = if long_poll {
            // Why: whole seconds, as any server takes; a second short of the check's own timeout.
            let wait = left.as_secs().saturating_sub(1).clamp(1, 60);
            let sep = if at.contains('?') { '&' } else { '?' };
            format!("{at}{sep}wait={wait}")
        } else {
            at.to_string()
        };
        let a = ctx.get(&url).await?;
        if long_poll && a.status == 400 {
            long_poll = false;
            continue;
        }
        let expected = format!("GET /runs/{id}: 200 with a status, reaching succeeded, failed or cancelled");
        a.expect_status(&[200], &expected)?;
        let run = a.expect_json(&expected)?;
        let status = run["status"].as_str().unwrap_or("");
        if TERMINAL.contains(&status) {
            return Ok(());
        }
        if !["queued", "running"].contains(&status) {
            return Err(Outcome::fail(expected, a.got()));
        }
        if !long_poll {
            let retry = a.header("retry-after").and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.2);
            tokio::time::sleep(Duration::from_secs_f64(retry.clamp(0.05, 0.5))).await;
        }
        if Instant::now() >= deadline {
            return Err(Outcome::fail(
                format!("run {id} succeeded, failed or cancelled within {}", plinth_core::DurationSpec(ctx.opts.timeout)),
                format!("still {status}: timed out"),
            ));
        }
    }
}

async fn idempotency(mut g: Group<'_>) -> Group<'_> {
    let ctx = g.ctx;
    g.step("idempotency.replay", replay(ctx)).await;
    g.step("idempotency.mismatch", mismatch(ctx)).await;
    g
}

async fn replay(ctx: &Ctx) -> Result<(), Outcome> {
    let key = format!("plinth-check-{}-replay", ctx.nonce);
    let body = ctx.run_request(&[]).await?;
    let (_, first) = submit(ctx, &body, &[("idempotency-key", &key)]).await?;
    let (again, second) = submit(ctx, &body, &[("idempotency-key", &key)]).await?;
    let expected = format!("the same Idempotency-Key and body again: 202 with run {first} and Idempotent-Replayed: true");
    if second != first {
        return Err(Outcome::fail(expected, format!("a new run {second}")));
    }
    match again.header("idempotent-replayed") {
        Some("true") => Ok(()),
        other => Err(Outcome::fail(expected, format!("run {second} with Idempotent-Replayed: {}", other.unwrap_or("(none)")))),
    }
}

async fn mismatch(ctx: &Ctx) -> Result<(), Outcome> {
    let key = format!("plinth-check-{}-mismatch", ctx.nonce);
    let body = ctx.run_request(&[("priority", json!(0))]).await?;
    submit(ctx, &body, &[("idempotency-key", &key)]).await?;
    // Why: another priority makes another request without touching the input, which the
    // function's schema might then refuse for its own reasons.
    let other = ctx.run_request(&[("priority", json!(1))]).await?;
    let a = ctx.post_json("/run", &other, &[("idempotency-key", &key)]).await?;
    a.expect_status(&[422], "the same Idempotency-Key with another body (priority 1 instead of 0): 422")
}

async fn cancel(mut g: Group<'_>) -> Group<'_> {
    let ctx = g.ctx;
    g.step("cancel.queued", cancel_queued(ctx)).await;
    g
}

/// Submits a run asked to start in an hour; its id. Skipped when the server refuses
/// `delay_seconds`.
pub(super) async fn delayed_run(ctx: &Ctx) -> Result<String, Outcome> {
    let body = ctx.run_request(&[("delay_seconds", json!(3600))]).await?;
    let a = ctx.post_json("/run", &body, &[]).await?;
    if (400..500).contains(&a.status) {
        return Err(Outcome::skip(format!("the server does not take delay_seconds, so no run stays queued ({})", a.got())));
    }
    a.expect_status(&[202], r#"POST /run with "delay_seconds": 3600: 202"#)?;
    Ok(a.json().and_then(|v| v["run_id"].as_str().map(str::to_string)).unwrap_or_default())
}

async fn cancel_queued(ctx: &Ctx) -> Result<(), Outcome> {
    let id = delayed_run(ctx).await?;
    let shown = ctx.get(&format!("/runs/{id}")).await?;
    let status = shown.json().and_then(|v| v["status"].as_str().map(str::to_string)).unwrap_or_default();
    if shown.status == 200 && status != "queued" {
        return Err(Outcome::skip(format!("the server ignores delay_seconds: the delayed run is already {status}")));
    }
    let expected = format!("POST /runs/{id}/cancel: 202 with the run, cancelled");
    let c = ctx.send(Method::POST, &format!("/runs/{id}/cancel"), |r| r).await?;
    c.expect_status(&[202], &expected)?;
    if c.json().is_some_and(|v| v["status"] == "cancelled") {
        return Ok(());
    }
    let after = ctx.get(&format!("/runs/{id}")).await?;
    if after.json().is_some_and(|v| v["status"] == "cancelled") {
        Ok(())
    } else {
        Err(Outcome::fail(expected, format!("{}; then {}", c.got(), after.got())))
    }
}
