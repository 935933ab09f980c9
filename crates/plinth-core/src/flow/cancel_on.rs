//! `cancel_on: [{event, if, timeout}]`: an event that matches cancels the unfinished runs of the
//! function created before it (and, with `timeout`, not longer than that before it), with
//! PLINTH_048 and the event's id on the run's error.

use crate::event::{Event, is_event_name};
use crate::policy::DurationSpec;
use crate::trigger::Expr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A CEL condition over `event` and `run` (`run.input`, `run.run_id`, `run.function`).
#[derive(Clone, Debug)]
pub struct CancelCond(Expr);

impl CancelCond {
    /// Compiles a condition.
    ///
    /// # Errors
    /// What does not parse, or an expression that reads neither variable.
    pub fn compile(source: &str) -> Result<Self, String> {
        Expr::compile(source, &["event", "run"]).map(Self)
    }

    /// The compiled expression.
    #[must_use]
    pub const fn expr(&self) -> &Expr {
        &self.0
    }
}

impl PartialEq for CancelCond {
    fn eq(&self, other: &Self) -> bool {
        self.0.source() == other.0.source()
    }
}

impl Serialize for CancelCond {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.source())
    }
}

impl<'de> Deserialize<'de> for CancelCond {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::compile(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for CancelCond {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A CEL condition over `event` and `run`."))
            .examples([serde_json::json!("event.data.order == run.input.order")])
            .into()
    }
}

impl utoipa::ToSchema for CancelCond {}

/// One `cancel_on` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelOn {
    /// The name of the events that cancel.
    pub event: String,
    /// Only events for which this is true cancel a run.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub cond: Option<CancelCond>,
    /// Only runs created at most this long before the event (none: any unfinished run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
}

const LONGEST: Duration = Duration::from_secs(30 * 24 * 3600);

/// Checks the rules; `(field, reason)` for the first bad one.
pub(crate) fn validate(rules: &[CancelOn]) -> Result<(), (String, String)> {
    if rules.len() > 16 {
        return Err(("cancel_on".into(), format!("at most 16 rules, got {}", rules.len())));
    }
    for (i, r) in rules.iter().enumerate() {
        if !is_event_name(&r.event) {
            return Err((format!("cancel_on[{i}].event"), format!("`{}` is not `component/event.name`", r.event)));
        }
        if let Some(t) = r.timeout
            && (t.get() < Duration::from_millis(1) || t.get() > LONGEST)
        {
            return Err((format!("cancel_on[{i}].timeout"), format!("must be from 1ms to 30 days, got {t}")));
        }
    }
    Ok(())
}

/// What an event asks the store to cancel: the unfinished runs of `function` created in
/// `[since, event.received_at)` for which `cond` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct CancelMatch {
    /// The function whose runs it cancels.
    pub function: String,
    /// The rule's place in `cancel_on`, for the message.
    pub rule: usize,
    /// The condition, if any.
    pub cond: Option<CancelCond>,
    /// The oldest creation time it reaches (micros).
    pub since: i64,
}

impl CancelMatch {
    /// The matches `event` makes among `functions`' rules.
    #[must_use]
    pub fn of(functions: &[crate::component::FunctionSpec], event: &Event) -> Vec<Self> {
        let mut out = Vec::new();
        for f in functions {
            for (rule, r) in f.policy.cancel_on.iter().enumerate().filter(|(_, r)| r.event == event.name) {
                let reach = r.timeout.map_or(i64::MAX, |t| i64::try_from(t.get().as_micros()).unwrap_or(i64::MAX));
                let since = event.received_at.saturating_sub(reach);
                out.push(Self { function: f.name.clone(), rule, cond: r.cond.clone(), since });
            }
        }
        out
    }

    /// Whether `event` cancels the run `run` (`{"run_id","function","input"}`). A condition
    /// that fails counts as no match, with the reason.
    ///
    /// # Errors
    /// CEL's error.
    pub fn matches(&self, event: &Event, run: &serde_json::Value) -> Result<bool, String> {
        match &self.cond {
            None => Ok(true),
            Some(c) => c.expr().eval_bool(&[("event", &event.as_input()), ("run", run)]),
        }
    }

    /// The error a run it cancels ends with.
    #[must_use]
    pub fn error(&self, event: &Event) -> crate::RunError {
        let mut e = crate::RunError::new(
            crate::Code::RunCancelledByEvent,
            format!("cancelled by event `{}` ({}), rule cancel_on[{}]", event.name, event.id, self.rule),
        );
        e.event_id = Some(event.id.clone());
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(yaml: &str) -> Result<Vec<CancelOn>, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn rules_parse_and_validate() {
        let r = rules("[{event: shop/order.cancelled, if: 'event.data.order == run.input.order', timeout: 1h}]").expect("parses");
        assert_eq!(validate(&r), Ok(()));
        assert!(rules("[{event: a/b, if: 'event.data.'}]").is_err_and(|e| e.contains("not valid CEL")));
        assert!(rules("[{event: a/b, if: 'input.x == 1'}]").is_err_and(|e| e.contains("may only read")));
        assert!(rules("[{event: a/b, when: x}]").is_err_and(|e| e.contains("unknown field")));
        let field = |yaml: &str| validate(&rules(yaml).expect("parses")).map_err(|e| e.0);
        assert_eq!(field("[{event: a/b}, {event: Bad Name}]"), Err("cancel_on[1].event".into()));
        assert_eq!(field("[{event: a/b, timeout: 0s}]"), Err("cancel_on[0].timeout".into()));
    }

    #[test]
    fn an_event_matches_the_rules_of_its_name() {
        let yaml = "component: {name: c, version: '1'}\nfunctions:\n  - name: f\n    handler: {rust: noop}\n    \
                    policy: {cancel_on: [{event: a/stop, if: 'event.data.id == run.input.id', timeout: 10s}, {event: a/other}]}\n";
        let c = crate::Component::parse(yaml, "t.yaml", "t.yaml".into(), ".".into()).expect("valid");
        let event = Event { id: "e1".into(), name: "a/stop".into(), data: json!({"id": 7}), ts: 1, received_at: 20_000_000 };
        let found = CancelMatch::of(&c.file.functions, &event);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].rule, found[0].since), (0, 10_000_000));
        assert_eq!(found[0].matches(&event, &json!({"input": {"id": 7}})), Ok(true));
        assert_eq!(found[0].matches(&event, &json!({"input": {"id": 8}})), Ok(false));
        assert!(found[0].matches(&event, &json!({"input": {}})).is_err(), "a missing field is an error, so no match");
        let e = found[0].error(&event);
        assert_eq!((e.code.as_str(), e.event_id.as_deref()), ("PLINTH_048", Some("e1")));
        let quiet = Event { name: "a/none".into(), ..event };
        assert!(CancelMatch::of(&c.file.functions, &quiet).is_empty());
    }
}
