//! `throttle`: at most `limit` runs start per `period`, per key when one is given; the others
//! wait (none is dropped). Enforced with the generic cell rate algorithm (GCRA): one time per
//! key, the "theoretical arrival time", instead of a counter and a window.

use super::KeyExpr;
use crate::policy::DurationSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `throttle: {limit, period, burst, key}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Runs that may start per `period`.
    pub limit: i64,
    /// The period.
    pub period: DurationSpec,
    /// Runs that may start at once after a quiet spell (1: evenly spaced starts). In any window
    /// of one `period`, at most `limit + burst` runs start.
    #[serde(default = "one")]
    pub burst: i64,
    /// The key; none: one throttle for the whole function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyExpr>,
}

const fn one() -> i64 {
    1
}

impl Throttle {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=1_000_000).contains(&self.limit) {
            return Err(("throttle.limit".into(), format!("must be between 1 and 1000000, got {}", self.limit)));
        }
        let period = self.period.get();
        if period < Duration::from_millis(1) || period > Duration::from_secs(7 * 24 * 3600) {
            return Err(("throttle.period".into(), format!("must be from 1ms to 7 days, got {}", self.period)));
        }
        if !(1..=1_000_000).contains(&self.burst) {
            return Err(("throttle.burst".into(), format!("must be between 1 and 1000000, got {}", self.burst)));
        }
        Ok(())
    }

    /// The rule as the store applies it.
    #[must_use]
    pub fn gcra(&self) -> Gcra {
        let period = i64::try_from(self.period.get().as_micros()).unwrap_or(i64::MAX);
        Gcra {
            interval: (period / self.limit.max(1)).max(1),
            burst: u32::try_from(self.burst.max(1)).unwrap_or(u32::MAX),
            limit: u32::try_from(self.limit.max(1)).unwrap_or(u32::MAX),
        }
    }
}

/// A throttle as the store applies it: one start every `interval` micros, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    /// Micros between evenly spaced starts (`period / limit`).
    pub interval: i64,
    /// Starts allowed at once after a quiet spell.
    pub burst: u32,
    /// The rule's `limit`, to show in `held_by`.
    pub limit: u32,
}

impl Gcra {
    /// How far ahead of now the key's time may run and still start a run.
    fn tolerance(self) -> i64 {
        self.interval.saturating_mul(i64::from(self.burst) - 1)
    }

    /// How many runs of a key whose time is `tat` may start `now` (at most `want`), and the key's
    /// time after they start.
    #[must_use]
    pub fn admit(self, tat: i64, now: i64, want: u32) -> (u32, i64) {
        let base = tat.max(now);
        let slack = now.saturating_add(self.tolerance()).saturating_sub(base);
        if slack < 0 || want == 0 {
            return (0, tat);
        }
        let fits = u32::try_from(slack / self.interval + 1).unwrap_or(u32::MAX);
        let n = fits.min(want);
        (n, base.saturating_add(self.interval.saturating_mul(i64::from(n))))
    }

    /// When the next run of a key whose time is `tat` may start.
    #[must_use]
    pub fn next_start(self, tat: i64) -> i64 {
        tat.saturating_sub(self.tolerance())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Throttle, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_throttle_parses_with_a_default_burst() {
        let t = parse("{limit: 20, period: 1s}").expect("parses");
        assert_eq!((t.limit, t.period.get(), t.burst, t.key.is_none()), (20, Duration::from_secs(1), 1, true));
        assert_eq!(t.validate(), Ok(()));
        assert_eq!(t.gcra(), Gcra { interval: 50_000, burst: 1, limit: 20 });
        let t = parse("{limit: 10, period: 1m, burst: 5, key: input.account}").expect("parses");
        assert_eq!(t.key.as_ref().map(KeyExpr::source), Some("input.account"));
    }

    #[test]
    fn bad_throttles_are_refused_with_their_field() {
        let field = |yaml: &str| parse(yaml).expect("parses").validate().map_err(|e| e.0);
        assert_eq!(field("{limit: 0, period: 1s}"), Err("throttle.limit".into()));
        assert_eq!(field("{limit: -5, period: 1s}"), Err("throttle.limit".into()));
        assert_eq!(field("{limit: 5, period: 0s}"), Err("throttle.period".into()));
        assert_eq!(field("{limit: 5, period: 1s, burst: 0}"), Err("throttle.burst".into()));
        assert!(parse("{limit: 5, period: soon}").expect_err("unparsable").contains("not a duration"));
        assert!(parse("{limit: 5}").expect_err("no period").contains("period"));
        assert!(parse("{limit: 5, period: 1s, per: 2}").expect_err("unknown").contains("unknown field"));
    }

    #[test]
    fn starts_are_spaced_and_a_burst_spends_the_slack() {
        let g = Gcra { interval: 100, burst: 3, limit: 10 };
        assert_eq!(g.admit(0, 1_000, 10), (3, 1_300), "a quiet key starts a burst at once");
        assert_eq!(g.admit(1_300, 1_000, 10), (0, 1_300), "then none until time catches up");
        assert_eq!(g.next_start(1_300), 1_100);
        assert_eq!(g.admit(1_300, 1_100, 10), (1, 1_400), "one per interval after");
        assert_eq!(g.admit(0, 1_000, 2), (2, 1_200), "never more than asked");
        assert_eq!(g.admit(0, 1_000, 0), (0, 0));
        let smooth = Gcra { interval: 50, burst: 1, limit: 20 };
        assert_eq!(smooth.admit(0, 500, 10), (1, 550));
        assert_eq!(smooth.admit(550, 549, 10), (0, 550));
        assert_eq!(smooth.admit(550, 550, 10), (1, 600));
    }

    #[test]
    fn no_window_of_one_period_holds_more_than_limit_plus_burst() {
        let g = Throttle { limit: 20, period: DurationSpec(Duration::from_secs(1)), burst: 3, key: None }.gcra();
        let (mut tat, mut starts) = (0_i64, Vec::new());
        let mut now = 0;
        while now < 5_000_000 {
            let (n, next) = g.admit(tat, now, 100);
            starts.extend(std::iter::repeat_n(now, n as usize));
            tat = next;
            now += 7_000;
        }
        let most = starts.iter().map(|s| starts.iter().filter(|t| **t >= *s && **t < s + 1_000_000).count()).max();
        assert!(most.is_some_and(|m| m <= 23), "at most limit + burst in a period: {most:?}");
        assert!(starts.len() >= 100, "about limit per period over five periods: {}", starts.len());
    }
}
