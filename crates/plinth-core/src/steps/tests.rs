use super::*;
use serde_json::json;

#[test]
fn statuses_round_trip() {
    for s in StepStatus::ALL {
        assert_eq!(StepStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(StepStatus::parse("done"), None);
    assert!(StepStatus::Failed.is_done() && !StepStatus::Waiting.is_done());
}

#[test]
fn waits_say_why_a_run_waits() {
    let w = Wait::Sleep { until: 1_000_000 }.waiting_for("nap").expect("sleep");
    assert_eq!(serde_json::to_value(&w).expect("json"), json!({"step": "nap", "kind": "sleep", "until": "1970-01-01T00:00:01Z"}));
    let w = Wait::Event { event: "shop/order.paid".into(), cond: None, since: 0, timeout_at: Some(2_000_000) };
    assert_eq!(w.key(), Some("shop/order.paid"));
    assert_eq!(w.deadline(), Some(2_000_000));
    let shown = serde_json::to_value(w.waiting_for("pay").expect("event")).expect("json");
    assert_eq!(shown, json!({"step": "pay", "kind": "event", "event": "shop/order.paid", "timeout_at": "1970-01-01T00:00:02Z"}));
    let w = Wait::Run { run_id: "01C".into(), timeout_at: None };
    assert_eq!((w.key(), w.deadline()), (Some("01C"), None));
    assert_eq!(w.waiting_for("child").expect("run").run_id.as_deref(), Some("01C"));
    // A step's retry leaves the run queued: nothing to show as waiting.
    assert!(Wait::Retry { at: 5 }.waiting_for("x").is_none());
    assert_eq!(Wait::Retry { at: 5 }.key(), None);
}

#[test]
fn a_step_ends_with_its_memo() {
    let s = Step::reached("a", "step", 0, 1_000);
    assert_eq!(s.memo(), None);
    let done = s.clone().succeed(json!({"ok": true}), 3_000);
    assert_eq!(done.memo(), Some(json!({"output": {"ok": true}})));
    assert_eq!(done.duration_ms, Some(2.0));
    let failed = s.fail(StepError { message: "no".into(), retryable: false }, 500);
    assert_eq!(failed.memo(), Some(json!({"error": {"message": "no", "retryable": false}})));
    assert_eq!(failed.duration_ms, Some(0.0), "a clock that went back gives 0, never a negative duration");
}

#[test]
fn long_outputs_are_cut_for_listing_only() {
    let big = "é".repeat(SHOWN_OUTPUT_BYTES);
    let s = Step::reached("a", "step", 0, 0).succeed(json!(big), 1);
    let shown = for_listing(s.clone());
    assert!(shown.truncated);
    let text = shown.output.as_ref().and_then(Value::as_str).expect("a string");
    assert!(text.len() <= SHOWN_OUTPUT_BYTES);
    let small = for_listing(Step::reached("b", "step", 1, 0).succeed(json!(1), 1));
    assert!(!small.truncated && small.output == Some(json!(1)));
    assert!(serde_json::to_value(&small).expect("json").get("truncated").is_none());
}

#[test]
fn the_envelope_keeps_the_steps_order() {
    let run = crate::NewRun {
        run_id: "01R".into(),
        function: "flow".into(),
        input: json!({"n": 1}),
        max_attempts: 3,
        priority: 0,
        created_at: 0,
        not_before: 0,
        correlation_id: "c".into(),
        idempotency_key: None,
        request_hash: None,
        max_queued: None,
        trigger: crate::Trigger::Api,
        flow_key: None,
        lane_limit: None,
        rate: None,
        debounce: None,
        singleton: None,
        batch: None,
        expiry: crate::flow::Expiry::default(),
        traceparent: None,
        tracestate: None,
        start: None,
    }
    .into_queued();
    let steps = vec![
        Step::reached("zeta", "step", 0, 0).succeed(json!(1), 1),
        Step::reached("alpha", "step", 1, 0).fail(StepError { message: "x".into(), retryable: true }, 1),
        Step::reached("mid", "sleep", 2, 0),
    ];
    let bytes = envelope::build(&run, 2, &steps, Some("mid"));
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(text.find("zeta").expect("zeta") < text.find("alpha").expect("alpha"), "{text}");
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(v["steps"], json!({"zeta": {"output": 1}, "alpha": {"error": {"message": "x", "retryable": true}}}));
    assert_eq!(v["ctx"], json!({"target": "mid"}));
    assert_eq!((v["attempt"].clone(), v["input"].clone()), (json!(2), json!({"n": 1})));
    assert!(envelope::memo_bytes(&steps) > 10);
}
