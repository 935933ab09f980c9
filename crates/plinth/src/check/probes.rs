//! `/health`, `/ready`, `/metrics`, `/openapi.json` and the correlation header.

use super::http::{Answer, Ctx, excerpt};
use super::{Group, Outcome};
use serde_json::Value;

pub(super) async fn group(mut g: Group<'_>) -> Group<'_> {
    let ctx = g.ctx;
    let health = g.step("health.status", health_status(ctx)).await;
    if let Some(body) = health {
        g.step("health.checks", health_checks(body)).await;
    } else {
        g.step("health.checks", async { Ok(()) }).await;
    }
    g.step("ready.status", ready_status(ctx)).await;
    g.step("correlation.echo", correlation_echo(ctx)).await;
    g.step("metrics.exposed", metrics_exposed(ctx)).await;
    g.step("openapi.present", openapi_present(ctx)).await;
    g
}

/// The names that have no series until a run has ended.
const RUN_SERIES: [&str; 3] = ["runs_total", "run_duration_seconds", "runs_in_flight"];

/// `metrics.names`, after the other groups: their requests, errors and runs have made the
/// labelled series exist (a labelled family with no series has no samples to show). When a run
/// was followed to its end, a missing name is looked for again for up to a second, since a
/// server may count the run just after it reports it.
pub(super) async fn names(mut g: Group<'_>, ran: bool) -> Group<'_> {
    let ctx = g.ctx;
    g.step("metrics.names", async {
        let prefix = &ctx.opts.metrics_prefix;
        let mut tries = if ran { 10 } else { 1 };
        loop {
            let text = ctx.get("/metrics").await?.text();
            let result = metric_names(&text, prefix);
            tries -= 1;
            match result {
                Err(Outcome::Fail { got, .. }) if !ran && only_run_series(&got, prefix) => {
                    return Err(Outcome::skip(format!(
                        "{got}, which have no series before a run ends; no run was followed to its end here (pass --function)"
                    )));
                }
                Err(_) if tries > 0 => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                other => return other,
            }
        }
    })
    .await;
    g
}

/// Whether `got` ("missing a, b") names only the run series.
fn only_run_series(got: &str, prefix: &str) -> bool {
    got.strip_prefix("missing ")
        .is_some_and(|names| names.split(", ").all(|n| RUN_SERIES.iter().any(|r| n == format!("{prefix}_{r}"))))
}

const JSON: &str = "application/json";

pub(super) fn json_object(a: &Answer, expected: &str) -> Result<Value, Outcome> {
    if a.media_type() != JSON {
        return Err(Outcome::fail(expected, a.got()));
    }
    a.expect_json(expected).and_then(|v| if v.is_object() { Ok(v) } else { Err(Outcome::fail(expected, a.got())) })
}

async fn health_status(ctx: &Ctx) -> Result<Value, Outcome> {
    let expected = r#"GET /health: 200 application/json {"status":"healthy",...}"#;
    let a = ctx.get("/health").await?;
    a.expect_status(&[200], expected)?;
    let body = json_object(&a, expected)?;
    match body["status"].as_str() {
        Some("healthy") => Ok(body),
        _ => Err(Outcome::fail(expected, a.got())),
    }
}

async fn health_checks(body: Value) -> Result<(), Outcome> {
    let expected = r#"a "checks" object in GET /health whose entries each have a "status""#;
    let Some(checks) = body["checks"].as_object() else {
        return Err(Outcome::fail(expected, format!("checks: {}", excerpt(&body["checks"].to_string(), 160))));
    };
    if let Some((name, entry)) = checks.iter().find(|(_, v)| !v["status"].is_string()) {
        return Err(Outcome::fail(expected, format!("checks.{name}: {}", excerpt(&entry.to_string(), 160))));
    }
    Ok(())
}

async fn ready_status(ctx: &Ctx) -> Result<(), Outcome> {
    let expected = r#"GET /ready: 200 {"status":"ready"} or 503 {"status":"not_ready","reason":...}"#;
    let a = ctx.get("/ready").await?;
    a.expect_status(&[200, 503], expected)?;
    let body = json_object(&a, expected)?;
    let fine = match a.status {
        200 => body["status"] == "ready",
        _ => body["status"] == "not_ready" && body["reason"].is_string(),
    };
    if fine { Ok(()) } else { Err(Outcome::fail(expected, a.got())) }
}

async fn correlation_echo(ctx: &Ctx) -> Result<(), Outcome> {
    let id = format!("plinth-check-{}", ctx.nonce);
    let expected = format!("X-Correlation-ID: {id} echoed on the answer");
    let missing = format!("/runs/{}", super::runs::MISSING_RUN);
    for path in ["/health", missing.as_str()] {
        let a = ctx.send(reqwest::Method::GET, path, |r| r.header("x-correlation-id", &id)).await?;
        match a.header("x-correlation-id") {
            Some(v) if v == id => {}
            Some(v) => return Err(Outcome::fail(expected, format!("GET {path}: {} with X-Correlation-ID: {v}", a.status))),
            None => return Err(Outcome::fail(expected, format!("GET {path}: {} without X-Correlation-ID", a.status))),
        }
    }
    Ok(())
}

async fn metrics_exposed(ctx: &Ctx) -> Result<(), Outcome> {
    let expected = "GET /metrics: 200 text/plain (or application/openmetrics-text) in the Prometheus exposition format";
    let a = ctx.get("/metrics").await?;
    a.expect_status(&[200], expected)?;
    let media = a.media_type();
    if media != "text/plain" && media != "application/openmetrics-text" {
        return Err(Outcome::fail(expected, a.got()));
    }
    let text = a.text();
    let samples = exposition(&text).map_err(|line| Outcome::fail(expected, format!("GET /metrics: line `{line}`")))?;
    if samples.is_empty() {
        return Err(Outcome::fail(expected, "GET /metrics: no samples"));
    }
    Ok(())
}

/// The sample names of a Prometheus text exposition, or the first line that is not one.
pub(crate) fn exposition(text: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let bad = || excerpt(line, 120);
        let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(line.len());
        let name = &line[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad());
        }
        let mut rest = &line[end..];
        if rest.starts_with('{') {
            let close = rest.rfind('}').ok_or_else(bad)?;
            rest = &rest[close + 1..];
        }
        let value = rest.split_whitespace().next().ok_or_else(bad)?;
        if value.parse::<f64>().is_err() && !matches!(value, "+Inf" | "-Inf" | "NaN") {
            return Err(bad());
        }
        names.push(name);
    }
    Ok(names)
}

/// The metric names the contract requires (Metrics section), under `prefix`.
pub(crate) fn required_metrics(prefix: &str) -> Vec<String> {
    [
        "requests_total",
        "request_duration_seconds",
        "errors_total",
        "runs_total",
        "run_duration_seconds",
        "runs_in_flight",
        "queue_depth",
        "build_info",
        "uptime_seconds",
    ]
    .iter()
    .map(|n| format!("{prefix}_{n}"))
    .collect()
}

/// Passes when every required name has a sample (a histogram's `_bucket`/`_sum`/`_count`
/// count) or a `# TYPE` line (a family with no series yet; OpenMetrics names counters without
/// `_total` there).
pub(crate) fn metric_names(text: &str, prefix: &str) -> Result<(), Outcome> {
    let samples = exposition(text).unwrap_or_default();
    let typed: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split_whitespace().next()).collect();
    let missing: Vec<String> = required_metrics(prefix)
        .into_iter()
        .filter(|n| {
            let family = n.strip_suffix("_total").unwrap_or(n);
            let sampled = samples
                .iter()
                .any(|s| *s == n || [format!("{n}_bucket"), format!("{n}_sum"), format!("{n}_count")].iter().any(|x| s == x));
            !sampled && !typed.iter().any(|t| *t == n || *t == family)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Outcome::fail(
        format!("GET /metrics has {}", required_metrics(prefix).join(", ")),
        format!("missing {}", missing.join(", ")),
    ))
}

async fn openapi_present(ctx: &Ctx) -> Result<(), Outcome> {
    let expected = r#"GET /openapi.json: 200 JSON with "openapi": "3.x", "info" and "paths""#;
    let a = ctx.get("/openapi.json").await?;
    a.expect_status(&[200], expected)?;
    let doc = a.expect_json(expected)?;
    let version = doc["openapi"].as_str().unwrap_or("");
    if !version.starts_with("3.") || !doc["info"].is_object() || !doc["paths"].is_object() {
        let got = format!("openapi: {}, info: {}, paths: {}", doc["openapi"], kind(&doc["info"]), kind(&doc["paths"]));
        return Err(Outcome::fail(expected, format!("GET /openapi.json: 200 with {got}")));
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "missing",
        Value::Object(_) => "an object",
        _ => "not an object",
    }
}
