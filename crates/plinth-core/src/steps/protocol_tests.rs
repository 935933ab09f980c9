use super::*;
use serde_json::json;

const NOW: i64 = 1_764_460_800_000_000;

fn ops(v: Value) -> Result<Vec<Op>, ProtocolError> {
    parse_ops(v, NOW)
}

fn code(r: Result<impl std::fmt::Debug, ProtocolError>) -> Code {
    r.expect_err("an error").code
}

#[test]
fn command_answers() {
    assert_eq!(parse_command(br#"{"output": {"a": 1}}"#, NOW), Ok(Answer::Done(json!({"a": 1}))));
    assert_eq!(parse_command(br#"{"output": null}"#, NOW), Ok(Answer::Done(Value::Null)));
    let a = parse_command(br#"{"ops": [{"op": "step", "id": "a", "output": 2}]}"#, NOW).expect("ops");
    assert_eq!(a, Answer::Ops(vec![Op::Step { id: "a".into(), output: json!(2) }]));
    assert_eq!(code(parse_command(b"hello", NOW)), Code::StepAnswerInvalid);
    assert_eq!(code(parse_command(br#"{"result": 1}"#, NOW)), Code::StepAnswerInvalid);
    assert_eq!(code(parse_command(br#"{"output": 1, "ops": []}"#, NOW)), Code::StepAnswerInvalid);
    assert_eq!(code(parse_command(b"", NOW)), Code::StepAnswerInvalid);
}

#[test]
fn http_partial_answers() {
    let a = parse_partial(br#"{"ops": [{"op": "plan", "id": "a"}, {"op": "plan", "id": "b"}]}"#, NOW).expect("ops");
    assert!(matches!(a, Answer::Ops(ref o) if o.len() == 2));
    assert_eq!(code(parse_partial(b"<html>", NOW)), Code::StepAnswerInvalid);
    assert_eq!(code(parse_partial(br#"[1]"#, NOW)), Code::StepAnswerInvalid);
}

#[test]
fn unknown_and_invalid_ops() {
    assert_eq!(code(ops(json!([{"op": "fly", "id": "a"}]))), Code::StepUnknownOp);
    assert_eq!(code(ops(json!([{"id": "a"}]))), Code::StepUnknownOp);
    assert_eq!(code(ops(json!([]))), Code::StepInvalidOp);
    assert_eq!(code(ops(json!({"op": "step"}))), Code::StepInvalidOp);
    assert_eq!(code(ops(json!([1]))), Code::StepInvalidOp);
    assert_eq!(code(ops(json!([{"op": "step", "id": ""}]))), Code::StepInvalidOp);
    assert_eq!(code(ops(json!([{"op": "step", "id": "x".repeat(129)}]))), Code::StepInvalidOp);
    assert!(ops(json!([{"op": "step", "id": "x".repeat(128)}])).is_ok());
    assert_eq!(code(ops(json!([{"op": "step_error", "id": "a", "error": "bad"}]))), Code::StepInvalidOp);
    let e = ops(json!([{"op": "step_error", "id": "a", "error": {"message": "m"}}])).expect("ok");
    assert_eq!(e, vec![Op::StepError { id: "a".into(), error: StepError { message: "m".into(), retryable: true } }]);
    assert_eq!(code(ops(json!([{"op": "send_event", "id": "a", "events": 3}]))), Code::StepInvalidOp);
    assert_eq!(code(ops(json!([{"op": "invoke", "id": "a"}]))), Code::StepInvalidOp);
    let inv = ops(json!([{"op": "invoke", "id": "a", "function": "child"}])).expect("ok");
    assert_eq!(inv, vec![Op::Invoke { id: "a".into(), function: "child".into(), input: json!({}), timeout: None }]);
}

#[test]
fn sleeps() {
    let s = ops(json!([{"op": "sleep", "id": "a", "duration": "90s"}])).expect("ok");
    assert_eq!(s, vec![Op::Sleep { id: "a".into(), until: NOW + 90_000_000 }]);
    let past = ops(json!([{"op": "sleep", "id": "a", "until": "2000-01-01T00:00:00Z"}])).expect("ok");
    assert_eq!(past, vec![Op::Sleep { id: "a".into(), until: NOW }], "an until in the past runs at once");
    let later = ops(json!([{"op": "sleep", "id": "a", "until": "2100-01-01T00:00:00Z"}])).expect("ok");
    assert!(matches!(later[0], Op::Sleep { until, .. } if until > NOW));
    for bad in [json!("0s"), json!("-5s"), json!("soon"), json!(5)] {
        let r = ops(json!([{"op": "sleep", "id": "a", "duration": bad}]));
        assert_eq!(code(r), Code::StepInvalidOp, "{bad}");
    }
    assert_eq!(code(ops(json!([{"op": "sleep", "id": "a"}]))), Code::StepInvalidOp);
    assert_eq!(
        code(ops(json!([{"op": "sleep", "id": "a", "duration": "1s", "until": "2100-01-01T00:00:00Z"}]))),
        Code::StepInvalidOp
    );
    assert_eq!(code(ops(json!([{"op": "sleep", "id": "a", "until": "tomorrow"}]))), Code::StepInvalidOp);
}

#[test]
fn waits_for_events() {
    let w = ops(json!([{"op": "wait_for_event", "id": "w", "event": "shop/order.paid", "if": "event.data.order == run.input.order", "timeout": "7d"}]))
        .expect("ok");
    assert!(matches!(&w[0], Op::WaitForEvent { cond: Some(_), timeout: Some(t), .. } if t.as_secs() == 7 * 86_400));
    let e = ops(json!([{"op": "wait_for_event", "id": "w", "event": "shop/order.paid", "if": "event.data.=="}]))
        .expect_err("bad CEL");
    assert_eq!(e.code, Code::StepInvalidOp);
    assert!(e.message.contains("`if`"), "{}", e.message);
    assert_eq!(code(ops(json!([{"op": "wait_for_event", "id": "w", "event": "Not An Event"}]))), Code::StepInvalidOp);
    assert_eq!(code(ops(json!([{"op": "wait_for_event", "id": "w"}]))), Code::StepInvalidOp);
    assert_eq!(code(ops(json!([{"op": "wait_for_event", "id": "w", "event": "a/b", "if": 3}]))), Code::StepInvalidOp);
}

fn done_none(_: &str) -> bool {
    false
}

#[test]
fn checks_against_the_memo_and_the_target() {
    let stored = |id: &str| id == "a";
    let a = ops(json!([{"op": "step", "id": "a", "output": 1}])).expect("ok");
    assert_eq!(check(&a, &stored, None).expect_err("repeat").code, Code::StepIdRepeated);
    let twice = ops(json!([{"op": "step", "id": "b"}, {"op": "step", "id": "b"}])).expect("ok");
    assert_eq!(check(&twice, &done_none, None).expect_err("twice").code, Code::StepIdRepeated);
    let b = ops(json!([{"op": "step", "id": "b", "output": 1}])).expect("ok");
    assert!(check(&b, &stored, None).is_ok());
    assert!(check(&b, &done_none, Some("b")).is_ok());
    assert_eq!(check(&b, &done_none, Some("c")).expect_err("other").code, Code::StepTargetMismatch);
    let sleep = ops(json!([{"op": "sleep", "id": "c", "duration": "1s"}])).expect("ok");
    assert_eq!(check(&sleep, &done_none, Some("c")).expect_err("not a step").code, Code::StepTargetMismatch);
}

#[test]
fn plans_and_mixes() {
    let one = ops(json!([{"op": "step", "id": "s"}, {"op": "plan", "id": "a"}])).expect("ok");
    assert_eq!(check(&one, &done_none, None).expect_err("one plan").code, Code::StepPlanTooSmall);
    let two = ops(json!([{"op": "step", "id": "s"}, {"op": "plan", "id": "a"}, {"op": "plan", "id": "b"}])).expect("ok");
    assert!(check(&two, &done_none, None).is_ok());
    let mixed = ops(json!([{"op": "plan", "id": "a"}, {"op": "plan", "id": "b"}, {"op": "sleep", "id": "c", "duration": "1s"}]))
        .expect("ok");
    assert_eq!(check(&mixed, &done_none, None).expect_err("mixed").code, Code::StepInvalidOp);
    let two_waits =
        ops(json!([{"op": "sleep", "id": "a", "duration": "1s"}, {"op": "sleep", "id": "b", "duration": "1s"}])).expect("ok");
    assert_eq!(check(&two_waits, &done_none, None).expect_err("two").code, Code::StepInvalidOp);
    let step_then_sleep = ops(json!([{"op": "step", "id": "a"}, {"op": "sleep", "id": "b", "duration": "1s"}])).expect("ok");
    assert!(check(&step_then_sleep, &done_none, None).is_ok());
    assert_eq!(step_then_sleep[1].name(), "sleep");
}

#[test]
fn errors_a_helper_reports() {
    let e = parse_command(br#"{"error": {"code": "PLINTH_058", "message": "step `b` reached before `a`"}}"#, NOW)
        .expect_err("reported");
    assert_eq!(e.code, Code::StepOrderChanged);
    assert!(e.message.contains("step `b` reached before `a`"), "{}", e.message);
    assert_eq!(reported(br#"{"error": {"code": "PLINTH_004", "message": "x"}}"#), None, "only the step protocol's codes");
    assert_eq!(reported(br#"{"error": {"code": "PLINTH_999"}}"#), None);
    assert_eq!(reported(b"not json"), None);
    assert_eq!(reported(br#"{"error": {"code": "PLINTH_052"}, "x": 1}"#), None);
    assert_eq!(code(parse_command(br#"{"error": {"code": "PLINTH_004"}}"#, NOW)), Code::StepAnswerInvalid);
}
