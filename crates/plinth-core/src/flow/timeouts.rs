//! `timeouts: {start, finish}`: a run not started within `start` of its creation, or not
//! finished within `finish`, is cancelled with its own error code (PLINTH_046, PLINTH_047).

use crate::policy::DurationSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `timeouts: {start, finish}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// The longest a run may stay queued before its first attempt starts, from its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DurationSpec>,
    /// The longest a run may take from its creation to its end, attempts, retries and waits
    /// included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<DurationSpec>,
}

const LONGEST: Duration = Duration::from_secs(30 * 24 * 3600);

impl Timeouts {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.start.is_none() && self.finish.is_none() {
            return Err(("timeouts".into(), "give `start`, `finish` or both".into()));
        }
        for (field, d) in [("timeouts.start", self.start), ("timeouts.finish", self.finish)] {
            if let Some(d) = d
                && (d.get() < Duration::from_millis(1) || d.get() > LONGEST)
            {
                return Err((field.into(), format!("must be from 1ms to 30 days, got {d}")));
            }
        }
        if let (Some(start), Some(finish)) = (self.start, self.finish)
            && start >= finish
        {
            return Err((
                "timeouts.start".into(),
                format!("{start} is not shorter than `finish` {finish}: `finish` would always cancel the run first"),
            ));
        }
        Ok(())
    }
}

/// When a new run must have started and ended, and whether events may cancel it: what the
/// store keeps on the run for its timeouts and `cancel_on`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expiry {
    /// Cancelled with PLINTH_046 when still queued, never started, at this time (micros).
    pub start_by: Option<i64>,
    /// Cancelled with PLINTH_047 when not finished at this time (micros).
    pub finish_by: Option<i64>,
    /// Its function has `cancel_on` rules: events look for it.
    pub cancel_on: bool,
}

impl Expiry {
    /// The expiry of a run of a function with `policy`, created at `created_at` (micros).
    #[must_use]
    pub fn of(policy: &crate::RunPolicy, created_at: i64) -> Self {
        let at = |d: Option<DurationSpec>| {
            d.map(|d| created_at.saturating_add(i64::try_from(d.get().as_micros()).unwrap_or(i64::MAX)))
        };
        let t = policy.timeouts.clone().unwrap_or_default();
        Self { start_by: at(t.start), finish_by: at(t.finish), cancel_on: !policy.cancel_on.is_empty() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(yaml: &str) -> Result<(), String> {
        let t: Timeouts = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        t.validate().map_err(|e| e.0)
    }

    #[test]
    fn timeouts_parse_and_validate() {
        assert_eq!(field("{start: 10s, finish: 1m}"), Ok(()));
        assert_eq!(field("{finish: 2h}"), Ok(()));
        assert_eq!(field("{}"), Err("timeouts".into()));
        assert_eq!(field("{start: 0s}"), Err("timeouts.start".into()));
        assert_eq!(field("{finish: 31 days}"), Err("timeouts.finish".into()));
        assert_eq!(field("{start: 1m, finish: 1m}"), Err("timeouts.start".into()));
        assert!(field("{start: soon}").is_err_and(|e| e.contains("not a duration")));
        assert!(field("{begin: 1s}").is_err_and(|e| e.contains("unknown field")));
    }

    #[test]
    fn the_expiry_counts_from_creation() {
        let policy: crate::RunPolicy =
            serde_yaml_ng::from_str("{timeouts: {start: 2s, finish: 5s}, cancel_on: [{event: a/b}]}").expect("parses");
        let e = Expiry::of(&policy, 1_000_000);
        assert_eq!(e, Expiry { start_by: Some(3_000_000), finish_by: Some(6_000_000), cancel_on: true });
        assert_eq!(Expiry::of(&crate::RunPolicy::default(), 5), Expiry::default());
    }
}
