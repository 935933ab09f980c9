//! The overview's figures from the store's statistics: per function, the runs that ended in the
//! last hour by status, per minute, their p50 and p99 durations and their failures by code; and
//! the nodes, alive or lost.

use crate::view::{ago, duration_ms, when};
use plinth_store::{NodeBeat, RunStats, quantile};
use std::collections::BTreeMap;

/// The minutes the overview shows.
pub(crate) const MINUTES: i64 = 60;
const MINUTE: i64 = 60_000_000;
/// A node that has not beaten for this long is shown as lost (the beat comes every 2 s).
const ALIVE_FOR: i64 = 15_000_000;

/// One bar of a function's runs-per-minute chart.
pub(crate) struct Bar {
    pub(crate) x: i64,
    pub(crate) y: i64,
    pub(crate) h: i64,
    pub(crate) title: String,
}

/// A function's last hour.
#[derive(Default)]
pub(crate) struct Hour {
    pub(crate) succeeded: i64,
    pub(crate) failed: i64,
    pub(crate) cancelled: i64,
    pub(crate) running: i64,
    pub(crate) waiting: i64,
    pub(crate) p50: String,
    pub(crate) p99: String,
    /// (code, runs), the most first.
    pub(crate) codes: Vec<(String, i64)>,
    pub(crate) bars: Vec<Bar>,
    /// The busiest minute's runs.
    pub(crate) peak: i64,
}

/// The chart's height in its own units.
pub(crate) const CHART_H: i64 = 24;

/// Every function's last hour, from `stats` read at `now`.
pub(crate) fn hours(stats: &RunStats, now: i64) -> BTreeMap<String, Hour> {
    let first = now - now.rem_euclid(MINUTE) - (MINUTES - 1) * MINUTE;
    let mut per_minute: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut buckets: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    let mut codes: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut out: BTreeMap<String, Hour> = BTreeMap::new();
    for m in stats.minutes.iter().filter(|m| m.minute >= first) {
        let h = out.entry(m.function.clone()).or_default();
        match m.status.as_str() {
            "succeeded" => h.succeeded += m.runs,
            "failed" => h.failed += m.runs,
            _ => h.cancelled += m.runs,
        }
        if let Ok(i) = usize::try_from((m.minute - first) / MINUTE) {
            let counts = per_minute.entry(m.function.clone()).or_insert_with(|| vec![0; 60]);
            if let Some(c) = counts.get_mut(i) {
                *c += m.runs;
            }
        }
        buckets.entry(m.function.clone()).or_default().push((m.bucket, m.runs));
        if m.status == "failed" && !m.code.is_empty() {
            *codes.entry(m.function.clone()).or_default().entry(m.code.clone()).or_default() += m.runs;
        }
    }
    for (function, status, n) in &stats.open {
        let h = out.entry(function.clone()).or_default();
        if status == "running" {
            h.running += n;
        } else {
            h.waiting += n;
        }
    }
    for (function, h) in &mut out {
        let b = buckets.get(function).map_or(&[][..], Vec::as_slice);
        let fmt = |q| quantile(b, q).map(|us| duration_ms(us / 1000.0)).unwrap_or_default();
        h.p50 = fmt(0.5);
        h.p99 = fmt(0.99);
        let mut c: Vec<(String, i64)> = codes.remove(function).unwrap_or_default().into_iter().collect();
        c.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        h.codes = c;
        let counts = per_minute.remove(function).unwrap_or_else(|| vec![0; 60]);
        h.peak = counts.iter().copied().max().unwrap_or(0);
        h.bars = bars(&counts, first, h.peak);
    }
    out
}

fn bars(counts: &[i64], first: i64, peak: i64) -> Vec<Bar> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| {
            let i = i64::try_from(i).unwrap_or(0);
            let h = ((n * CHART_H + peak - 1) / peak.max(1)).clamp(1, CHART_H);
            let at = when(first + i * MINUTE);
            Bar { x: i * 2, y: CHART_H - h, h, title: format!("{}: {n} ended", at.get(11..16).unwrap_or(&at)) }
        })
        .collect()
}

/// A node as the overview lists it.
pub(crate) struct NodeRow {
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) version: String,
    pub(crate) started: String,
    pub(crate) seen: String,
    pub(crate) alive: bool,
    pub(crate) leads: bool,
}

/// The nodes at `now`: a node leads only while it is alive.
pub(crate) fn nodes(nodes: Vec<NodeBeat>, now: i64) -> Vec<NodeRow> {
    nodes
        .into_iter()
        .map(|n| {
            let alive = now - n.seen_at <= ALIVE_FOR;
            NodeRow {
                started: when(n.started_at),
                seen: ago(n.seen_at, now),
                leads: alive && n.leads,
                alive,
                id: n.id,
                host: n.host,
                version: n.version,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plinth_store::{MinuteStat, bucket};

    fn minute(function: &str, minute: i64, status: &str, code: &str, us: i64, runs: i64) -> MinuteStat {
        MinuteStat { function: function.into(), minute, status: status.into(), code: code.into(), bucket: bucket(us), runs }
    }

    #[test]
    fn an_hour_adds_up_the_minutes_and_the_open_runs() {
        let now = 100 * MINUTE + 30_000_000;
        let stats = RunStats {
            open: vec![("f".into(), "running".into(), 2), ("g".into(), "waiting".into(), 5)],
            minutes: vec![
                minute("f", 100 * MINUTE, "succeeded", "", 2_000, 9),
                minute("f", 99 * MINUTE, "failed", "PLINTH_020", 400_000, 1),
                minute("f", 98 * MINUTE, "failed", "PLINTH_023", 400_000, 3),
                minute("f", 10 * MINUTE, "succeeded", "", 2_000, 1000),
                minute("f", 100 * MINUTE, "cancelled", "PLINTH_030", -1, 1),
            ],
            rolled_until: Some(now),
        };
        let hours = hours(&stats, now);
        let f = &hours["f"];
        assert_eq!((f.succeeded, f.failed, f.cancelled, f.running), (9, 4, 1, 2), "a minute older than the hour is left out");
        assert_eq!(f.codes, [("PLINTH_023".to_string(), 3), ("PLINTH_020".to_string(), 1)]);
        assert_eq!(f.peak, 10);
        assert_eq!(f.bars.len(), 3);
        assert_eq!(f.bars.last().map(|b| (b.x, b.h)), Some((118, CHART_H)), "the current minute is the last bar, full height");
        assert!(f.p50.ends_with("ms") && f.p99.ends_with("ms"), "{} {}", f.p50, f.p99);
        assert_eq!(hours["g"].waiting, 5);
        assert!(hours["g"].p50.is_empty() && hours["g"].bars.is_empty(), "no run of g ended");
    }

    #[test]
    fn an_empty_store_has_no_hour_and_a_silent_node_is_lost() {
        assert!(hours(&RunStats::default(), 0).is_empty());
        let beat = |id: &str, seen_at: i64| NodeBeat {
            id: id.into(),
            host: "h".into(),
            version: "v".into(),
            started_at: 0,
            seen_at,
            leads: true,
        };
        let rows = nodes(vec![beat("a", 100_000_000), beat("b", 80_000_000)], 100_000_000);
        assert!(rows[0].alive && rows[0].leads);
        assert!(!rows[1].alive && !rows[1].leads, "a lost node no longer leads");
    }
}
