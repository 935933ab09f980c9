use super::*;

#[test]
fn status_round_trips() {
    for s in RunStatus::ALL {
        assert_eq!(RunStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(RunStatus::parse("done"), None);
    assert_eq!(RunStatus::parse("QUEUED"), None);
    assert!(RunStatus::Cancelled.is_terminal() && !RunStatus::Running.is_terminal());
}

#[test]
fn run_error_takes_catalog_retryability() {
    assert!(RunError::new(Code::HandlerFailed, "x").retryable);
    assert!(!RunError::new(Code::HandlerNotStarted, "x").retryable);
    assert!(!RunError::new(Code::HandlerFailed, "x").retryable(false).retryable);
}

#[test]
fn run_serializes_times_as_rfc3339() {
    let run = Run {
        run_id: "01J".into(),
        function: "echo".into(),
        status: RunStatus::Queued,
        attempt: 0,
        max_attempts: 3,
        input: serde_json::json!({}),
        output: None,
        error: None,
        created_at: 0,
        started_at: None,
        finished_at: None,
        next_attempt_at: Some(1_000_000),
        correlation_id: "c".into(),
        idempotency_key: None,
        trigger: Trigger::Cron { scheduled_at: "1970-01-01T00:00:00Z".into() },
        waiting_for: None,
        priority: 0,
        cancel_requested: false,
        attempts: None,
        flow_key: None,
        held_by: None,
        traceparent: None,
        tracestate: None,
    };
    let v = serde_json::to_value(&run).expect("json");
    assert_eq!(v["created_at"], "1970-01-01T00:00:00Z");
    assert_eq!(v["next_attempt_at"], "1970-01-01T00:00:01Z");
    assert_eq!(v["status"], "queued");
    assert_eq!(v["trigger"], serde_json::json!({"type": "cron", "scheduled_at": "1970-01-01T00:00:00Z"}));
    assert_eq!(run.trigger.kind(), "cron");
    assert_eq!(run.trigger.event_id(), None);
    let by_event = Trigger::Event { event_id: "e1".into() };
    assert_eq!((by_event.kind(), by_event.event_id()), ("event", Some("e1")));
    assert_eq!(serde_json::to_value(Trigger::default()).expect("json"), serde_json::json!({"type": "api"}));
    assert!(v.get("attempts").is_none() && v.get("cancel_requested").is_none());
    assert_eq!(Finish::Released.outcome(), "released");
}
