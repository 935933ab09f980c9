//! Flow control (CONTRACT.md, Run policy): the policies `GET /functions` shows are well formed,
//! a queued run says why it waits (`held_by`), and a function's keys can be listed.

use super::http::Ctx;
use super::{Group, Outcome};
use reqwest::Method;
use serde_json::Value;

pub(super) async fn group(mut g: Group<'_>) -> Group<'_> {
    let ctx = g.ctx;
    g.step("flow.policy", policy(ctx)).await;
    g.step("flow.held_by", held_by(ctx)).await;
    g.step("flow.keys", keys(ctx)).await;
    g
}

/// The functions as `GET /functions` lists them.
async fn functions(ctx: &Ctx) -> Result<Vec<Value>, Outcome> {
    let expected = r#"GET /functions: 200 {"functions": [...]}"#;
    let a = ctx.get("/functions").await?;
    a.expect_status(&[200], expected)?;
    a.expect_json(expected)?["functions"].as_array().cloned().ok_or_else(|| Outcome::fail(expected, a.got()))
}

fn positive(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| n >= 1)
}

/// Why a function's flow rules are malformed, if they are.
pub(crate) fn malformed(policy: &Value) -> Option<String> {
    let c = &policy["concurrency"];
    let concurrency_ok = c.is_null() || positive(c) || (positive(&c["limit"]) && (c["key"].is_null() || c["key"].is_string()));
    if !concurrency_ok {
        return Some(format!("concurrency {c}: a whole number from 1, or {{limit: N >= 1, key: EXPR}}"));
    }
    let t = &policy["throttle"];
    let throttle_ok = t.is_null()
        || (positive(&t["limit"])
            && t["period"].is_string()
            && positive(&t["burst"])
            && (t["key"].is_null() || t["key"].is_string()));
    if !throttle_ok {
        return Some(format!("throttle {t}: {{limit: N >= 1, period: DURATION, burst: N >= 1, key: EXPR}}"));
    }
    let r = &policy["rate_limit"];
    let rate_ok =
        r.is_null() || (positive(&r["limit"]) && r["period"].is_string() && (r["key"].is_null() || r["key"].is_string()));
    if !rate_ok {
        return Some(format!("rate_limit {r}: {{limit: N >= 1, period: DURATION, key: EXPR}}"));
    }
    let d = &policy["debounce"];
    let debounce_ok = d.is_null()
        || (d["period"].is_string()
            && (d["max_wait"].is_null() || d["max_wait"].is_string())
            && (d["key"].is_null() || d["key"].is_string()));
    if !debounce_ok {
        return Some(format!("debounce {d}: {{period: DURATION, max_wait: DURATION, key: EXPR}}"));
    }
    let s = &policy["singleton"];
    let singleton_ok = s.is_null()
        || (["skip", "cancel"].contains(&s["mode"].as_str().unwrap_or("")) && (s["key"].is_null() || s["key"].is_string()));
    if !singleton_ok {
        return Some(format!("singleton {s}: {{key: EXPR, mode: skip | cancel}}"));
    }
    let b = &policy["batch"];
    if !(b.is_null() || (positive(&b["max_size"]) && b["timeout"].is_string() && (b["key"].is_null() || b["key"].is_string()))) {
        return Some(format!("batch {b}: {{max_size: N >= 1, timeout: DURATION, key: EXPR}}"));
    }
    if !(policy["priority"].is_null() || policy["priority"].is_string()) {
        return Some(format!("priority {}: an expression (EXPR)", policy["priority"]));
    }
    let t = &policy["timeouts"];
    let duration = |v: &Value| v.is_null() || v.is_string();
    if !(t.is_null() || (t.is_object() && duration(&t["start"]) && duration(&t["finish"]))) {
        return Some(format!("timeouts {t}: {{start: DURATION, finish: DURATION}}"));
    }
    let c = &policy["cancel_on"];
    let rule_ok = |r: &Value| r["event"].is_string() && (r["if"].is_null() || r["if"].is_string()) && duration(&r["timeout"]);
    if !(c.is_null() || c.as_array().is_some_and(|rules| rules.iter().all(rule_ok))) {
        return Some(format!("cancel_on {c}: [{{event: NAME, if: EXPR, timeout: DURATION}}]"));
    }
    None
}

/// `flow.policy`: every function's `concurrency` and `throttle`, when shown, have the
/// contract's shape.
async fn policy(ctx: &Ctx) -> Result<(), Outcome> {
    let listed = functions(ctx).await?;
    for f in &listed {
        if let Some(why) = malformed(&f["policy"]) {
            let name = f["name"].as_str().unwrap_or("?");
            return Err(Outcome::fail("each function's flow rules in the contract's shape", format!("`{name}`: {why}")));
        }
    }
    Ok(())
}

/// `flow.held_by`: a run asked to start in an hour is queued with `held_by` `{rule: delay,
/// until}`; it is cancelled after.
async fn held_by(ctx: &Ctx) -> Result<(), Outcome> {
    let id = super::runs::delayed_run(ctx).await?;
    let expected = format!(r#"GET /runs/{id}: queued with "held_by": {{"rule": "delay", "until": TIME}}"#);
    let shown = ctx.get(&format!("/runs/{id}")).await?;
    let run = shown.expect_json(&expected)?;
    let _ = ctx.send(Method::POST, &format!("/runs/{id}/cancel"), |r| r).await;
    let held = &run["held_by"];
    if run["status"] == "queued" && run.get("held_by").is_none() {
        return Err(Outcome::skip("the queued run has no held_by: the server shows no flow control"));
    }
    if run["status"] == "queued" && held["rule"] == "delay" && held["until"].is_string() {
        Ok(())
    } else {
        Err(Outcome::fail(expected, shown.got()))
    }
}

/// `flow.keys`: `GET /functions/{name}/keys` pages the keys with work (`{key, queued,
/// running}`), and an unknown function is `404 PLINTH_005`. Skipped when the server has no such
/// route (404 for a function it lists).
async fn keys(ctx: &Ctx) -> Result<(), Outcome> {
    let listed = functions(ctx).await?;
    let limited = listed.iter().find(|f| !f["policy"]["concurrency"].is_null() || !f["policy"]["throttle"].is_null());
    let Some(name) = limited.or(listed.first()).and_then(|f| f["name"].as_str()) else {
        return Err(Outcome::skip("GET /functions lists no function"));
    };
    let expected = format!(r#"GET /functions/{name}/keys: 200 {{"keys": [{{key, queued, running}}], "next_cursor"}}"#);
    let a = ctx.get(&format!("/functions/{name}/keys")).await?;
    if a.status == 404 {
        return Err(Outcome::skip(format!("the server offers no GET /functions/{{name}}/keys ({})", a.got())));
    }
    a.expect_status(&[200], &expected)?;
    let page = a.expect_json(&expected)?;
    let well_formed = page["keys"]
        .as_array()
        .is_some_and(|keys| keys.iter().all(|k| k["key"].is_string() && k["queued"].is_u64() && k["running"].is_u64()))
        && (page["next_cursor"].is_null() || page["next_cursor"].is_string());
    if !well_formed {
        return Err(Outcome::fail(expected, a.got()));
    }
    let missing = format!("no-such-function-{}", ctx.nonce);
    let expected = format!("GET /functions/{missing}/keys: 404 with code PLINTH_005");
    let a = ctx.get(&format!("/functions/{missing}/keys")).await?;
    a.expect_status(&[404], &expected)?;
    if a.json().is_some_and(|v| v["code"] == "PLINTH_005") { Ok(()) } else { Err(Outcome::fail(expected, a.got())) }
}
