//! Step functions (CONTRACT.md, Steps), for servers that offer them: a run of the function
//! given by `--steps-function` reaches `waiting` and says why, is woken (its sleep ends; the
//! event it waits for is sent, with the run's input as its data; the run it invoked ends),
//! ends succeeded, and lists its steps. Skipped without `--steps-function`.

use super::http::Ctx;
use super::{Group, Outcome};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub(super) async fn group(mut g: Group<'_>) -> Group<'_> {
    let ctx = g.ctx;
    let waiting = g.step("steps.waits", waits(ctx)).await;
    let woken = match &waiting {
        Some(run) => g.step("steps.wakes", wakes(ctx, run)).await,
        None => g.step("steps.wakes", async { Err::<Value, _>(Outcome::skip("no run waited")) }).await,
    };
    match (&waiting, &woken) {
        (Some(run), Some(_)) => g.step("steps.records", records(ctx, run)).await,
        _ => g.step("steps.records", async { Err::<(), _>(Outcome::skip("no run was woken")) }).await,
    };
    g
}

/// Polls the run until `done` says so, within the check's timeout; the last answer.
async fn poll(ctx: &Ctx, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value, Outcome> {
    let deadline = Instant::now() + ctx.opts.timeout;
    loop {
        let a = ctx.get(&format!("/runs/{id}")).await?;
        let run = a.json().unwrap_or(Value::Null);
        if done(&run) || Instant::now() >= deadline {
            return Ok(run);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `steps.waits`: the run reaches `waiting` with `waiting_for` `{step, kind}` (`sleep`, `event`
/// or `run`).
async fn waits(ctx: &Ctx) -> Result<Value, Outcome> {
    let Some(function) = ctx.opts.steps_function.clone() else {
        return Err(Outcome::skip("give --steps-function NAME (a step function that sleeps or waits) to check steps"));
    };
    let expected =
        format!("POST /run of `{function}`: 202, then GET /runs/{{id}}: status waiting with waiting_for {{step, kind}}");
    let body = json!({"function": function, "input": ctx.opts.steps_input});
    let a = ctx.post_json("/run", &body, &[]).await?;
    a.expect_status(&[202], &expected)?;
    let id = a.expect_json(&expected)?["run_id"].as_str().unwrap_or_default().to_string();
    let run = poll(ctx, &id, |r| {
        r["status"] == "waiting" || r["status"].as_str().is_some_and(|s| ["succeeded", "failed", "cancelled"].contains(&s))
    })
    .await?;
    let kind = run["waiting_for"]["kind"].as_str().unwrap_or("");
    if run["status"] != "waiting" || !["sleep", "event", "run"].contains(&kind) || !run["waiting_for"]["step"].is_string() {
        return Err(Outcome::fail(expected, format!("{run}")));
    }
    Ok(run)
}

/// `steps.wakes`: a sleep ends by itself; an event wait gets its event; a run wait gets its
/// child's end. The run then ends succeeded.
async fn wakes(ctx: &Ctx, run: &Value) -> Result<Value, Outcome> {
    let id = run["run_id"].as_str().unwrap_or_default();
    let w = &run["waiting_for"];
    let expected = format!("run {id} woken from its {} wait, then succeeded", w["kind"].as_str().unwrap_or("?"));
    if w["kind"] == "event" {
        let data = if run["input"].is_object() { run["input"].clone() } else { json!({}) };
        let event = json!({"name": w["event"], "data": data});
        let a = ctx.post_json("/events", &event, &[]).await?;
        a.expect_status(&[202], &format!("POST /events {event}: 202"))?;
    }
    let done = poll(ctx, id, |r| r["status"].as_str().is_some_and(|s| ["succeeded", "failed", "cancelled"].contains(&s))).await?;
    if done["status"] != "succeeded" || !done["waiting_for"].is_null() {
        return Err(Outcome::fail(expected, format!("{done}")));
    }
    Ok(done)
}

/// `steps.records`: `GET /runs/{id}/steps` lists the steps in order, each with `id`, `op`,
/// `status`, `attempts` and `started_at`; the step that waited is among them, succeeded.
async fn records(ctx: &Ctx, run: &Value) -> Result<(), Outcome> {
    let id = run["run_id"].as_str().unwrap_or_default();
    let waited = run["waiting_for"]["step"].as_str().unwrap_or_default();
    let expected = format!(r#"GET /runs/{id}/steps: 200 {{"run_id","steps":[...]}} with step `{waited}` succeeded"#);
    let a = ctx.get(&format!("/runs/{id}/steps")).await?;
    a.expect_status(&[200], &expected)?;
    let body = a.expect_json(&expected)?;
    let steps = body["steps"].as_array().cloned().unwrap_or_default();
    let well_formed = steps.iter().all(|s| {
        s["id"].is_string()
            && s["op"].is_string()
            && s["status"].is_string()
            && s["attempts"].is_u64()
            && s["started_at"].is_string()
    });
    let waited_ok = steps.iter().any(|s| s["id"] == waited && s["status"] == "succeeded");
    if body["run_id"] != id || !well_formed || !waited_ok {
        return Err(Outcome::fail(expected, a.got()));
    }
    Ok(())
}
