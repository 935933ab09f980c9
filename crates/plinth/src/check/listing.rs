//! `GET /runs` and `GET /runs/{id}/logs` (CONTRACT.md, Endpoints): a page is
//! `{"runs":[...],"next_cursor":...}`, a `cursor` continues it, the `function` filter keeps to
//! one function, the run just made is listed; a run's logs answer 200 and an unknown run's 404.

use super::Outcome;
use super::http::Ctx;
use super::probes::json_object;
use super::runs::MISSING_RUN;
use serde_json::Value;

/// The most pages `runs.list` reads looking for its run.
const MAX_PAGES: usize = 50;
/// Runs per page while looking (the contract allows up to 500).
const PAGE: &str = "100";

/// One page: its runs and its cursor.
struct Page {
    runs: Vec<Value>,
    next_cursor: Option<String>,
}

/// Checks the form of a page: `runs` an array of runs (objects with a `run_id`), at most `limit`
/// of them, and `next_cursor` present, null or a string.
pub(crate) fn page_form(body: &Value, limit: usize) -> Result<(Vec<Value>, Option<String>), String> {
    let Some(runs) = body["runs"].as_array() else {
        return Err(format!("runs: {}", kind(&body["runs"])));
    };
    if runs.len() > limit {
        return Err(format!("{} runs on a page of limit={limit}", runs.len()));
    }
    if let Some(bad) = runs.iter().find(|r| !r["run_id"].is_string()) {
        return Err(format!("a run without a run_id: {}", super::http::excerpt(&bad.to_string(), 120)));
    }
    let cursor = match body.get("next_cursor") {
        None => return Err("no next_cursor field (null on the last page)".into()),
        Some(Value::Null) => None,
        Some(Value::String(c)) if !c.is_empty() => Some(c.clone()),
        Some(other) => return Err(format!("next_cursor: {other}")),
    };
    Ok((runs.clone(), cursor))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "missing",
        Value::Array(_) => "an array",
        _ => "not an array",
    }
}

/// `text` for a query string: unreserved characters (RFC 3986) as they are, the rest as `%XX`.
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /runs` with `query`, as a page of at most `limit` runs.
async fn page(ctx: &Ctx, query: &[(&str, &str)], limit: usize) -> Result<Page, Outcome> {
    let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    let path = format!("/runs?{}", pairs.join("&"));
    let expected = format!(
        r#"{path}: 200 application/json {{"runs":[at most {limit} runs, each with a "run_id"],"next_cursor":null or a string}}"#
    );
    let a = ctx.get(&path).await?;
    a.expect_status(&[200], &expected)?;
    let body = json_object(&a, &expected)?;
    let (runs, next_cursor) = page_form(&body, limit).map_err(|why| Outcome::fail(&expected, format!("{}: {why}", a.what)))?;
    Ok(Page { runs, next_cursor })
}

/// `runs.list`: a page of one and the page after it, then the run `run_id` found by paging
/// through `function`'s runs.
pub(super) async fn list(ctx: &Ctx, run_id: &str, function: Option<&str>) -> Result<(), Outcome> {
    let first = page(ctx, &[("limit", "1")], 1).await?;
    if let (Some(cursor), Some(shown)) = (&first.next_cursor, first.runs.first()) {
        let next = page(ctx, &[("limit", "1"), ("cursor", cursor)], 1).await?;
        if next.runs.first().is_some_and(|r| r["run_id"] == shown["run_id"]) {
            return Err(Outcome::fail(
                format!("GET /runs?limit=1&cursor={}: the page after the first, without its run", encode(cursor)),
                format!("run {} again", shown["run_id"]),
            ));
        }
    }
    let mut query = vec![("limit", PAGE)];
    if let Some(f) = function {
        query.push(("function", f));
    }
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    for _ in 0..MAX_PAGES {
        let mut q = query.clone();
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let p = page(ctx, &q, 100).await?;
        let stray = function.and_then(|f| p.runs.iter().find(|r| r.get("function").is_some_and(|g| g != f)).map(|r| (f, r)));
        if let Some((f, other)) = stray {
            return Err(Outcome::fail(
                format!("GET /runs?function={f}: only runs of {f}"),
                format!("run {} of {}", other["run_id"], other["function"]),
            ));
        }
        if p.runs.iter().any(|r| r["run_id"] == run_id) {
            return Ok(());
        }
        seen += p.runs.len();
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => {
                return Err(Outcome::fail(
                    format!("run {run_id}, just accepted, listed by GET /runs"),
                    format!("not among the {seen} runs listed"),
                ));
            }
        }
    }
    Err(Outcome::fail(
        format!("run {run_id}, just accepted, listed by GET /runs"),
        format!("not among the first {seen} runs listed ({MAX_PAGES} pages)"),
    ))
}

/// `runs.logs`: the run's logs answer 200 (their form is not set by the contract), an unknown
/// run's 404.
pub(super) async fn logs(ctx: &Ctx, run_id: &str) -> Result<(), Outcome> {
    let a = ctx.get(&format!("/runs/{run_id}/logs")).await?;
    a.expect_status(
        &[200],
        &format!("GET /runs/{run_id}/logs: 200 with what the handler wrote (CONTRACT.md lists this endpoint)"),
    )?;
    let missing = ctx.get(&format!("/runs/{MISSING_RUN}/logs")).await?;
    missing.expect_status(&[404], &format!("GET /runs/{MISSING_RUN}/logs (no such run): 404 (CONTRACT.md: unknown run 404)"))
}
