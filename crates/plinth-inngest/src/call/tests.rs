use super::*;
use plinth_core::steps::StepError;
use plinth_core::steps::protocol::Op;
use std::time::Duration;

fn run(input: Value) -> Run {
    plinth_core::NewRun {
        run_id: "r1".into(),
        function: "shop-flow".into(),
        input,
        max_attempts: 3,
        priority: 0,
        created_at: 5_000_000,
        not_before: 0,
        correlation_id: "c".into(),
        idempotency_key: None,
        request_hash: None,
        max_queued: None,
        trigger: plinth_core::Trigger::Api,
        flow_key: None,
        lane_limit: None,
        rate: None,
        debounce: None,
        singleton: None,
        batch: None,
        expiry: plinth_core::flow::Expiry::default(),
        traceparent: None,
        tracestate: None,
        start: None,
    }
    .into_queued()
}

fn done(id: &str, op: &str, output: Value) -> Step {
    Step::reached(id, op, 0, 1).succeed(output, 2)
}

fn ops(answer: Result<Answer, Failure>) -> Vec<Op> {
    match answer {
        Ok(Answer::Ops(ops)) => ops,
        other => panic!("ops, got {other:?}"),
    }
}

#[test]
fn ids_hash_as_the_sdk_hashes_them() {
    assert_eq!(hash("reserve"), "5bac43c0231290341c42a3cef48b789922d02b35", "what inngest 0.5.19 sent for `reserve`");
    assert_eq!(step_param(None), "step");
    assert_eq!(step_param(Some("nap")), "c2640f79b4ed481b838ce4ad75330aa3f825d4d9");
}

#[test]
fn the_body_holds_the_event_the_memo_and_the_stack() {
    let event = json!({"name": "shop/order.created", "data": {"order": "o-1"}, "id": "e1", "ts": 1});
    let r = run(event.clone());
    let mut failed = Step::reached("charge", "step", 3, 1);
    failed = failed.fail(StepError { message: "PaymentError: card declined: no funds".into(), retryable: false }, 2);
    let steps = vec![
        done("reserve", "step", json!({"ok": 1})),
        done("nap", "sleep", Value::Null),
        done("approve", "wait_for_event", json!({"name": "shop/order.approved", "data": {}})),
        failed,
        Step::reached("later", "step", 4, 1),
    ];
    let call = Call { run: &r, steps: &steps, attempt: 1, max_attempts: 3, target: None };
    let body: Value = serde_json::from_slice(&body(&call)).expect("JSON");
    assert_eq!(body["event"], event);
    assert_eq!(body["events"], json!([event]));
    assert_eq!(body["use_api"], json!(false));
    assert_eq!(body["steps"][hash("reserve")], json!({"data": {"ok": 1}}));
    assert_eq!(body["steps"][hash("nap")], Value::Null);
    assert_eq!(body["steps"][hash("approve")]["name"], "shop/order.approved", "a wait's memo is the event itself");
    assert_eq!(body["steps"][hash("charge")]["error"], json!({"name": "PaymentError", "message": "card declined: no funds"}));
    assert!(body["steps"].get(hash("later")).is_none(), "an unfinished step is not in the memo");
    assert_eq!(body["ctx"]["stack"]["current"], 4);
    assert_eq!(body["ctx"]["stack"]["stack"][0], hash("reserve"));
    assert_eq!((body["ctx"]["run_id"].as_str(), body["ctx"]["attempt"].as_u64()), (Some("r1"), Some(1)));
}

#[test]
fn inputs_that_are_not_events_are_wrapped_and_batches_unrolled() {
    let (e, all) = events_of(&run(json!({"n": 1})));
    assert_eq!((e["name"].as_str(), e["data"].clone(), all.len()), (Some("inngest/function.invoked"), json!({"n": 1}), 1));
    let (e, _) = events_of(&run(json!(7)));
    assert_eq!(e["data"], json!({"input": 7}));
    let batch = json!({"events": [{"name": "a/b", "data": {"i": 1}}, {"name": "a/b", "data": {"i": 2}}]});
    let (e, all) = events_of(&run(batch));
    assert_eq!((e["data"]["i"].as_i64(), all.len()), (Some(1), 2));
    let (e, _) = events_of(&run(json!({"events": []})));
    assert_eq!(e["name"], "inngest/function.invoked", "an empty batch is no batch");
}

#[test]
fn the_sdks_ops_become_native_ops() {
    // What inngest 0.5.19 answered, one call after another.
    let now = 1_000_000;
    let step_run = br#"[{"displayName": "reserve", "id": "5bac43c0231290341c42a3cef48b789922d02b35", "name": "reserve", "op": "StepRun", "opts": null, "userland": {"id": "reserve", "index": null}, "data": {"ok": "o-1"}}]"#;
    assert_eq!(ops(answer(206, false, step_run, now)), vec![Op::Step { id: "reserve".into(), output: json!({"ok": "o-1"}) }]);
    let sleep = br#"[{"displayName": "nap", "id": "c2640f79b4ed481b838ce4ad75330aa3f825d4d9", "name": "2030-01-01T00:00:01.000Z", "op": "Sleep", "opts": null, "userland": {"id": "nap", "index": null}, "data": null}]"#;
    let until = plinth_core::timefmt::parse_rfc3339("2030-01-01T00:00:01Z").expect("a time");
    assert_eq!(ops(answer(206, false, sleep, now)), vec![Op::Sleep { id: "nap".into(), until }]);
    let wait = br#"[{"displayName": "approve", "id": "e4788b8afee67748f0c36b58cce97a68e7cf6f1e", "name": "shop/order.approved", "op": "WaitForEvent", "opts": {"if": "async.data.order == event.data.order", "timeout": "5m"}, "userland": {"id": "approve", "index": null}, "data": null}]"#;
    assert_eq!(
        ops(answer(206, false, wait, now)),
        vec![Op::WaitForEvent {
            id: "approve".into(),
            event: "shop/order.approved".into(),
            cond: Some("event.data.order == run.input.data.order".into()),
            timeout: Some(Duration::from_secs(300)),
        }]
    );
    let invoke = br#"[{"displayName": "child", "id": "0e93069c40111cd62dac2cd02cd71daffdb01cc0", "name": "child", "op": "InvokeFunction", "opts": {"function_id": "shop-child", "payload": {"data": {"n": 1}, "v": null}, "timeout": null}, "userland": {"id": "child", "index": null}, "data": null}]"#;
    assert_eq!(
        ops(answer(206, false, invoke, now)),
        vec![Op::Invoke { id: "child".into(), function: "shop-child".into(), input: json!({"n": 1}), timeout: None }]
    );
    assert_eq!(answer(200, false, br#"{"a": 1}"#, now), Ok(Answer::Done(json!({"a": 1}))));
    assert_eq!(answer(200, false, b" ", now), Ok(Answer::Done(Value::Null)));
}

#[test]
fn repeats_plans_and_step_errors_keep_plinths_ids() {
    let op = |kind: &str, id: &str, index: Option<u64>, extra: Value| {
        let plinth = index.map_or_else(|| id.to_string(), |n| format!("{id}:{n}"));
        let mut v = json!({"op": kind, "id": hash(&plinth), "displayName": id, "userland": {"id": id, "index": index}});
        v.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
        v
    };
    let body = json!([op("StepPlanned", "fetch", None, json!({})), op("StepPlanned", "fetch", Some(1), json!({}))]);
    let got = ops(answer(206, false, body.to_string().as_bytes(), 0));
    assert_eq!(got, vec![Op::Plan { id: "fetch".into() }, Op::Plan { id: "fetch:1".into() }]);
    let err = json!({"error": {"name": "ValueError", "message": "boom", "stack": "..."}});
    let body = json!([op("StepError", "charge", None, err.clone())]);
    let want = StepError { message: "ValueError: boom".into(), retryable: true };
    assert_eq!(ops(answer(206, false, body.to_string().as_bytes(), 0)), vec![Op::StepError { id: "charge".into(), error: want }]);
    let body = json!([op("StepFailed", "charge", None, err)]);
    let Op::StepError { error, .. } = ops(answer(206, false, body.to_string().as_bytes(), 0)).remove(0) else {
        panic!("a step error")
    };
    assert!(!error.retryable, "StepFailed: the SDK says the retries are spent");
}

#[test]
fn a_raised_function_is_retried_unless_the_sdk_says_not_to() {
    let body = br#"{"name": "ValueError", "message": "no stock", "stack": "...", "code": "unknown"}"#;
    assert_eq!(answer(500, false, body, 0), Err(Failure::Raised { message: "ValueError: no stock".into(), retryable: true }));
    assert_eq!(
        answer(500, true, body, 0),
        Err(Failure::Raised { message: "ValueError: no stock".into(), retryable: false }),
        "NonRetriableError"
    );
    assert_eq!(answer(502, false, b"bad gateway", 0), Err(Failure::Raised { message: "bad gateway".into(), retryable: true }));
    let Err(Failure::Refused { message }) = answer(404, false, br#"{"message": "function not found"}"#, 0) else {
        panic!("refused")
    };
    assert!(message.contains("404") && message.contains("function not found"), "{message}");
}

#[test]
fn answers_that_break_the_protocol_have_their_codes() {
    let code = |r: Result<Answer, Failure>| match r {
        Err(Failure::Protocol(p)) => p.code,
        other => panic!("a protocol error, got {other:?}"),
    };
    assert_eq!(code(answer(200, false, b"{not json", 0)), Code::StepAnswerInvalid);
    assert_eq!(code(answer(206, false, b"{not json", 0)), Code::StepAnswerInvalid);
    assert_eq!(code(answer(206, false, br#"{"op": "StepRun"}"#, 0)), Code::StepAnswerInvalid, "not an array");
    assert_eq!(code(answer(206, false, b"[]", 0)), Code::StepInvalidOp, "no op");
    let ai = json!([{"op": "AIGateway", "id": hash("ask"), "userland": {"id": "ask"}}]);
    assert_eq!(code(answer(206, false, ai.to_string().as_bytes(), 0)), Code::StepUnknownOp);
    let lying = json!([{"op": "StepRun", "id": hash("other"), "userland": {"id": "ask"}}]);
    assert_eq!(code(answer(206, false, lying.to_string().as_bytes(), 0)), Code::StepInvalidOp, "hash and id disagree");
    let nameless = json!([{"op": "StepRun", "id": hash("x")}]);
    assert_eq!(code(answer(206, false, nameless.to_string().as_bytes(), 0)), Code::StepInvalidOp);
    let sleepless = json!([{"op": "Sleep", "id": hash("nap"), "userland": {"id": "nap"}}]);
    assert_eq!(code(answer(206, false, sleepless.to_string().as_bytes(), 0)), Code::StepInvalidOp);
    let bad_if = json!([{"op": "WaitForEvent", "id": hash("w"), "name": "a/b", "userland": {"id": "w"}, "opts": {"if": "async.data.x ==", "timeout": "1m"}}]);
    assert_eq!(code(answer(206, false, bad_if.to_string().as_bytes(), 0)), Code::StepInvalidOp);
    let no_fn = json!([{"op": "InvokeFunction", "id": hash("c"), "userland": {"id": "c"}, "opts": {}}]);
    assert_eq!(code(answer(206, false, no_fn.to_string().as_bytes(), 0)), Code::StepInvalidOp);
    let gone = json!([{"op": "StepNotFound", "id": hash("ship")}]);
    assert_eq!(code(answer(206, false, gone.to_string().as_bytes(), 0)), Code::StepOrderChanged, "the code changed");
    let anonymous = json!([{"op": "StepNotFound"}]);
    assert_eq!(code(answer(206, false, anonymous.to_string().as_bytes(), 0)), Code::StepInvalidOp);
}

#[test]
fn an_error_text_splits_into_its_class_and_message_when_it_has_one() {
    assert_eq!(split_error("RuntimeError: the warehouse is closed"), ("RuntimeError", "the warehouse is closed"));
    assert_eq!(split_error("errors.Timeout: slow"), ("errors.Timeout", "slow"));
    assert_eq!(split_error("the handler said: no"), ("StepError", "the handler said: no"), "not a class name");
    assert_eq!(split_error("plain"), ("StepError", "plain"));
    assert_eq!(split_error(""), ("StepError", ""));
}

#[test]
fn retry_after_is_a_time_or_seconds_and_never_far_away() {
    let now = plinth_core::timefmt::parse_rfc3339("2026-12-03T10:00:00Z").expect("a time");
    assert_eq!(retry_at("2026-12-03T10:00:02.500Z", now), Some(now + 2_500_000), "as inngest-py sends it");
    assert_eq!(retry_at("30", now), Some(now + 30_000_000));
    assert_eq!(retry_at("2026-12-05T10:00:00Z", now), None, "more than a day away");
    assert_eq!(retry_at("soon", now), None);
    assert_eq!(retry_at("", now), None);
}
