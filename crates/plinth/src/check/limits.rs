//! What a server must refuse (CONTRACT.md, Errors): a body over its limit (413), a body that is
//! not sent as JSON (415), and, only when asked to probe for it, more requests than its rate
//! limit allows (429 with `Retry-After`). Each refusal must be a problem+json answer with a code,
//! as every 4xx is.
//!
//! The refused bodies name a function no component has, so a server that takes them anyway
//! answers 404 (shown in what came back) instead of starting a run.

use super::errors::{NO_SUCH_FUNCTION, code_form, problem_form};
use super::http::{Answer, Ctx};
use super::{Group, Outcome};
use reqwest::Method;
use serde_json::Value;

pub(super) async fn group(mut g: Group<'_>) -> Group<'_> {
    let ctx = g.ctx;
    g.step("run.body_too_large", body_too_large(ctx)).await;
    g.step("run.unsupported_media_type", unsupported_media_type(ctx)).await;
    g
}

/// `rate_limit.retry_after`, run after every other check: its burst of requests may leave the
/// client limited for a while.
pub(super) async fn rate_limit(mut g: Group<'_>) -> Group<'_> {
    let ctx = g.ctx;
    g.step("rate_limit.retry_after", rate_limited(ctx)).await;
    g
}

/// `n` bytes as people write them: `8 MiB`, `1500 bytes`.
pub(crate) fn size(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    const KIB: usize = 1024;
    match n {
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// A JSON `POST /run` body of exactly `len` bytes (at least its fixed part) naming no function.
pub(crate) fn padded_body(len: usize) -> String {
    let head = format!(r#"{{"function":"{NO_SUCH_FUNCTION}","input":{{"pad":""#);
    let tail = r#""}}"#;
    let pad = len.saturating_sub(head.len() + tail.len());
    let mut body = String::with_capacity(head.len() + pad + tail.len());
    body.push_str(&head);
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str(tail);
    body
}

/// `Ok` when the answer is `status` in problem+json form with a code; else a failure saying
/// what came back.
fn refused(a: &Answer, status: u16, expected: &str) -> Result<(), Outcome> {
    a.expect_status(&[status], expected)?;
    let body = a.json().unwrap_or(Value::Null);
    problem_form(a, &body).and_then(|()| code_form(a, &body)).map_err(|_| Outcome::fail(expected, a.got()))
}

async fn body_too_large(ctx: &Ctx) -> Result<(), Outcome> {
    let len = ctx.opts.large_body;
    let expected = format!(
        "POST /run with a {} JSON body: 413 application/problem+json with \"status\": 413 and a \"code\" \
         (CONTRACT.md: body over the limit 413; a larger limit needs a larger --large-body)",
        size(len)
    );
    let a = super::early::post(ctx, "/run", "application/json", padded_body(len).into_bytes()).await?;
    refused(&a, 413, &expected)
}

async fn unsupported_media_type(ctx: &Ctx) -> Result<(), Outcome> {
    let expected = "POST /run with Content-Type: text/plain: 415 application/problem+json with \"status\": 415 and a \"code\" \
                    (CONTRACT.md: wrong content type 415)";
    let body = padded_body(0);
    let a = ctx.send(Method::POST, "/run", |r| r.header("content-type", "text/plain").body(body)).await?;
    refused(&a, 415, expected)
}

/// Whether `value` is a `Retry-After` value (RFC 9110): delay seconds, or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn retry_after_valid(value: &str) -> bool {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let format =
        time::macros::format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    time::PrimitiveDateTime::parse(value, &format).is_ok()
}

/// Sends up to `--rate-limit-probe` requests to `GET /functions`, one after another, and checks
/// the first 429.
async fn rate_limited(ctx: &Ctx) -> Result<(), Outcome> {
    let Some(budget) = ctx.opts.rate_limit_probe else {
        return Err(Outcome::skip(
            "finding a rate limit takes a burst of requests, so this runs only with --rate-limit-probe N \
             (CONTRACT.md: rate limited 429 with Retry-After; whether to limit is the server's choice)",
        ));
    };
    let expected = format!(
        "a 429 within {budget} requests to GET /functions, with a Retry-After (seconds or an HTTP date) and \
         application/problem+json with \"status\": 429 and a \"code\" (CONTRACT.md: rate limited 429 with Retry-After)"
    );
    let mut last = None;
    for sent in 1..=budget {
        let a = ctx.get("/functions").await?;
        if a.status == 429 {
            return match a.header("retry-after") {
                Some(v) if retry_after_valid(v) => refused(&a, 429, &expected),
                Some(v) => Err(Outcome::fail(expected, format!("request {sent}: {} with Retry-After: {v}", a.got()))),
                None => Err(Outcome::fail(expected, format!("request {sent}: {} without Retry-After", a.got()))),
            };
        }
        last = Some(a);
    }
    let last = last.map_or_else(|| "no request sent".to_string(), |a| format!("the last was {}", a.got()));
    Err(Outcome::fail(expected, format!("{budget} answers, none 429; {last}")))
}
