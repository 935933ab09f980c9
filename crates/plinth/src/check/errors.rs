//! Requests a client gets wrong: their status codes (`run.*`) and the form of every error
//! answer (`errors.*`: RFC 9457 problem+json with a stable `code`).

use super::http::{Answer, Ctx};
use super::runs::MISSING_RUN;
use super::{Group, Outcome};
use reqwest::Method;
use serde_json::{Value, json};

pub(super) const NO_SUCH_FUNCTION: &str = "plinth-check-no-such-function";

pub(super) async fn group(mut g: Group<'_>) -> Group<'_> {
    let ctx = g.ctx;
    g.step("run.malformed_json", async { malformed(ctx).await?.expect_status(&[400], "POST /run with malformed JSON: 400") })
        .await;
    g.step("run.unknown_function", async {
        unknown_function(ctx).await?.expect_status(&[404], "POST /run naming a function the component lacks: 404")
    })
    .await;
    g.step("run.schema_violation", schema_violation(ctx)).await;
    g.step("errors.problem_json", each_error(ctx, problem_form)).await;
    g.step("errors.code", each_error(ctx, code_form)).await;
    g
}

async fn malformed(ctx: &Ctx) -> Result<Answer, Outcome> {
    ctx.send(Method::POST, "/run", |r| r.header("content-type", "application/json").body(r#"{"function": "#)).await
}

async fn unknown_function(ctx: &Ctx) -> Result<Answer, Outcome> {
    ctx.post_json("/run", &json!({"function": NO_SUCH_FUNCTION, "input": {}}), &[]).await
}

/// An input the schema refuses: a value of a type it does not allow, or `{}` when it requires
/// properties; `None` when neither applies.
pub(crate) fn violating_input(schema: &Value) -> Option<Value> {
    let allowed: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !allowed.is_empty() {
        let candidates = [
            ("boolean", json!(true)),
            ("string", json!("plinth-check")),
            ("array", json!([])),
            ("object", json!({})),
            ("number", json!(1.5)),
            ("null", Value::Null),
        ];
        return candidates.into_iter().find(|(t, _)| !allowed.contains(t)).map(|(_, v)| v);
    }
    schema["required"].as_array().is_some_and(|r| !r.is_empty()).then(|| json!({}))
}

async fn schema_violation(ctx: &Ctx) -> Result<(), Outcome> {
    let schema = ctx.resolved().await.schema.clone().map_err(Outcome::skip)?;
    let Some(schema) = schema else {
        return Err(Outcome::skip("the function has no input schema (per GET /functions)"));
    };
    let Some(input) = violating_input(&schema) else {
        return Err(Outcome::skip(format!("cannot derive an input this schema refuses: {schema}")));
    };
    let mut body = ctx.run_request(&[]).await?;
    body["input"] = input.clone();
    let expected = format!(r#"POST /run with input {input} against the schema: 422 with "errors": [{{"pointer": ...}}]"#);
    let a = ctx.post_json("/run", &body, &[]).await?;
    a.expect_status(&[422], &expected)?;
    let problem = a.expect_json(&expected)?;
    let pointers = problem["errors"]
        .as_array()
        .filter(|e| !e.is_empty())
        .is_some_and(|errors| errors.iter().all(|e| e["pointer"].as_str().is_some_and(|p| p.is_empty() || p.starts_with('/'))));
    if pointers { Ok(()) } else { Err(Outcome::fail(expected, a.got())) }
}

/// Runs `form` on the answers to three mistakes: malformed JSON, an unknown function, an
/// unknown run; fails on the first answer that is not an error or not in form.
async fn each_error(ctx: &Ctx, form: fn(&Answer, &Value) -> Result<(), String>) -> Result<(), Outcome> {
    let missing = format!("/runs/{MISSING_RUN}");
    let answers = [malformed(ctx).await?, unknown_function(ctx).await?, ctx.get(&missing).await?];
    for a in &answers {
        if a.status < 400 {
            return Err(Outcome::fail(format!("{}: an error status (4xx)", a.what), a.got()));
        }
        let body = a.json().unwrap_or(Value::Null);
        form(a, &body).map_err(|expected| Outcome::fail(expected, a.got()))?;
    }
    Ok(())
}

pub(super) fn problem_form(a: &Answer, body: &Value) -> Result<(), String> {
    let expected =
        || format!(r#"{}: Content-Type application/problem+json with "type", "title" and "status": {}"#, a.what, a.status);
    let fine = a.media_type() == "application/problem+json"
        && body["type"].is_string()
        && body["title"].is_string()
        && body["status"].as_u64() == Some(u64::from(a.status));
    if fine { Ok(()) } else { Err(expected()) }
}

/// Whether `code` looks like `PLINTH_004`: capitals, an underscore, digits.
pub(crate) fn code_shaped(code: &str) -> bool {
    code.split_once('_').is_some_and(|(name, number)| {
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_uppercase())
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
    })
}

pub(super) fn code_form(a: &Answer, body: &Value) -> Result<(), String> {
    if body["code"].as_str().is_some_and(code_shaped) {
        Ok(())
    } else {
        Err(format!(r#"{}: a "code" matching ^[A-Z]+_[0-9]+$ in the body"#, a.what))
    }
}
