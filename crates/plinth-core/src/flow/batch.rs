//! `batch`: the events of a key gather in one queued run, as `input.events`, which starts when
//! it holds `max_size` events or `timeout` after its first.

use super::KeyExpr;
use crate::policy::DurationSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `batch: {max_size, timeout, key}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The most events one run gets, from 1 to 1,000.
    pub max_size: i64,
    /// How long after its first event a run that is not full starts.
    pub timeout: DurationSpec,
    /// The key; none: one open batch for the whole function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyExpr>,
}

/// The largest batch.
pub const MAX_BATCH: i64 = 1_000;

const LONGEST: Duration = Duration::from_secs(7 * 24 * 3600);

impl Batch {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=MAX_BATCH).contains(&self.max_size) {
            return Err(("batch.max_size".into(), format!("must be from 1 to {MAX_BATCH}, got {}", self.max_size)));
        }
        let t = self.timeout.get();
        if t < Duration::from_millis(1) || t > LONGEST {
            return Err(("batch.timeout".into(), format!("must be from 1ms to 7 days, got {}", self.timeout)));
        }
        Ok(())
    }
}

/// What a run an event starts in a batched function carries to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCheck {
    /// The key's value (`""`: the function's one open batch).
    pub key: String,
    /// The most events in one run.
    pub max_size: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(yaml: &str) -> Result<(), String> {
        let b: Batch = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        b.validate().map_err(|e| e.0)
    }

    #[test]
    fn a_batch_parses_and_validates() {
        assert_eq!(field("{max_size: 100, timeout: 5s, key: event.data.customer}"), Ok(()));
        assert_eq!(field("{max_size: 1000, timeout: 1ms}"), Ok(()));
        assert_eq!(field("{max_size: 1001, timeout: 5s}"), Err("batch.max_size".into()));
        assert_eq!(field("{max_size: 0, timeout: 5s}"), Err("batch.max_size".into()));
        assert_eq!(field("{max_size: -4, timeout: 5s}"), Err("batch.max_size".into()));
        assert_eq!(field("{max_size: 10, timeout: 0s}"), Err("batch.timeout".into()));
        assert_eq!(field("{max_size: 10, timeout: 8 days}"), Err("batch.timeout".into()));
        assert!(field("{max_size: 10}").is_err_and(|e| e.contains("missing field")));
        assert!(field("{max_size: 10, timeout: 1s, key: 'event.'}").is_err_and(|e| e.contains("not valid CEL")));
    }
}
