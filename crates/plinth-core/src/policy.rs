//! A function's run policy: attempts, backoff with full jitter, timeout, and flow control
//! (the rules themselves live in [`crate::flow`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A duration written as `30s`, `500ms`, `2m`, `1h 30m` or a whole number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    /// Parses `30s`, `1m30s`, `250ms`, or plain seconds such as `5`.
    ///
    /// # Errors
    /// When the text is neither.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(Self(Duration::from_secs(secs)));
        }
        humantime::parse_duration(t)
            .map(Self)
            .map_err(|e| format!("`{t}` is not a duration ({e}); write it like 30s, 500ms, 2m or 1h"))
    }

    /// The duration.
    #[must_use]
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Seconds, as a float.
    #[must_use]
    pub fn secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl std::fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl utoipa::PartialSchema for DurationSpec {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A duration such as `30s`, `500ms`, `2m` or `1h 30m`."))
            .examples([serde_json::json!("30s")])
            .into()
    }
}

impl utoipa::ToSchema for DurationSpec {}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Self(Duration::from_secs(s))),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Backoff between attempts: exponential with full jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// The ceiling of the first retry's delay.
    pub initial: DurationSpec,
    /// The largest ceiling.
    pub max: DurationSpec,
    /// How much the ceiling grows each attempt.
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: DurationSpec(Duration::from_secs(1)), max: DurationSpec(Duration::from_secs(60)), multiplier: 2.0 }
    }
}

impl Backoff {
    /// The ceiling of the delay after attempt `attempt` (1-based) failed:
    /// `min(max, initial * multiplier^(attempt-1))`.
    #[must_use]
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.secs_f64() * self.multiplier.powi(exp);
        let max = self.max.secs_f64();
        let capped = if secs.is_finite() { secs.min(max) } else { max };
        Duration::from_secs_f64(capped.max(0.0))
    }

    /// The delay after attempt `attempt` failed: uniform in `[0, ceiling]` ("full jitter").
    /// `unit` is a random number in `[0, 1)`.
    #[must_use]
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// How many attempts a run gets, and how long to wait between them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Retries {
    /// Attempts in all, the first one included (1 means no retry).
    pub max_attempts: u32,
    /// Backoff between attempts.
    pub backoff: Backoff,
}

impl Default for Retries {
    fn default() -> Self {
        Self { max_attempts: 3, backoff: Backoff::default() }
    }
}

/// A function's policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RunPolicy {
    /// Attempts and backoff.
    pub retries: Retries,
    /// The longest one attempt may run.
    pub timeout: DurationSpec,
    /// The most attempts of this function at once across all nodes, per key when one is given
    /// (none: as many as the nodes' `--workers` allow).
    pub concurrency: Option<crate::flow::Concurrency>,
    /// At most `limit` runs start per `period` across all nodes, per key when one is given.
    pub throttle: Option<crate::flow::Throttle>,
    /// At most `limit` runs are created per `period`, per key when one is given; past it
    /// `POST /run` answers 429 and an event starts no run of the function.
    pub rate_limit: Option<crate::flow::RateLimit>,
    /// A run starts `period` after the last trigger of its key; newer triggers replace its input.
    pub debounce: Option<crate::flow::Debounce>,
    /// At most one unfinished run per key: `skip` refuses a new one, `cancel` cancels the old.
    pub singleton: Option<crate::flow::Singleton>,
    /// A run not started within `start`, or not finished within `finish`, of its creation is
    /// cancelled with its own error code.
    pub timeouts: Option<crate::flow::Timeouts>,
    /// The events of a key gather in one run (`input.events`), started when `max_size` is
    /// reached or `timeout` after the first.
    pub batch: Option<crate::flow::Batch>,
    /// Seconds ahead of a run's place in the queue (-600 to 600), from its input or event.
    pub priority: Option<crate::flow::PriorityExpr>,
    /// Events that cancel the function's unfinished runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cancel_on: Vec<crate::flow::CancelOn>,
    /// The most runs of this function waiting in the queue; `POST /run` answers 429 beyond it
    /// (none: no limit).
    pub max_queued: Option<u32>,
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self {
            retries: Retries::default(),
            timeout: DurationSpec(Duration::from_secs(300)),
            concurrency: None,
            throttle: None,
            rate_limit: None,
            debounce: None,
            singleton: None,
            timeouts: None,
            batch: None,
            priority: None,
            cancel_on: Vec::new(),
            max_queued: None,
        }
    }
}

impl RunPolicy {
    /// Checks the values; returns `(field, reason)` for the first bad one.
    ///
    /// # Errors
    /// The field (relative to `policy`) and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let r = &self.retries;
        if !(1..=100).contains(&r.max_attempts) {
            return Err(("retries.max_attempts".into(), format!("must be between 1 and 100, got {}", r.max_attempts)));
        }
        let b = &r.backoff;
        if !(b.multiplier.is_finite() && (1.0..=100.0).contains(&b.multiplier)) {
            return Err(("retries.backoff.multiplier".into(), format!("must be between 1 and 100, got {}", b.multiplier)));
        }
        if b.initial > b.max {
            return Err(("retries.backoff.initial".into(), format!("{} is larger than backoff.max {}", b.initial, b.max)));
        }
        if b.max.get() > Duration::from_secs(24 * 3600) {
            return Err(("retries.backoff.max".into(), "must be at most 24h".into()));
        }
        if self.timeout.get().is_zero() || self.timeout.get() > Duration::from_secs(24 * 3600) {
            return Err(("timeout".into(), format!("must be more than 0 and at most 24h, got {}", self.timeout)));
        }
        if self.max_queued.is_some_and(|n| !(1..=10_000_000).contains(&n)) {
            return Err(("max_queued".into(), "must be between 1 and 10000000".into()));
        }
        crate::flow::validate(self)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(DurationSpec::parse("30s").map(DurationSpec::get), Ok(Duration::from_secs(30)));
        assert_eq!(DurationSpec::parse("250ms").map(DurationSpec::get), Ok(Duration::from_millis(250)));
        assert_eq!(DurationSpec::parse("7").map(DurationSpec::get), Ok(Duration::from_secs(7)));
        assert!(DurationSpec::parse("soon").is_err());
        assert!(DurationSpec::parse("-3s").is_err());
        assert_eq!(DurationSpec(Duration::from_millis(1500)).to_string(), "1s 500ms");
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            initial: DurationSpec(Duration::from_secs(1)),
            max: DurationSpec(Duration::from_secs(10)),
            multiplier: 2.0,
        };
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(4), Duration::from_secs(8));
        assert_eq!(b.ceiling(5), Duration::from_secs(10));
        assert_eq!(b.ceiling(10_000), Duration::from_secs(10));
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(b.delay(3, 7.0), b.ceiling(3));
        assert_eq!(b.delay(3, -1.0), Duration::ZERO);
    }

    #[test]
    fn validation_names_the_bad_field() {
        assert_eq!(RunPolicy::default().validate(), Ok(()));
        let mut p = RunPolicy::default();
        p.retries.max_attempts = 0;
        assert_eq!(p.validate().map_err(|e| e.0), Err("retries.max_attempts".to_string()));
        let mut p = RunPolicy::default();
        p.retries.backoff.multiplier = 0.5;
        assert_eq!(p.validate().map_err(|e| e.0), Err("retries.backoff.multiplier".to_string()));
        let mut p = RunPolicy::default();
        p.retries.backoff.initial = DurationSpec(Duration::from_secs(100));
        assert_eq!(p.validate().map_err(|e| e.0), Err("retries.backoff.initial".to_string()));
        let p = RunPolicy { timeout: DurationSpec(Duration::ZERO), ..RunPolicy::default() };
        assert_eq!(p.validate().map_err(|e| e.0), Err("timeout".to_string()));
        let p = RunPolicy { concurrency: Some(crate::flow::Concurrency { limit: 0, key: None }), ..RunPolicy::default() };
        assert_eq!(p.validate().map_err(|e| e.0), Err("concurrency.limit".to_string()));
    }
}
