//! Fan-out: which functions of a component one event starts, with each run as it will be
//! stored, and why each other listener starts nothing.

use super::Verdict;
use crate::component::{Component, FunctionSpec};
use crate::event::Event;
use crate::run::{NewRun, Trigger};
use serde_json::Value;

/// What one event does to a component.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FanOut {
    /// The runs it starts, one per matching function, in the component's order.
    pub runs: Vec<NewRun>,
    /// The listening functions it does not start: `(function, reason)`.
    pub skipped: Vec<(String, String)>,
    /// The `cancel_on` rules it meets: the store cancels the runs they match.
    pub cancels: Vec<crate::flow::CancelMatch>,
}

impl NewRun {
    /// A new queued run of `function`, due now, with the function's policy.
    #[must_use]
    pub fn of(function: &FunctionSpec, input: Value, trigger: Trigger, correlation_id: &str, now: i64) -> Self {
        let event = matches!(trigger, Trigger::Event { .. }).then_some(&input);
        let (flow_key, warning) = crate::flow::flow_key(&function.policy, &input, event);
        let (rate, rate_warning) = crate::flow::rate_check(&function.policy, &input, event);
        let (debounce, debounce_warning) = crate::flow::debounce_check(&function.policy, &input, event);
        let (singleton, singleton_warning) = crate::flow::singleton_check(&function.policy, &input, event);
        let (batch, batch_warning) = crate::flow::batch_check(&function.policy, &input, event);
        let (factor, factor_warning) = function.policy.priority.as_ref().map_or((0, None), |p| p.factor(&input, event));
        let warnings = [warning, rate_warning, debounce_warning, singleton_warning, batch_warning, factor_warning];
        for warning in warnings.iter().flatten() {
            tracing::warn!(function = %function.name, correlation_id, "{warning}");
        }
        let mut not_before = debounce.as_ref().map_or(now, |d| d.due(now, now));
        let input = match (&batch, &function.policy.batch) {
            (Some(_), Some(b)) => {
                if b.max_size > 1 {
                    not_before = now.saturating_add(i64::try_from(b.timeout.get().as_micros()).unwrap_or(i64::MAX));
                }
                serde_json::json!({ "events": [input] })
            }
            _ => input,
        };
        not_before = crate::flow::PriorityExpr::place(factor, now, not_before);
        // Why: a batch of one is full with its first event; it starts at once, alone.
        let batch = batch.filter(|b| b.max_size > 1);
        Self {
            run_id: crate::ids::new_run_id(),
            function: function.name.clone(),
            input,
            max_attempts: function.policy.retries.max_attempts,
            priority: 0,
            created_at: now,
            not_before,
            correlation_id: correlation_id.to_string(),
            idempotency_key: None,
            request_hash: None,
            max_queued: function.policy.max_queued,
            trigger,
            lane_limit: flow_key.as_ref().and_then(|_| crate::flow::lane_limit(&function.policy)),
            flow_key,
            rate,
            debounce,
            singleton,
            batch,
            expiry: crate::flow::Expiry::of(&function.policy, now),
            traceparent: None,
            tracestate: None,
            start: None,
        }
    }
}

impl Component {
    /// The runs `event` starts and the listeners it skips. A trigger condition that fails
    /// counts as no match (its error is the reason); an event that does not match a function's
    /// input schema starts no run of it either.
    #[must_use]
    pub fn fan_out(&self, event: &Event, correlation_id: &str, now: i64) -> FanOut {
        let mut out = FanOut { cancels: crate::flow::CancelMatch::of(&self.file.functions, event), ..FanOut::default() };
        let input = event.as_input();
        for (i, function) in self.file.functions.iter().enumerate() {
            match self.triggers[i].verdict(event, &input) {
                None => {}
                Some(Verdict::Skip(reason)) => out.skipped.push((function.name.clone(), reason)),
                Some(Verdict::Start) => {
                    let violations = self.schemas[i].as_ref().map(|s| s.violations(&input)).unwrap_or_default();
                    if let Some(v) = violations.first() {
                        let reason = format!("the event does not match its input_schema: {}: {}", v.pointer, v.message);
                        out.skipped.push((function.name.clone(), reason));
                        continue;
                    }
                    let trigger = Trigger::Event { event_id: event.id.clone() };
                    out.runs.push(NewRun::of(function, input.clone(), trigger, correlation_id, now));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    const YAML: &str = r#"
component: {name: shop, version: '1'}
functions:
  - name: receipt
    handler: {rust: noop}
    triggers: [{event: shop/order.paid, if: 'event.data.amount > 100'}]
  - name: ledger
    handler: {rust: noop}
    policy: {retries: {max_attempts: 7}, max_queued: 9}
    triggers: [{event: shop/order.paid}, {event: shop/order.refunded}]
  - name: typed
    handler: {rust: noop}
    input_schema: {type: object, properties: {data: {type: object, required: [sku]}}}
    triggers: [{event: shop/order.paid}]
  - name: manual
    handler: {rust: noop}
"#;

    fn component() -> Component {
        Component::parse(YAML, "test.yaml", PathBuf::from("test.yaml"), PathBuf::from(".")).expect("valid")
    }

    fn event(data: Value) -> Event {
        Event { id: "e1".into(), name: "shop/order.paid".into(), data, ts: 1, received_at: 2 }
    }

    #[test]
    fn every_matching_function_gets_one_run() {
        let out = component().fan_out(&event(json!({"amount": 150, "sku": "x"})), "corr", 5);
        let names: Vec<&str> = out.runs.iter().map(|r| r.function.as_str()).collect();
        assert_eq!(names, ["receipt", "ledger", "typed"]);
        let ledger = &out.runs[1];
        assert_eq!((ledger.max_attempts, ledger.max_queued, ledger.created_at), (7, Some(9), 5));
        assert_eq!(ledger.trigger, Trigger::Event { event_id: "e1".into() });
        assert_eq!(ledger.input["data"]["amount"], 150);
        assert_eq!(ledger.correlation_id, "corr");
        assert!(out.skipped.is_empty());
    }

    #[test]
    fn listeners_that_do_not_match_say_why() {
        let out = component().fan_out(&event(json!({"amount": 5})), "corr", 5);
        assert_eq!(out.runs.iter().map(|r| r.function.as_str()).collect::<Vec<_>>(), ["ledger"]);
        assert_eq!(out.skipped.len(), 2);
        assert!(out.skipped[0].0 == "receipt" && out.skipped[0].1.contains("was false"), "{:?}", out.skipped);
        assert!(out.skipped[1].0 == "typed" && out.skipped[1].1.contains("input_schema"), "{:?}", out.skipped);
        let failed = component().fan_out(&event(json!({"amount": "lots"})), "corr", 5);
        assert!(failed.skipped[0].1.contains("failed"), "a condition that errs is no match: {:?}", failed.skipped);
    }

    #[test]
    fn an_event_nobody_listens_to_starts_nothing() {
        let quiet = Event { name: "shop/other.thing".into(), ..event(json!({})) };
        assert_eq!(component().fan_out(&quiet, "c", 1), FanOut::default());
    }
}
