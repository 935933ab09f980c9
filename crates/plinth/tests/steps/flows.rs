//! Waits and their wake-ups through the real binary: sleeps, events that match several runs
//! or none, timeouts, invoked runs that fail, cancel of a waiting parent, step retries,
//! parallel steps, sent events, and reruns that are refused.

use crate::harness::{client, python3_available, send};
use crate::scripted::{ended, serve, start, steps, until};
use serde_json::{Value, json};

fn ops(op: Value) -> Value {
    json!({"ops": [op]})
}

async fn post_event(s: &crate::harness::Served, name: &str, data: Value) {
    let (status, body) = send(client().post(s.url("/events")).json(&json!({"name": name, "data": data}))).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeps_and_events_wake_runs() {
    if !python3_available("step waits") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve(dir.path(), &[]);
    // A sleep: waiting (no worker), then woken by its timer.
    let nap =
        start(&s, json!({"script": [ops(json!({"op": "sleep", "id": "nap", "duration": "1s"})), {"output": "woke"}]})).await;
    let waiting = until(&s, &nap, "waiting", |r| r["status"] == "waiting").await;
    assert_eq!((waiting["waiting_for"]["kind"].as_str(), waiting["waiting_for"]["step"].as_str()), (Some("sleep"), Some("nap")));
    // An until in the past runs at once.
    let past = start(
        &s,
        json!({"script": [ops(json!({"op": "sleep", "id": "nap", "until": "2000-01-01T00:00:00Z"})), {"output": "at once"}]}),
    )
    .await;
    // Two runs wait for the same event; one more waits with an `if` that fails at match time.
    let wait = |cond: &str, timeout: &str| json!({"script": [ops(json!({"op": "wait_for_event", "id": "w", "event": "shop/ping", "if": cond, "timeout": timeout})), {"output": "done"}]});
    let a = start(&s, wait("event.data.n > 1", "1h")).await;
    let b = start(&s, wait("event.data.n > 1", "1h")).await;
    let broken = start(&s, wait("event.data.missing.deeper == 1", "2s")).await;
    for id in [&a, &b, &broken] {
        until(&s, id, "waiting", |r| r["status"] == "waiting").await;
    }
    post_event(&s, "shop/ping", json!({"n": 0})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for id in [&a, &b] {
        let (_, run) = send(client().get(s.url(&format!("/runs/{id}")))).await;
        assert_eq!(run["status"], "waiting", "n = 0 does not match: {run}");
    }
    post_event(&s, "shop/ping", json!({"n": 5})).await;
    for id in [&a, &b] {
        let run = ended(&s, id).await;
        assert_eq!(run["output"], "done", "one event wakes both: {run}");
        let step = steps(&s, id).await.remove(0);
        assert_eq!((step["op"].as_str(), step["output"]["data"]["n"].as_i64()), (Some("wait_for_event"), Some(5)));
    }
    let run = ended(&s, &broken).await;
    assert_eq!(run["status"], "succeeded", "a failing `if` is no match, then the timeout ends the wait: {run}");
    assert_eq!(steps(&s, &broken).await[0]["output"], Value::Null, "a timed-out wait gives null");
    let run = ended(&s, &nap).await;
    assert_eq!(run["output"], "woke");
    assert_eq!(steps(&s, &nap).await[0]["status"], "succeeded");
    assert_eq!(ended(&s, &past).await["output"], "at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoked_runs_their_failures_and_cancel() {
    if !python3_available("invoke") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve(dir.path(), &[]);
    // The child fails: the parent's step holds the error and the parent decides.
    let failing_child = json!({"script": ["exit1"]});
    let parent = start(&s, json!({"script": [ops(json!({"op": "invoke", "id": "c", "function": "scripted", "input": failing_child})), {"output": "decided"}]})).await;
    let run = ended(&s, &parent).await;
    assert_eq!((run["status"].as_str(), run["output"].as_str()), (Some("succeeded"), Some("decided")), "{run}");
    let step = steps(&s, &parent).await.remove(0);
    assert_eq!((step["op"].as_str(), step["status"].as_str()), (Some("invoke"), Some("failed")), "{step}");
    assert!(step["error"]["message"].as_str().unwrap_or("").contains("PLINTH_020"), "{step}");
    // A child that succeeds gives its output.
    let ok_child = json!({"script": [{"output": {"sum": 3}}]});
    let parent = start(
        &s,
        json!({"script": [ops(json!({"op": "invoke", "id": "c", "function": "scripted", "input": ok_child})), {"output": "ok"}]}),
    )
    .await;
    ended(&s, &parent).await;
    assert_eq!(steps(&s, &parent).await[0]["output"], json!({"sum": 3}));
    // Cancel of a parent waiting on a child cancels both at once.
    let sleepy_child = json!({"script": [ops(json!({"op": "sleep", "id": "z", "duration": "1h"}))]});
    let parent =
        start(&s, json!({"script": [ops(json!({"op": "invoke", "id": "c", "function": "scripted", "input": sleepy_child}))]}))
            .await;
    let waiting = until(&s, &parent, "waiting on its child", |r| r["waiting_for"]["kind"] == "run").await;
    let child = waiting["waiting_for"]["run_id"].as_str().expect("child id").to_string();
    until(&s, &child, "asleep", |r| r["status"] == "waiting").await;
    let (status, body) = send(client().post(s.url(&format!("/runs/{parent}/cancel")))).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("cancelled")), "{body}");
    let (_, c) = send(client().get(s.url(&format!("/runs/{child}")))).await;
    assert_eq!(c["status"], "cancelled", "{c}");
    assert_eq!(c["trigger"], json!({"type": "invoke", "parent_run_id": parent}));
    let trace = c["traceparent"].as_str().unwrap_or_else(|| panic!("the child carries its parent's trace: {c}"));
    assert_eq!(&trace[3..35], &plinth_core::ids::traceparent(&parent)[3..35], "the parent's trace, from its run id");
    // Rerun refusals: a run that has not ended, and from_step on a function without steps.
    let (status, body) = send(client().post(s.url(&format!("/runs/{child}/rerun")))).await;
    assert_eq!(status, 202, "a cancelled run can be rerun: {body}");
    let (_, again) = send(client().get(s.url(&format!("/runs/{}", body["run_id"].as_str().unwrap_or(""))))).await;
    assert_eq!(again["traceparent"], c["traceparent"], "a rerun stays in its original's trace: {again}");
    let (status, body) = send(client().post(s.url(&format!("/runs/{}/rerun", body["run_id"].as_str().unwrap_or(""))))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("PLINTH_018")), "{body}");
    let (_, plain) = send(client().post(s.url("/run")).json(&json!({"function": "plain", "input": {}}))).await;
    let plain = plain["run_id"].as_str().expect("id").to_string();
    until(&s, &plain, "done", |r| r["status"] == "succeeded").await;
    let (status, body) = send(client().post(s.url(&format!("/runs/{plain}/rerun"))).json(&json!({"from_step": "a"}))).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("PLINTH_019")), "{body}");
    let (status, body) = send(client().post(s.url(&format!("/runs/{plain}/rerun"))).json(&json!({"from": "a"}))).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("PLINTH_004")), "an unknown field: {body}");
    let (status, body) =
        send(client().post(s.url(&format!("/runs/{plain}/rerun"))).header("content-type", "application/json").body("{")).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("PLINTH_003")), "{body}");
    let (status, body) = send(client().post(s.url("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV/rerun"))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("PLINTH_006")), "{body}");
    let (status, _) = send(client().get(s.url("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV/steps"))).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_parallel_steps_and_sent_events() {
    if !python3_available("step retries") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve(dir.path(), &[]);
    // A step fails once, is retried with ctx.target by the policy, and succeeds.
    let flaky = start(
        &s,
        json!({"script": [ops(json!({"op": "step_error", "id": "flaky", "error": {"message": "boom"}})), {"output": "fine"}],
               "targeted": ops(json!({"op": "step", "id": "flaky", "output": "ok"}))}),
    )
    .await;
    // A step fails for good: not retryable; the handler sees the error and decides.
    let fatal = start(
        &s,
        json!({"script": [ops(json!({"op": "step_error", "id": "bad", "error": {"message": "no", "retryable": false}})), {"output": "handled"}]}),
    )
    .await;
    // Two steps planned in parallel, each run by its own targeted call.
    let plan = json!({"ops": [{"op": "plan", "id": "left"}, {"op": "plan", "id": "right"}]});
    let parallel = start(&s, json!({"script": [plan.clone(), plan, {"output": "both"}]})).await;
    // Events sent from a step, once.
    let send_op = ops(
        json!({"op": "send_event", "id": "tell", "events": [{"name": "shop/told", "data": {"k": 1}}, {"name": "shop/told"}]}),
    );
    let sender = start(&s, json!({"script": [send_op, {"output": "sent"}]})).await;

    assert_eq!(ended(&s, &flaky).await["output"], "fine");
    let st = steps(&s, &flaky).await.remove(0);
    assert_eq!(
        (st["status"].as_str(), st["attempts"].as_u64(), st["output"].as_str()),
        (Some("succeeded"), Some(2), Some("ok")),
        "{st}"
    );
    assert_eq!(ended(&s, &fatal).await["output"], "handled");
    let st = steps(&s, &fatal).await.remove(0);
    assert_eq!((st["status"].as_str(), st["attempts"].as_u64()), (Some("failed"), Some(1)), "{st}");
    assert_eq!(ended(&s, &parallel).await["output"], "both");
    let got: Vec<(String, Value)> =
        steps(&s, &parallel).await.iter().map(|st| (st["id"].as_str().unwrap_or("").to_string(), st["output"].clone())).collect();
    assert_eq!(got, vec![("left".into(), json!("left")), ("right".into(), json!("right"))]);
    assert_eq!(ended(&s, &sender).await["output"], "sent");
    let ids = steps(&s, &sender).await[0]["output"]["event_ids"].clone();
    assert_eq!(ids.as_array().map(Vec::len), Some(2), "{ids}");
    let (_, events) = send(client().get(s.url("/events?name=shop/told"))).await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(2), "{events}");
    assert!(ids[0].as_str().unwrap_or("").starts_with(&sender), "ids derive from the run: {ids}");
}
