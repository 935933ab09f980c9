//! A NATS message as an event: the body is the event's JSON; or, when the body is a JSON object
//! without a `name`, the subject names the event (`shop.order.paid` is `shop/order.paid`) and
//! the body is its `data`. A message without an id of its own gets one from its stream and
//! sequence, so a redelivery after a crash is the same event and is deduplicated.

use plinth_core::event::{Event, is_event_name, parse_events};
use serde_json::{Map, Value};

/// The event name a subject gives: its first token is the component, the rest the event.
#[must_use]
pub fn name_from_subject(subject: &str) -> Option<String> {
    let (component, event) = subject.split_once('.')?;
    let name = format!("{component}/{event}");
    is_event_name(&name).then_some(name)
}

/// Decodes one message; `Err` says why it is not an event (the message is then terminated).
///
/// # Errors
/// Over `max_bytes`, not JSON, JSON that is not an event, or a subject that names no event.
pub fn decode(subject: &str, payload: &[u8], fallback_id: &str, max_bytes: usize, now: i64) -> Result<Event, String> {
    if payload.len() > max_bytes {
        return Err(format!("the message has {} bytes, over the limit of {max_bytes}", payload.len()));
    }
    let body: Value = serde_json::from_slice(payload).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(mut obj) = body else {
        return Err("the body is JSON but not an event object".into());
    };
    if !obj.contains_key("name") {
        let name = name_from_subject(subject)
            .ok_or_else(|| format!("the body has no `name` and the subject `{subject}` names no event (component.event.name)"))?;
        let data = std::mem::replace(&mut obj, Map::new());
        obj.insert("name".into(), Value::String(name));
        obj.insert("data".into(), Value::Object(data));
    }
    if !obj.contains_key("id") {
        obj.insert("id".into(), Value::String(fallback_id.to_string()));
    }
    let mut events = parse_events(Value::Object(obj), now, || fallback_id.to_string()).map_err(|problems| {
        let parts: Vec<String> = problems.into_iter().map(|p| format!("{}: {}", p.pointer, p.message)).collect();
        format!("the body is not a valid event: {}", parts.join("; "))
    })?;
    events.pop().ok_or_else(|| "the body holds no event".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(subject: &str, body: &str) -> Event {
        decode(subject, body.as_bytes(), "nats-S-7", 1024, 5_000_000).expect("an event")
    }

    fn err(subject: &str, body: &[u8]) -> String {
        decode(subject, body, "nats-S-7", 1024, 5_000_000).expect_err("not an event")
    }

    #[test]
    fn an_event_body_is_taken_as_it_is() {
        let e = ok("anything.here", r#"{"name":"shop/order.paid","data":{"a":1},"id":"o-1","ts":9}"#);
        assert_eq!((e.name.as_str(), e.id.as_str(), e.ts), ("shop/order.paid", "o-1", 9));
        let no_id = ok("x.y", r#"{"name":"shop/order.paid"}"#);
        assert_eq!(no_id.id, "nats-S-7", "the stream sequence names it");
    }

    #[test]
    fn a_plain_object_takes_its_name_from_the_subject() {
        let e = ok("shop.order.paid", r#"{"order":"o-1"}"#);
        assert_eq!(e.name, "shop/order.paid");
        assert_eq!(e.data, serde_json::json!({"order": "o-1"}));
        assert_eq!(e.id, "nats-S-7");
        assert_eq!(name_from_subject("shop"), None);
        assert_eq!(name_from_subject("Shop.Order"), None);
    }

    #[test]
    fn bad_messages_say_why() {
        assert!(err("shop.x", b"not json").contains("not JSON"));
        assert!(err("shop.x", b"[1,2]").contains("not an event object"));
        assert!(err("shop.x", br#"{"name":"Bad Name"}"#).contains("/name"));
        assert!(err("shop.x", br#"{"name":"a/b","data":5}"#).contains("/data"));
        assert!(err("noevent", br#"{"a":1}"#).contains("names no event"));
        assert!(err("shop.x", &vec![b' '; 2048]).contains("over the limit"));
    }
}
