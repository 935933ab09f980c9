//! Time as Plinth stores it (microseconds since the Unix epoch) and shows it (RFC 3339).

use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Microseconds since the Unix epoch, now.
#[must_use]
pub fn now_micros() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// RFC 3339 text (UTC, microsecond precision) for a microsecond timestamp.
#[must_use]
pub fn rfc3339(micros: i64) -> String {
    let nanos = i128::from(micros) * 1000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| micros.to_string())
}

/// Parses RFC 3339 text into microseconds since the epoch.
///
/// # Errors
/// When the text is not RFC 3339.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).map_err(|_| "time out of range".to_string())
}

/// Serde helpers that show an optional microsecond timestamp as RFC 3339.
pub mod serde_opt {
    use serde::Serializer;

    /// Serializes `Some(micros)` as RFC 3339 text and `None` as null.
    ///
    /// # Errors
    /// Only those of the serializer.
    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.serialize_str(&super::rfc3339(*m)),
            None => s.serialize_none(),
        }
    }
}

/// Serde helper that shows a microsecond timestamp as RFC 3339.
pub mod serde_req {
    use serde::Serializer;

    /// Serializes micros as RFC 3339 text.
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_micros() {
        let m = 1_700_000_000_123_456;
        let text = rfc3339(m);
        assert_eq!(text, "2023-11-14T22:13:20.123456Z");
        assert_eq!(parse_rfc3339(&text), Ok(m));
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        assert!(parse_rfc3339("yesterday").is_err());
        assert!(parse_rfc3339("").is_err());
        // A timestamp far outside the representable range falls back to digits.
        assert_eq!(rfc3339(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_micros() > 1_577_836_800_000_000);
    }
}
