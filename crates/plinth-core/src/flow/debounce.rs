//! `debounce`: a run starts `period` after the last trigger of its key; a newer trigger with the
//! same key inside the period replaces the queued run's input and restarts the wait, never past
//! `max_wait` after the first.

use super::KeyExpr;
use crate::policy::DurationSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `debounce: {period, key, max_wait}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Debounce {
    /// How long after the last trigger the run starts.
    pub period: DurationSpec,
    /// The longest a run waits after its first trigger, however many follow (none: no bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<DurationSpec>,
    /// The key; none: one debounced run for the whole function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyExpr>,
}

const LONGEST: Duration = Duration::from_secs(7 * 24 * 3600);

impl Debounce {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let period = self.period.get();
        if period < Duration::from_millis(1) || period > LONGEST {
            return Err(("debounce.period".into(), format!("must be from 1ms to 7 days, got {}", self.period)));
        }
        if let Some(max) = self.max_wait {
            if max.get() < period {
                return Err((
                    "debounce.max_wait".into(),
                    format!("{max} is shorter than the period {}: no run could ever wait its period", self.period),
                ));
            }
            if max.get() > LONGEST {
                return Err(("debounce.max_wait".into(), format!("must be at most 7 days, got {max}")));
            }
        }
        Ok(())
    }
}

/// What a new run of a debounced function carries to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebounceCheck {
    /// The key's value (`""`: the function's one debounced run).
    pub key: String,
    /// Micros from the last trigger to the start.
    pub period: i64,
    /// Micros from the first trigger to the latest start, if bounded.
    pub max_wait: Option<i64>,
}

impl DebounceCheck {
    /// When a queued run created at `created_at` starts, after a trigger at `now`.
    #[must_use]
    pub fn due(&self, created_at: i64, now: i64) -> i64 {
        let after_last = now.saturating_add(self.period);
        self.max_wait.map_or(after_last, |max| after_last.min(created_at.saturating_add(max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Debounce, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_debounce_parses_and_validates() {
        let d = parse("{period: 2s, max_wait: 10s, key: input.user}").expect("parses");
        assert_eq!(d.validate(), Ok(()));
        let field = |yaml: &str| parse(yaml).expect("parses").validate().map_err(|e| e.0);
        assert_eq!(field("{period: 0s}"), Err("debounce.period".into()));
        assert_eq!(field("{period: 10s, max_wait: 5s}"), Err("debounce.max_wait".into()));
        assert_eq!(field("{period: 1s, max_wait: 30d}"), Err("debounce.max_wait".into()));
        assert_eq!(field("{period: 5s, max_wait: 5s}"), Ok(()), "equal is fine: the first trigger waits its period");
        assert!(parse("{period: soon}").expect_err("unparsable").contains("not a duration"));
        assert!(parse("{period: 1s, wait: 2s}").expect_err("unknown").contains("unknown field"));
    }

    #[test]
    fn a_trigger_moves_the_start_but_never_past_max_wait() {
        let c = DebounceCheck { key: String::new(), period: 100, max_wait: Some(250) };
        assert_eq!(c.due(0, 0), 100);
        assert_eq!(c.due(0, 90), 190);
        assert_eq!(c.due(0, 200), 250, "capped at the first trigger plus max_wait");
        let unbounded = DebounceCheck { max_wait: None, ..c };
        assert_eq!(unbounded.due(0, 1_000), 1_100);
    }
}
