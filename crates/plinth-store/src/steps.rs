//! What every backend does the same way for step functions: how a wait is stored, whether an
//! event ends a wait, and what an invoked run's end gives its parent's step.

use plinth_core::steps::{Step, StepError, Wait};
use plinth_core::trigger::Expr;
use plinth_core::{Event, Run, RunStatus};
use serde_json::{Value, json};

/// Far enough in the future to mean "never": a wait without a timeout is due then.
pub const FOREVER: i64 = i64::MAX / 4;

/// How far an event's stored key (made from the clock of the node that stored it) may lag its
/// `received_at`: a wait looks this much further back by key, then filters by `received_at`.
pub(crate) const CLOCK_SLACK: i64 = 60_000_000;

/// The wait as stored JSON.
pub(crate) fn wait_text(step: &Step) -> Option<String> {
    step.wait.as_ref().and_then(|w| serde_json::to_string(w).ok())
}

/// The stored JSON back as a wait.
pub(crate) fn parse_wait(text: Option<&str>) -> Option<Wait> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// The run as a wait's `if` sees it: `{"run_id","function","input"}`.
pub(crate) fn run_var(run_id: &str, function: &str, input: &Value) -> Value {
    json!({"run_id": run_id, "function": function, "input": input})
}

/// Whether `event` ends `wait` of the run `run` (see [`run_var`]). A condition that fails to
/// evaluate counts as no match and is logged at warn.
pub(crate) fn event_matches(wait: &Wait, event: &Event, run: &Value) -> bool {
    let Wait::Event { cond, .. } = wait else { return false };
    let compiled = cond.as_deref().map(|c| Expr::compile(c, &["event", "run"]));
    matches_compiled(wait, event, run, compiled.as_ref())
}

/// [`event_matches`] with the wait's condition compiled once by the caller (`None` when the
/// wait has no condition), for a group of waits that share it.
pub(crate) fn matches_compiled(wait: &Wait, event: &Event, run: &Value, cond: Option<&Result<Expr, String>>) -> bool {
    let Wait::Event { event: name, since, .. } = wait else { return false };
    if *name != event.name || event.received_at < *since {
        return false;
    }
    let Some(compiled) = cond else { return true };
    let result = compiled.as_ref().map_err(Clone::clone).and_then(|e| e.eval_bool(&[("event", &event.as_input()), ("run", run)]));
    match result {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(event_id = %event.id, run_id = %run["run_id"], error = %e, "a wait_for_event condition failed; no match");
            false
        }
    }
}

/// A wait condition of the form `event.data.A == run.input.B` (either way round, dotted
/// identifiers only), the usual way a run waits for the event about its own order or user.
/// The stores narrow the waiting runs to those whose input holds the event's value, in SQL,
/// before CEL decides: an event does not evaluate the condition of every run waiting on its
/// name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeyEq {
    /// The path under `event.data`.
    pub(crate) event: Vec<String>,
    /// The path under `run.input`.
    pub(crate) input: Vec<String>,
}

impl KeyEq {
    /// The condition's two paths, or `None` when it has another form.
    pub(crate) fn parse(cond: &str) -> Option<Self> {
        let (left, right) = cond.split_once("==")?;
        match (side(left)?, side(right)?) {
            ((true, event), (false, input)) | ((false, input), (true, event)) => Some(Self { event, input }),
            _ => None,
        }
    }

    /// What the event gives the filter: its value at the path, when a string or an integer.
    pub(crate) fn probe(&self, event: &Event) -> Probe {
        let mut v = &event.data;
        for part in &self.event {
            match v.get(part) {
                Some(next) => v = next,
                None => return Probe::Missing,
            }
        }
        match v {
            Value::String(s) => Probe::Text(s.clone()),
            Value::Number(n) => n.as_i64().map_or(Probe::Any, Probe::Int),
            _ => Probe::Any,
        }
    }

    /// The input path as SQLite's JSON path (`$.a.b`); safe to inline, as parts are identifiers.
    pub(crate) fn sqlite_path(&self) -> String {
        format!("$.{}", self.input.join("."))
    }
}

/// How an event narrows the runs waiting with a [`KeyEq`] condition.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Only runs whose input holds this string at the path (CEL then decides).
    Text(String),
    /// Only runs whose input holds this number at the path (CEL then decides).
    Int(i64),
    /// The event lacks the path: the condition errors for every run, so none matches.
    Missing,
    /// No narrowing (a float, a boolean, null, an object): CEL decides for every run.
    Any,
}

/// One side of `==`: `(true, path)` for `event.data.path`, `(false, path)` for `run.input.path`.
fn side(text: &str) -> Option<(bool, Vec<String>)> {
    let text = text.trim();
    let (is_event, rest) = match (text.strip_prefix("event.data."), text.strip_prefix("run.input.")) {
        (Some(rest), _) => (true, rest),
        (_, Some(rest)) => (false, rest),
        _ => return None,
    };
    let parts: Vec<String> = rest.split('.').map(str::to_string).collect();
    let ident = |p: &String| {
        p.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    parts.iter().all(ident).then_some((is_event, parts))
}

/// The parent's step once its invoked run `child` ended.
pub(crate) fn child_result(step: Step, child: &Run, now: i64) -> Step {
    match child.status {
        RunStatus::Succeeded => step.succeed(child.output.clone().unwrap_or(Value::Null), now),
        _ => {
            let why =
                child.error.as_ref().map_or_else(|| child.status.as_str().to_string(), |e| format!("{}: {}", e.code, e.message));
            let message =
                format!("the invoked run {} of `{}` ended {}: {why}", child.run_id, child.function, child.status.as_str());
            step.fail(StepError { message, retryable: false }, now)
        }
    }
}

/// A waiting step of a cancelled run: failed, so the listing does not show it waiting.
pub(crate) fn cancelled_step(step: Step, now: i64) -> Step {
    if step.status.is_done() {
        return step;
    }
    step.fail(StepError { message: "the run was cancelled".into(), retryable: false }, now)
}

#[cfg(test)]
mod tests {
    use super::{KeyEq, Probe};
    use plinth_core::Event;
    use serde_json::json;

    fn event(data: serde_json::Value) -> Event {
        Event { id: "e".into(), name: "a/b".into(), data, ts: 0, received_at: 0 }
    }

    #[test]
    fn an_equality_of_event_data_and_run_input_is_a_key_either_way_round() {
        let k = KeyEq::parse("event.data.order.id == run.input.order_id").expect("a key");
        assert_eq!(
            (k.event.as_slice(), k.input.as_slice()),
            (&["order".to_string(), "id".to_string()][..], &["order_id".to_string()][..])
        );
        assert_eq!(k.sqlite_path(), "$.order_id");
        let r = KeyEq::parse(" run.input.user==event.data.user ").expect("reversed");
        assert_eq!((r.event, r.input), (vec!["user".to_string()], vec!["user".to_string()]));
    }

    #[test]
    fn other_conditions_are_not_keys() {
        for cond in [
            "event.data.a == run.input.b && event.data.ok",
            "event.data.a != run.input.b",
            "event.data.a == event.data.b",
            "run.input.a == run.input.b",
            "event.data.a == 'x'",
            "event.data['a'] == run.input.a",
            "event.data.a-b == run.input.a",
            "event.data. == run.input.a",
            "event.data.1a == run.input.a",
            "event.name == run.input.a",
            "true",
        ] {
            assert_eq!(KeyEq::parse(cond), None, "{cond}");
        }
    }

    #[test]
    fn the_event_gives_a_text_or_integer_probe_or_none() {
        let k = KeyEq::parse("event.data.o.id == run.input.id").expect("a key");
        assert_eq!(k.probe(&event(json!({"o": {"id": "x"}}))), Probe::Text("x".into()));
        assert_eq!(k.probe(&event(json!({"o": {"id": -3}}))), Probe::Int(-3));
        assert_eq!(k.probe(&event(json!({"o": {"id": 1.5}}))), Probe::Any);
        assert_eq!(k.probe(&event(json!({"o": {"id": true}}))), Probe::Any);
        assert_eq!(k.probe(&event(json!({"o": {"id": null}}))), Probe::Any);
        assert_eq!(k.probe(&event(json!({"o": {}}))), Probe::Missing);
        assert_eq!(k.probe(&event(json!({"o": "flat"}))), Probe::Missing);
        assert_eq!(k.probe(&event(json!(null))), Probe::Missing);
    }
}
