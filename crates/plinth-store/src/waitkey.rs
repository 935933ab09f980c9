//! How a store finds the runs an event may wake without looking at every run waiting on the
//! event's name. A wait whose condition is `event.data.A == run.input.B` is stored with the
//! run's value at `B` (`steps.wait_match`, indexed with the event name); an event is then
//! looked up by its own value at `A`, and CEL decides on the few rows found.

use plinth_core::Event;
use plinth_core::steps::{Step, StepStatus, Wait};
use serde_json::Value;

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

impl Probe {
    /// The `steps.wait_match` a run must have to be woken by this probe; `None` when the probe
    /// does not narrow.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Probe::Text(s) => Some(format!("s:{s}")),
            Probe::Int(n) => Some(format!("i:{n}")),
            Probe::Missing | Probe::Any => None,
        }
    }
}

/// A value as `steps.wait_match` holds it: `s:<text>` for a string, `i:<n>` for a whole number
/// (written as an integer or as a float without a fraction, as a numeric comparison would
/// equal them), empty for anything no event probe can equal.
fn match_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("s:{s}"),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => format!("i:{i}"),
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            (None, Some(f)) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => format!("i:{}", f as i64),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// The key condition of a step about to be stored, when it is a waiting `wait_for_event`
/// whose condition is a [`KeyEq`]: only then does the step need a `wait_match`.
pub(crate) fn key_of(step: &Step) -> Option<KeyEq> {
    if step.status != StepStatus::Waiting {
        return None;
    }
    match &step.wait {
        Some(Wait::Event { cond: Some(cond), .. }) => KeyEq::parse(cond),
        _ => None,
    }
}

/// The `steps.wait_match` of a waiting step with condition `key` in a run whose input is
/// `input` (JSON text): the run's value at the condition's input path.
pub(crate) fn wait_match(key: &KeyEq, input: &str) -> String {
    let input: Value = serde_json::from_str(input).unwrap_or(Value::Null);
    let mut v = Some(&input);
    for part in &key.input {
        v = v.and_then(|x| x.get(part));
    }
    match_text(v)
}

#[cfg(test)]
mod tests {
    use super::{KeyEq, Probe, key_of, wait_match};
    use plinth_core::Event;
    use plinth_core::steps::{Step, StepStatus, Wait};
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

    #[test]
    fn a_run_is_found_by_its_value_as_an_event_probes_it() {
        let k = KeyEq::parse("event.data.o.id == run.input.order.id").expect("a key");
        let run = |input: &str| wait_match(&k, input);
        assert_eq!(run(r#"{"order": {"id": "x"}}"#), Probe::Text("x".into()).text().expect("narrows"));
        assert_eq!(run(r#"{"order": {"id": 7}}"#), Probe::Int(7).text().expect("narrows"));
        assert_eq!(run(r#"{"order": {"id": 7.0}}"#), "i:7", "a whole float equals the integer");
        assert_eq!(run(r#"{"order": {"id": 7.5}}"#), "", "no integer probe equals it");
        assert_eq!(run(r#"{"order": {"id": true}}"#), "");
        assert_eq!(run(r#"{"order": {}}"#), "", "missing");
        assert_eq!(run(r#"{"order": "flat"}"#), "");
        assert_eq!(run("not json"), "");
        assert_eq!(run(r#"{"order": {"id": 1e300}}"#), "", "beyond an integer");
        assert_eq!(Probe::Any.text(), None);
        assert_eq!(Probe::Missing.text(), None);
    }

    #[test]
    fn only_a_waiting_keyed_wait_for_event_needs_a_match() {
        let wait =
            |cond: Option<&str>| Wait::Event { event: "a/b".into(), cond: cond.map(str::to_string), since: 0, timeout_at: None };
        let mut step = Step::reached("w", "wait_for_event", 0, 0);
        step.status = StepStatus::Waiting;
        step.wait = Some(wait(Some("event.data.id == run.input.id")));
        assert!(key_of(&step).is_some());
        step.wait = Some(wait(Some("event.data.id > 3")));
        assert!(key_of(&step).is_none(), "another form");
        step.wait = Some(wait(None));
        assert!(key_of(&step).is_none(), "no condition");
        step.wait = Some(Wait::Sleep { until: 5 });
        assert!(key_of(&step).is_none(), "a sleep");
        step.wait = Some(wait(Some("event.data.id == run.input.id")));
        let done = step.succeed(serde_json::json!({}), 1);
        assert!(key_of(&done).is_none(), "an ended wait");
    }
}
