//! Events: what `POST /events` (and later the NATS bridge) takes in, checked before anything is
//! stored. An event is `{"name", "data", "id", "ts"}`; the contract's section Events.

use crate::timefmt;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use utoipa::ToSchema;

/// The most events one request may carry.
pub const MAX_EVENTS: usize = 1000;
/// The longest event name.
pub const MAX_NAME: usize = 128;
/// The longest event id.
pub const MAX_ID: usize = 128;

/// A stored event, as `GET /events` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Event {
    /// Its id: the sender's, or one Plinth assigned (a ULID).
    pub id: String,
    /// `component/event.name`.
    pub name: String,
    /// Its payload, a JSON object.
    #[schema(value_type = Object)]
    pub data: Value,
    /// When it happened, in milliseconds since the epoch (the sender's, else when it was received).
    pub ts: i64,
    /// When Plinth stored it.
    #[serde(serialize_with = "timefmt::serde_req::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: i64,
}

impl Event {
    /// The event as a run's input and as CEL's `event`: `{"id","name","data","ts"}`.
    #[must_use]
    pub fn as_input(&self) -> Value {
        serde_json::json!({"id": self.id, "name": self.name, "data": self.data, "ts": self.ts})
    }
}

/// One reason an event was refused: a JSON pointer into the request body and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventProblem {
    /// Where, e.g. `/2/name` (or `/name` for a single event).
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// Whether `name` follows `component/event.name`: `^[a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_.-]*$`,
/// at most [`MAX_NAME`] characters.
#[must_use]
pub fn is_event_name(name: &str) -> bool {
    let Some((component, event)) = name.split_once('/') else {
        return false;
    };
    let starts = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let body = |s: &str, extra: &str| s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c));
    name.len() <= MAX_NAME && starts(component) && starts(event) && body(component, "_-") && body(event, "_.-")
}

/// Checks a request body (one event object, or an array of 1 to [`MAX_EVENTS`]) and makes the
/// events to store, assigning ids and times where the sender gave none. Every problem is
/// reported, each with its pointer; nothing is returned unless the whole body is valid.
///
/// # Errors
/// The problems, with pointers relative to the body (`/2/name`).
pub fn parse_events(body: Value, now_micros: i64, mut new_id: impl FnMut() -> String) -> Result<Vec<Event>, Vec<EventProblem>> {
    let (items, prefix): (Vec<Value>, bool) = match body {
        Value::Array(items) => (items, true),
        one @ Value::Object(_) => (vec![one], false),
        _ => {
            return Err(vec![EventProblem {
                pointer: String::new(),
                message: "the body must be an event object or an array of events".into(),
            }]);
        }
    };
    if items.is_empty() {
        return Err(vec![EventProblem { pointer: String::new(), message: "the array holds no event".into() }]);
    }
    if items.len() > MAX_EVENTS {
        return Err(vec![EventProblem {
            pointer: String::new(),
            message: format!("{} events in one request; at most {MAX_EVENTS}", items.len()),
        }]);
    }
    let mut problems = Vec::new();
    let mut events = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = |field: &str| if prefix { format!("/{i}{field}") } else { field.to_string() };
        let mut push = |field: &str, message: String| problems.push(EventProblem { pointer: at(field), message });
        let Value::Object(mut obj) = item else {
            push("", "must be an event object".into());
            continue;
        };
        if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "name" | "data" | "id" | "ts")) {
            push(&format!("/{key}"), format!("unknown field `{key}`; an event has name, data, id and ts"));
            continue;
        }
        let name = match obj.remove("name") {
            Some(Value::String(n)) if is_event_name(&n) => Some(n),
            Some(Value::String(n)) => {
                push("/name", format!("`{}` is not `component/event.name` (lowercase, at most {MAX_NAME} characters)", clip(&n)));
                None
            }
            Some(_) => {
                push("/name", "must be a string".into());
                None
            }
            None => {
                push("/name", "required".into());
                None
            }
        };
        let data = match obj.remove("data") {
            None | Some(Value::Null) => Some(Value::Object(Map::new())),
            Some(d @ Value::Object(_)) => Some(d),
            Some(_) => {
                push("/data", "must be a JSON object".into());
                None
            }
        };
        let id = match obj.remove("id") {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(id)) if id.is_empty() || id.chars().count() > MAX_ID || id.chars().any(char::is_control) => {
                push("/id", format!("must be 1 to {MAX_ID} characters without control characters"));
                None
            }
            Some(Value::String(id)) => {
                if seen.insert(id.clone()) {
                    Some(Some(id))
                } else {
                    push("/id", format!("`{}` appears twice in this request", clip(&id)));
                    None
                }
            }
            Some(_) => {
                push("/id", "must be a string".into());
                None
            }
        };
        let ts = match obj.remove("ts") {
            None | Some(Value::Null) => Some(now_micros / 1000),
            Some(Value::Number(n)) => match n.as_i64().filter(|t| (0..=253_402_300_799_999).contains(t)) {
                Some(t) => Some(t),
                None => {
                    push("/ts", "must be whole milliseconds since the epoch, from 0 to the year 9999".into());
                    None
                }
            },
            Some(_) => {
                push("/ts", "must be a number (milliseconds since the epoch)".into());
                None
            }
        };
        if let (Some(name), Some(data), Some(id), Some(ts)) = (name, data, id, ts) {
            events.push(Event { id: id.unwrap_or_else(&mut new_id), name, data, ts, received_at: now_micros });
        }
    }
    if problems.is_empty() { Ok(events) } else { Err(problems) }
}

/// The first 64 characters of `text`, for a message.
fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(64).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<Vec<Event>, Vec<EventProblem>> {
        let mut n = 0;
        parse_events(body, 5_000_000, || {
            n += 1;
            format!("gen-{n}")
        })
    }

    fn pointers(r: Result<Vec<Event>, Vec<EventProblem>>) -> Vec<String> {
        r.expect_err("refused").into_iter().map(|p| p.pointer).collect()
    }

    #[test]
    fn names_follow_the_convention() {
        for ok in ["shop/order.paid", "a/b", "0x/1_2-3.4", "svc-1/x"] {
            assert!(is_event_name(ok), "{ok}");
        }
        let long = format!("a/{}", "b".repeat(127));
        for bad in ["", "shop", "Shop/x", "shop/", "/x", "shop/Order", "a/b/c", "-a/b", "a/.b", "a b/c", &long] {
            assert!(!is_event_name(bad), "{bad}");
        }
        assert!(is_event_name(&format!("a/{}", "b".repeat(126))));
    }

    #[test]
    fn one_event_gets_defaults() {
        let events = parse(json!({"name": "shop/order.paid"})).expect("valid");
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!((e.id.as_str(), e.ts, e.received_at), ("gen-1", 5_000, 5_000_000));
        assert_eq!(e.data, json!({}));
        assert_eq!(e.as_input(), json!({"id": "gen-1", "name": "shop/order.paid", "data": {}, "ts": 5000}));
    }

    #[test]
    fn an_array_keeps_given_ids_and_times() {
        let events = parse(json!([
            {"name": "a/b", "id": "e-1", "ts": 42, "data": {"x": 1}},
            {"name": "a/c", "data": null}
        ]))
        .expect("valid");
        assert_eq!(events[0].id, "e-1");
        assert_eq!(events[0].ts, 42);
        assert_eq!(events[1].id, "gen-1");
    }

    #[test]
    fn bad_fields_are_pointed_at_in_arrays() {
        let r = parse(json!([
            {"name": "a/b"},
            {"name": "Bad Name", "data": [1]},
            {"name": "a/b", "ts": "soon", "id": ""},
            7
        ]));
        assert_eq!(pointers(r), ["/1/name", "/1/data", "/2/id", "/2/ts", "/3"]);
    }

    #[test]
    fn single_event_pointers_have_no_index() {
        assert_eq!(pointers(parse(json!({"data": {}}))), ["/name"]);
        assert_eq!(pointers(parse(json!({"name": "a/b", "extra": 1}))), ["/extra"]);
        assert_eq!(pointers(parse(json!({"name": "a/b", "ts": 1.5}))), ["/ts"]);
        assert_eq!(pointers(parse(json!({"name": "a/b", "ts": -1}))), ["/ts"]);
        assert_eq!(pointers(parse(json!({"name": 3}))), ["/name"]);
    }

    #[test]
    fn duplicate_ids_in_one_request_are_refused() {
        let r = parse(json!([{"name": "a/b", "id": "x"}, {"name": "a/b", "id": "x"}]));
        assert_eq!(pointers(r), ["/1/id"]);
    }

    #[test]
    fn ids_are_bounded() {
        assert!(parse(json!({"name": "a/b", "id": "é".repeat(128)})).is_ok());
        assert_eq!(pointers(parse(json!({"name": "a/b", "id": "x".repeat(129)}))), ["/id"]);
        assert_eq!(pointers(parse(json!({"name": "a/b", "id": "a\nb"}))), ["/id"]);
        assert_eq!(pointers(parse(json!({"name": "a/b", "id": 5}))), ["/id"]);
    }

    #[test]
    fn array_sizes_are_bounded() {
        assert_eq!(pointers(parse(json!([]))), [""]);
        let many: Vec<Value> = (0..=MAX_EVENTS).map(|_| json!({"name": "a/b"})).collect();
        assert_eq!(pointers(parse(Value::Array(many))), [""]);
        let max: Vec<Value> = (0..MAX_EVENTS).map(|_| json!({"name": "a/b"})).collect();
        assert_eq!(parse(Value::Array(max)).expect("1000 is allowed").len(), MAX_EVENTS);
        assert_eq!(pointers(parse(json!("a/b"))), [""]);
    }
}
