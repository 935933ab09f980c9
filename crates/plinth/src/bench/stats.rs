//! Percentiles of latency samples, and the median of repeated figures.

use serde::Serialize;

/// Percentiles of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Summary {
    pub(crate) samples: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

/// The nearest-rank percentile `p` (0 < p <= 100) of sorted samples; `None` when there are none.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Summarises samples given in microseconds; `None` when there are none.
pub(crate) fn summarize(micros: &[u64]) -> Option<Summary> {
    #[allow(clippy::cast_precision_loss)]
    let mut ms: Vec<f64> = micros.iter().map(|&m| m as f64 / 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    Some(Summary {
        samples: ms.len(),
        p50_ms: round3(percentile(&ms, 50.0)?),
        p90_ms: round3(percentile(&ms, 90.0)?),
        p99_ms: round3(percentile(&ms, 99.0)?),
        max_ms: round3(*ms.last()?),
    })
}

/// The median of the figure at JSON `pointer` in each of `rounds` (those that have it).
pub(crate) fn median_at(rounds: &[serde_json::Value], pointer: &str) -> Option<f64> {
    median(&rounds.iter().filter_map(|r| r.pointer(pointer).and_then(serde_json::Value::as_f64)).collect::<Vec<_>>())
}

/// The ratio of the medians at `pointer` of rounds `a` over rounds `b`, rounded.
pub(crate) fn ratio_at(a: &[serde_json::Value], b: &[serde_json::Value], pointer: &str) -> Option<f64> {
    let (a, b) = (median_at(a, pointer)?, median_at(b, pointer)?);
    (b > 0.0).then(|| round3(a / b))
}

/// The median of a few figures (the lower middle one for an even count).
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len().checked_sub(1)? / 2).copied()
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_nearest_rank() {
        let micros: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let s = summarize(&micros).expect("samples");
        assert_eq!((s.samples, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms), (100, 50.0, 90.0, 99.0, 100.0));
        assert_eq!(percentile(&[7.0], 1.0), Some(7.0));
    }

    #[test]
    fn no_samples_give_no_summary() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn out_of_range_percentiles_are_refused() {
        assert_eq!(percentile(&[1.0, 2.0], 0.0), None);
        assert_eq!(percentile(&[1.0, 2.0], 100.5), None);
        assert_eq!(percentile(&[1.0, 2.0], f64::NAN), None);
    }

    #[test]
    fn median_takes_the_middle_of_unsorted_figures() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
    }
}
