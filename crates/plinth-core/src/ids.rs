//! Run ids: ULIDs, so that they sort by creation time, made monotonic within a process.

use std::sync::Mutex;
use ulid::{Generator, Ulid};

static GENERATOR: Mutex<Generator> = Mutex::new(Generator::new());

/// A new run id that sorts after every id this process made before.
#[must_use]
pub fn new_run_id() -> String {
    let mut generator = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Why: the generator fails only when 2^80 ids are made in one millisecond; a fresh
    // random ULID is still unique, only not ordered within that millisecond.
    let id = match generator.generate() {
        Ok(id) => id,
        Err(_) => Ulid::generate(),
    };
    id.to_string()
}

/// The smallest id made at `micros` (milliseconds precision): ids at or after that time sort
/// at or after it.
#[must_use]
pub fn id_floor(micros: i64) -> String {
    let ms = u64::try_from(micros.max(0) / 1000).unwrap_or(0);
    Ulid::from_parts(ms, 0).to_string()
}

/// A new correlation id for a request that came without one.
#[must_use]
pub fn new_correlation_id() -> String {
    Ulid::generate().to_string().to_ascii_lowercase()
}

/// A W3C `traceparent` for one attempt of a run: the trace id is the run id's 128 bits (so every
/// attempt of a run shares one trace), the parent id is new for each call.
#[must_use]
pub fn traceparent(run_id: &str) -> String {
    let trace = Ulid::from_string(run_id).map_or_else(|_| Ulid::generate().0, |u| u.0);
    // Why: an all-zero trace or span id is invalid; the random half of a ULID is never all zero in practice,
    // but the spec forbids it, so make sure.
    let trace = if trace == 0 { 1 } else { trace };
    let span = (Ulid::generate().0 as u64).max(1);
    format!("00-{trace:032x}-{span:016x}-01")
}

/// A `traceparent` header as W3C Trace Context defines it, lowercased: `00-<trace id: 32 hex>-
/// <parent id: 16 hex>-<flags: 2 hex>`, neither id all zeros. A later version (not `ff`) is read
/// by its first four fields, as the specification asks, and kept as version `00`. `None` for
/// anything else: the request then starts a new trace, and nothing is refused.
#[must_use]
pub fn parse_traceparent(header: &str) -> Option<String> {
    let h = header.trim().to_ascii_lowercase();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut parts = h.splitn(5, '-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let rest = parts.next();
    let ok = hex(version, 2)
        && version != "ff"
        && (version != "00" || rest.is_none())
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    ok.then(|| format!("00-{trace}-{parent}-{flags}"))
}

/// A `tracestate` header as W3C Trace Context defines it (at most 32 `key=value` members, at
/// most 512 characters), as it is passed on; `None` for an empty or invalid one, which is then
/// dropped without error, as the specification allows.
#[must_use]
pub fn parse_tracestate(header: &str) -> Option<String> {
    if header.len() > 512 {
        return None;
    }
    let mut members: Vec<(&str, &str)> = Vec::new();
    for m in header.split(',').map(|m| m.trim_matches([' ', '\t'])).filter(|m| !m.is_empty()) {
        let (key, value) = m.split_once('=')?;
        if !state_key(key) || !state_value(value) || members.iter().any(|(k, _)| *k == key) {
            return None;
        }
        members.push((key, value));
    }
    let text: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
    (!text.is_empty() && text.len() <= 32).then(|| text.join(","))
}

/// A `tracestate` key: `a-z` then up to 255 of `a-z 0-9 _ - * /`, or `tenant@system` (a tenant
/// of up to 241 such characters starting with `a-z` or a digit, a system of up to 14 starting
/// with `a-z`).
fn state_key(key: &str) -> bool {
    let rest = |s: &str, max: usize| {
        s.len() <= max && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/'))
    };
    match key.split_once('@') {
        Some((tenant, system)) => {
            tenant.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && rest(&tenant[1..], 240)
                && system.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && rest(&system[1..], 13)
        }
        None => key.bytes().next().is_some_and(|b| b.is_ascii_lowercase()) && rest(&key[1..], 255),
    }
}

/// A `tracestate` value: up to 256 printable ASCII characters but `,` and `=`, spaces allowed
/// inside but not at the end.
fn state_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

/// The `traceparent` an attempt of a run hands its handler: the trace the run was accepted in
/// (`stored`, from its request) with a new parent id, or, for a run accepted without one, the
/// trace [`traceparent`] derives from the run id.
#[must_use]
pub fn attempt_traceparent(run_id: &str, stored: Option<&str>) -> String {
    match stored.and_then(parse_traceparent) {
        Some(t) => {
            let span = (Ulid::generate().0 as u64).max(1);
            format!("00-{}-{span:016x}-{}", &t[3..35], &t[53..55])
        }
        None => traceparent(run_id),
    }
}

/// Whether `text` is a well-formed run id.
#[must_use]
pub fn is_run_id(text: &str) -> bool {
    Ulid::from_string(text).is_ok()
}

/// A short, stable fingerprint of some text (FNV-1a, 64 bits): tells two requests apart
/// for idempotency; not a security measure.
#[must_use]
pub fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ordered_and_unique() {
        let ids: Vec<String> = (0..1000).map(|_| new_run_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|i| is_run_id(i)));
    }

    #[test]
    fn a_clients_traceparent_is_kept_and_continued() {
        let sent = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
        let kept = parse_traceparent(sent).expect("valid");
        assert_eq!(kept, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let next = attempt_traceparent(&new_run_id(), Some(&kept));
        assert!(next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && next.ends_with("-01"), "{next}");
        assert_ne!(next, kept, "a new parent id");
        assert_eq!(parse_traceparent(&next).as_deref(), Some(next.as_str()));
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        assert_eq!(parse_traceparent(later).as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    }

    #[test]
    fn a_tracestate_is_kept_when_valid_and_dropped_when_not() {
        assert_eq!(
            parse_tracestate(" rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE").as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(parse_tracestate("acme@vendor=a b").as_deref(), Some("acme@vendor=a b"));
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert!(parse_tracestate(&members.join(",")).is_some(), "32 members");
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        for bad in [
            many.join(","),
            "a=1,a=2".into(),
            "Upper=1".into(),
            "k=".into(),
            "k=a,b".into(),
            "=v".into(),
            format!("k={}", "x".repeat(600)),
            String::new(),
        ] {
            assert_eq!(parse_tracestate(&bad), None, "{bad}");
        }
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        let run = new_run_id();
        let fresh = attempt_traceparent(&run, Some("garbage"));
        assert_eq!(&fresh[3..35], &traceparent(&run)[3..35], "the run's own trace");
    }

    #[test]
    fn traceparents_follow_the_w3c_format() {
        let run = new_run_id();
        let a = traceparent(&run);
        let b = traceparent(&run);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 4, "{a}");
        assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"));
        assert!(parts[1..3].iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())));
        assert_eq!(a[..36], b[..36], "attempts of one run share the trace id");
        assert_eq!(u128::from_str_radix(parts[1], 16).ok(), Ulid::from_string(&run).ok().map(|u| u.0));
    }

    #[test]
    fn a_traceparent_for_a_bad_run_id_is_still_valid() {
        for bad in ["", "not-a-ulid"] {
            let t = traceparent(bad);
            assert_eq!(t.len(), 55, "{t}");
            assert!(!t.contains(&"0".repeat(32)), "{t}");
        }
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(!is_run_id(""));
        assert!(!is_run_id("not-a-ulid"));
        assert!(!is_run_id("01ARZ3NDEKTSV4RRFFQ69G5FAVX"));
    }

    #[test]
    fn fingerprints_are_stable_and_distinct() {
        assert_eq!(fingerprint(""), "cbf29ce484222325");
        assert_eq!(fingerprint("a"), fingerprint("a"));
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }

    #[test]
    fn correlation_ids_differ() {
        assert_ne!(new_correlation_id(), new_correlation_id());
    }
}
