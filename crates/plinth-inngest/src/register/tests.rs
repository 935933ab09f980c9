use super::*;
use std::time::Duration;

/// What inngest 0.5.19 (Python) sends for two functions that use every option it has.
const FIXTURE: &str = include_str!("../../fixtures/register.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("the fixture is JSON")
}

fn refused(body: &Value) -> Refused {
    let req = parse(body.to_string().as_bytes());
    match req {
        Err(r) => r,
        Ok(req) => map_all(&req).expect_err("refused"),
    }
}

#[test]
fn every_option_the_sdk_sends_maps_to_plinths_rule() {
    let req = parse(FIXTURE.as_bytes()).expect("parses");
    assert_eq!((req.appname.as_str(), req.deploy_type.as_deref()), ("shop", Some("ping")));
    let fns = map_all(&req).expect("maps");
    let order = &fns[0];
    assert_eq!(order.name, "shop-order-flow");
    assert_eq!(order.display_name.as_deref(), Some("order-flow"));
    assert_eq!(order.url, "http://127.0.0.1:9000/api/inngest?fnId=shop-order-flow&stepId=step");
    assert_eq!(order.triggers[0].event.as_deref(), Some("shop/order.created"));
    assert_eq!(order.triggers[0].condition.as_deref(), Some("event.data.total > 10"));
    let p = &order.policy;
    assert_eq!(p.retries.max_attempts, 4, "3 retries after the first try");
    let c = p.concurrency.as_ref().expect("concurrency");
    assert_eq!((c.limit, c.key.as_ref().map(|k| k.source())), (2, Some("event.data.customer")));
    let t = p.throttle.as_ref().expect("throttle");
    assert_eq!((t.limit, t.period.get(), t.burst), (5, Duration::from_secs(10), 2));
    let r = p.rate_limit.as_ref().expect("rate limit");
    assert_eq!((r.limit, r.period.get()), (100, Duration::from_secs(3600)));
    let d = p.debounce.as_ref().expect("debounce");
    assert_eq!((d.period.get(), d.max_wait.map(|m| m.get())), (Duration::from_secs(5), Some(Duration::from_secs(60))));
    assert_eq!(serde_json::to_value(&p.priority).expect("json"), json!("event.data.vip ? 120 : 0"));
    let cancel = &p.cancel_on[0];
    assert_eq!(cancel.event, "shop/order.cancelled");
    assert_eq!(serde_json::to_value(&cancel.cond).expect("json"), json!("event.data.order == run.input.data.order"));
    let timeouts = p.timeouts.as_ref().expect("timeouts");
    assert_eq!(timeouts.start.map(|s| s.get()), Some(Duration::from_secs(60)));
    assert_eq!(timeouts.finish.map(|s| s.get()), Some(Duration::from_secs(660)), "Plinth counts from creation: start + finish");
    assert!(p.singleton.is_some());

    let nightly = &fns[1];
    assert_eq!(nightly.triggers[0].cron.as_deref(), Some("0 3 * * *"));
    assert_eq!(nightly.triggers[0].timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(nightly.triggers[1].event.as_deref(), Some("shop/report.asked"));
    assert_eq!(nightly.policy.retries.max_attempts, 5, "Inngest's default: 4 retries");
    let b = nightly.policy.batch.as_ref().expect("batch");
    assert_eq!((b.max_size, b.timeout.get()), (50, Duration::from_secs(5)));
}

#[test]
fn idempotency_is_one_run_per_key_a_day() {
    let mut body = fixture();
    body["functions"][0].as_object_mut().expect("object").remove("rateLimit");
    body["functions"][0]["idempotency"] = json!("event.data.order");
    let fns = map_all(&parse(body.to_string().as_bytes()).expect("parses")).expect("maps");
    let r = fns[0].policy.rate_limit.as_ref().expect("a rate limit");
    assert_eq!(
        (r.limit, r.period.get(), r.key.as_ref().map(|k| k.source())),
        (1, Duration::from_secs(86_400), Some("event.data.order"))
    );
    let mut both = fixture();
    both["functions"][0]["idempotency"] = json!("event.data.order");
    assert_eq!(refused(&both).field, "functions[0].idempotency", "with rateLimit too, it cannot be both");
}

#[test]
fn an_unknown_option_is_refused_by_name() {
    let mut body = fixture();
    body["functions"][1]["optimizeParallelism"] = json!(true);
    let r = refused(&body);
    assert_eq!(r.field, "functions[1].optimizeParallelism");
    assert!(r.reason.contains("unknown field `optimizeParallelism`"), "{}", r.reason);
    let mut body = fixture();
    body["functions"][0]["throttle"]["per"] = json!("x");
    assert_eq!(refused(&body).field, "functions[0].throttle.per");
}

#[test]
fn options_without_a_plinth_rule_are_refused_with_the_reason() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/functions/0/concurrency/0/scope", json!("account"), "functions[0].concurrency[0].scope"),
        ("/functions/1/triggers/0/jitter", json!("10s"), "functions[1].triggers[0].jitter"),
        ("/functions/1/batchEvents/if", json!("event.data.ok"), "functions[1].batchEvents.if"),
        ("/functions/0/steps/step/runtime/type", json!("ws"), "functions[0].steps.step.runtime.type"),
        ("/functions/0/id", json!("Shop.Order"), "functions[0].id"),
    ];
    for (pointer, value, field) in cases {
        let mut body = fixture();
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
        body.pointer_mut(parent).expect("the parent").as_object_mut().expect("an object").insert(key.into(), value);
        assert_eq!(refused(&body).field, field, "{pointer}");
    }
    let mut body = fixture();
    body["functions"][0]["concurrency"].as_array_mut().expect("a list").push(json!({"limit": 10, "scope": "fn"}));
    assert_eq!(refused(&body).field, "functions[0].concurrency", "two limits");
}

#[test]
fn bad_values_are_refused_where_the_app_wrote_them() {
    let no_idem = fixture;
    let mut body = no_idem();
    body["functions"][0]["rateLimit"]["period"] = json!("soon");
    let r = refused(&body);
    assert!(r.field.starts_with("functions[0].rateLimit"), "{r}");
    let mut body = no_idem();
    body["functions"][0]["priority"]["run"] = json!("event.data.vip ?");
    assert!(refused(&body).field.starts_with("functions[0].priority"));
    let mut body = no_idem();
    body["functions"][0]["cancel"][0]["if"] = json!("async.data.x ==");
    assert!(refused(&body).field.starts_with("functions[0].cancel"));
    let mut body = no_idem();
    body["functions"][1]["triggers"][0]["cron"] = json!("TZ=Europe/Paris");
    assert_eq!(refused(&body).field, "functions[1].triggers[0].cron");
    let mut body = no_idem();
    body["functions"][1]["triggers"][0] = json!({"event": "a/b", "cron": "* * * * *"});
    assert_eq!(refused(&body).field, "functions[1].triggers[0]");
    let mut body = no_idem();
    body["functions"][1]["id"] = json!("shop-order-flow");
    assert_eq!(refused(&body).field, "functions[1].id", "twice");
    let mut body = no_idem();
    body["functions"] = json!([]);
    assert_eq!(refused(&body).field, "functions");
    assert_eq!(parse(b"not json").expect_err("refused").field, "(body)");
}

#[test]
fn plinth_paths_read_in_the_sdks_names() {
    assert_eq!(inngest_field("retries.max_attempts"), "steps.step.retries.attempts");
    assert_eq!(inngest_field("policy.rate_limit.period"), "rateLimit.period");
    assert_eq!(inngest_field("batch.max_size"), "batchEvents.maxSize");
    assert_eq!(inngest_field("batch.timeout"), "batchEvents.timeout");
    assert_eq!(inngest_field("cancel_on[0].if"), "cancel[0].if");
    assert_eq!(inngest_field("debounce.max_wait"), "debounce.timeout");
    assert_eq!(inngest_field("priority"), "priority.run");
    assert_eq!(inngest_field("throttle.limit"), "throttle.limit");
}
