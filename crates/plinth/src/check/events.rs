//! Events (CONTRACT.md, Events), for servers that offer `/events`: one event is accepted with
//! its id and runs, the same id again answers the same ids and stores nothing, an array with
//! one invalid event is refused whole with a pointer to it, and the event is listed and shown.
//! A server without `/events` (404 or 405 on `POST /events`) has these checks skipped.

use super::errors::{code_form, problem_form};
use super::http::Ctx;
use super::{Group, Outcome};
use serde_json::{Value, json};

/// The name of the events the checks send; no component should listen to it.
const NAME: &str = "plinth-check/probe.sent";

pub(super) async fn group(mut g: Group<'_>) -> Group<'_> {
    let ctx = g.ctx;
    let id = format!("plinth-check-{}", plinth_core::ids::new_run_id());
    // Why: the later checks are still stepped when this one did not pass, so they are
    // reported as skipped, naming it.
    let first = g.step("events.accepted", accepted(ctx, &id)).await.unwrap_or_default();
    g.step("events.dedup", dedup(ctx, &id, &first)).await;
    g.step("events.invalid_422", invalid(ctx)).await;
    g.step("events.list", list(ctx, &id)).await;
    g
}

fn event(id: &str) -> Value {
    json!({"name": NAME, "data": {"check": true}, "id": id})
}

/// `events.accepted`: 202 with `event_ids` `[id]` and `run_ids` an array of one array.
async fn accepted(ctx: &Ctx, id: &str) -> Result<Value, Outcome> {
    let expected = format!(r#"POST /events one event: 202 {{"event_ids":["{id}"],"run_ids":[[...]]}}"#);
    let a = ctx.post_json("/events", &event(id), &[]).await?;
    if matches!(a.status, 404 | 405) {
        return Err(Outcome::skip(format!("the server offers no POST /events ({})", a.status)));
    }
    a.expect_status(&[202], &expected)?;
    let body = a.expect_json(&expected)?;
    let ids_ok = body["event_ids"] == json!([id]);
    let runs_ok = body["run_ids"].as_array().is_some_and(|r| r.len() == 1 && r[0].is_array());
    if !(ids_ok && runs_ok) {
        return Err(Outcome::fail(expected, a.got()));
    }
    Ok(body)
}

/// `events.dedup`: the same id again answers the first one's ids.
async fn dedup(ctx: &Ctx, id: &str, first: &Value) -> Result<(), Outcome> {
    let expected = format!("POST /events with id {id} again: 202 with the first answer ({first}), nothing new");
    let a = ctx.post_json("/events", &event(id), &[]).await?;
    a.expect_status(&[202], &expected)?;
    if a.expect_json(&expected)? != *first {
        return Err(Outcome::fail(expected, a.got()));
    }
    Ok(())
}

/// `events.invalid_422`: an array whose second event has an invalid name is refused with 422,
/// problem+json with a code and the pointer `/1/name`; the valid first event is not stored.
async fn invalid(ctx: &Ctx) -> Result<(), Outcome> {
    let good = format!("plinth-check-{}", plinth_core::ids::new_run_id());
    let body = json!([event(&good), {"name": "Not A Valid Name", "data": {}}]);
    let expected = "POST /events [valid, invalid name]: 422 problem+json with a code and errors[].pointer /1/name";
    let a = ctx.post_json("/events", &body, &[]).await?;
    a.expect_status(&[422], expected)?;
    let problem = a.json().unwrap_or(Value::Null);
    problem_form(&a, &problem).and_then(|()| code_form(&a, &problem)).map_err(|_| Outcome::fail(expected, a.got()))?;
    let pointed = problem["errors"].as_array().is_some_and(|e| e.iter().any(|x| x["pointer"] == "/1/name"));
    if !pointed {
        return Err(Outcome::fail(expected, a.got()));
    }
    let stored = ctx.get(&format!("/events/{good}")).await?;
    stored.expect_status(&[404], &format!("GET /events/{good}: 404, since the refused request stored nothing"))
}

/// `events.list`: the accepted event is on `GET /events?name=...` (newest first, a page with
/// `next_cursor`) and `GET /events/{id}` shows it with `run_ids` and `skipped`.
async fn list(ctx: &Ctx, id: &str) -> Result<(), Outcome> {
    let path = format!("/events?name={}&limit=50", super::listing::encode(NAME));
    let expected = format!(r#"GET {path}: 200 {{"events":[... the event {id} ...],"next_cursor":null or a string}}"#);
    let a = ctx.get(&path).await?;
    a.expect_status(&[200], &expected)?;
    let body = a.expect_json(&expected)?;
    let listed = body["events"].as_array().is_some_and(|e| e.iter().any(|x| x["id"] == id));
    if !listed || body.get("next_cursor").is_none() {
        return Err(Outcome::fail(expected, a.got()));
    }
    let expected = format!(r#"GET /events/{id}: 200 {{"id":"{id}","name":"{NAME}","run_ids":[...],"skipped":[...]}}"#);
    let one = ctx.get(&format!("/events/{id}")).await?;
    one.expect_status(&[200], &expected)?;
    let e = one.expect_json(&expected)?;
    if e["id"] != id || e["name"] != NAME || !e["run_ids"].is_array() || !e["skipped"].is_array() {
        return Err(Outcome::fail(expected, one.got()));
    }
    Ok(())
}
