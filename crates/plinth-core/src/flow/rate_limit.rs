//! `rate_limit`: at most `limit` runs of a function are created per `period`, per key when one
//! is given. Past it `POST /run` answers 429 with `Retry-After`, and an event starts no run of
//! the function (the event records why). Counted in fixed windows aligned on the period.

use super::KeyExpr;
use crate::policy::DurationSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `rate_limit: {limit, period, key}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Runs that may be created per `period`.
    pub limit: i64,
    /// The period.
    pub period: DurationSpec,
    /// The key; none: one limit for the whole function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyExpr>,
}

impl RateLimit {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=1_000_000).contains(&self.limit) {
            return Err(("rate_limit.limit".into(), format!("must be between 1 and 1000000, got {}", self.limit)));
        }
        let period = self.period.get();
        if period < Duration::from_millis(1) || period > Duration::from_secs(7 * 24 * 3600) {
            return Err(("rate_limit.period".into(), format!("must be from 1ms to 7 days, got {}", self.period)));
        }
        Ok(())
    }
}

/// The rate limit a new run must pass when it is stored: its key's count in the current window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateCheck {
    /// The key's value (`""`: the function's shared limit).
    pub key: String,
    /// Runs per window.
    pub limit: u32,
    /// The window, in micros.
    pub period: i64,
}

impl RateCheck {
    /// The start of the window holding `now` (windows are aligned on multiples of the period).
    #[must_use]
    pub fn window(&self, now: i64) -> i64 {
        now - now.rem_euclid(self.period.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RateLimit, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_rate_limit_parses_and_validates() {
        let r = parse("{limit: 100, period: 1m, key: input.customer}").expect("parses");
        assert_eq!((r.limit, r.period.get()), (100, Duration::from_secs(60)));
        assert_eq!(r.validate(), Ok(()));
        let field = |yaml: &str| parse(yaml).expect("parses").validate().map_err(|e| e.0);
        assert_eq!(field("{limit: 0, period: 1s}"), Err("rate_limit.limit".into()));
        assert_eq!(field("{limit: -1, period: 1s}"), Err("rate_limit.limit".into()));
        assert_eq!(field("{limit: 1, period: 0s}"), Err("rate_limit.period".into()));
        assert_eq!(field("{limit: 1, period: 30d}"), Err("rate_limit.period".into()));
        assert!(parse("{limit: 1, period: later}").expect_err("unparsable").contains("not a duration"));
        assert!(parse("{limit: 1, period: 1s, burst: 2}").expect_err("no burst here").contains("unknown field"));
    }

    #[test]
    fn windows_are_aligned_on_the_period() {
        let c = RateCheck { key: String::new(), limit: 1, period: 1_000 };
        assert_eq!(c.window(0), 0);
        assert_eq!(c.window(999), 0);
        assert_eq!(c.window(1_000), 1_000);
        assert_eq!(c.window(2_500), 2_000);
        assert_eq!(c.window(-1), -1_000, "before the epoch too");
    }
}
