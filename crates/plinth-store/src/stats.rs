//! What the dashboard's overview shows of the recent past, kept off the hot path: the runs that
//! finished are added up per function and minute by the upkeep leader (a "roll-up"), a few
//! seconds behind, into a small table the overview reads whole; and the nodes that serve the
//! store say they are alive.
//!
//! Durations go into logarithmic buckets, four to each doubling (each one spans 19 %), so a
//! percentile read back from them is within about 9 % of the true one.

use std::collections::HashMap;

/// How far back the roll-up looks when it starts (and the most it ever adds up at once): the
/// overview shows one hour.
pub(crate) const ROLL_BACK: i64 = 3600 * 1_000_000;
/// How long a minute's statistics are kept.
pub(crate) const KEEP_MINUTES: i64 = 24 * 3600 * 1_000_000;
/// A minute, in micros.
pub(crate) const MINUTE: i64 = 60 * 1_000_000;
/// How long a node's last beat is kept before the node is forgotten.
pub(crate) const FORGET_NODES: i64 = 3600 * 1_000_000;

/// The runs of one function that ended in one minute with one status, error code and
/// duration bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteStat {
    /// The function.
    pub function: String,
    /// The minute's start (micros).
    pub minute: i64,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The error's code (empty for a success).
    pub code: String,
    /// The duration bucket (see [`bucket`]); -1 for a run that never started.
    pub bucket: i32,
    /// How many runs.
    pub runs: i64,
}

/// The recent past and the present of the runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Runs running or waiting now: (function, status, count).
    pub open: Vec<(String, String, i64)>,
    /// The rolled-up minutes asked for.
    pub minutes: Vec<MinuteStat>,
    /// Up to when the roll-up has added runs (micros); `None` before its first pass.
    pub rolled_until: Option<i64>,
}

/// A node of the store, as it last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBeat {
    /// Its id (its lease owner id).
    pub id: String,
    /// Its host name.
    pub host: String,
    /// Its version of Plinth.
    pub version: String,
    /// When it started (micros).
    pub started_at: i64,
    /// When it last said it was alive (micros).
    pub seen_at: i64,
    /// Whether it led the upkeep then.
    pub leads: bool,
}

/// The bucket of a duration in micros: `floor(4 * log2(micros))`, 0 below 2 µs.
#[must_use]
pub fn bucket(micros: i64) -> i32 {
    if micros < 2 {
        return 0;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let b = (4.0 * (micros as f64).log2()).floor() as i32;
    b
}

/// The middle of a bucket, in micros (the geometric mean of its bounds).
#[must_use]
pub fn bucket_middle(bucket: i32) -> f64 {
    2f64.powf((f64::from(bucket) + 0.5) / 4.0)
}

/// The `q` quantile (0 to 1) of durations counted by bucket, in micros; `None` with no count.
#[must_use]
pub fn quantile(counts: &[(i32, i64)], q: f64) -> Option<f64> {
    let mut sorted: Vec<(i32, i64)> = counts.iter().copied().filter(|(b, n)| *b >= 0 && *n > 0).collect();
    sorted.sort_unstable();
    let total: i64 = sorted.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (b, n) in &sorted {
        seen += n;
        if seen >= rank {
            return Some(bucket_middle(*b));
        }
    }
    sorted.last().map(|(b, _)| bucket_middle(*b))
}

/// Where the runs that ended in a span of time are added up before they are written.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    counts: HashMap<(String, i64, String, String, i32), i64>,
}

impl Tally {
    /// Counts one ended run; `error` is its stored error (JSON), if any.
    pub(crate) fn add(
        &mut self,
        function: String,
        status: String,
        error: Option<&str>,
        started_at: Option<i64>,
        finished_at: i64,
    ) {
        let code = error
            .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
            .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_string))
            .unwrap_or_default();
        let bucket = started_at.map_or(-1, |s| bucket(finished_at.saturating_sub(s)));
        let minute = finished_at - finished_at.rem_euclid(MINUTE);
        *self.counts.entry((function, minute, status, code, bucket)).or_default() += 1;
    }

    /// The minutes, each once.
    pub(crate) fn into_minutes(self) -> Vec<MinuteStat> {
        self.counts
            .into_iter()
            .map(|((function, minute, status, code, bucket), runs)| MinuteStat { function, minute, status, code, bucket, runs })
            .collect()
    }
}

/// The span a roll-up up to `until` adds, given where the last one stopped: from the later of
/// the mark and an hour before `until`, to `until` but never more than an hour; `None` when
/// there is nothing to add.
#[must_use]
pub(crate) fn span(mark: Option<i64>, until: i64) -> Option<(i64, i64)> {
    let from = mark.unwrap_or(i64::MIN).max(until - ROLL_BACK);
    let to = until.min(from.saturating_add(ROLL_BACK));
    (from < to).then_some((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_by_a_quarter_doubling() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(-5), 0);
        assert_eq!(bucket(1_000), 39);
        assert_eq!(bucket(2_000), 43);
        let mut last = 0;
        for us in (1..2_000_000).step_by(997) {
            assert!(bucket(us) >= last, "buckets never go down ({us})");
            last = bucket(us);
        }
        let m = bucket_middle(bucket(50_000));
        assert!((m - 50_000.0).abs() / 50_000.0 < 0.1, "{m}");
    }

    #[test]
    fn quantiles_come_from_the_counts() {
        let fast = bucket(1_000);
        let slow = bucket(1_000_000);
        let counts = [(fast, 98), (slow, 2), (-1, 50)];
        let p50 = quantile(&counts, 0.5).expect("p50");
        let p99 = quantile(&counts, 0.99).expect("p99");
        assert!((p50 - 1_000.0).abs() < 100.0, "{p50}");
        assert!((p99 - 1_000_000.0).abs() < 100_000.0, "{p99}");
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[(-1, 3), (5, 0)], 0.5), None, "runs that never started have no duration");
        assert!(quantile(&counts, 7.0).is_some(), "a quantile past 1 is the largest");
    }

    #[test]
    fn a_tally_keys_by_minute_code_and_bucket() {
        let mut t = Tally::default();
        let err = r#"{"code":"PLINTH_020","message":"x"}"#;
        t.add("f".into(), "failed".into(), Some(err), Some(0), 61 * 1_000_000);
        t.add("f".into(), "failed".into(), Some(err), Some(0), 61 * 1_000_000);
        t.add("f".into(), "cancelled".into(), Some("not json"), None, 5);
        let mut m = t.into_minutes();
        m.sort_by_key(|s| s.minute);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].minute, m[0].code.as_str(), m[0].bucket, m[0].runs), (0, "", -1, 1));
        assert_eq!((m[1].minute, m[1].code.as_str(), m[1].runs), (MINUTE, "PLINTH_020", 2));
    }

    #[test]
    fn a_span_starts_at_the_mark_and_looks_back_an_hour_at_most() {
        assert_eq!(span(None, ROLL_BACK * 5), Some((ROLL_BACK * 4, ROLL_BACK * 5)));
        assert_eq!(span(Some(100), 200), Some((100, 200)));
        assert_eq!(span(Some(200), 200), None);
        assert_eq!(span(Some(300), 200), None, "a clock that went back adds nothing");
    }
}
