//! Triggers in `component.yaml`: events (with an optional CEL `if`) and cron schedules, checked
//! and compiled at start-up; and which functions an event starts.

pub mod cron;
pub mod expr;
mod fanout;

pub use fanout::FanOut;

pub use cron::{Schedule, ScheduleError};
pub use expr::Expr;

use crate::event::{Event, is_event_name};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One trigger as written: exactly one of `event` or `cron`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// The name of the events that start the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A CEL condition over `event`; the trigger matches only when it is true.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// A cron pattern: 5 fields, or 6 with seconds first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The IANA time zone of `cron` (UTC by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// A function's compiled triggers.
#[derive(Clone, Debug, Default)]
pub struct CompiledTriggers {
    /// Event triggers: the name and the condition.
    pub events: Vec<(String, Option<Expr>)>,
    /// Schedules.
    pub schedules: Vec<Schedule>,
}

/// Compiles one function's triggers.
///
/// # Errors
/// The field (relative to the function, e.g. `triggers[1].if`) and the reason.
pub fn compile(specs: &[TriggerSpec]) -> Result<CompiledTriggers, (String, String)> {
    let mut out = CompiledTriggers::default();
    for (i, t) in specs.iter().enumerate() {
        let at = |field: &str| format!("triggers[{i}]{field}");
        match (&t.event, &t.cron) {
            (Some(name), None) => {
                if !is_event_name(name) {
                    return Err((at(".event"), format!("`{name}` is not `component/event.name` (lowercase, at most 128)")));
                }
                if t.timezone.is_some() {
                    return Err((at(".timezone"), "belongs to a `cron` trigger, not an `event` one".into()));
                }
                let condition = t.condition.as_deref().map(|c| Expr::compile(c, &["event"]).map_err(|e| (at(".if"), e)));
                out.events.push((name.clone(), condition.transpose()?));
            }
            (None, Some(pattern)) => {
                if t.condition.is_some() {
                    return Err((at(".if"), "belongs to an `event` trigger; a schedule has no event to test".into()));
                }
                let schedule =
                    Schedule::parse(pattern, t.timezone.as_deref()).map_err(|e| (at(&format!(".{}", e.field)), e.reason))?;
                out.schedules.push(schedule);
            }
            _ => return Err((at(""), "give exactly one of `event` or `cron`".into())),
        }
    }
    Ok(out)
}

/// What an event does to one function that listens to its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A trigger matched: start a run.
    Start,
    /// No trigger matched; why, for `GET /events/{id}`.
    Skip(String),
}

impl CompiledTriggers {
    /// The first tick of any of the schedules after `after` (micros).
    #[must_use]
    pub fn next_tick(&self, after: i64) -> Option<i64> {
        self.schedules.iter().filter_map(|s| s.next_after(after)).min()
    }

    /// The latest tick of any of the schedules in `(after, at]`.
    #[must_use]
    pub fn latest_missed(&self, after: i64, at: i64) -> Option<i64> {
        self.schedules.iter().filter_map(|s| s.latest_between(after, at)).max()
    }

    /// Whether any trigger listens to `name`.
    #[must_use]
    pub fn listens_to(&self, name: &str) -> bool {
        self.events.iter().any(|(n, _)| n == name)
    }

    /// What `event` does to this function: `None` when no trigger listens to its name. One
    /// run at most, however many of its triggers match. A condition that fails (a missing
    /// field, a wrong type) counts as no match, and says so.
    #[must_use]
    pub fn verdict(&self, event: &Event, input: &Value) -> Option<Verdict> {
        let mut reasons = Vec::new();
        for (name, condition) in &self.events {
            if *name != event.name {
                continue;
            }
            match condition {
                None => return Some(Verdict::Start),
                Some(expr) => match expr.eval_bool(&[("event", input)]) {
                    Ok(true) => return Some(Verdict::Start),
                    Ok(false) => reasons.push(format!("`{}` was false", expr.source())),
                    Err(e) => reasons.push(format!("`{}` failed: {e}", expr.source())),
                },
            }
        }
        (!reasons.is_empty()).then(|| Verdict::Skip(reasons.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(yaml: &str) -> Vec<TriggerSpec> {
        serde_yaml_ng::from_str(yaml).expect("yaml")
    }

    fn event(name: &str, data: Value) -> Event {
        Event { id: "e1".into(), name: name.into(), data, ts: 1, received_at: 1000 }
    }

    #[test]
    fn events_and_schedules_compile() {
        let t = compile(&spec(
            "- {event: shop/order.paid, if: 'event.data.amount > 100'}\n- {cron: '0 9 * * MON-FRI', timezone: Europe/Berlin}\n- {event: shop/order.refunded}",
        ))
        .expect("valid");
        assert_eq!(t.events.len(), 2);
        assert_eq!(t.schedules.len(), 1);
        assert!(t.listens_to("shop/order.paid") && !t.listens_to("shop/other"));
        let two = compile(&spec("- {cron: '0 * * * *'}\n- {cron: '30 * * * *'}")).expect("valid");
        let hour = 3_600_000_000;
        assert_eq!(two.next_tick(0), Some(hour / 2), "the sooner of the two");
        assert_eq!(two.latest_missed(0, 2 * hour + 1), Some(2 * hour), "the later of the two");
        assert_eq!(CompiledTriggers::default().next_tick(0), None);
    }

    #[test]
    fn verdicts_follow_the_conditions() {
        let t = compile(&spec("- {event: a/b, if: 'event.data.n > 1'}\n- {event: a/b, if: 'event.data.n == 0'}")).expect("valid");
        let check = |data: Value| {
            let e = event("a/b", data);
            t.verdict(&e, &e.as_input())
        };
        assert_eq!(check(json!({"n": 2})), Some(Verdict::Start));
        assert_eq!(check(json!({"n": 0})), Some(Verdict::Start));
        let Some(Verdict::Skip(why)) = check(json!({"n": 1})) else { panic!("skipped") };
        assert!(why.contains("was false"), "{why}");
        let Some(Verdict::Skip(why)) = check(json!({})) else { panic!("skipped") };
        assert!(why.contains("failed"), "{why}");
        let other = event("a/c", json!({}));
        assert_eq!(t.verdict(&other, &other.as_input()), None);
    }

    #[test]
    fn malformed_triggers_name_their_field() {
        let err = |yaml: &str| compile(&spec(yaml)).expect_err("refused").0;
        assert_eq!(err("- {event: a/b, cron: '* * * * *'}"), "triggers[0]");
        assert_eq!(err("- {}"), "triggers[0]");
        assert_eq!(err("- {event: a/b}\n- {event: 'Bad'}"), "triggers[1].event");
        assert_eq!(err("- {event: a/b, if: 'event.data.x >'}"), "triggers[0].if");
        assert_eq!(err("- {event: a/b, timezone: UTC}"), "triggers[0].timezone");
        assert_eq!(err("- {cron: '61 * * * *'}"), "triggers[0].cron");
        assert_eq!(err("- {cron: '0 * * * *', timezone: Nowhere/Land}"), "triggers[0].timezone");
        assert_eq!(err("- {cron: '0 * * * *', if: 'true'}"), "triggers[0].if");
    }
}
