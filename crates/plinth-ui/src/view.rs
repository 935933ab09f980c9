//! How values read on a page: times, durations, JSON, and why a run waits, in words.

use plinth_core::flow::HeldBy;
use plinth_core::steps::WaitingFor;
use plinth_core::timefmt::rfc3339;
use serde_json::Value;

/// The most of a JSON value a page shows; past it the page links to the whole value.
pub(crate) const SHOWN_BYTES: usize = 64 * 1024;

/// A time as `2026-12-03 10:46:07.123` (UTC).
pub(crate) fn when(micros: i64) -> String {
    let text = rfc3339(micros);
    let text = text.trim_end_matches('Z').replacen('T', " ", 1);
    // Why: milliseconds are enough to read; the API gives the microseconds.
    match text.find('.') {
        Some(dot) => text[..(dot + 4).min(text.len())].to_string(),
        None => text,
    }
}

/// How long ago `micros` was at `now`, in the largest whole unit (`42 s ago`, `3 min ago`).
pub(crate) fn ago(micros: i64, now: i64) -> String {
    let secs = (now - micros).max(0) / 1_000_000;
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// A duration in milliseconds, in the unit that reads best (`840 µs`, `12.5 ms`, `3.2 s`).
pub(crate) fn duration_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else if ms < 120_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{:.1} min", ms / 60_000.0)
    }
}

/// The time between two instants (micros), as [`duration_ms`] says it.
pub(crate) fn between(from: i64, to: i64) -> String {
    #[allow(clippy::cast_precision_loss)]
    duration_ms((to - from).max(0) as f64 / 1000.0)
}

/// A JSON value indented for reading, cut to [`SHOWN_BYTES`] (on a character boundary); true
/// when it was cut.
pub(crate) fn pretty(value: &Value) -> (String, bool) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    if text.len() <= SHOWN_BYTES {
        return (text, false);
    }
    let mut end = SHOWN_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_string(), true)
}

/// One line of a JSON value for a table cell, at most `max` characters.
pub(crate) fn short(value: &Value, max: usize) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The runs ahead, as counted: the store stops counting at [`plinth_store::AHEAD_COUNTED`].
fn ahead(n: Option<u64>) -> String {
    match n.unwrap_or(0) {
        n if n >= plinth_store::AHEAD_COUNTED => format!("{n} or more"),
        n => n.to_string(),
    }
}

/// Why a queued run waits, in a sentence.
pub(crate) fn held_by(h: &HeldBy) -> String {
    // Why: a limit without `key` holds one lane whose key is empty; it has no key to name.
    let key = h.key.as_deref().filter(|k| !k.is_empty()).map(|k| format!(" for key \u{201c}{k}\u{201d}")).unwrap_or_default();
    let until = h.until.as_deref().map(|u| format!(" It may start at {}.", until_text(u))).unwrap_or_default();
    match h.rule.as_str() {
        "concurrency" => format!(
            "Held by the concurrency limit{key}: {} of {} places taken, {} queued ahead of it.",
            h.running.unwrap_or(0),
            h.limit.unwrap_or(0),
            ahead(h.ahead)
        ),
        "throttle" => format!(
            "Held by the throttle{key} ({} starts a period), {} queued ahead of it.{until}",
            h.limit.unwrap_or(0),
            ahead(h.ahead)
        ),
        "debounce" => format!("Debounced: a later trigger of its key moves its start.{until}"),
        "batch" => format!("Gathering a batch of events.{until}"),
        "delay" => format!("Submitted with a delay.{until}"),
        "retry" => format!("Waiting out the backoff after a failed attempt.{until}"),
        other => format!("Held by `{other}`{key}.{until}"),
    }
}

/// What a waiting run waits for, in a sentence.
pub(crate) fn waiting_for(w: &WaitingFor) -> String {
    let timeout = w.timeout_at.as_deref().map(|t| format!(" It gives up at {}.", until_text(t))).unwrap_or_default();
    match w.kind.as_str() {
        "sleep" => {
            format!("Step \u{201c}{}\u{201d} sleeps until {}.", w.step, w.until.as_deref().map(until_text).unwrap_or_default())
        }
        "event" => format!(
            "Step \u{201c}{}\u{201d} waits for an event named \u{201c}{}\u{201d}.{timeout}",
            w.step,
            w.event.as_deref().unwrap_or_default()
        ),
        "run" => {
            format!("Step \u{201c}{}\u{201d} waits for run {} to end.{timeout}", w.step, w.run_id.as_deref().unwrap_or_default())
        }
        other => format!("Step \u{201c}{}\u{201d} waits ({other}).{timeout}", w.step),
    }
}

/// An RFC 3339 time from the API as [`when`] writes times.
fn until_text(t: &str) -> String {
    plinth_core::timefmt::parse_rfc3339(t).map_or_else(|_| t.to_string(), when)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_and_durations_read_well() {
        assert_eq!(when(1_764_756_367_123_456), "2025-12-03 10:06:07.123");
        assert_eq!(ago(0, 42_000_000), "42 s ago");
        assert_eq!(ago(0, 7_200_000_000), "2 h ago");
        assert_eq!(ago(10, 0), "0 s ago", "a clock step back is not negative");
        assert_eq!(duration_ms(0.25), "250 µs");
        assert_eq!(duration_ms(12.54), "12.5 ms");
        assert_eq!(duration_ms(3_200.0), "3.2 s");
        assert_eq!(duration_ms(600_000.0), "10.0 min");
    }

    #[test]
    fn big_values_are_cut_on_a_character_boundary() {
        let (text, cut) = pretty(&json!({"a": 1}));
        assert!(!cut);
        assert!(text.contains("\"a\": 1"));
        let (text, cut) = pretty(&json!("é".repeat(SHOWN_BYTES)));
        assert!(cut);
        assert!(text.len() <= SHOWN_BYTES);
        assert_eq!(short(&json!("abcdef"), 4), "abc…");
        assert_eq!(short(&json!({"k": 1}), 40), "{\"k\":1}");
    }

    #[test]
    fn holds_and_waits_are_said_in_words() {
        let h = HeldBy {
            rule: "concurrency".into(),
            key: Some("t-1".into()),
            limit: Some(2),
            running: Some(2),
            ahead: Some(3),
            until: None,
        };
        assert_eq!(
            held_by(&h),
            "Held by the concurrency limit for key \u{201c}t-1\u{201d}: 2 of 2 places taken, 3 queued ahead of it."
        );
        let deep = HeldBy { rule: "throttle".into(), ahead: Some(plinth_store::AHEAD_COUNTED), until: None, ..h.clone() };
        assert!(held_by(&deep).contains("1000 or more queued ahead"), "{}", held_by(&deep));
        let below = HeldBy { ahead: Some(plinth_store::AHEAD_COUNTED - 1), ..deep.clone() };
        assert!(held_by(&below).contains(" 999 queued ahead"), "{}", held_by(&below));
        let shared = HeldBy { key: Some(String::new()), ..h.clone() };
        assert!(held_by(&shared).starts_with("Held by the concurrency limit: 2 of 2"), "{}", held_by(&shared));
        let h = HeldBy {
            rule: "mystery".into(),
            key: None,
            limit: None,
            running: None,
            ahead: None,
            until: Some("not a time".into()),
        };
        assert_eq!(held_by(&h), "Held by `mystery`. It may start at not a time.");
        let w = WaitingFor {
            step: "pay".into(),
            kind: "event".into(),
            until: None,
            event: Some("paid".into()),
            timeout_at: None,
            run_id: None,
        };
        assert_eq!(waiting_for(&w), "Step \u{201c}pay\u{201d} waits for an event named \u{201c}paid\u{201d}.");
    }
}
